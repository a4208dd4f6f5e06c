"""Eager step vs ONNX step vs ExecuTorch step over 5 AdamW steps: loss, every trainable
tensor and the optimizer state (rtol 1e-4, atol 1e-5). Each runtime is fed its own
previous outputs, so errors would accumulate rather than be reset."""
import numpy as np
import pytest
import torch

from device_harness.runtimes import open_program
from edgetune.contract.state import load_state
from exporters.artifact import ATOL, RTOL
from helpers.parity_steps import run_parity


@pytest.mark.parametrize("runtime", ["onnx", "executorch"])
def test_tiny_step_parity(tiny_artifact, runtime):
    run_parity(*tiny_artifact, runtime)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnx", "executorch"])
def test_minilm_step_parity(minilm_artifact, runtime):
    ref, _ = run_parity(*minilm_artifact, runtime)
    # The trainable state really moved: parity of a frozen step would prove nothing.
    art, manifest, _ = minilm_artifact
    init, _ = load_state(art / "state.safetensors", manifest, initial=True)
    moved = [k for k in init if k.startswith("param.") and not np.allclose(init[k], ref[k].numpy())]
    assert len(moved) == sum(k.startswith("param.") for k in init)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnx", "executorch"])
def test_minilm_infer_parity(minilm_artifact, runtime):
    """Logits from a state where LoRA's B is non-zero, so the adapters take part."""
    art, manifest, compiled = minilm_artifact
    prog = open_program(art, manifest, "infer", runtime)
    g = torch.Generator().manual_seed(0)
    feeds = compiled.example_feeds()
    for k in feeds:
        if k.startswith("param.") and k.endswith("lora_B"):
            feeds[k] = torch.randn(feeds[k].shape, generator=g) * 0.05
    want = compiled.eager_infer(feeds)
    got = prog.run({t.name: feeds[t.name].numpy() for t in prog.spec.inputs})["logits"]
    assert not np.allclose(want.numpy(), compiled.eager_infer(compiled.example_feeds()).numpy(), atol=1e-3)
    np.testing.assert_allclose(got, want.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.slow
def test_executorch_matmuls_run_on_xnnpack(minilm_artifact):
    """The manifest's delegation coverage: every matmul of the step and of inference is an
    XNNPACK delegate (on portable kernels MiniLM's step took ~44x eager's time)."""
    _, manifest, _ = minilm_artifact
    for program in ("step", "infer"):
        cov = manifest.programs[program].lowering["executorch"]
        assert cov["backend"] == "XnnpackBackend" and cov["matmuls"] > 0
        assert cov["delegated_matmuls"] == cov["matmuls"], (program, cov)
        assert cov["delegated_ops"] > 0.8 * cov["total_ops"], (program, cov)
        assert "aten.erf.default" not in cov["portable_ops"]  # spelled out in XNNPACK's ops


def test_erf_from_exp_is_erf():
    from exporters.executorch import erf_from_exp

    x = torch.linspace(-8, 8, 100001, dtype=torch.float64)
    assert float((erf_from_exp(x) - torch.erf(x)).abs().max()) < 1.5e-7  # Abramowitz & Stegun 7.1.26's bound
    assert float((erf_from_exp(x.float()) - torch.erf(x.float())).abs().max()) < 1e-6
