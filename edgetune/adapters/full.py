"""Fully trainable modules, e.g. a small classification head."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from edgetune.adapters.registry import AdapterConfig, ApplyContext, Selection, register, select_modules


@register
@dataclass(frozen=True)
class FullyTrainable(AdapterConfig):
    """Every parameter of the modules matched by ``targets`` is trained."""

    targets: tuple[str, ...] = ("head",)
    method = "full"
    replaces_modules = False

    def select(self, model: nn.Module, strict: bool = True) -> Selection:
        return select_modules(model, self.targets, nn.Module, self.method, strict=strict,
                              accept=lambda m: any(True for _ in m.parameters()))

    def apply(self, model: nn.Module, ctx: ApplyContext, selection: Selection) -> list[str]:
        for _, mod in selection.found:
            for p in mod.parameters():
                p.requires_grad_(True)
        return selection.names

    def param_count(self, model: nn.Module) -> int:
        params = {id(p): p for _, m in self.select(model, strict=False).found for p in m.parameters()}
        return sum(p.numel() for p in params.values())
