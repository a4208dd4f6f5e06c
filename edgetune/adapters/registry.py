"""Adapter registry and the module selector shared by every method."""
from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Callable

import torch
import torch.nn as nn

from edgetune.errors import ConfigError

ADAPTERS: dict[str, type] = {}
METHOD_NAME = re.compile(r"[a-z][a-z0-9_]*")


def register(cls: type) -> type:
    """Class decorator: make an adapter config available by its ``method`` name. The class
    must be a frozen dataclass subclassing `AdapterConfig` with a new, well-formed name."""
    method = getattr(cls, "method", "")
    if not (isinstance(cls, type) and issubclass(cls, AdapterConfig)):
        raise TypeError(f"register: {cls!r} is not an AdapterConfig subclass")
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:
        raise TypeError(f"register: {cls.__name__} must be a @dataclass(frozen=True) (configs check themselves "
                        "once, at construction, and never change after)")
    if not isinstance(method, str) or not METHOD_NAME.fullmatch(method):
        raise TypeError(f"register: {cls.__name__}.method={method!r} must be a lower-case name like 'lora_xs'")
    if method in ADAPTERS and ADAPTERS[method] is not cls:
        raise TypeError(f"register: method {method!r} is taken by {ADAPTERS[method].__name__}")
    ADAPTERS[method] = cls
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


@dataclasses.dataclass
class Selection:
    """What a config's targets resolve to in a model, before anything changes:
    ``found`` (module name, module) in model order, and the targets that matched nothing."""

    found: list[tuple[str, nn.Module]]
    unmatched: list[str] = dataclasses.field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.found]


class AdapterConfig:
    """Base of adapter configs: frozen dataclasses that set ``method`` and implement

    ``validate()``              field checks, at construction (no model needed);
    ``select(model, strict)``   resolve the targets without changing the model;
    ``check(selection)``        checks that need the matched modules (ranks, shapes);
    ``apply(model, ctx, sel)``  swap in the trainable modules;
    ``param_count(model)``      the trainable values the config adds to ``model``.

    `edgetune.prepared.prepare` runs validate/select/check for every config before it
    applies any, so a bad config never leaves a half-adapted model.
    """

    method: str = ""
    needs_calibration: bool = False
    replaces_modules: bool = True  # False: only marks existing parameters trainable

    def __post_init__(self):
        if hasattr(self, "targets"):
            object.__setattr__(self, "targets", (self.targets,) if isinstance(self.targets, str) else tuple(self.targets))
            if not self.targets or not all(isinstance(t, str) and t for t in self.targets):
                raise ConfigError(f"{self.method}: targets={self.targets!r} must be non-empty module names or 're:' regexes")
        self.validate()

    def validate(self) -> None:
        """Raise `ConfigError` naming a bad field and its fix."""

    def select(self, model: nn.Module, strict: bool = True) -> Selection:  # pragma: no cover - interface
        raise NotImplementedError

    def check(self, selection: Selection) -> None:
        """Checks of the matched modules; nothing is changed yet."""

    def apply(self, model: nn.Module, ctx: ApplyContext, selection: Selection) -> list[str]:  # pragma: no cover
        raise NotImplementedError

    def param_count(self, model: nn.Module) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {"method": self.method, **{k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}}


class LinearAdapterConfig(AdapterConfig):
    """A method that wraps each matched ``nn.Linear`` in its own module: subclasses give
    ``wrap(model, name, linear, ctx) -> nn.Module`` and ``values(linear)`` (trainable values
    per wrapped layer); the selection, the loop and the count are shared. Methods whose
    update is a matrix of the layer's shape also take convolutions (``module_types``:
    `edgetune.adapters.conv`)."""

    module_types: tuple[type, ...] = (nn.Linear,)

    def select(self, model: nn.Module, strict: bool = True) -> Selection:
        return select_modules(model, self.targets, self.module_types, self.method, strict=strict,
                              accept=lambda m: not isinstance(m, AdaptedModule))

    def wrap(self, model: nn.Module, name: str, linear: nn.Linear, ctx: ApplyContext) -> nn.Module:  # pragma: no cover
        raise NotImplementedError

    def values(self, linear: nn.Linear) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def apply(self, model: nn.Module, ctx: ApplyContext, selection: Selection) -> list[str]:
        for name, lin in selection.found:
            replace_module(model, name, self.wrap(model, name, lin, ctx))
        return selection.names

    def param_count(self, model: nn.Module) -> int:
        return sum(self.values(m) for _, m in self.select(model, strict=False).found)


def config_from_dict(d: dict) -> AdapterConfig:
    d = dict(d)
    method = d.pop("method", None)
    if method not in ADAPTERS:
        raise ConfigError(f"adapter method {method!r} is unknown; known methods: {sorted(ADAPTERS)}")
    fields = {f.name for f in dataclasses.fields(ADAPTERS[method])}
    unknown = sorted(set(d) - fields)
    if unknown:
        raise ConfigError(f"adapter {method!r} has no option {', '.join(map(repr, unknown))}; its options are "
                          f"{sorted(fields)}")
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
                   method: str, accept: Callable[[nn.Module], bool] | None = None, strict: bool = True) -> Selection:
    """Modules of type ``kind`` whose names match any target. Each target must match at least
    one module: with ``strict`` one that matches nothing is a `ConfigError` naming the closest
    module names; otherwise it is listed in ``unmatched``."""
    if isinstance(targets, str):
        targets = (targets,)
    kinds = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
    candidates = [(n, m) for n, m in model.named_modules() if isinstance(m, kind) and (accept is None or accept(m))]
    found = [(n, m) for n, m in candidates if any(_matches(n, t) for t in targets)]
    unmatched = [t for t in targets if not any(_matches(n, t) for n, _ in candidates)]
    if unmatched and strict:
        names = [n for n, _ in candidates]
        leaves = sorted({n.rpartition(".")[2] for n in names})
        close = difflib.get_close_matches(unmatched[0].removeprefix("re:"), leaves + names, n=4, cutoff=0.4)
        raise ConfigError(
            f"{method}: target {unmatched[0]!r} matches no {kinds} module"
            f"{' (none left unadapted)' if any(_matches(n, unmatched[0]) for n, _ in model.named_modules()) else ''}. "
            f"Closest names: {close or names[:6]}. Use a name suffix such as {(leaves or ['query'])[0]!r} or a "
            "regex 're:encoder\\.layer\\.\\d+\\.attention\\.self\\.query'.")
    return Selection(found, unmatched)


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

    def peft_factors(self) -> tuple[torch.Tensor, torch.Tensor, float] | None:
        """(B, A, lora_alpha) as PEFT stores them (delta = lora_alpha / r * B A), or None. By
        default B carries every scale and lora_alpha = r; LoRA keeps its own alpha."""
        factors = self.lora_factors()
        return None if factors is None else (*factors, float(factors[1].shape[0]))

    def delta_weight(self) -> torch.Tensor:
        b, a = self.lora_factors()
        return b @ a


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
