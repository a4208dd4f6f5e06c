"""Every adapter method in one tiny model, exported once: ONNX and ExecuTorch steps and
inference agree with eager PyTorch, and LoRA-SP's frozen entries stay frozen on the runtime."""
import numpy as np
import pytest

from device_harness.runtimes import open_program
from edgetune import AdamW, compile_step, prepare
from edgetune.adapters import ADAPTERS
from edgetune.contract.names import param_input
from exporters.artifact import ATOL, RTOL, export_artifact
from helpers.method_examples import EXAMPLES, calibration, tiny_model
from helpers.parity_steps import run_parity


@pytest.fixture(scope="module")
def all_methods_artifact(tmp_path_factory):
    """Every registered method (tests/helpers/method_examples.py) in one model and one artifact."""
    prepared = prepare(tiny_model(), list(EXAMPLES.values()), calibration=calibration())
    assert [a.method for a in prepared.report.adapters] == list(EXAMPLES) and set(EXAMPLES) == set(ADAPTERS)
    compiled = compile_step(prepared, AdamW(lr=1e-3, weight_decay=0.01), batch_size=4, seq_len=16)
    out = tmp_path_factory.mktemp("methods") / "artifact"
    return out, export_artifact(compiled, out), compiled


@pytest.mark.parametrize("runtime", ["onnx", "executorch"])
def test_every_method_steps_like_eager(all_methods_artifact, runtime):
    art, manifest, compiled = all_methods_artifact
    ref, state = run_parity(art, manifest, compiled, runtime)
    init = compiled.initial_state()
    for name, mask in compiled.masks.items():  # LoRA-SP: frozen entries unchanged, trainable ones moved
        key = param_input(name)
        assert np.array_equal(state[key][~mask.numpy()], init[key][~mask].numpy()), name
    moved = [n for n in compiled.names if not np.allclose(state[param_input(n)], init[param_input(n)].numpy())]
    assert len(moved) == len(compiled.names)
    # Inference from the trained state, where every adapter is active.
    prog = open_program(art, manifest, "infer", runtime)
    batch = compiled.example_batch(seed=9)
    want = compiled.eager_infer({**ref, **batch})
    got = prog.run({t.name: ({**state, **{k: v.numpy() for k, v in batch.items()}})[t.name] for t in prog.spec.inputs})
    np.testing.assert_allclose(got["logits"], want.numpy(), rtol=RTOL, atol=ATOL)
