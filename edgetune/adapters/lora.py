"""LoRA: y = W0 x + (alpha / r) * B A x.

A in R^{r x d_in} is initialised like PEFT (Kaiming-uniform, a=sqrt(5)), B in
R^{d_out x r} is zero, so the adapter is a no-op at initialisation. Trainable
count r * (d_in + d_out) per adapted matrix.
Mathematics and the project's choices: docs/methods.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from edgetune.adapters.registry import AdaptedModule, ApplyContext, LinearAdapterConfig, register
from edgetune.errors import ConfigError


class LoRALinear(AdaptedModule):
    """Wraps a frozen ``nn.Linear``; input [..., d_in] -> output [..., d_out]."""

    method = "lora"

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        self.base = base
        self.r = r
        self.scaling = alpha / r
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (x A^T) B^T keeps the r-wide intermediate: never materialise B A.
        return self.base(x) + (x @ self.lora_A.t()) @ self.lora_B.t() * self.scaling

    def lora_factors(self):
        return self.lora_B * self.scaling, self.lora_A

    def peft_factors(self):
        return self.lora_B, self.lora_A, self.scaling * self.r


@register
@dataclass(frozen=True)
class LoRA(LinearAdapterConfig):
    """LoRA on every ``nn.Linear`` matched by ``targets`` (name suffixes or ``re:`` regexes)."""

    targets: tuple[str, ...] = ("query", "value")
    r: int = 8
    alpha: float = 16.0
    method = "lora"

    def validate(self) -> None:
        if self.r < 1:
            raise ConfigError(f"lora: r={self.r} must be >= 1")

    def wrap(self, model: nn.Module, name: str, linear: nn.Linear, ctx: ApplyContext) -> nn.Module:
        return LoRALinear(linear, self.r, self.alpha)

    def values(self, linear: nn.Linear) -> int:
        return self.r * (linear.in_features + linear.out_features)
