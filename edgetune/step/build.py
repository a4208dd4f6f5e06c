"""Bind a prepared model to an optimizer and a batch shape: the step to capture and export.

The one place that knows both kinds of step, so `compile` (first-order) and
`zeroth_order` (forward-only) never import each other.
"""
from __future__ import annotations

import torch

from edgetune.errors import ConfigError
from edgetune.prepared import PreparedModel, PrepareReport, count_values
from edgetune.step.compile import CompiledStep
from edgetune.step.optimizers import ZerothOrder
from edgetune.step.tensors import TensorStep
from edgetune.step.zeroth_order import ZOStep


def compile_step(prepared: PreparedModel, optimizer, batch_size: int | None = None, seq_len: int | None = None, *,
                 example_inputs: dict[str, torch.Tensor] | None = None,
                 example_targets: dict[str, torch.Tensor] | None = None, loss="cross_entropy") -> CompiledStep:
    """Bind a prepared model, an optimizer and a fixed batch shape into step/infer programs.

    Text models (``model.task``) take ``batch_size`` and ``seq_len``; a `ZerothOrder`
    optimizer gives a forward-only step (`ZOStep`). Any other module of tensor inputs takes
    ``example_inputs`` (its inputs in call order, name -> [B, ...]), ``example_targets``
    (what the loss reads) and ``loss`` (`edgetune.step.tensors.LOSSES` or a function
    (output, targets) -> scalar); the batch size is the examples' first dimension."""
    if example_inputs is not None:
        if isinstance(optimizer, ZerothOrder):
            raise ConfigError("forward-only steps are built for text models; give a tensors model a first-order "
                              "optimizer (AdamW, SGD)")
        b = next(iter(example_inputs.values())).shape[0] if example_inputs else 0
        return TensorStep(prepared, optimizer, batch_size or b, 0, example_inputs=dict(example_inputs),
                          example_targets=dict(example_targets or {}), loss=loss)
    if batch_size is None or seq_len is None:
        raise ConfigError("compile_step needs batch_size and seq_len for a text model, or example_inputs for a "
                          "module of tensor inputs")
    cls = ZOStep if isinstance(optimizer, ZerothOrder) else CompiledStep
    return cls(prepared, optimizer, batch_size, seq_len)


def compile_inference(model: torch.nn.Module, batch_size: int, seq_len: int) -> CompiledStep:
    """An inference program only, for a model with nothing to train (e.g. adapters merged
    into the base weights by `edgetune.adapters.merge`)."""
    if getattr(model, "task", None) not in ("sequence_classification", "causal_lm"):
        raise ConfigError("compile_inference: the model needs a `task` attribute")
    report = PrepareReport(frozen_params=count_values(model))
    return CompiledStep(PreparedModel(model.eval(), report), None, batch_size, seq_len, inference_only=True)
