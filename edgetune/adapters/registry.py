"""Adapter registry and the module selector shared by every method."""
from __future__ import annotations

import dataclasses
import re
from typing import Callable

import torch
import torch.nn as nn

from edgetune.errors import ConfigError

ADAPTERS: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make an adapter config available by its ``method`` name."""
    ADAPTERS[cls.method] = cls
    return cls


@dataclasses.dataclass
class ApplyContext:
    """What an adapter may need beyond the model while it attaches.

    calibration: host-side batches for data-dependent initialisation (LoRA-SB).
    restoring: the adapter's tensors will be loaded from a file right after, so skip
        costly or data-dependent initialisation and only create tensors of the right shape.
    """

    calibration: object | None = None
    restoring: bool = False


class AdapterConfig:
    """Base of adapter configs (dataclasses). Subclasses set ``method`` and implement ``apply``."""

    method: str = ""
    needs_calibration: bool = False

    def apply(self, model: nn.Module, ctx: ApplyContext) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {"method": self.method, **dataclasses.asdict(self)}


def config_from_dict(d: dict) -> AdapterConfig:
    d = dict(d)
    method = d.pop("method", None)
    if method not in ADAPTERS:
        raise ConfigError(f"adapter method {method!r} is unknown; known methods: {sorted(ADAPTERS)}")
    try:
        return ADAPTERS[method](**d)
    except TypeError as e:
        raise ConfigError(f"adapter {method!r}: {e}") from e


def _matches(name: str, target: str) -> bool:
    """A target matches a module whose dotted name ends with it (``"query"`` matches
    ``encoder.layer.0.attention.self.query``), or, prefixed ``re:``, by full regex."""
    if target.startswith("re:"):
        return re.fullmatch(target[3:], name) is not None
    return name == target or name.endswith("." + target)


def select_modules(model: nn.Module, targets: tuple[str, ...] | list[str], kind: type | tuple[type, ...],
                   method: str, accept: Callable[[nn.Module], bool] | None = None) -> list[tuple[str, nn.Module]]:
    """Modules of type ``kind`` whose names match any target; matching nothing is an error."""
    if isinstance(targets, str):
        targets = (targets,)
    found = [(n, m) for n, m in model.named_modules()
             if isinstance(m, kind) and any(_matches(n, t) for t in targets) and (accept is None or accept(m))]
    if not found:
        candidates = [n for n, m in model.named_modules() if isinstance(m, kind)]
        kinds = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ConfigError(
            f"{method}: targets {list(targets)} match no {kinds} module. "
            f"{kinds} modules in this model include: {candidates[:8]}{' ...' if len(candidates) > 8 else ''}. "
            "Use a name suffix such as 'query' or a regex 're:encoder\\.layer\\.\\d+\\.attention\\.self\\.query'.")
    return found


class AdaptedModule(nn.Module):
    """Base of every module that wraps a frozen base module (``self.base``) with trainable factors.

    ``update_masks()`` names parameters of which only some entries train (LoRA-SP).
    ``lora_factors()`` -> (B' [d_out, r], A' [r, d_in]) with delta = B' A' for the LoRA family
    (what a PEFT LoRA adapter stores), else None. ``delta_weight()`` is the dense update
    added to ``base.weight`` (for merging), shape of ``base.weight``.
    """

    method = ""

    def update_masks(self) -> dict[str, torch.Tensor]:
        return {}

    def lora_factors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None

    def delta_weight(self) -> torch.Tensor:
        b, a = self.lora_factors()
        return b @ a


def select_linears(model: nn.Module, targets, method: str) -> list[tuple[str, nn.Linear]]:
    """Linear layers matched by ``targets`` that no other adapter wraps yet."""
    adapted = [n for n, m in model.named_modules() if isinstance(m, AdaptedModule)
               and any(_matches(n, t) for t in ((targets,) if isinstance(targets, str) else targets))]
    if adapted:
        owner = model.get_submodule(adapted[0]).method
        raise ConfigError(f"{method}: {adapted[0]} is already adapted by {owner!r}; a module takes one "
                          "low-rank method. Give the methods disjoint targets.")
    return select_modules(model, targets, nn.Linear, method)


SHARED_BANKS: set[str] = set()  # root attributes that hold shared parameters


class SharedRef:
    """Points at ``model.<bank>[key]`` without making it a submodule of the user. Called in
    ``forward``, so ``torch.func.functional_call`` (which swaps ``<bank>.<key>``) reaches every
    user; a plain object, so ``copy.deepcopy`` of the model re-points it at the copy's bank."""

    def __init__(self, store: nn.ParameterDict, key: str):
        self.store, self.key = store, key

    def __call__(self) -> nn.Parameter:
        return self.store[self.key]


def shared_parameter(model: nn.Module, bank: str, key: str, make: Callable[[], nn.Parameter]) -> SharedRef:
    """A parameter shared by several adapted modules, owned once by ``model.<bank>.<key>``."""
    SHARED_BANKS.add(bank)
    if not hasattr(model, bank):
        model.add_module(bank, nn.ParameterDict())
    store = getattr(model, bank)
    if key not in store:
        store[key] = make()
    return SharedRef(store, key)


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
