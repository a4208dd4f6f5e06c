"""A forward-only (LOZO-M) step exported to ONNX and ExecuTorch and trained by the runner:
5 steps from the same seed agree with eager PyTorch, V resampling included. At eps = 1e-2
(CHECK_EPS): c = (L+ - L-) / 2eps magnifies rounding differences of the loss by 1/2eps."""
import numpy as np
import pytest
import torch

from device_harness.runner import Trainer
from edgetune.step.zeroth_order import CHECK_EPS
from exporters.artifact import ATOL, RTOL, compare_outputs


@pytest.mark.parametrize("runtime", ["onnx", "executorch"])
def test_zo_step_parity_through_the_runner(zo_artifact, runtime, tmp_path):
    art, manifest, compiled = zo_artifact
    assert {t.role for t in manifest.step.inputs} >= {"noise"} and manifest.optimizer["method"] == "lozo_m"
    trainer = Trainer(art, runtime, tmp_path / "s.safetensors")
    ref = {k: torch.from_numpy(v.copy()) for k, v in trainer.state.items()}
    for t in range(1, 6):
        batch = {k: v.numpy() for k, v in compiled.example_batch(seed=t).items()}
        hyper = trainer.hyper(None, seed=7)
        assert hyper["resample"] == float(t % 2 == 1) and hyper["eps"] == np.float32(CHECK_EPS)  # nu = 2
        want = compiled.eager_step({**ref, **{k: torch.from_numpy(v) for k, v in {**batch, **hyper}.items()}})
        rec = trainer.train_step(batch, seed=7)
        assert np.isclose(rec.loss, float(want["loss"]), rtol=RTOL, atol=ATOL)
        ref = {s.feeds: want[s.name] for s in compiled.step_spec().outputs if s.feeds}
        bad = compare_outputs(ref, trainer.state)
        assert not bad, f"{runtime} step {t}: {bad}"
    moved = [k for k in ref if k.startswith("param.") and not torch.equal(ref[k], compiled.initial_state()[k])]
    assert len(moved) == len(compiled.names)


def test_zo_onnx_session_packs_no_weight_copies(zo_artifact, tmp_path):
    """The forward-only step reads each frozen weight twice; the manifest asks onnxruntime not
    to prepack (a packed copy per reading node) and the runner applies it. A malformed entry
    is refused with the fix."""
    import dataclasses

    from device_harness.runtimes import open_program
    from edgetune.errors import ArtifactError
    from exporters.artifact import ZO_SESSION_CONFIG

    art, manifest, _ = zo_artifact
    assert manifest.step.lowering["onnx"]["session_config"] == ZO_SESSION_CONFIG
    assert "onnx" not in manifest.programs["infer"].lowering
    prog = open_program(art, manifest, "step", "onnx")
    assert prog.session.get_session_options().get_session_config_entry("session.disable_prepacking") == "1"
    spec = dataclasses.replace(manifest.step, lowering={"onnx": {"session_config": {"session.disable_prepacking": 1}}})
    bad = dataclasses.replace(manifest, programs={**manifest.programs, "step": spec})
    with pytest.raises(ArtifactError, match="session_config.*re-export"):
        open_program(art, bad, "step", "onnx")


def test_zo_executorch_step_runs_its_matmuls_on_xnnpack(zo_artifact):
    """Every matmul of both forwards is delegated, as in the inference program."""
    _, manifest, _ = zo_artifact
    step, infer = manifest.step.lowering["executorch"], manifest.programs["infer"].lowering["executorch"]
    assert step["backend"] == infer["backend"] == "XnnpackBackend"
    assert step["delegated_matmuls"] == step["matmuls"] >= 2 * infer["matmuls"]
