"""prepare(): freeze a model, attach trainable factors, report what matched."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn as nn

from edgetune.adapters import AdapterConfig
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

    def __str__(self) -> str:
        lines = [f"{'method':<16}{'modules':>8}{'trainable':>12}  first match"]
        for a in self.adapters:
            lines.append(f"{a.method:<16}{len(a.modules):>8}{a.trainable_params:>12,}  {a.modules[0]}")
        lines.append(f"trainable {self.trainable_params:,} of {self.trainable_params + self.frozen_params:,} "
                     f"parameters ({100 * self.trainable_params / max(1, self.trainable_params + self.frozen_params):.3f}%)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"adapters": [a.__dict__ for a in self.adapters], "trainable_params": self.trainable_params,
                "frozen_params": self.frozen_params}


@dataclass
class PreparedModel:
    """A model whose base is frozen and whose trainable factors are ``nn.Parameter``s
    with ``requires_grad=True``. ``model.task`` says which loss the step uses."""

    model: nn.Module
    report: PrepareReport

    def trainable(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}


def prepare(model: nn.Module, adapters: list[AdapterConfig]) -> PreparedModel:
    """Freeze every weight of ``model`` (in place), then apply ``adapters`` in order.

    Each adapter must match at least one module (else `ConfigError`). The model is
    put in eval mode: dropout stays off, so a step is a deterministic function of
    (state, batch, hyper) on every runtime.
    """
    if not adapters:
        raise ConfigError("prepare: no adapters given; pass e.g. [LoRA(targets=('query','value')), FullyTrainable(('head',))]")
    if getattr(model, "task", None) not in ("sequence_classification", "causal_lm"):
        raise ConfigError("prepare: the model needs a `task` attribute, 'sequence_classification' or 'causal_lm' "
                          "(wrap Hugging Face models with edgetune.models.minilm.TextClassifier or a causal-LM wrapper)")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    report = PrepareReport()
    for cfg in adapters:
        before = {id(p) for p in model.parameters() if p.requires_grad}
        names = cfg.apply(model)
        added = sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in before)
        report.adapters.append(AdapterMatch(cfg.method, cfg.to_dict(), names, added))
    model.eval()
    params = list(model.parameters())
    report.trainable_params = sum(p.numel() for p in params if p.requires_grad)
    report.frozen_params = sum(p.numel() for p in params if not p.requires_grad)
    return PreparedModel(model, report)
