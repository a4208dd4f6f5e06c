"""Every manifest the exporters write obeys the contract's rules, and a manifest that breaks
one is refused before any program runs, with the rule named."""
import json
import shutil

import pytest

from edgetune.contract import load_manifest
from edgetune.contract.manifest import Manifest, manifest_problems
from edgetune.errors import ArtifactError

ARTIFACTS = ["tiny_artifact", "zo_artifact", "tiny_lm", pytest.param("minilm_artifact", marks=pytest.mark.slow)]


def artifact_dir(request, fixture):
    value = request.getfixturevalue(fixture)
    return value[0] / "art" if fixture == "tiny_lm" else value[0]


@pytest.mark.parametrize("fixture", ARTIFACTS)
def test_exported_manifests_obey_the_contract(request, fixture):
    d = artifact_dir(request, fixture)
    m = Manifest.from_json((d / "manifest.json").read_text())
    assert manifest_problems(m) == []


def _step(d):
    return d["programs"]["step"]


def _swap_feeds(d):
    outs = [t for t in _step(d)["outputs"] if t["role"] == "state"]
    outs[1]["feeds"] = outs[0]["feeds"]


def _feed_a_batch_input(d):
    next(t for t in _step(d)["outputs"] if t["role"] == "state")["feeds"] = "labels"


def _metric_that_feeds(d):
    next(t for t in _step(d)["outputs"] if t["name"] == "loss")["feeds"] = _step(d)["inputs"][0]["name"]


BROKEN = [
    ("two state outputs feed one input", _swap_feeds, "both feed"),
    ("a state output feeds a batch input", _feed_a_batch_input, "which is not a state input"),
    ("a metric feeds an input", _metric_that_feeds, "only state outputs feed inputs"),
    ("labels repeat", lambda d: d.update(labels=[d["labels"][0]] * len(d["labels"])), "must be distinct strings"),
    ("labels reversed count", lambda d: d.update(labels=d["labels"][:-1]), "labels but the logits have"),
    ("batch size not whole", lambda d: d.update(batch_size=4.7), "malformed"),
    ("unknown hyper input", lambda d: _step(d)["inputs"].append(
        {"name": "momentum", "shape": [], "dtype": "float32", "role": "hyper"}), "hyper input 'momentum'"),
    ("batch input of another shape", lambda d: next(t for t in _step(d)["inputs"] if t["name"] == "input_ids")
     .update(shape=[4, 99]), "batch input 'input_ids'"),
    ("a program of unknown name", lambda d: d["programs"].update(extra=d["programs"]["infer"]), "do not match"),
    ("program file outside the artifact", lambda d: _step(d)["files"].update(onnx="../step.onnx"), "is not a"),
]


@pytest.mark.parametrize("what, breaks, message", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_manifest_that_breaks_a_rule_is_refused(tiny_artifact, tmp_path, what, breaks, message):
    src = tiny_artifact[0]
    d = tmp_path / "art"
    shutil.copytree(src, d)
    data = json.loads((d / "manifest.json").read_text())
    breaks(data)
    (d / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=message):
        load_manifest(d, "onnx", verify=False)
