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
