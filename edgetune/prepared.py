"""prepare(): freeze a model, attach trainable factors, report what matched."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from edgetune.adapters import AdaptedModule, AdapterConfig, ApplyContext, Selection
from edgetune.errors import ConfigError


@dataclass
class AdapterMatch:
    method: str
    config: dict
    modules: list[str]
    trainable_params: int


@dataclass
class PrepareReport:
    adapters: list[AdapterMatch] = field(default_factory=list)
    trainable_params: int = 0
    frozen_params: int = 0
    unmatched: dict[str, list[str]] = field(default_factory=dict)  # method -> targets that matched nothing (lenient)

    def __str__(self) -> str:
        lines = [f"{'method':<16}{'modules':>8}{'trainable':>12}  first match"]
        for a in self.adapters:
            lines.append(f"{a.method:<16}{len(a.modules):>8}{a.trainable_params:>12,}  {a.modules[0]}")
        total = self.trainable_params + self.frozen_params
        lines.append(f"trainable {self.trainable_params:,} of {total:,} "
                     f"parameters ({100 * self.trainable_params / max(1, total):.3f}%)")
        lines += [f"{m}: no module matched {t}" for m, t in self.unmatched.items()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"adapters": [a.__dict__ for a in self.adapters], "trainable_params": self.trainable_params,
                "frozen_params": self.frozen_params, "unmatched": self.unmatched}

    @classmethod
    def from_dict(cls, d: dict) -> "PrepareReport":
        """The inverse of `to_dict` (a manifest's ``adapters``)."""
        return cls([AdapterMatch(**a) for a in d.get("adapters", [])], d.get("trainable_params", 0),
                   d.get("frozen_params", 0), dict(d.get("unmatched", {})))


@dataclass
class PreparedModel:
    """A model whose base is frozen and whose trainable factors are ``nn.Parameter``s
    with ``requires_grad=True``. ``model.task`` says which loss the step uses."""

    model: nn.Module
    report: PrepareReport

    def trainable(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def update_masks(self) -> dict[str, torch.Tensor]:
        """Trainable tensors of which only some entries train: name -> bool mask of its shape."""
        return update_masks(self.model)


def update_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{mname}.{pname}": mask for mname, m in model.named_modules() if isinstance(m, AdaptedModule)
            for pname, mask in m.update_masks().items()}


def count_values(model: nn.Module) -> int:
    """Every weight value of ``model``: its parameters and its frozen integer codes (edgetune.quant)."""
    from edgetune.quant import QuantEmbedding, QuantLinear

    codes = sum(m.num_embeddings * m.embedding_dim if isinstance(m, QuantEmbedding) else m.out_features * m.in_features
                for m in model.modules() if isinstance(m, (QuantLinear, QuantEmbedding)))
    return sum(p.numel() for p in model.parameters()) + codes


def count_trainable(model: nn.Module) -> int:
    """Trainable values: entries of trainable parameters, less the entries their masks freeze."""
    masks = update_masks(model)
    return sum(int(masks[n].sum()) if n in masks else p.numel() for n, p in model.named_parameters() if p.requires_grad)


def prepare(model: nn.Module, adapters: list[AdapterConfig], calibration=None, restoring: bool = False,
            strict: bool = True) -> PreparedModel:
    """Freeze every weight of ``model`` (in place), then apply ``adapters`` in order.

    Every config is resolved against the unchanged model and checked first: each target
    must match a module (else `ConfigError` naming it and the closest names; with
    ``strict=False`` unmatched targets are listed in ``report.unmatched`` instead, as long
    as the config matches something), two methods may not replace the same module, and a
    method that needs calibration must have it. Only then is the model changed, so a bad
    plan leaves it as it was. The model is put in eval mode: dropout stays off, so a step is
    a deterministic function of (state, batch, hyper) on every runtime. ``calibration`` (an
    `edgetune.adapters.Calibration`) feeds data-dependent initialisations (LoRA-SB);
    ``restoring`` skips them because the adapter tensors are loaded from a file next.
    """
    if not adapters:
        raise ConfigError("prepare: no adapters given; pass e.g. [LoRA(targets=('query','value')), FullyTrainable(('head',))]")
    if getattr(model, "task", None) not in (None, "sequence_classification", "causal_lm"):
        raise ConfigError(f"prepare: the model's task {model.task!r} is none of 'sequence_classification', "
                          "'causal_lm' (text models), or unset (a module of tensor inputs)")
    selections = _resolve(model, adapters, strict, calibration is not None or restoring)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    ctx = ApplyContext(calibration=calibration, restoring=restoring)
    report = PrepareReport(unmatched={c.method: s.unmatched for c, s in zip(adapters, selections) if s.unmatched})
    for cfg, sel in zip(adapters, selections):
        before = count_trainable(model)
        names = cfg.apply(model, ctx, sel)
        report.adapters.append(AdapterMatch(cfg.method, cfg.to_dict(), names, count_trainable(model) - before))
    model.eval()
    report.trainable_params = count_trainable(model)
    report.frozen_params = count_values(model) - report.trainable_params
    return PreparedModel(model, report)


def _resolve(model: nn.Module, adapters: list[AdapterConfig], strict: bool, calibrated: bool) -> list[Selection]:
    """Every config's selection in the unchanged model, checked; raises before anything changes."""
    selections, owner = [], {}
    for cfg in adapters:
        if not isinstance(cfg, AdapterConfig):
            raise ConfigError(f"prepare: {cfg!r} is not an adapter config (edgetune.adapters: LoRA, PiCa, ...)")
        sel = cfg.select(model, strict=strict)
        if not sel.found:
            raise ConfigError(f"{cfg.method}: targets {list(getattr(cfg, 'targets', ())) or cfg.to_dict()} match no module")
        cfg.check(sel)
        if cfg.replaces_modules:
            for name in sel.names:
                if name in owner:
                    raise ConfigError(f"{cfg.method}: {name} is already adapted by {owner[name]!r}; a module takes one "
                                      "method. Give the methods disjoint targets.")
                owner[name] = cfg.method
        if cfg.needs_calibration and not calibrated:
            raise ConfigError(f"{cfg.method} initialises from the gradient of a few of the user's examples: pass "
                              "calibration=Calibration.from_arrays(encoded_data, n_samples) to prepare()")
        selections.append(sel)
    return selections
