"""Embedding delta over the user's token set: E'[idx] = E[idx] + delta, delta [n, d].

``kind="lowrank"``: delta = (alpha / r) * A B with A [n, r] zero at init and
B [r, d] ~ N(0, 1) (PEFT's embedding-LoRA initialisation); trainable (n + d) * r.
``kind="fastfood"``: delta = reshape(P d) with P the Fastfood projection of
`edgetune.adapters.fastfood` over the n * d entries; trainable d_int.
Both are no-ops at initialisation. The paper's low-rank delta runs over the whole vocabulary;
restricting it to the tokens of the user's data (rows of other tokens never get a
gradient anyway) is the project's choice, and keeps the Fastfood transform small.
Mathematics and the project's choices: docs/methods.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from edgetune.adapters.embedding_rows import TokenSetConfig, TokenSlots
from edgetune.adapters.fastfood import FastfoodTransform
from edgetune.adapters.registry import ApplyContext, Selection, register, replace_module
from edgetune.errors import ConfigError

KINDS = ("lowrank", "fastfood")


class DeltaEmbedding(TokenSlots):
    """Wraps a frozen ``nn.Embedding``; ids [...] -> embeddings [..., d]."""

    def __init__(self, base: nn.Embedding, token_ids: list[int], kind: str, r: int, alpha: float, d_int: int, seed: int):
        super().__init__(base, token_ids, "embedding_delta")
        n, d = self.token_ids.numel(), base.embedding_dim
        self.kind = kind
        g = torch.Generator().manual_seed(seed)
        if kind == "lowrank":
            self.scaling = alpha / r
            self.delta_A = nn.Parameter(torch.zeros(n, r))
            self.delta_B = nn.Parameter(torch.randn(r, d, generator=g))
        else:
            self.transform = FastfoodTransform(n * d, d_int, seed)
            self.ff_d = nn.Parameter(torch.zeros(d_int))

    def row_delta(self) -> torch.Tensor:
        if self.kind == "lowrank":
            return self.delta_A @ self.delta_B * self.scaling
        return self.transform(self.ff_d).reshape(self.token_ids.numel(), self.base.embedding_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lookup(ids, self.row_delta(), replace=False)


@register
@dataclass(frozen=True)
class EmbeddingDelta(TokenSetConfig):
    """A low-rank or Fastfood delta on the rows of ``token_ids`` of the embedding ``target``."""

    token_ids: tuple[int, ...] = ()
    kind: str = "lowrank"
    r: int = 4
    alpha: float = 4.0
    d_int: int = 256
    seed: int = 0
    target: str = "word_embeddings"
    method = "embedding_delta"

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"embedding_delta: kind={self.kind!r}; choose one of {KINDS}")
        if self.kind == "lowrank" and self.r < 1 or self.kind == "fastfood" and self.d_int < 1:
            raise ConfigError(f"embedding_delta: r={self.r} (lowrank) and d_int={self.d_int} (fastfood) must be >= 1")

    def apply(self, model: nn.Module, ctx: ApplyContext, selection: Selection) -> list[str]:
        for name, mod in selection.found:
            replace_module(model, name, DeltaEmbedding(mod, self.token_ids, self.kind, self.r, self.alpha, self.d_int,
                                                       self.seed))
        return selection.names

    def param_count(self, model: nn.Module) -> int:
        dims = [m.embedding_dim for _, m in self.select(model, strict=False).found]
        return sum(self.r * (self.rows() + d) if self.kind == "lowrank" else self.d_int for d in dims)
