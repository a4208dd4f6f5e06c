"""Graph rewrites shared by the lowerings: edgetune's own ops spelled out in aten ops, and
re-traces that would change nothing skipped.

Every `ExportedProgram.run_decompositions` call re-traces the whole graph, however few ops
it rewrites: for SmolLM2's step (30 layers, forward, recomputation and backward) one costs
about a minute and gigabytes of host memory. The captured graph is already core aten
(`edgetune.step.compile`), and once it has been decomposed for a lowering, the lowerings' own
decomposition passes (ExecuTorch runs 3 to 5 per program, torch.onnx one) have nothing left to rewrite:
`skip_noop_decompositions` returns such a program as it is.
"""
from __future__ import annotations

import contextlib
import operator
from unittest import mock

import torch
from torch._decomp import core_aten_decompositions


def quant_references(targets: set) -> dict:
    """Decomposition table turning edgetune's quantized ops among ``targets`` (the graph's
    call targets) into aten ops over the integer constants; empty when there are none."""
    from edgetune.quant.int8_matmul import INT8_MATMUL_OP, int8_matmul_reference
    from edgetune.quant.weight import DEQUANTIZE_OP, dequantize_reference

    if not targets & {DEQUANTIZE_OP, INT8_MATMUL_OP}:
        return {}
    # The references are written in composite ops; the core set lowers what they use.
    return {**core_aten_decompositions(), DEQUANTIZE_OP: dequantize_reference,
            INT8_MATMUL_OP: int8_matmul_reference}


def call_targets(ep: torch.export.ExportedProgram) -> set:
    return {n.target for n in ep.graph.nodes if n.op == "call_function"}


def nothing_to_decompose(ep: torch.export.ExportedProgram, table: dict) -> bool:
    """True when decomposing ``ep`` with ``table`` would rewrite no node: every call is a
    functional op not in the table (or a tuple getitem), and the program mutates no buffer or
    input. A composite op outside the table is kept too (`aten.linear`, which XNNPACK's
    integer pattern needs whole; the tests check torch still does so)."""
    sig = ep.graph_signature
    if sig.buffers_to_mutate or sig.user_inputs_to_mutate:
        return False
    for t in call_targets(ep):
        if t is operator.getitem:
            continue
        if not isinstance(t, torch._ops.OpOverload) or t in table or t._schema.is_mutable:
            return False
    return True


def copy_graph_module(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A new GraphModule over a copy of ``gm``'s graph (node metadata shared, not copied): passes
    that edit it leave ``gm`` as it was. No re-trace; the weights are not copied."""
    graph = torch.fx.Graph()
    out = graph.graph_copy(gm.graph, {})
    graph.output(out)
    return torch.fx.GraphModule(gm, graph)


@contextlib.contextmanager
def skip_noop_decompositions(ep: torch.export.ExportedProgram):
    """Within the block, ``ep.run_decompositions(table)`` returns ``ep`` itself when
    `nothing_to_decompose`; any other call runs as usual. ``ep`` must be the result of a
    run_decompositions (functional inference IR, as the skipped call would have made it)."""
    real = torch.export.ExportedProgram.run_decompositions

    def run_decompositions(self, decomp_table=None, *args, **kwargs):
        if self is ep and decomp_table is not None and nothing_to_decompose(self, decomp_table):
            return self
        return real(self, decomp_table, *args, **kwargs)

    with mock.patch.multiple(torch.export.ExportedProgram, run_decompositions=run_decompositions):
        yield
