"""Eager step vs a runtime's step over several AdamW steps; each side is fed its own outputs,
so errors would accumulate rather than be reset."""
import torch

from device_harness.runtimes import open_program
from edgetune.contract.state import load_state
from exporters.artifact import PARITY_LR, compare_outputs


def run_parity(art_dir, manifest, compiled, runtime, steps=5, lr=PARITY_LR):
    prog = open_program(art_dir, manifest, "step", runtime)
    state, _ = load_state(art_dir / "state.safetensors", manifest, initial=True)
    ref = {k: torch.from_numpy(v.copy()) for k, v in state.items()}
    feeds_of = {t.feeds: t.name for t in prog.spec.outputs if t.feeds}
    for t in range(1, steps + 1):
        batch = compiled.example_batch(seed=t)
        hyper = {"lr": torch.tensor(lr), "step": torch.tensor(float(t))}
        want = compiled.eager_step({**ref, **batch, **hyper})
        got = prog.run({**state, **{k: v.numpy() for k, v in {**batch, **hyper}.items()}})
        bad = compare_outputs(want, got)
        assert not bad, f"{runtime} step {t}: {bad}"
        ref = {i: want[o] for i, o in feeds_of.items()}
        state = {i: got[o] for i, o in feeds_of.items()}
    return ref, state
