"""Graph rewrites shared by the lowerings: edgetune's own ops spelled out in aten ops."""
from __future__ import annotations

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
