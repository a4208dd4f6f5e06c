"""Trainable embedding rows: only the rows of a chosen token set are trained.

Equivalent to E' = E.index_copy(0, idx, V) followed by a lookup, with V
initialised to E[idx] (so a no-op at init) and |idx| * d trainable values.
Implemented without copying the whole table each step: a frozen slot table maps
a token id to its row in V (or -1), and the lookup picks V or E per position.
Mathematics and the project's choices: docs/methods.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from edgetune.adapters.registry import (
    AdaptedModule,
    AdapterConfig,
    ApplyContext,
    Selection,
    register,
    replace_module,
    select_modules,
)
from edgetune.errors import ConfigError


def check_token_ids(method: str, token_ids, num_embeddings: int) -> list[int]:
    """-> the sorted unique ids; `ConfigError` if there are none or one lies outside the table."""
    idx = sorted({int(t) for t in token_ids})
    if not idx:
        raise ConfigError(f"{method}: token_ids is empty; pass the ids of tokens in the user's data")
    if idx[0] < 0 or idx[-1] >= num_embeddings:
        raise ConfigError(f"{method}: token ids must lie in [0, {num_embeddings}); got range [{idx[0]}, {idx[-1]}]")
    return idx


class TokenSlots(AdaptedModule):
    """Base of embedding adapters over a token set: ``token_ids`` [n] (sorted, unique) and a
    frozen ``slot`` table [vocab] mapping a token id to its row among them, or -1."""

    def __init__(self, base: nn.Embedding, token_ids: list[int], method: str):
        super().__init__()
        idx = torch.tensor(check_token_ids(method, token_ids, base.num_embeddings), dtype=torch.long)
        self.base = base
        self.method = method
        self.register_buffer("token_ids", idx)
        slot = torch.full((base.num_embeddings,), -1, dtype=torch.long)
        slot[idx] = torch.arange(idx.numel())
        self.register_buffer("slot", slot, persistent=False)

    def lookup(self, ids: torch.Tensor, rows: torch.Tensor, replace: bool) -> torch.Tensor:
        """ids [...] -> [..., d]: ``rows`` [n, d] replace (or are added to) the table's rows of the token set."""
        s = self.slot[ids]
        own = rows[s.clamp(min=0)]
        hit = (s >= 0).unsqueeze(-1)
        if replace:
            return torch.where(hit, own, self.base(ids))
        return self.base(ids) + torch.where(hit, own, torch.zeros_like(own))

    def row_delta(self) -> torch.Tensor:  # pragma: no cover - interface
        """[n, d]: what the adapter adds to the token set's rows."""
        raise NotImplementedError

    def delta_weight(self) -> torch.Tensor:
        return torch.zeros_like(self.base.weight).index_copy(0, self.token_ids, self.row_delta())


class TrainableRowsEmbedding(TokenSlots):
    """Wraps a frozen ``nn.Embedding``; ids [...] -> embeddings [..., d]."""

    def __init__(self, base: nn.Embedding, token_ids: list[int]):
        super().__init__(base, token_ids, "embedding_rows")
        self.rows = nn.Parameter(base.weight.detach()[self.token_ids].clone())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lookup(ids, self.rows, replace=True)

    def row_delta(self) -> torch.Tensor:
        # a lookup, not base.weight[...]: an integer table would dequantize whole
        return self.rows - self.base(self.token_ids)


class TokenSetConfig(AdapterConfig):
    """A method over the rows of ``token_ids`` of the one embedding matched by ``target``."""

    def __post_init__(self):
        object.__setattr__(self, "token_ids", tuple(int(t) for t in self.token_ids))
        super().__post_init__()

    def select(self, model: nn.Module, strict: bool = True) -> Selection:
        sel = select_modules(model, (self.target,), nn.Embedding, self.method, strict=strict,
                             accept=lambda m: not isinstance(m, AdaptedModule))
        if len(sel.found) > 1:
            raise ConfigError(f"{self.method}: target {self.target!r} matches {len(sel.found)} embeddings "
                              f"({sel.names}); name exactly one")
        return sel

    def check(self, selection: Selection) -> None:
        for _, emb in selection.found:
            check_token_ids(self.method, self.token_ids, emb.num_embeddings)

    def rows(self) -> int:
        return len(set(self.token_ids))


@register
@dataclass(frozen=True)
class EmbeddingRows(TokenSetConfig):
    """Train the rows of ``token_ids`` in the embedding matched by ``target``."""

    token_ids: tuple[int, ...] = ()
    target: str = "word_embeddings"
    method = "embedding_rows"

    def apply(self, model: nn.Module, ctx: ApplyContext, selection: Selection) -> list[str]:
        for name, mod in selection.found:
            replace_module(model, name, TrainableRowsEmbedding(mod, self.token_ids))
        return selection.names

    def param_count(self, model: nn.Module) -> int:
        return sum(self.rows() * m.embedding_dim for _, m in self.select(model, strict=False).found)

    @staticmethod
    def frequent_tokens(token_id_rows, cap: int = 1024, exclude: tuple[int, ...] = ()) -> list[int]:
        """The ``cap`` most frequent ids in ``token_id_rows`` (an int array), minus ``exclude``."""
        ids, counts = torch.unique(torch.as_tensor(token_id_rows).reshape(-1), return_counts=True)
        keep = ~torch.isin(ids, torch.tensor(list(exclude), dtype=ids.dtype))
        ids, counts = ids[keep], counts[keep]
        return ids[torch.argsort(counts, descending=True, stable=True)][:cap].tolist()
