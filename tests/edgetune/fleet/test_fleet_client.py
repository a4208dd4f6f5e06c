"""The ClientApp's train handler, called in this process as a SuperNode would call it."""
import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict

from device_harness.runner import Trainer
from edgetune.errors import ConfigError
from edgetune.fleet import client
from edgetune.fleet.shared import shared_names


def message(shared: dict, artifact_id: str, steps=2) -> Message:
    cfg = ConfigRecord({"artifact-id": artifact_id, "local-steps": steps, "lr": 0.0, "schedule": "constant", "seed": 0,
                        "server-round": 1})
    return Message(RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in shared.items()}), "config": cfg}),
                   dst_node_id=1, message_type="train")


def test_train_takes_the_global_tensors_and_keeps_the_rest(tiny_artifact, demo_data, tmp_path, task_identity):
    art, manifest, _ = tiny_artifact
    names = shared_names(manifest, ("head.*",))
    ctx = Context(run_id=1, node_id=1, node_config={"artifact": str(art), "data": str(demo_data[0]),
                                                     "state": str(tmp_path / "me.safetensors")},
                  state=RecordDict(), run_config={})
    init = Trainer(art, "onnx", tmp_path / "ref.safetensors").state
    sent = {k: init[k] + np.float32(0.01) for k in names}  # a global state unlike the initial one
    out = client.train(message(sent, manifest.artifact_id), ctx)

    ref = Trainer(art, "onnx", tmp_path / "ref.safetensors")
    ref.state.update({k: v.copy() for k, v in sent.items()})
    list(ref.train(demo_data[0], 2, seed=0, save_every=0, schedule="constant"))
    got = {k: a.numpy() for k, a in out.content["arrays"].items()}
    assert sorted(got) == sorted(names)  # the personal head is not sent back
    for k in names:
        np.testing.assert_allclose(got[k], ref.state[k], rtol=1e-6, atol=1e-7)
    rows = ref.encode(demo_data[0])
    assert out.content["metrics"]["num-examples"] == rows.n > 0 and out.content["metrics"]["steps"] == 2
    rows.close()
    assert out.content["config"]["artifact-id"] == manifest.artifact_id
    mine = Trainer(art, "onnx", tmp_path / "me.safetensors")  # the state file holds the personal head, trained
    assert mine.step == 2
    np.testing.assert_allclose(mine.state["param.head.weight"], ref.state["param.head.weight"], rtol=1e-6, atol=1e-7)

    with pytest.raises(ConfigError, match="deploy the run's artifact to this client"):
        client.train(message(sent, "0" * 64), ctx)
    with pytest.raises(ConfigError, match=r"as float32\[1"):
        client.train(message({names[0]: np.zeros((1, 1), np.float32)}, manifest.artifact_id), ctx)
    with pytest.raises(ConfigError, match="'param.nope', which is not a state tensor"):
        client.train(message({"param.nope": np.zeros(1, np.float32)}, manifest.artifact_id), ctx)
    assert Trainer(art, "onnx", tmp_path / "me.safetensors").step == 2  # refused messages changed nothing


def test_evaluate_scores_the_held_out_file_with_the_global_tensors(tiny_artifact, demo_data, tmp_path, task_identity):
    from device_harness.runner import evaluate

    art, manifest, _ = tiny_artifact
    names = shared_names(manifest)
    node = {"artifact": str(art), "data": str(demo_data[0]), "state": str(tmp_path / "me.safetensors")}
    init = Trainer(art, "onnx", tmp_path / "ref.safetensors").state
    sent = {k: init[k] * np.float32(1.5) for k in names}
    ctx = Context(run_id=1, node_id=1, node_config={**node, "eval-data": str(demo_data[1])}, state=RecordDict(),
                  run_config={})
    out = client.evaluate_held_out(message(sent, manifest.artifact_id), ctx)
    want = evaluate(art, demo_data[1], "onnx", state={**init, **sent})
    assert out.content["metrics"]["accuracy"] == want["accuracy"]
    assert out.content["metrics"]["loss"] == pytest.approx(want["loss"], rel=1e-6)
    assert out.content["metrics"]["num-examples"] == want["examples"] and "arrays" not in out.content.array_records
    with pytest.raises(ConfigError, match="has no held-out file"):
        client.evaluate_held_out(message(sent, manifest.artifact_id), Context(
            run_id=1, node_id=1, node_config=node, state=RecordDict(), run_config={}))
