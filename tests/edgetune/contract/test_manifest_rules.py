"""Every manifest the exporters write obeys the contract's rules, and a manifest that breaks
one is refused before any program runs, with the rule named."""
import json
import shutil

import pytest

from edgetune.contract import load_manifest
from edgetune.contract.manifest import Manifest, manifest_problems
from edgetune.errors import ArtifactError

ARTIFACTS = ["tiny_artifact", "zo_artifact", "tiny_lm", "tensor_artifact",
             pytest.param("minilm_artifact", marks=pytest.mark.slow)]


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


def _onnx_weights(d, name):
    _step(d).setdefault("lowering", {}).setdefault("onnx", {})["external_data"] = name


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
    ("program file outside the artifact", lambda d: _step(d)["files"].update(onnx="../step.onnx"), "plain file name"),
    ("batch size huge", lambda d: d.update(batch_size=10**9), "batch_size must be a whole number in"),
    ("inference batch of zero rows", lambda d: [t.update(shape=[0, t["shape"][1]]) for t in d["programs"]["infer"]["inputs"]
                                                if t["role"] == "batch"], "the inference batch 0 must lie in"),
    ("sequence length 1e9", lambda d: d.update(seq_len=10**9), "seq_len must be a whole number in"),
    ("labels of another type", lambda d: d.update(labels="a,b"), "labels must be a JSON list"),
    ("no learning rate", lambda d: d["optimizer"].pop("lr"), "no default lr"),
    ("lowering of another type", lambda d: _step(d).update(lowering=[1]), "lowering must be a JSON object"),
    ("the initial state unhashed", lambda d: d["hashes"].pop("state.safetensors"), "hashes must list exactly"),
    ("weights file outside the artifact", lambda d: _onnx_weights(d, "../weights.onnx.data"), "plain file name"),
    ("weights file of another kind", lambda d: _onnx_weights(d, "state.safetensors"), "must name a .onnx.data file"),
    ("weights file unhashed", lambda d: _onnx_weights(d, "weights.onnx.data"), "hashes must list exactly"),
    ("an unknown field", lambda d: d.update(extra=1), "unknown keys"),
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


@pytest.mark.parametrize("raw, message", [
    (b'{"format": "edgetune.artifact", "version": 1, "x": "caf\xe9"}', "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    (b'{"format": "edgetune.artifact", "version": 1, "batch_size": ' + b"9" * 5000 + b"}", "not valid JSON"),
], ids=["not UTF-8", "nested too deep", "5,000-digit number"])
def test_unreadable_manifests_are_one_error(tiny_artifact, tmp_path, raw, message):
    d = tmp_path / "art"
    shutil.copytree(tiny_artifact[0], d)
    (d / "manifest.json").write_bytes(raw)
    with pytest.raises(ArtifactError, match=message):
        load_manifest(d, "onnx")


@pytest.mark.parametrize("edit", [lambda d: d.update(labels=d["labels"][::-1]),
                                  lambda d: d["optimizer"].update(lr=0.5)], ids=["labels reversed", "lr changed"])
def test_an_edit_that_obeys_every_rule_is_caught_by_the_digest(tiny_artifact, tmp_path, edit):
    d = tmp_path / "art"
    shutil.copytree(tiny_artifact[0], d)
    data = json.loads((d / "manifest.json").read_text())
    edit(data)
    (d / "manifest.json").write_text(json.dumps(data, indent=1, sort_keys=True))
    load_manifest(d, "onnx", verify=False)  # every rule holds
    with pytest.raises(ArtifactError, match="changed after export"):
        load_manifest(d, "onnx")


@pytest.mark.parametrize("name", ["state.safetensors", "tokenizer.json"])
def test_a_changed_state_or_tokenizer_is_refused(tiny_artifact, tmp_path, name):
    d = tmp_path / "art"
    shutil.copytree(tiny_artifact[0], d)
    raw = bytearray((d / name).read_bytes())
    raw[len(raw) // 2] ^= 1
    (d / name).write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="sha256 differs"):
        load_manifest(d, "onnx")


def _tensor_step_input(d, name):
    return next(t for t in _step(d)["inputs"] if t["name"] == name)


TENSOR_BROKEN = [
    ("a sequence length", lambda d: d.update(seq_len=16), "a tensors artifact has seq_len 0"),
    ("the batch not first", lambda d: _tensor_step_input(d, "images").update(shape=[3, 1, 16, 16]),
     r"must have the batch \(4\) as its first dimension"),
    ("a step without the model's input", lambda d: _step(d)["inputs"].remove(_tensor_step_input(d, "images")),
     "must include the inference program's"),
    ("no batch input at all", lambda d: d["programs"]["infer"].update(
        inputs=[t for t in d["programs"]["infer"]["inputs"] if t["role"] != "batch"]), "at least one batch input"),
]


@pytest.mark.parametrize("what, breaks, message", TENSOR_BROKEN, ids=[b[0] for b in TENSOR_BROKEN])
def test_a_tensors_manifest_that_breaks_a_rule_is_refused(tensor_artifact, tmp_path, what, breaks, message):
    d = tmp_path / "art"
    shutil.copytree(tensor_artifact[0], d)
    data = json.loads((d / "manifest.json").read_text())
    breaks(data)
    (d / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=message):
        load_manifest(d, "onnx", verify=False)
