"""ExecuTorch's conversion to its edge dialect and on to its own: each pass run only where it
can change something, and the op-by-op rewrites run in one interpretation.

`to_edge` runs about a dozen passes over the whole program before partitioning. Most are
ExportPasses: each re-interprets every node on fake tensors, whether it changes anything or
not (about 1 s per pass on MiniLM's 2,000-node step, 10 s on SmolLM2's 29,000). Three of
them act on ops a captured edgetune program does not hold: `SymToTensorPass` (symbolic
sizes: edgetune's shapes are static), `NormalizeTransposePass` (`aten.t`: the capture
decomposes it) and `ReplaceBrokenOpsWithFunctionalOpsPass` (view ops, which
`ReplaceViewOpsWithViewCopyOpsPass` has replaced before its turn). Here each of those runs
only if the graph, as it stands at its turn, holds such an op; every other pass always runs.
So does `LegalizePortableDimOrderPass` of `to_executorch`, which acts only on a reduction,
pooling or expand left to the portable kernels whose input is not in the default dim order.

`ReplaceViewOpsWithViewCopyOpsPass` only swaps each view op for its copy; it is done by
renaming the ops in place (`_ViewsAsCopies`), not by a re-interpretation.

Four more are op-by-op rewrites, each its own re-interpretation: `ScalarToTensorPass`,
`RemoveMixedTypeOperators`, `OpReplacePass` (aten to edge ops) and `MemoryFormatOpsPass`
(about 75 s of SmolLM2's 380 s of lowering). They run here as one interpretation
(`_one_interpretation`), each op handed through the four rewrites in their order. Between
the first and the second, ExecuTorch runs three graph edits (`RemoveNoopPass`,
`PruneEmptyTensorsPass`, `RemoveToCopyPass`) that read only what `ScalarToTensorPass` leaves
alone (`to`, `dropout`, `slice_copy`, `cat` and `_to_copy` nodes and their shapes); they run
before the fused rewrites instead. The tests check the .pte is byte for byte the same.
"""
from __future__ import annotations

import contextlib
import functools
import operator
from typing import Callable
from unittest import mock

import torch


def _symbolic(graph: torch.fx.Graph) -> bool:
    """A value SymToTensorPass would turn into a tensor: a SymInt, SymFloat or SymBool."""
    return any(isinstance(n.meta.get("val"), (torch.SymInt, torch.SymFloat, torch.SymBool)) for n in graph.nodes)


def _calls(graph: torch.fx.Graph, test: Callable[[object], bool]) -> bool:
    return any(n.op == "call_function" and test(n.target) for n in graph.nodes)


def _reads_non_default_dim_order(targets) -> Callable[[torch.fx.Graph], bool]:
    """Whether a call of one of ``targets`` reads a tensor not in the default dim order (or
    one whose value is not recorded)."""
    def reads(graph: torch.fx.Graph) -> bool:
        for n in graph.nodes:
            if n.op == "call_function" and n.target in targets and n.args:
                arg = n.args[0]
                value = arg.meta.get("val") if isinstance(arg, torch.fx.Node) else arg
                if value is None or isinstance(value, torch.Tensor) and tuple(value.dim_order()) != tuple(range(value.dim())):
                    return True
        return False

    return reads


@functools.cache
def acts_on() -> dict[type, Callable[[torch.fx.Graph], bool]]:
    """Edge-dialect pass -> whether it can change the program's graph (from the pass's own test)."""
    from executorch.exir.passes.legalize_portable_dim_order_pass import LegalizePortableDimOrderPass
    from executorch.exir.passes.normalize_transpose_pass import NormalizeTransposePass
    from executorch.exir.passes.replace_broken_ops_with_function_ops_pass import ReplaceBrokenOpsWithFunctionalOpsPass
    from executorch.exir.passes.sym_to_tensor_pass import SymToTensorPass

    return {
        SymToTensorPass: _symbolic,
        NormalizeTransposePass: lambda graph: _calls(graph, lambda t: t is torch.ops.aten.t.default),
        ReplaceBrokenOpsWithFunctionalOpsPass: lambda graph: _calls(
            graph, lambda t: isinstance(t, torch._ops.OpOverload) and t.is_view),
        LegalizePortableDimOrderPass: _reads_non_default_dim_order(LegalizePortableDimOrderPass._target_ops),
    }


def _one_interpretation(config):
    """The pass running ScalarToTensorPass, RemoveMixedTypeOperators, OpReplacePass and (unless
    ``config`` skips dim orders) MemoryFormatOpsPass in one interpretation: each is an
    ExportPass rewriting one op at a time and handing it on with ``super().call_operator``, so
    chained by inheritance, each op goes through all four in this order."""
    from executorch.exir.passes import MemoryFormatOpsPass, OpReplacePass, ScalarToTensorPass
    from executorch.exir.passes.remove_mixed_type_operators import RemoveMixedTypeOperators

    chain = (ScalarToTensorPass, RemoveMixedTypeOperators, OpReplacePass)
    chain += () if config._skip_dim_order else (MemoryFormatOpsPass,)
    return type("EdgeRewrites", chain, {})()


def _values_read_between(graph: torch.fx.Graph) -> bool:
    """Whether a pass between the view rewrite and the fused rewrites reads a value that
    renaming views in place leaves as it was captured: a no-op ``to`` or ``dropout``
    (`RemoveNoopPass` compares the value objects) or a ``_to_copy`` keeping dtype, device and
    shape (`RemoveToCopyPass` compares strides: a view's copy is contiguous, the view need
    not be). Anything but aten ops and ``getitem`` (submodules, symbolic ops) counts too."""
    odd = (torch.ops.aten.to.dtype, torch.ops.aten.dropout.default)
    for n in graph.nodes:
        if n.op in ("call_module", "get_attr"):
            return True
        if n.op != "call_function":
            continue
        if n.target in odd or not (isinstance(n.target, torch._ops.OpOverload) or n.target is operator.getitem):
            return True
        if n.target is torch.ops.aten._to_copy.default:
            a, b = n.args[0].meta.get("val"), n.meta.get("val")
            if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or (
                    (a.dtype, a.device, a.shape) == (b.dtype, b.device, b.shape)):
                return True
    return False


class _ViewsAsCopies:
    """`ReplaceViewOpsWithViewCopyOpsPass` (each view op becomes its ``_copy`` op) by renaming
    the ops in the program's own graph (which `to_edge` already edits: it removes asserts and
    unused parameters there), where ExecuTorch re-interprets the whole program. The
    re-interpretation's values (a view's copy is contiguous) are made again by the fused
    rewrites; the three graph edits run before them read only shapes, unless
    `_values_read_between` finds a value they read, and then the pass runs as ExecuTorch's."""

    def __call__(self, gm: torch.fx.GraphModule):
        from torch._export.passes.replace_view_ops_with_view_copy_ops_pass import (
            _NON_FUNCTIONAL_OPS_TO_FUNCTIONAL_OPS,
            ReplaceViewOpsWithViewCopyOpsPass,
            get_view_copy_of_view_op,
        )
        from torch.fx.passes.infra.pass_base import PassResult

        if _values_read_between(gm.graph):
            return ReplaceViewOpsWithViewCopyOpsPass()(gm)
        for n in gm.graph.nodes:
            if n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload):
                copy_op = _NON_FUNCTIONAL_OPS_TO_FUNCTIONAL_OPS.get(n.target) or get_view_copy_of_view_op(n.target._schema)
                if copy_op is not None:
                    n.target = copy_op
        return PassResult(gm, True)


class _Skipped:
    """A pass whose work `_one_interpretation` does."""

    def __call__(self, gm):
        from torch.fx.passes.infra.pass_base import PassResult

        return PassResult(gm, False)


@contextlib.contextmanager
def only_edge_passes_that_act():
    """While converting to the edge dialect and on to ExecuTorch's, skip each of the passes
    above that finds nothing to act on, rename views in place and run the four op rewrites as one."""
    from executorch.exir.passes import ScalarToTensorPass
    from executorch.exir.passes.remove_mixed_type_operators import RemoveMixedTypeOperators
    from executorch.exir.program import _program
    from torch.fx.passes.infra.pass_base import PassResult

    real, real_to_executorch = _program._get_aten_to_edge_passes, _program.edge_to_executorch_passes
    table = acts_on()

    def kind(pass_):
        return type(getattr(pass_, "__wrapped__", pass_))  # the pass manager wraps each pass

    def gated(pass_):
        acts = table.get(kind(pass_))
        if acts is None:
            return pass_
        return lambda gm: pass_(gm) if acts(gm.graph) else PassResult(gm, False)

    def get_passes(config):
        pre, post = real(config)
        fused = _one_interpretation(config)
        pre = [fused if kind(p) is RemoveMixedTypeOperators else gated(p) for p in pre if kind(p) is not ScalarToTensorPass]
        return pre, post

    def to_executorch_passes(*args, **kwargs):
        return [gated(p) for p in real_to_executorch(*args, **kwargs)]

    with mock.patch.multiple(_program, _get_aten_to_edge_passes=get_passes, edge_to_executorch_passes=to_executorch_passes,
                             OpReplacePass=_Skipped, MemoryFormatOpsPass=_Skipped,
                             ReplaceViewOpsWithViewCopyOpsPass=_ViewsAsCopies):
        yield
