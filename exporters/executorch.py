"""ExportedProgram -> ExecuTorch .pte (portable kernels).

The XNNPACK partitioner is not applied yet: on the step graph it delegates only
elementwise islands (none of the forward linears or the backward's matmuls), so it
adds ~35 s of lowering per program for no speed. Delegating the matmuls is its own
piece of work (see the ExecuTorch speed issue).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch


def export_executorch(ep: torch.export.ExportedProgram, path: str | Path) -> Path:
    from executorch.exir import to_edge

    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = to_edge(ep).to_executorch()
    path.write_bytes(prog.buffer)
    return path
