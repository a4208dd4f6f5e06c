"""Fully trainable modules, e.g. a small classification head."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from edgetune.adapters.registry import AdapterConfig, ApplyContext, register, select_modules


@register
@dataclass
class FullyTrainable(AdapterConfig):
    """Every parameter of the modules matched by ``targets`` is trained."""

    targets: tuple[str, ...] = ("head",)
    method = "full"

    def apply(self, model: nn.Module, ctx: ApplyContext) -> list[str]:
        found = select_modules(model, self.targets, nn.Module, self.method,
                               accept=lambda m: any(True for _ in m.parameters()))
        for _, mod in found:
            for p in mod.parameters():
                p.requires_grad_(True)
        return [n for n, _ in found]
