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


def test_the_dim_order_pass_is_kept_where_a_reduction_reads_another_order():
    from executorch.exir import to_edge
    from executorch.exir.passes.legalize_portable_dim_order_pass import LegalizePortableDimOrderPass

    acts = acts_on()[LegalizePortableDimOrderPass]
    x = torch.randn(2, 3, 4, 5)

    def edge(fn):
        return to_edge(torch.export.export(_Fn(fn), (x,))).exported_program().graph

    assert acts(edge(lambda a: a.to(memory_format=torch.channels_last).sum(1)))
    assert not acts(edge(lambda a: a.sum(1)))
    assert not acts(edge(lambda a: a.to(memory_format=torch.channels_last) * 2))  # no reduction


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


def _edge_code_ours_and_theirs(monkeypatch, fn, x):
    """-> (our edge program's code, ExecuTorch's, whether ExecuTorch's view pass ran in ours)."""
    from executorch.exir import to_edge
    from torch._export.passes import replace_view_ops_with_view_copy_ops_pass as views

    import exporters.edge_passes as edge

    ep = torch.export.export(_Fn(fn), (x,)).run_decompositions()
    theirs = to_edge(ep).exported_program()
    ran = []
    real = views.ReplaceViewOpsWithViewCopyOpsPass.call
    monkeypatch.setattr(views.ReplaceViewOpsWithViewCopyOpsPass, "call", lambda self, gm: ran.append(1) or real(self, gm))
    with edge.only_edge_passes_that_act():
        ours = to_edge(ep).exported_program()
    torch.testing.assert_close(ours.module()(x), fn(x), rtol=0, atol=0)
    return ours.graph_module.code, theirs.graph_module.code, bool(ran)


def test_views_renamed_in_place_give_executorchs_edge_program(monkeypatch):
    """Views, a reshape of a transpose, an expand and a slice keeping the whole tensor (which
    RemoveNoopPass drops as a slice_copy): renamed in place, not re-interpreted."""
    def fn(a):
        t = a.transpose(0, 1)
        return (t.reshape(24)[0:24].view(4, 6) + a.unsqueeze(0).expand(2, 4, 6)).sum(0)[1:3]

    ours, theirs, ran = _edge_code_ours_and_theirs(monkeypatch, fn, torch.randn(4, 6))
    assert not ran
    assert ours == theirs
    assert "aten_permute_copy_default" in ours and "aten_expand_copy_default" in ours
    assert ours.count("slice_copy_Tensor(") == 1  # of the program's two slices, the whole-tensor one is gone


def test_a_copy_compared_by_strides_gets_executorchs_view_pass(monkeypatch):
    """A same-dtype ``_to_copy`` of an expand: RemoveToCopyPass compares its strides with its
    input's, which only the re-interpretation makes contiguous (and then drops the copy);
    ExecuTorch's pass runs."""
    def fn(a):
        return a.unsqueeze(0).expand(2, 4, 6).to(torch.float32, copy=True) * 2

    ours, theirs, ran = _edge_code_ours_and_theirs(monkeypatch, fn, torch.randn(4, 6))
    assert ran
    assert ours == theirs
