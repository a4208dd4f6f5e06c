"""XNNPACK's per-partition passes, each run only where it can change something.

XNNPACK's preprocess runs seventeen passes over every partition it delegates, and each
pass ends with a re-trace of the whole partition on fake tensors whether it changed
anything or not. On SmolLM2's step (599 partitions, 25k delegated ops) that was 440 of
the export's 1284 s, about 250 of them in passes with nothing to act on: most act only on
ops a transformer's step does not have (convolutions, batch norm, PReLU, max-pooling,
padding, bilinear upsampling, SDPA's pattern). Here a pass runs only if the partition, as
it stands when the pass's turn comes, holds an op the pass acts on; passes not in the
table below always run.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Callable
from unittest import mock

import torch


def _targets(graph: torch.fx.Graph) -> set:
    return {n.target for n in graph.nodes if n.op == "call_function"}


def _names(targets: set) -> set[str]:
    return {getattr(t, "__name__", str(t)) for t in targets}


def _any_of(*names: str) -> Callable[[torch.fx.Graph], bool]:
    return lambda graph: not _names(_targets(graph)).isdisjoint(names)


def _any_target(targets) -> Callable[[torch.fx.Graph], bool]:
    return lambda graph: not _targets(graph).isdisjoint(targets)


def _pattern_ops(patterns) -> Callable[[torch.fx.Graph], bool]:
    """A subgraph matcher finds a pattern only where every op of the pattern occurs. The
    patterns are traced once (``patterns()`` traces them anew on each call)."""
    ops = functools.cache(lambda: [_names(_targets(p.graph)) for p in patterns()])

    def found(graph: torch.fx.Graph) -> bool:
        names = _names(_targets(graph))
        return any(o <= names for o in ops())

    return found


@functools.cache
def acts_on() -> dict[type, Callable[[torch.fx.Graph], bool]]:
    """XNNPACK pass -> whether it can change a partition's graph (each from the pass's own op lists)."""
    from executorch.backends.xnnpack._passes import (
        Conv1dUnsqueezePass,
        ConvertToSDPAPass,
        ConvertToUpsampleBilinear2d,
        DecomposeBatchNorm,
        DecomposeConcatenate,
        DimOrderOpsRevertPass,
        FuseActivationPass,
        FuseBatchNormPass,
        InsertPadQDQPass,
        PReLUReshapePass,
        PropagateCustomMetaPass,
        RemoveGetItemPass,
        RemoveRedundantCopyPass,
        XNNPACKRemoveCloneOpsTransform,
    )
    from executorch.backends.xnnpack.partition.graphs import bilinear_2d, sdpa
    from executorch.backends.xnnpack.utils.quant_utils import is_dequant, is_quant
    from executorch.exir.passes.dim_order_ops_registry import MemoryFormatOpsMap

    def quantized(graph):
        return any(is_quant(n) or is_dequant(n) for n in graph.nodes)

    return {
        XNNPACKRemoveCloneOpsTransform: _any_target(XNNPACKRemoveCloneOpsTransform.clone_ops),
        DimOrderOpsRevertPass: _any_target(MemoryFormatOpsMap),
        ConvertToUpsampleBilinear2d: _pattern_ops(bilinear_2d.get_graphs),
        PropagateCustomMetaPass: quantized,
        ConvertToSDPAPass: _pattern_ops(sdpa.get_graphs),
        FuseBatchNormPass: _any_target(DecomposeBatchNorm.BATCH_NORM_OPS),
        DecomposeBatchNorm: _any_target(DecomposeBatchNorm.BATCH_NORM_OPS),
        FuseActivationPass: _any_target(FuseActivationPass.FUSEABLE_ACTIVATIONS),
        DecomposeConcatenate: _any_of("aten.cat.default"),
        RemoveGetItemPass: _any_of("aten.max_pool2d_with_indices.default", "aten.max.dim"),
        InsertPadQDQPass: _any_of("aten.constant_pad_nd.default"),
        Conv1dUnsqueezePass: _any_of("aten.convolution.default"),
        PReLUReshapePass: _any_of("aten._prelu_kernel.default"),
        RemoveRedundantCopyPass: _any_of("aten._to_copy.default"),
    }


@contextlib.contextmanager
def only_passes_that_act():
    """While lowering to XNNPACK, skip each of its passes that finds nothing to act on."""
    from executorch.backends.xnnpack import _passes

    manager = _passes.XNNPACKPassManager
    real_transform = manager.transform
    table = acts_on()

    def transform(self):
        ep = self.exported_program
        for pass_ in self.passes:
            if pass_ not in table or table[pass_](ep.graph_module.graph):
                ep = real_transform(manager(ep, passes=[pass_]))
        return ep

    with mock.patch.multiple(manager, transform=transform):
        yield
