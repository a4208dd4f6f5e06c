"""Regression for the NaN that graph rewrites put into LoRA's A update.

At step 1 LoRA's A has an exactly-zero gradient (B starts at 0), so AdamW computes
0 / (0 + eps). onnxscript's default optimizer folds `+ 1e-8` away (a no-op rule with
abs tolerance 1e-8) and the update becomes 0/0 = NaN. The artifact exporter runs no
such rewrites and checks every export at exactly this point.
"""
import numpy as np
import pytest
import torch

from device_harness.runtimes import OnnxProgram
from edgetune import AdamW, FullyTrainable, LoRA, compile_step, prepare
from edgetune.errors import InternalError
from edgetune.models.tiny import TinyClassifier
from exporters.artifact import PARITY_LR, compare_outputs
from exporters.onnx import export_onnx


@pytest.fixture(scope="module")
def compiled_and_ep():
    c = compile_step(prepare(TinyClassifier(), [LoRA(r=4), FullyTrainable()]), AdamW(), 4, 12)
    return c, c.capture("step")


def _step1(c, ep, tmp_path, optimize):
    path = export_onnx(ep, c.step_spec(), tmp_path / f"step_{optimize}.onnx", optimize=optimize)
    feeds = c.example_feeds(lr=PARITY_LR)
    want = c.eager_step(feeds)
    got = OnnxProgram(path, c.step_spec()).run({k: v.numpy() for k, v in feeds.items()})
    return want, got


def test_zero_gradients_at_step_one(compiled_and_ep):
    c, _ = compiled_and_ep
    grads_zero = [n for n in c.names if n.endswith("lora_A")]
    assert grads_zero, "the premise: LoRA A tensors exist"
    out = c.eager_step(c.example_feeds(lr=PARITY_LR))
    for n in grads_zero:  # A's gradient is exactly zero at init, so A and its Adam moments stay put
        assert torch.equal(out[f"next.adamw.m.{n}"], torch.zeros_like(out[f"next.adamw.m.{n}"]))


def test_exported_step_keeps_epsilon(compiled_and_ep, tmp_path):
    want, got = _step1(*compiled_and_ep, tmp_path, optimize=False)
    assert compare_outputs(want, got) == []


def test_default_onnxscript_rewrites_change_the_numbers_and_are_caught(compiled_and_ep, tmp_path):
    """If onnxscript ever stops dropping the epsilon this test says so, and the exporter's
    optimize=False choice can be revisited."""
    want, got = _step1(*compiled_and_ep, tmp_path, optimize=True)
    bad = compare_outputs(want, got)
    assert bad and all("lora_A" in b for b in bad), bad
    assert any(not np.isfinite(got[k]).all() for k in got if "lora_A" in k)


def test_self_check_rejects_a_rewritten_step(compiled_and_ep, tmp_path, monkeypatch):
    """The artifact exporter's own guard fails an export whose graph was rewritten."""
    import exporters.onnx as onnx_exporter
    from exporters.artifact import export_artifact

    c, _ = compiled_and_ep
    real = onnx_exporter.export_onnx
    monkeypatch.setattr(onnx_exporter, "export_onnx", lambda ep, spec, path, optimize=False: real(ep, spec, path, True))
    with pytest.raises(InternalError, match="lora_A"):
        export_artifact(c, tmp_path / "art", formats=("onnx",))
    assert not (tmp_path / "art").exists()  # a failed export leaves nothing behind
