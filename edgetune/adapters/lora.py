"""LoRA: y = W0 x + (alpha / r) * B A x.

A in R^{r x d_in} is initialised like PEFT (Kaiming-uniform, a=sqrt(5)), B in
R^{d_out x r} is zero, so the adapter is a no-op at initialisation. Trainable
count r * (d_in + d_out) per adapted matrix. On a convolution, d_in counts the
kernel's patch (in * prod(k)): A is an r-channel convolution, B a 1 x 1 one, as
in PEFT (`edgetune.adapters.conv`).
Mathematics and the project's choices: docs/methods.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from edgetune.adapters.conv import LOW_RANK_MODULES, check_layer, down, matrix_shape, mix
from edgetune.adapters.registry import AdaptedModule, ApplyContext, LinearAdapterConfig, Selection, register
from edgetune.errors import ConfigError


class LoRALinear(AdaptedModule):
    """Wraps a frozen ``nn.Linear`` (input [..., d_in] -> output [..., d_out]) or convolution
    ([B, C_in, *L] -> [B, C_out, *L'])."""

    method = "lora"

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        self.base = base
        self.r = r
        self.scaling = alpha / r
        d_out, d_in = matrix_shape(base)
        self.lora_A = nn.Parameter(torch.empty(r, d_in))
        self.lora_B = nn.Parameter(torch.zeros(d_out, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (x A^T) B^T keeps the r-wide intermediate: never materialise B A.
        return self.base(x) + mix(self.base, down(self.base, x, self.lora_A), self.lora_B) * self.scaling

    def lora_factors(self):
        return self.lora_B * self.scaling, self.lora_A

    def peft_factors(self):
        return self.lora_B, self.lora_A, self.scaling * self.r


@register
@dataclass(frozen=True)
class LoRA(LinearAdapterConfig):
    """LoRA on every ``nn.Linear`` or convolution matched by ``targets`` (name suffixes or
    ``re:`` regexes)."""

    targets: tuple[str, ...] = ("query", "value")
    r: int = 8
    alpha: float = 16.0
    method = "lora"
    module_types = LOW_RANK_MODULES

    def validate(self) -> None:
        if self.r < 1:
            raise ConfigError(f"lora: r={self.r} must be >= 1")

    def check(self, selection: Selection) -> None:
        for name, m in selection.found:
            check_layer(self.method, m, name)

    def wrap(self, model: nn.Module, name: str, linear: nn.Linear, ctx: ApplyContext) -> nn.Module:
        return LoRALinear(linear, self.r, self.alpha)

    def values(self, linear: nn.Linear) -> int:
        return self.r * sum(matrix_shape(linear))
