"""LoRA-SP: LoRA where a fixed random half of the entries of A and of B never train.

Masks M_A, M_B ~ Bernoulli(keep) (keep = 0.5) are drawn once from ``seed`` and stored
with the adapter. The step multiplies the gradient by the mask and keeps masked
entries (and their optimizer state) exactly as they were, so weight decay cannot
move them either: frozen A entries keep their Kaiming init, frozen B entries stay 0.
This element-wise fixed mask is the project's reading of "half-selective freezing".
Trainable count reported = unmasked entries.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from edgetune.adapters.lora import LoRALinear
from edgetune.adapters.registry import AdapterConfig, ApplyContext, register, replace_module, select_linears
from edgetune.errors import ConfigError


class LoRASPLinear(LoRALinear):
    """LoRA with per-entry update masks ``mask_A`` [r, d_in] and ``mask_B`` [d_out, r] (bool)."""

    method = "lora_sp"

    def __init__(self, base: nn.Linear, r: int, alpha: float, keep: float, generator: torch.Generator):
        super().__init__(base, r, alpha)
        self.register_buffer("mask_A", torch.rand(self.lora_A.shape, generator=generator) < keep)
        self.register_buffer("mask_B", torch.rand(self.lora_B.shape, generator=generator) < keep)

    def update_masks(self) -> dict[str, torch.Tensor]:
        return {"lora_A": self.mask_A, "lora_B": self.mask_B}


@register
@dataclass
class LoRASP(AdapterConfig):
    """LoRA-SP on the ``nn.Linear`` layers matched by ``targets``."""

    targets: tuple[str, ...] = ("query", "value")
    r: int = 8
    alpha: float = 16.0
    keep: float = 0.5
    seed: int = 0
    method = "lora_sp"

    def apply(self, model: nn.Module, ctx: ApplyContext) -> list[str]:
        if self.r < 1 or not 0.0 < self.keep <= 1.0:
            raise ConfigError(f"lora_sp: r={self.r} must be >= 1 and keep={self.keep} in (0, 1]")
        found = select_linears(model, self.targets, self.method)
        g = torch.Generator().manual_seed(self.seed)
        for name, lin in found:
            replace_module(model, name, LoRASPLinear(lin, self.r, self.alpha, self.keep, g))
        return [n for n, _ in found]
