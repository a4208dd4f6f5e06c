"""The Kotlin trainer's manifest loader decides like the Python one (the contract's reference) on
hundreds of damaged manifests: structural edits re-stamped with a correct digest (the rules), and
byte-level damage (the parser and the digest). It may only be stricter where a manifest is not
JSON at all (NaN or Infinity, which Python's json module reads)."""
import json
import random

from device_harness.fuzz import mutate_bytes, mutate_json, restamp
from edgetune.contract.manifest import Manifest, manifest_digest
from edgetune.errors import ArtifactError


def python_accepts(raw: bytes) -> bool:
    try:
        m = Manifest.from_json(raw.decode("utf-8"))
        m.validate()
    except (ArtifactError, UnicodeDecodeError):
        return False
    return manifest_digest(raw, m.artifact_id) == m.artifact_id


def test_the_kotlin_loader_accepts_and_refuses_what_the_python_loader_does(kotlin_trainer, tiny_artifact, zo_artifact,
                                                                            tmp_path):
    rng = random.Random(0)
    cases = []
    for art in (tiny_artifact[0], zo_artifact[0]):
        good = json.loads((art / "manifest.json").read_text())
        cases.append((restamp(good), "unchanged"))
        cases += [(restamp(m), what) for m, what in (mutate_json(rng, good) for _ in range(150))]
        cases += [mutate_bytes(rng, restamp(good)) for _ in range(50)]
    files = []
    for i, (raw, _) in enumerate(cases):
        files.append(tmp_path / f"m{i}.json")
        files[-1].write_bytes(raw)
    out = tmp_path / "verdicts.json"
    kotlin_trainer.run("ToolsMain", "manifests", out, *files)
    verdicts = json.loads(out.read_text())
    want = [python_accepts(raw) for raw, _ in cases]
    assert want[0] and want.count(True) > 20 and want.count(False) > 100, "the cases must exercise both verdicts"
    differ = [(what, v["problem"], w) for (raw, what), v, w in zip(cases, verdicts, want)
              if v["accepted"] != w and not (w and (b"NaN" in raw or b"Infinity" in raw))]
    assert not differ, differ[:5]


def test_a_tensors_artifact_is_refused_by_its_task(kotlin_trainer, tensor_artifact, tmp_path):
    """The Kotlin trainer implements the text tasks: a valid tensors manifest (which Python accepts)
    is refused, naming the task, not a field it does not expect."""
    raw = (tensor_artifact[0] / "manifest.json").read_bytes()
    assert python_accepts(raw)
    out = tmp_path / "verdicts.json"
    kotlin_trainer.run("ToolsMain", "manifests", out, tensor_artifact[0] / "manifest.json")
    (verdict,) = json.loads(out.read_text())
    assert not verdict["accepted"] and "task 'tensors' is not one of" in verdict["problem"], verdict
