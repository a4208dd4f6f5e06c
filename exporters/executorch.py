"""ExportedProgram -> ExecuTorch .pte (portable kernels).

The XNNPACK partitioner is not applied yet: on the step graph it delegates only
elementwise islands (none of the forward linears or the backward's matmuls), so it
adds ~35 s of lowering per program for no speed. Delegating the matmuls is its own
piece of work (see the ExecuTorch speed issue).

Quantized frozen weights stay int8 / packed uint8 constants in the .pte and are
dequantized by portable ops inside the graph, layer by layer.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch._decomp import core_aten_decompositions


def _portable_dequantize(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Spell edgetune::dequantize out in core aten ops (cast, floor, mul, add), which the
    portable kernels run on the int8/uint8 constants kept in the .pte."""
    from edgetune.quant.weight import DEQUANTIZE_OP, dequantize_reference

    if not any(n.op == "call_function" and n.target == DEQUANTIZE_OP for n in ep.graph.nodes):
        return ep
    table = core_aten_decompositions()
    table[DEQUANTIZE_OP] = dequantize_reference
    return ep.run_decompositions(table)


def export_executorch(ep: torch.export.ExportedProgram, path: str | Path) -> Path:
    from executorch.exir import to_edge

    path = Path(path)
    ep = _portable_dequantize(ep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = to_edge(ep).to_executorch()
    path.write_bytes(prog.buffer)
    return path
