"""Optimizers as pure functions, so they can live inside the step graph.

Each follows torch.optim's arithmetic in the same order, so the exported step can
be checked against torch.optim to float32 rounding. Learning rate and the 1-based
step count are tensor inputs of the step: the device decides them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from edgetune.errors import ConfigError


@dataclass(frozen=True)
class SGD:
    """SGD with momentum and (coupled) weight decay, as torch.optim.SGD (dampening 0, no Nesterov)."""

    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 0.0
    name = "sgd"
    slots = ("momentum",)
    uses_step = False

    def __post_init__(self):
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"sgd: momentum={self.momentum} must lie in [0, 1)")

    def update(self, p, g, slots, lr, step):
        """p, g, slots[i]: same shape as p; lr, step: scalar tensors -> (p', slots')."""
        if self.weight_decay:
            g = g + self.weight_decay * p
        buf = self.momentum * slots[0] + g  # torch starts buf at g: identical since buf0 = 0
        return p - lr * buf, (buf,)

    def to_dict(self):
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class AdamW:
    """AdamW with bias correction and decoupled weight decay, as torch.optim.AdamW."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01
    name = "adamw"
    slots = ("m", "v")
    uses_step = True

    def __post_init__(self):
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            raise ConfigError(f"adamw: betas ({self.beta1}, {self.beta2}) must lie in [0, 1)")
        if self.eps <= 0:
            raise ConfigError(f"adamw: eps={self.eps} must be > 0 (it keeps 0/0 out of the first step)")

    def update(self, p, g, slots, lr, step):
        m, v = slots
        p = p * (1.0 - lr * self.weight_decay)
        m = m * self.beta1 + g * (1.0 - self.beta1)
        v = v * self.beta2 + g * g * (1.0 - self.beta2)
        bc1 = 1.0 - torch.pow(self.beta1, step)
        bc2 = 1.0 - torch.pow(self.beta2, step)
        denom = torch.sqrt(v) / torch.sqrt(bc2) + self.eps
        return p - (lr / bc1) * m / denom, (m, v)

    def to_dict(self):
        return {"name": self.name, **asdict(self)}


ZO_METHODS = ("mezo", "lozo", "lozo_m")


@dataclass(frozen=True)
class ZerothOrder:
    """Forward-only steps: MeZO, LOZO, LOZO-M (the step itself is `edgetune.step.zeroth_order.ZOStep`).
    Typical: eps 1e-3, rank 1-4, nu 50-100."""

    method: str = "lozo"
    lr: float = 1e-4
    eps: float = 1e-3
    rank: int = 2
    nu: int = 50
    beta: float = 0.9
    weight_decay: float = 0.0
    name = "zo"
    slots = ()
    uses_step = False

    def __post_init__(self):
        if self.method not in ZO_METHODS:
            raise ConfigError(f"zo: method={self.method!r}; choose one of {ZO_METHODS}")
        if self.eps <= 0 or self.rank < 1 or self.nu < 1 or not 0.0 <= self.beta < 1.0:
            raise ConfigError(f"zo: eps={self.eps} > 0, rank={self.rank} >= 1, nu={self.nu} >= 1 and "
                              f"beta={self.beta} in [0, 1) are required")

    def to_dict(self):
        return {"name": self.name, **asdict(self)}


OPTIMIZERS = {"sgd": SGD, "adamw": AdamW, "zo": ZerothOrder}


def optimizer_from_dict(d: dict):
    d = dict(d)
    name = d.pop("name", None)
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer {name!r} is unknown; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](**d)
