"""Modules of tensor inputs through the exported step: an image CNN and a 1-D sensor model
with LoRA on their convolutions, 3 steps on ONNX Runtime and ExecuTorch against the eager
step; then the device runner trains them from .npz and .safetensors files."""
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from device_harness.runner import Trainer, evaluate
from edgetune import FullyTrainable, LoRA, prepare
from edgetune.errors import ConfigError
from edgetune.step.build import compile_step
from edgetune.step.optimizers import optimizer_from_dict
from exporters.artifact import export_artifact
from helpers.parity_steps import run_parity
from helpers.tensor_models import SensorNet, SmallCNN, image_batch, sensor_batch

CASES = {"image_cnn": (SmallCNN, image_batch), "sensor_conv1d": (SensorNet, sensor_batch)}


def _export(tmp_path, name, formats, loss="cross_entropy", targets=None):
    model_cls, data = CASES[name]
    torch.manual_seed(0)
    x, y = data(8)
    prepared = prepare(model_cls(), [LoRA(targets=("conv1", "conv2"), r=2), FullyTrainable(("fc",))])
    compiled = compile_step(prepared, optimizer_from_dict({"name": "adamw", "lr": 1e-2, "weight_decay": 0.0}),
                            example_inputs=x, example_targets=targets or y, loss=loss)
    manifest = export_artifact(compiled, tmp_path / "art", formats)
    return tmp_path / "art", manifest, compiled


@pytest.mark.parametrize("name", list(CASES))
def test_exported_step_matches_eager(tmp_path, name):
    art, manifest, compiled = _export(tmp_path, name, ("onnx", "executorch"))
    assert manifest.task == "tensors" and manifest.seq_len == 0 and manifest.tokenizer is None
    assert [t.name for t in manifest.programs["infer"].of_role("batch")] == list(compiled.example_inputs)
    for runtime in ("onnx", "executorch"):
        ref, _ = run_parity(art, manifest, compiled, runtime, steps=3)
        assert all(float(ref[k].abs().max()) > 0 for k in ref if k.endswith("lora_B"))  # the conv factors moved


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_runner_trains_from_array_files(tmp_path, suffix):
    art, manifest, _ = _export(tmp_path, "image_cnn", ("onnx",))
    x, y = image_batch(64, seed=3)
    arrays = {"images": x["images"].numpy(), "labels": y["labels"].numpy()}
    data = tmp_path / f"train{suffix}"
    np.savez(data, **arrays) if suffix == ".npz" else save_file(arrays, str(data))
    before = evaluate(art, data, "onnx", art / "state.safetensors")
    for _ in Trainer(art, "onnx", tmp_path / "s.safetensors").train(data, 60, save_every=0):
        pass
    after = evaluate(art, data, "onnx", tmp_path / "s.safetensors")
    assert after["examples"] == 64 and after["loss"] < before["loss"] and after["accuracy"] > before["accuracy"]


def test_regression_target_and_mse(tmp_path):
    """An MSE target of the output's shape: the sensor model predicts 5 values per window."""
    x, _ = sensor_batch(8)
    target = {"values": torch.randn(8, 5)}
    art, manifest, compiled = _export(tmp_path, "sensor_conv1d", ("onnx",), loss="mse", targets=target)
    run_parity(art, manifest, compiled, "onnx", steps=3)
    data = tmp_path / "d.npz"
    np.savez(data, windows=sensor_batch(20, seed=2)[0]["windows"].numpy(), values=np.ones((20, 5), np.float32))
    before = evaluate(art, data, "onnx", art / "state.safetensors")["mse"]
    for _ in Trainer(art, "onnx", tmp_path / "s.safetensors").train(data, 40, save_every=0):
        pass
    assert evaluate(art, data, "onnx", tmp_path / "s.safetensors")["mse"] < before / 2


def test_tensor_step_options_are_checked():
    x, y = image_batch(4)
    p = prepare(SmallCNN(), [LoRA(targets=("conv2",), r=2)])
    opt = optimizer_from_dict({"name": "adamw", "lr": 1e-2})
    with pytest.raises(ConfigError, match="loss 'hinge'"):
        compile_step(p, opt, example_inputs=x, example_targets=y, loss="hinge")
    with pytest.raises(ConfigError, match="reserved"):
        compile_step(p, opt, example_inputs={"lr": x["images"]}, example_targets=y)
    with pytest.raises(ConfigError, match="reads one target"):
        compile_step(p, opt, example_inputs=x, example_targets={**y, "extra": y["labels"]})
    with pytest.raises(ConfigError, match="forward-only"):
        compile_step(p, optimizer_from_dict({"name": "zo", "lr": 1e-3}), example_inputs=x, example_targets=y)
