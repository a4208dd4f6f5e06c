"""PiCa: y = W0 x + M_f (P_i x), a column-space projection with weight sharing.

P_i = V_r^(i)T [r, d_in] holds the top-r right singular vectors of layer i's W0
(frozen, per layer). M_f [d_out, r] is zero at initialisation (a no-op) and
trainable; with ``share=True`` (the default) one M_f serves every layer whose
module name ends in the same component f (``query``, ``value``, ...), which is
what cuts the parameter count. One SGD step on an unshared M is the full gradient
projected on the top-r right singular space: dW_i = -lr G_i V_r V_r^T.
Trainable count: d_out * r per distinct name when shared, per layer otherwise.
Mathematics and the project's choices: docs/methods.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from edgetune.adapters.lora_xs import check_rank, truncated_svd
from edgetune.adapters.registry import (
    AdaptedModule,
    ApplyContext,
    LinearAdapterConfig,
    Selection,
    SharedRef,
    register,
    shared_parameter,
)
from edgetune.errors import ConfigError

SHARED_BANK = "pica_shared"


class PiCaLinear(AdaptedModule):
    """Frozen ``nn.Linear`` + M (P x); input [..., d_in] -> output [..., d_out]."""

    method = "pica"

    def __init__(self, base: nn.Linear, P: torch.Tensor, shared_M: SharedRef | None, r: int):
        super().__init__()
        self.base = base
        self.register_buffer("pica_P", P.contiguous())
        if shared_M is None:
            self.pica_M = nn.Parameter(torch.zeros(base.out_features, r))
        else:
            self._shared_M = shared_M

    def M(self) -> torch.Tensor:
        return self.pica_M if hasattr(self, "pica_M") else self._shared_M()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.pica_P.t()) @ self.M().t()

    def lora_factors(self):
        return self.M(), self.pica_P


@register
@dataclass(frozen=True)
class PiCa(LinearAdapterConfig):
    """PiCa on the ``nn.Linear`` layers matched by ``targets``; shared M per module name by default."""

    targets: tuple[str, ...] = ("query", "value")
    r: int = 8
    share: bool = True
    method = "pica"

    def validate(self) -> None:
        if self.r < 1:
            raise ConfigError(f"pica: r={self.r} must be >= 1")

    def check(self, selection: Selection) -> None:
        shapes: dict[str, tuple[int, int]] = {}
        for name, lin in selection.found:
            check_rank(self.method, self.r, lin, name)
            key = name.rpartition(".")[2]
            if self.share and shapes.setdefault(key, tuple(lin.weight.shape)) != tuple(lin.weight.shape):
                raise ConfigError(f"pica: layers named {key!r} have different shapes {shapes[key]} and "
                                  f"{tuple(lin.weight.shape)}, so they cannot share M; pass share=False")

    def wrap(self, model: nn.Module, name: str, lin: nn.Linear, ctx: ApplyContext) -> nn.Module:
        p = torch.zeros(self.r, lin.in_features) if ctx.restoring else truncated_svd(lin.weight, self.r)[2]
        getter = None
        if self.share:
            out = lin.out_features
            getter = shared_parameter(model, SHARED_BANK, name.rpartition(".")[2],
                                      lambda: nn.Parameter(torch.zeros(out, self.r)))
        return PiCaLinear(lin, p, getter, self.r)

    def values(self, linear: nn.Linear) -> int:
        return linear.out_features * self.r

    def param_count(self, model: nn.Module) -> int:
        found = self.select(model, strict=False).found
        if not self.share:
            return sum(self.values(m) for _, m in found)
        return sum(self.values(m) for m in {n.rpartition(".")[2]: m for n, m in found}.values())
