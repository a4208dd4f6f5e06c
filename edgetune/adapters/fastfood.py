"""Fastfood intrinsic-dimension updates: theta = theta0 + P d, only d in R^{d_int} trainable.

For a tensor with D entries, L = 2^ceil(log2 D), d is zero-padded to L and
    P d = [H G Pi H B d]_{1:D} / sqrt(D * sum(G_i^2))
with B diagonal +-1, H the unnormalised Walsh-Hadamard transform, Pi a permutation
and G diagonal N(0, 1), all drawn from a seed (stored with the adapter). Columns of P
have norm ~1. H is applied in O(L log L) as a chain of small Sylvester-Hadamard
matmuls (H_L = H_8 kron H_8 kron ...), never as an L x L matrix.

Per adapted weight W [d_out, d_in]: W' = W + lambda * reshape(P d, [d_out, d_in]).
``share=False`` (default): one d per tensor. ``share=True``: one d for all tensors, each
with its own P (the project's reading of "one global" projection). ``said=True`` adds
a trainable scale lambda per tensor (SAID), initialised to 1. d starts at 0: a no-op.
Trainable count: per tensor d_int (+1 with SAID); shared d_int (+1 per tensor with SAID).
Mathematics and the project's choices: docs/methods.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgetune.adapters.registry import (
    AdaptedModule,
    ApplyContext,
    LinearAdapterConfig,
    Selection,
    SharedRef,
    register,
    replace_module,
    shared_parameter,
)
from edgetune.errors import ConfigError

SHARED_BANK = "fastfood_shared"
_BLOCK_LOG2 = 3  # Hadamard applied in blocks of 8: k matmuls with an 8x8 matrix for L = 8^k


def sylvester_hadamard(n: int) -> torch.Tensor:
    """The unnormalised n x n Walsh-Hadamard matrix (n a power of 2), natural order."""
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


class FastfoodTransform(nn.Module):
    """d [d_int] -> P d [D]; the factors B, Pi, G are buffers drawn from ``seed``."""

    def __init__(self, D: int, d_int: int, seed: int):
        super().__init__()
        if not 1 <= d_int <= D:
            raise ConfigError(f"fastfood: d_int={d_int} must lie in [1, {D}] (the size of the adapted tensor)")
        self.D, self.d_int = D, d_int
        n = max(1, math.ceil(math.log2(D)))
        self.L = 2 ** n
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("ff_B", torch.randint(0, 2, (self.L,), generator=g).float() * 2 - 1)
        self.register_buffer("ff_perm", torch.randperm(self.L, generator=g))
        self.register_buffer("ff_G", torch.randn(self.L, generator=g))
        self.blocks = [_BLOCK_LOG2] * (n // _BLOCK_LOG2) + ([n % _BLOCK_LOG2] if n % _BLOCK_LOG2 else [])
        for k in sorted(set(self.blocks)):
            self.register_buffer(f"hadamard_{2 ** k}", sylvester_hadamard(2 ** k), persistent=False)

    def norm(self) -> torch.Tensor:
        return torch.sqrt(self.D * (self.ff_G ** 2).sum())

    def hadamard(self, x: torch.Tensor) -> torch.Tensor:
        """H_L x for x [L]: view x as a tensor with one axis per block, apply each block's
        Hadamard along the leading axis and rotate that axis to the back."""
        for k in self.blocks:
            f = 2 ** k
            x = (getattr(self, f"hadamard_{f}") @ x.reshape(f, -1)).t().reshape(-1)
        return x

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        # cat, not F.pad: pad's backward is a negative pad, which ExecuTorch's kernel rejects.
        x = torch.cat([d, d.new_zeros(self.L - self.d_int)]) * self.ff_B
        x = self.hadamard(x)[self.ff_perm] * self.ff_G
        return self.hadamard(x)[: self.D] / self.norm()

    def dense(self) -> torch.Tensor:
        """The [D, d_int] matrix P from the same factors (for tests; O(L^2) memory)."""
        h = sylvester_hadamard(self.L)
        pi = torch.zeros(self.L, self.L)
        pi[torch.arange(self.L), self.ff_perm] = 1.0
        full = h @ torch.diag(self.ff_G) @ pi @ h @ torch.diag(self.ff_B)
        return full[: self.D, : self.d_int] / self.norm()


class FastfoodLinear(AdaptedModule):
    """Frozen ``nn.Linear`` whose weight moves by lambda * reshape(P d); [..., d_in] -> [..., d_out]."""

    method = "fastfood"

    def __init__(self, base: nn.Linear, d_int: int, seed: int, said: bool, shared_d: SharedRef | None):
        super().__init__()
        self.base = base
        self.transform = FastfoodTransform(base.weight.numel(), d_int, seed)
        if shared_d is None:
            self.ff_d = nn.Parameter(torch.zeros(d_int))
        else:
            self._shared_d = shared_d
        if said:
            self.said_scale = nn.Parameter(torch.ones(()))

    def d(self) -> torch.Tensor:
        return self.ff_d if hasattr(self, "ff_d") else self._shared_d()

    def delta_weight(self) -> torch.Tensor:
        delta = self.transform(self.d()).reshape(self.base.weight.shape)
        return delta * self.said_scale if hasattr(self, "said_scale") else delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One matmul with W0 + delta; the delta is the size of W0 by construction.
        return F.linear(x, self.base.weight + self.delta_weight(), self.base.bias)


@register
@dataclass(frozen=True)
class Fastfood(LinearAdapterConfig):
    """Fastfood intrinsic-dimension update of each ``nn.Linear`` matched by ``targets``."""

    targets: tuple[str, ...] = ("query", "value")
    d_int: int = 384
    share: bool = False
    said: bool = True
    seed: int = 0
    method = "fastfood"

    def validate(self) -> None:
        if self.d_int < 1:
            raise ConfigError(f"fastfood: d_int={self.d_int} (its size; there is no rank r) must be >= 1")

    def apply(self, model: nn.Module, ctx: ApplyContext, selection: Selection) -> list[str]:
        getter = None
        if self.share:
            getter = shared_parameter(model, SHARED_BANK, "d", lambda: nn.Parameter(torch.zeros(self.d_int)))
        for i, (name, lin) in enumerate(selection.found):
            replace_module(model, name, FastfoodLinear(lin, self.d_int, self.seed * 1_000_003 + i, self.said, getter))
        return selection.names

    def param_count(self, model: nn.Module) -> int:
        n = len(self.select(model, strict=False).found)
        return (self.d_int if self.share else n * self.d_int) + (n if self.said else 0)
