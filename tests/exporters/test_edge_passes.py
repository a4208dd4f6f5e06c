"""Each gated edge-dialect pass is kept where its op occurs and skipped where none does (the
.pte of the gated conversion is byte for byte ExecuTorch's: test_xnnpack_passes)."""
import torch
from executorch.exir.passes.normalize_transpose_pass import NormalizeTransposePass
from executorch.exir.passes.replace_broken_ops_with_function_ops_pass import ReplaceBrokenOpsWithFunctionalOpsPass
from executorch.exir.passes.sym_to_tensor_pass import SymToTensorPass

from exporters.edge_passes import acts_on


class _Fn(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, a):
        return self.fn(a)


def _graph(fn, x, dynamic_shapes=None, decompose=False):
    ep = torch.export.export(_Fn(fn), (x,), dynamic_shapes=dynamic_shapes)
    return (ep.run_decompositions() if decompose else ep).graph


def test_each_gated_pass_is_kept_where_its_op_occurs():
    acts = acts_on()
    x = torch.randn(4, 6)
    transpose = _graph(lambda a: a.t() @ a, x)
    assert acts[NormalizeTransposePass](transpose)
    assert not acts[NormalizeTransposePass](_graph(lambda a: a.t() @ a, x, decompose=True))  # a permute now

    view = _graph(lambda a: a.view(24) * 2, x)
    assert acts[ReplaceBrokenOpsWithFunctionalOpsPass](view)
    assert not acts[ReplaceBrokenOpsWithFunctionalOpsPass](_graph(lambda a: a * 2, x))

    sized = _graph(lambda a: a * a.shape[0], x, dynamic_shapes=({0: torch.export.Dim("n", min=2)},))
    assert acts[SymToTensorPass](sized)
    assert not acts[SymToTensorPass](_graph(lambda a: a * a.shape[0], x))


def test_the_four_op_rewrites_in_one_interpretation_give_executorchs_edge_program(monkeypatch):
    """Scalars become tensors, an int tensor times a float one is cast first, aten ops become
    edge ops and a clone a dim-order copy: the fused conversion's program is ExecuTorch's own."""
    from executorch.exir import to_edge

    import exporters.edge_passes as edge

    def fn(a):
        n = torch.arange(6)  # int64, mixed with float below
        return (a * 2.5 + n).clone(memory_format=torch.contiguous_format).transpose(0, 1)[1:] - 1

    ep = torch.export.export(_Fn(fn), (torch.randn(4, 6),))
    theirs = to_edge(ep).exported_program()
    fused = []
    real = edge._one_interpretation
    monkeypatch.setattr(edge, "_one_interpretation", lambda config: fused.append(1) or real(config))
    with edge.only_edge_passes_that_act():
        ours = to_edge(ep).exported_program()
    assert fused  # the fused pass ran
    assert ours.graph_module.code == theirs.graph_module.code
    assert "aten_mul_tensor" in ours.graph_module.code and "dim_order_ops__clone_dim_order" in ours.graph_module.code
    casts = [n.meta["val"].dtype for n in ours.graph.nodes if "_to_dim_order_copy" in str(n.target)]
    assert casts and set(casts) == {torch.float32}  # the mixed-type add's int operand
    x = torch.randn(4, 6)
    torch.testing.assert_close(ours.module()(x), fn(x), rtol=0, atol=0)
