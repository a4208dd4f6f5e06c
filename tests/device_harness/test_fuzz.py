"""The mutation fuzzer: a seeded run over damaged artifacts, manifests, state files, data
files and options finds no failure, and its judge does flag each kind of failure."""
import json
from pathlib import Path

from device_harness.fuzz import FAILURES, KINDS, MUST_REFUSE, Case, Report, fuzz, judge, restamp
from edgetune.contract.manifest import load_manifest


def test_seeded_fuzz_run_finds_no_failure(tiny_artifact, demo_data):
    art = tiny_artifact[0]
    seen: list[Case] = []
    report = fuzz(art, demo_data[0], cases=200, seed=1, before_run=seen.append)
    res = report.to_dict()
    assert res["failures"] == {name: 0 for name in FAILURES}, json.dumps(res["examples"], indent=1)[:4000]
    assert res["cases"] == 200 and set(res["by_kind"]) == set(KINDS)
    # both outcomes occur: refusals (exit 2) and runs that train or evaluate (exit 0)
    assert res["outcomes"].get("exit 2", 0) > 50 and res["outcomes"].get("exit 0", 0) > 10, res["outcomes"]
    # every file the fuzzer damaged was named, and damaged files were changed files
    assert all(c.damaged is not None for c in seen if c.kind in MUST_REFUSE)
    assert len({c.what for c in seen}) > 60  # the damage varies (94 distinct with seed 1)


def _case(tmp_path: Path, kind: str = "state", benign: bool = False) -> Case:
    return Case(kind, "flip", ["train", str(tmp_path)], tmp_path / "absent.safetensors", None, benign)


def test_judge_flags_each_failure(tmp_path):
    r = Report()
    judge(_case(tmp_path), {"hang": True}, r)
    judge(_case(tmp_path), {"crash": -11}, r)
    judge(_case(tmp_path), {"code": 1, "stderr": "Traceback (most recent call last):\n  x\nValueError: y\n"}, r)
    judge(_case(tmp_path), {"code": 2, "stderr": "error: internal error (KeyError 'x'); this is a bug in edgetune\n"}, r)
    judge(_case(tmp_path), {"code": 2, "stderr": "RuntimeWarning: overflow\nerror: --lr inf is not finite\n"}, r)
    judge(_case(tmp_path, "tokenizer"), {"code": 0, "stderr": ""}, r)
    assert {k: v for k, v in r.failures.items() if v} == {
        "hang": 1, "crash": 1, "traceback": 1, "internal_error": 1, "messy_stderr": 1, "accepted_modified_file": 1}
    # a clean refusal, a benign change that trains, and a data case that trains are no failure
    ok = Report()
    judge(_case(tmp_path), {"code": 2, "stderr": "error: state file s is damaged: checksum differs\n"}, ok)
    judge(_case(tmp_path, "state", benign=True), {"code": 0, "stderr": ""}, ok)
    judge(_case(tmp_path, "data"), {"code": 0, "stderr": ""}, ok)
    assert sum(ok.failures.values()) == 0 and ok.cases == 3


def test_judge_flags_a_written_state_that_does_not_load(tiny_artifact, tmp_path):
    art = tiny_artifact[0]
    state = tmp_path / "s.safetensors"
    state.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")  # an empty safetensors file: no tensors
    r = Report()
    judge(Case("data", "x", ["train", str(art)], state, None), {"code": 0, "stderr": ""}, r)
    assert r.failures["state_written_unloadable"] == 1


def test_restamped_manifest_passes_the_digest_check(tiny_artifact, tmp_path):
    """The fuzzer's re-stamping gives an edited manifest a correct id, so only its content is judged."""
    art = tiny_artifact[0]
    d = json.loads((art / "manifest.json").read_text())
    d["labels"] = list(reversed(d["labels"]))
    (tmp_path / "manifest.json").write_bytes(restamp(d))
    for f in art.iterdir():
        if f.name != "manifest.json" and f.is_file():
            (tmp_path / f.name).symlink_to(f)
    assert load_manifest(tmp_path, verify=True).labels == d["labels"]
