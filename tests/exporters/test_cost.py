"""A step's counted cost: FLOPs against the matmul formula and eager PyTorch's own count, bytes against the specs."""
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from edgetune.contract import ProgramSpec, TensorSpec
from exporters.cost import step_cost


class _Affine(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(64, 32)  # frozen weight [32, 64] + bias [32]

    def forward(self, x, s):
        return (self.lin(x) + s,)


def test_cost_of_a_known_program_is_the_formula():
    m = _Affine().requires_grad_(False)
    feeds = {"x": torch.randn(8, 64), "s": torch.randn(32)}
    ep = torch.export.export(m, (feeds["x"], feeds["s"]))
    spec = ProgramSpec((TensorSpec("x", (8, 64), "float32", "batch"), TensorSpec("s", (32,), "float32", "state")),
                       (TensorSpec("y", (8, 32), "float32", "metric"),))
    cost = step_cost(ep, spec)
    assert cost["flops"] == 2 * 8 * 64 * 32  # one [8,64] x [64,32] matmul
    assert cost["weight_bytes"] == (32 * 64 + 32) * 4 and cost["state_bytes"] == 32 * 4 and cost["batch_bytes"] == 8 * 64 * 4
    assert cost["bytes"] == cost["weight_bytes"] + 2 * cost["state_bytes"] + cost["batch_bytes"]


def test_exported_step_cost_is_eager_pytorchs_flop_count(tiny_artifact):
    """The manifest's count, on the captured graph, equals FlopCounterMode on the eager step."""
    _, manifest, compiled = tiny_artifact
    cost = manifest.model["step_cost"]
    with FlopCounterMode(display=False) as counter:
        compiled.eager_step(compiled.example_feeds(lr=1e-4))
    assert cost["flops"] == counter.get_total_flops() > 0
    assert cost["state_bytes"] == sum(4 * math.prod(t.shape) for t in manifest.step.of_role("state"))
    frozen = sum(p.numel() * p.element_size() for n, p in compiled.prepared.model.named_parameters()
                 if not p.requires_grad) + sum(b.numel() * b.element_size() for b in compiled.prepared.model.buffers())
    assert cost["weight_bytes"] == pytest.approx(frozen, rel=0.05)
