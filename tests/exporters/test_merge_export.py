"""Train a few steps through the runtime, then fold the adapters into the base weights:
the inference-only artifact reproduces the trained adapted model's logits."""
import numpy as np
import pytest
import torch

from device_harness.runner import Trainer, predict
from edgetune.app.restore import export_merged, restore_prepared
from edgetune.errors import ArtifactError
from exporters.artifact import ATOL, RTOL


def test_merged_artifact_matches_the_trained_adapters(tiny_artifact, demo_data, tmp_path):
    art, manifest, compiled = tiny_artifact
    state = tmp_path / "trained.safetensors"
    for _ in Trainer(art, "onnx", state).train(demo_data[0], 4, save_every=0):
        pass
    out = tmp_path / "merged"
    merged, _ = export_merged(art, out, state, formats=("onnx", "executorch"))
    assert "step" not in merged.programs and not merged.state_specs()
    assert "step_cost" in manifest.model and "step_cost" not in merged.model  # it has no step to cost
    batch = compiled.example_batch(seed=3)
    arrays = {k: v.numpy() for k, v in batch.items() if k != "labels"}
    trained_logits = predict(art, arrays, "onnx", state)  # adapters + trained state through the runtime
    restored, _ = restore_prepared(art, state)
    with torch.no_grad():
        eager = restored.model(batch["input_ids"], batch["attention_mask"]).numpy()
    np.testing.assert_allclose(trained_logits, eager, rtol=RTOL, atol=ATOL)
    assert not np.allclose(eager, predict(art, arrays, "onnx", art / "state.safetensors"), atol=1e-4)  # it trained
    for runtime in ("onnx", "executorch"):
        np.testing.assert_allclose(predict(out, arrays, runtime), eager, rtol=RTOL, atol=ATOL)
    with pytest.raises(ArtifactError, match="inference-only"):
        Trainer(out, "onnx")
