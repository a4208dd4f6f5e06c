"""Memory planning's mutable-buffer check answered from the outputs first: the same answer as
ExecuTorch's own check on every node, for a program that mutates a buffer and one that does not."""
import pytest
import torch

from exporters.exir_planning import mutable_buffer_checks_by_outputs


class Counting(torch.nn.Module):
    def __init__(self, mutate: bool):
        super().__init__()
        self.mutate = mutate
        self.register_buffer("seen", torch.zeros(3))
        self.register_buffer("scale", torch.ones(3))

    def forward(self, x):
        if self.mutate:
            self.seen.add_(x)
        return x * self.scale + self.seen


@pytest.mark.parametrize("mutate", [True, False])
def test_same_answer_as_executorchs_check(mutate):
    from executorch.exir import memory_planning, to_edge
    from executorch.exir.passes import spec_prop_pass

    ep = to_edge(torch.export.export(Counting(mutate), (torch.ones(3),))).exported_program()
    nodes, sig = list(ep.graph.nodes), ep.graph_signature
    theirs = [[m._is_mutable_buffer(n, sig) for n in nodes] for m in (memory_planning, spec_prop_pass)]
    with mutable_buffer_checks_by_outputs():
        ours = [[m._is_mutable_buffer(n, sig) for n in nodes] for m in (memory_planning, spec_prop_pass)]
        assert not memory_planning._is_mutable_buffer(nodes[0], None)
    assert ours == theirs
    assert any(theirs[0]) == mutate  # the "seen" placeholder, where it is mutated
    assert memory_planning._is_mutable_buffer.__module__ == memory_planning.__name__  # restored


class _Chain(torch.nn.Module):
    """A large intermediate that dies early, then smaller ones live at the same time: the
    planner puts them side by side in the large one's buffer."""

    def forward(self, x):  # x [64, 64]
        s = (x * 2).exp().sum(0)  # the large one dies here
        y = (x[:32] * s).tanh()
        z = (x[:16] + s).sigmoid()
        return (y[:16] * z).sum() + y.sum()


def test_placements_read_once_plan_what_executorch_plans():
    from executorch.exir import memory_planning, to_edge
    from executorch.exir.tensor import TensorSpec

    from exporters.exir_planning import placements_read_once

    def plan():
        program = to_edge(torch.export.export(_Chain(), (torch.randn(64, 64),))).to_executorch()
        specs = [n.meta["spec"] for n in program.exported_program().graph.nodes
                 if n.op == "call_function" and isinstance(n.meta.get("spec"), TensorSpec)]
        return program.buffer, [(s.mem_id, s.mem_offset) for s in specs]

    theirs = plan()
    with placements_read_once():
        assert memory_planning._does_not_overlap.__module__ == "exporters.exir_planning"
        ours = plan()
    assert ours == theirs
    assert any(offset for _, offset in theirs[1])  # tensors placed side by side, not all at offset 0
