"""A tiny pre-norm transformer for fast tests, with BERT-like module names
(``word_embeddings``, ``query``/``key``/``value``) so the same selectors work."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from edgetune.models.common import additive_mask, mean_pool


class TinyAttention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.query, self.key, self.value, self.out = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, mask_add):
        b, s, d = x.shape
        split = lambda t: t.view(b, s, self.h, self.dh).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.dh) + mask_add, dim=-1)
        return self.out((att @ v).transpose(1, 2).reshape(b, s, d))


class TinyLayer(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attention = TinyAttention(d, heads)
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, mask_add):
        x = x + self.attention(self.ln1(x), mask_add)
        return x + self.down(torch.nn.functional.gelu(self.up(self.ln2(x))))


class TinyEncoder(nn.Module):
    def __init__(self, vocab: int, d: int, layers: int, heads: int, max_len: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, d)
        self.position_embeddings = nn.Embedding(max_len, d)
        self.layers = nn.ModuleList(TinyLayer(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d)

    def forward(self, ids, mask_add):
        # a lookup, not .weight[:S]: position rows can then be adapted like token rows
        x = self.word_embeddings(ids) + self.position_embeddings(torch.arange(ids.shape[1], device=ids.device))
        for layer in self.layers:
            x = layer(x, mask_add)
        return self.ln(x)


class TinyClassifier(nn.Module):
    """ids [B,S], mask [B,S] -> logits [B, num_labels]."""

    task = "sequence_classification"
    lora_targets = ("query", "value")

    def __init__(self, vocab=128, d=32, layers=2, heads=4, max_len=64, num_labels=3, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = TinyEncoder(vocab, d, layers, heads, max_len)
        self.head = nn.Linear(d, num_labels)

    def forward(self, input_ids, attention_mask):
        h = self.encoder(input_ids, additive_mask(attention_mask))
        return self.head(mean_pool(h, attention_mask))


class TinyCausalLM(nn.Module):
    """ids [B,S], mask [B,S] -> next-token logits [B, S, vocab]."""

    task = "causal_lm"
    lora_targets = ("query", "value")

    def __init__(self, vocab=128, d=32, layers=2, heads=4, max_len=64, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = TinyEncoder(vocab, d, layers, heads, max_len)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids, attention_mask):
        return self.lm_head(self.encoder(input_ids, additive_mask(attention_mask, causal=True)))
