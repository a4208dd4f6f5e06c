"""LoRA-SP: LoRA where a fixed random half of the entries of A and of B never train.

Masks M_A, M_B ~ Bernoulli(keep) (keep = 0.5) are drawn once from ``seed`` and stored
with the adapter. The step multiplies the gradient by the mask and keeps masked
entries (and their optimizer state) exactly as they were, so weight decay cannot
move them either: frozen A entries keep their Kaiming init, frozen B entries stay 0.
This element-wise fixed mask is the project's reading of "half-selective freezing".
Trainable count reported = unmasked entries.
Mathematics and the project's choices: docs/methods.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from edgetune.adapters.lora import LoRALinear
from edgetune.adapters.registry import ApplyContext, LinearAdapterConfig, Selection, register, replace_module
from edgetune.errors import ConfigError


def draw_masks(r: int, base: nn.Linear, keep: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask_A [r, d_in], mask_B [d_out, r]) ~ Bernoulli(keep), A's first, from ``generator``."""
    a = torch.rand((r, base.in_features), generator=generator) < keep
    return a, torch.rand((base.out_features, r), generator=generator) < keep


class LoRASPLinear(LoRALinear):
    """LoRA with per-entry update masks ``mask_A`` [r, d_in] and ``mask_B`` [d_out, r] (bool)."""

    method = "lora_sp"

    def __init__(self, base: nn.Linear, r: int, alpha: float, keep: float, generator: torch.Generator):
        super().__init__(base, r, alpha)
        mask_a, mask_b = draw_masks(r, base, keep, generator)
        self.register_buffer("mask_A", mask_a)
        self.register_buffer("mask_B", mask_b)

    def update_masks(self) -> dict[str, torch.Tensor]:
        return {"lora_A": self.mask_A, "lora_B": self.mask_B}


@register
@dataclass(frozen=True)
class LoRASP(LinearAdapterConfig):
    """LoRA-SP on the ``nn.Linear`` layers matched by ``targets``."""

    targets: tuple[str, ...] = ("query", "value")
    r: int = 8
    alpha: float = 16.0
    keep: float = 0.5
    seed: int = 0
    method = "lora_sp"

    def validate(self) -> None:
        if self.r < 1 or not 0.0 < self.keep <= 1.0:
            raise ConfigError(f"lora_sp: r={self.r} must be >= 1 and keep={self.keep} in (0, 1]")

    def apply(self, model: nn.Module, ctx: ApplyContext, selection: Selection) -> list[str]:
        g = torch.Generator().manual_seed(self.seed)  # masks are drawn over the layers in order
        for name, lin in selection.found:
            replace_module(model, name, LoRASPLinear(lin, self.r, self.alpha, self.keep, g))
        return selection.names

    def param_count(self, model: nn.Module) -> int:
        """The unmasked entries: the masks are drawn here as `apply` draws them."""
        g = torch.Generator().manual_seed(self.seed)
        return sum(int(m.sum()) for _, lin in self.select(model, strict=False).found
                   for m in draw_masks(self.r, lin, self.keep, g))
