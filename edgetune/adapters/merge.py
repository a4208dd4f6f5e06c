"""Fold trained adapters into the base weights for an inference-only model."""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from edgetune.adapters.registry import SHARED_BANKS, AdaptedModule, replace_module
from edgetune.errors import ConfigError


def merge(prepared) -> nn.Module:
    """A copy of ``prepared.model`` where each adapted module is its base module with
    weight + delta_weight(); nothing is trainable. Same outputs as the adapted model."""
    from edgetune.quant import QuantEmbedding, QuantLinear

    model = copy.deepcopy(prepared.model)
    adapted = [(n, m) for n, m in model.named_modules() if isinstance(m, AdaptedModule)]
    quantized = [n for n, m in adapted if isinstance(m.base, (QuantLinear, QuantEmbedding))]
    if quantized:
        raise ConfigError(f"merge: {quantized[0]} has an integer base; folding the update into it would re-quantize "
                          "and lose it. Keep the adapter separate (the artifact's inference program applies it), or "
                          "export from an fp32 base to merge.")
    with torch.no_grad():
        for name, m in adapted:
            base = m.base
            base.weight.add_(m.delta_weight().reshape(base.weight.shape))  # a conv's kernel from its matrix
            replace_module(model, name, base)
    for bank in SHARED_BANKS:
        if hasattr(model, bank):
            delattr(model, bank)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()
