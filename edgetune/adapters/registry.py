"""Adapter registry and the module selector shared by every method."""
from __future__ import annotations

import dataclasses
import re
from typing import Callable

import torch.nn as nn

from edgetune.errors import ConfigError

ADAPTERS: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make an adapter config available by its ``method`` name."""
    ADAPTERS[cls.method] = cls
    return cls


class AdapterConfig:
    """Base of adapter configs (dataclasses). Subclasses set ``method`` and implement ``apply``."""

    method: str = ""

    def apply(self, model: nn.Module) -> list[str]:  # pragma: no cover - interface
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


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
