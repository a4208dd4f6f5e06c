"""Trainable embedding rows: only the rows of a chosen token set are trained.

Equivalent to E' = E.index_copy(0, idx, V) followed by a lookup, with V
initialised to E[idx] (so a no-op at init) and |idx| * d trainable values.
Implemented without copying the whole table each step: a frozen slot table maps
a token id to its row in V (or -1), and the lookup picks V or E per position.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from edgetune.adapters.registry import AdapterConfig, register, replace_module, select_modules
from edgetune.errors import ConfigError


class TrainableRowsEmbedding(nn.Module):
    """Wraps a frozen ``nn.Embedding``; ids [...] -> embeddings [..., d]."""

    def __init__(self, base: nn.Embedding, token_ids: list[int]):
        super().__init__()
        idx = torch.tensor(sorted(set(int(t) for t in token_ids)), dtype=torch.long)
        if idx.numel() == 0:
            raise ConfigError("embedding_rows: token_ids is empty; pass the ids of tokens in the user's data")
        if int(idx.min()) < 0 or int(idx.max()) >= base.num_embeddings:
            raise ConfigError(f"embedding_rows: token ids must lie in [0, {base.num_embeddings}); "
                              f"got range [{int(idx.min())}, {int(idx.max())}]")
        self.base = base
        self.register_buffer("token_ids", idx, persistent=False)
        slot = torch.full((base.num_embeddings,), -1, dtype=torch.long)
        slot[idx] = torch.arange(idx.numel())
        self.register_buffer("slot", slot, persistent=False)
        self.rows = nn.Parameter(base.weight.detach()[idx].clone())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        s = self.slot[ids]
        own = self.rows[s.clamp(min=0)]
        return torch.where((s >= 0).unsqueeze(-1), own, self.base(ids))


@register
@dataclass
class EmbeddingRows(AdapterConfig):
    """Train the rows of ``token_ids`` in the embedding matched by ``target``."""

    token_ids: list[int] = field(default_factory=list)
    target: str = "word_embeddings"
    method = "embedding_rows"

    def apply(self, model: nn.Module) -> list[str]:
        found = select_modules(model, (self.target,), nn.Embedding, self.method)
        if len(found) != 1:
            raise ConfigError(f"embedding_rows: target {self.target!r} matches {len(found)} embeddings "
                              f"({[n for n, _ in found]}); name exactly one")
        name, mod = found[0]
        replace_module(model, name, TrainableRowsEmbedding(mod, self.token_ids))
        return [name]

    @staticmethod
    def frequent_tokens(token_id_rows, cap: int = 1024, exclude: tuple[int, ...] = ()) -> list[int]:
        """The ``cap`` most frequent ids in ``token_id_rows`` (an int array), minus ``exclude``."""
        ids, counts = torch.unique(torch.as_tensor(token_id_rows).reshape(-1), return_counts=True)
        keep = ~torch.isin(ids, torch.tensor(list(exclude), dtype=ids.dtype))
        ids, counts = ids[keep], counts[keep]
        return ids[torch.argsort(counts, descending=True, stable=True)][:cap].tolist()
