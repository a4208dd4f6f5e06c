"""ExportedProgram -> .onnx for stock onnxruntime.

No graph rewrites are applied here (``optimize=False``). onnxscript 0.7.2's
optimizer, which torch.onnx runs by default, folds ``x + c`` to ``x`` when the
constant is within 1e-8 of zero, so AdamW's ``sqrt(v_hat) + 1e-8`` loses its
epsilon and step 1 computes 0/0 wherever a gradient is exactly zero (LoRA's A at
initialisation). A step graph must not be rewritten by tolerance-based rules;
onnxruntime still runs its own exact fusions when it loads the model, and every
export is checked against the eager step (exporters.artifact.self_check).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from edgetune.contract import ProgramSpec


def export_onnx(ep: torch.export.ExportedProgram, spec: ProgramSpec, path: str | Path, optimize: bool = False) -> Path:
    """Write ``ep`` to ``path`` with inputs/outputs named as in ``spec``. ``optimize`` exists to
    reproduce the onnxscript rewrite hazard in tests; artifacts never use it."""
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onx = torch.onnx.export(ep, (), dynamo=True, optimize=optimize, verbose=False,
                                input_names=[t.name for t in spec.inputs],
                                output_names=[t.name for t in spec.outputs])
    onx.save(str(path))
    return path
