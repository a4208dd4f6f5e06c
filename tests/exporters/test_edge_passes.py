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
