"""Kronecker adapter (LoKr-style): dW = s * (A kron B).

A [a1, a2], B [b1, b2] with a1 * b1 = d_out and a2 * b2 = d_in; by default each
dimension is split into the two factors nearest its square root (LoKr's rule),
the smaller going to A. B may be low-rank, B = B1 B2 (B1 [b1, rank], B2 [rank, b2]).
A is zero at initialisation (a no-op); B (or B1, B2) is Kaiming-uniform like LoRA's A.
Applied without materialising A kron B: for x [..., d_in] viewed as X [..., a2, b2]
(row-major), (A kron B) x = vec(A X B^T). Trainable count a1*a2 + b1*b2
(or a1*a2 + rank*(b1 + b2)). On a convolution d_in counts the kernel's patch
(in * prod(k)); its update is kernel-sized and runs as one more convolution.
Mathematics and the project's choices: docs/methods.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from edgetune.adapters.conv import CONVS, LOW_RANK_MODULES, check_layer, dense, matrix_shape
from edgetune.adapters.registry import AdaptedModule, ApplyContext, LinearAdapterConfig, Selection, register
from edgetune.errors import ConfigError


def near_sqrt_factors(n: int, factor: int = -1) -> tuple[int, int]:
    """n -> (small, large) with small * large = n: ``factor`` itself when it divides n,
    else the divisor pair nearest sqrt(n)."""
    if factor > 0:
        if n % factor:
            raise ConfigError(f"kronecker: factor={factor} does not divide {n}")
        return min(factor, n // factor), max(factor, n // factor)
    small = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return small, n // small


class KroneckerLinear(AdaptedModule):
    """Frozen ``nn.Linear`` + s * (A kron B) x; input [..., d_in] -> output [..., d_out]."""

    method = "kronecker"

    def __init__(self, base: nn.Linear, factor: int, rank: int, scale: float):
        super().__init__()
        self.base = base
        self.scale = scale
        d_out, d_in = matrix_shape(base)
        (a1, b1), (a2, b2) = near_sqrt_factors(d_out, factor), near_sqrt_factors(d_in, factor)
        self.shape_a, self.shape_b = (a1, a2), (b1, b2)
        self.kron_A = nn.Parameter(torch.zeros(a1, a2))
        if rank > 0:
            self.kron_B1 = nn.Parameter(torch.empty(b1, rank))
            self.kron_B2 = nn.Parameter(torch.empty(rank, b2))
            nn.init.kaiming_uniform_(self.kron_B1, a=math.sqrt(5))
            nn.init.kaiming_uniform_(self.kron_B2, a=math.sqrt(5))
        else:
            self.kron_B = nn.Parameter(torch.empty(b1, b2))
            nn.init.kaiming_uniform_(self.kron_B, a=math.sqrt(5))

    def B(self) -> torch.Tensor:
        return self.kron_B if hasattr(self, "kron_B") else self.kron_B1 @ self.kron_B2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.base, CONVS):  # a kernel-sized update: one more convolution with it
            return self.base(x) + dense(self.base, x, self.delta_weight())
        (a1, a2), (b1, b2) = self.shape_a, self.shape_b
        xm = x.reshape(*x.shape[:-1], a2, b2)
        y = self.kron_A @ xm @ self.B().t()  # [..., a1, b1]
        return self.base(x) + y.reshape(*x.shape[:-1], a1 * b1) * self.scale

    def delta_weight(self) -> torch.Tensor:
        return torch.kron(self.kron_A, self.B()) * self.scale


@register
@dataclass(frozen=True)
class Kronecker(LinearAdapterConfig):
    """Kronecker-product adapter on the ``nn.Linear`` layers or convolutions matched by ``targets``."""

    targets: tuple[str, ...] = ("query", "value")
    factor: int = -1  # -1: near-square split of each dimension
    rank: int = 0  # 0: full B; > 0: B = B1 B2 of this rank
    scale: float = 1.0
    method = "kronecker"
    module_types = LOW_RANK_MODULES

    def validate(self) -> None:
        if self.factor == 0 or self.factor < -1 or self.rank < 0:
            raise ConfigError(f"kronecker: factor={self.factor} must be -1 (near-square) or >= 1, rank={self.rank} >= 0")

    def check(self, selection: Selection) -> None:
        for name, lin in selection.found:
            check_layer(self.method, lin, name)
            d_out, d_in = matrix_shape(lin)
            near_sqrt_factors(d_out, self.factor), near_sqrt_factors(d_in, self.factor)

    def wrap(self, model: nn.Module, name: str, lin: nn.Linear, ctx: ApplyContext) -> nn.Module:
        return KroneckerLinear(lin, self.factor, self.rank, self.scale)

    def values(self, linear: nn.Linear) -> int:
        d_out, d_in = matrix_shape(linear)
        (a1, b1) = near_sqrt_factors(d_out, self.factor)
        (a2, b2) = near_sqrt_factors(d_in, self.factor)
        return a1 * a2 + (self.rank * (b1 + b2) if self.rank > 0 else b1 * b2)
