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
from edgetune.step.zeroth_order import ZOStep


def compile_step(prepared: PreparedModel, optimizer, batch_size: int, seq_len: int) -> CompiledStep:
    """Bind a prepared model, an optimizer and a fixed batch shape into step/infer programs.
    A `ZerothOrder` optimizer gives a forward-only step (`ZOStep`)."""
    cls = ZOStep if isinstance(optimizer, ZerothOrder) else CompiledStep
    return cls(prepared, optimizer, batch_size, seq_len)


def compile_inference(model: torch.nn.Module, batch_size: int, seq_len: int) -> CompiledStep:
    """An inference program only, for a model with nothing to train (e.g. adapters merged
    into the base weights by `edgetune.adapters.merge`)."""
    if getattr(model, "task", None) not in ("sequence_classification", "causal_lm"):
        raise ConfigError("compile_inference: the model needs a `task` attribute")
    report = PrepareReport(frozen_params=count_values(model))
    return CompiledStep(PreparedModel(model.eval(), report), None, batch_size, seq_len, inference_only=True)
