"""Decoder-only causal LMs of the Llama family, written out so every op traces into a step graph.

One configurable architecture covers Llama, Mistral, Qwen2, Qwen3, Gemma, Gemma 2, Gemma 3
(text) and Phi-3; `edgetune.models.hf_checkpoint` maps each Hugging Face config onto a
`DecoderConfig`. What varies between them is a handful of switches: biases on q/k/v,
RMSNorm on each head's q and k (Qwen3, Gemma 3), Gemma's RMSNorm scale (1 + w), its
tanh-GELU, scaled embeddings and extra norms around attention and MLP (Gemma 2/3), logit
soft-capping, sliding-window layers with their own rotary base, partial rotary dimensions,
and fused projections (Phi-3's ``qkv_proj`` and ``gate_up_proj``).

Module names follow Hugging Face's (``model.layers.N.self_attn.q_proj``, ``...mlp.gate_proj``,
``model.embed_tokens``), so checkpoints load by name and adapter targets, PEFT exports and
state dicts line up with the ecosystem. input_ids [B, S] int64, attention_mask [B, S]
(right padding) -> logits [B, S, vocab].
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgetune.errors import ConfigError
from edgetune.models.common import additive_mask
from edgetune.quant.modules import TABLE_BLOCK_ROWS

ROPE_TYPES = ("default", "linear", "llama3")  # rotary scalings computed here (static in the sequence length)
ACTIVATIONS = ("silu", "gelu_tanh")
FULL, SLIDING = "full_attention", "sliding_attention"  # Hugging Face's layer_types values


@dataclass
class DecoderConfig:
    """Shapes and switches of one decoder. Defaults: SmolLM2-135M (a Llama)."""

    vocab_size: int = 49152
    hidden_size: int = 576
    num_layers: int = 30
    num_heads: int = 9
    num_kv_heads: int = 3
    intermediate_size: int = 1536
    head_dim: int | None = None  # None: hidden_size // num_heads
    rope_theta: float = 100000.0
    rope_scaling: dict | None = None  # Hugging Face rope parameters: {"rope_type": "llama3", "factor": ...}
    partial_rotary_factor: float = 1.0  # share of each head's dimensions that rotate
    rms_norm_eps: float = 1e-5
    max_positions: int = 2048
    tie_word_embeddings: bool = True
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False  # RMSNorm over each head's q and k before the rotation
    norm_offset: float = 0.0  # RMSNorm scales by (offset + weight): Gemma's is 1
    activation: str = "silu"
    embed_scale: bool = False  # embeddings times sqrt(hidden_size) (Gemma)
    sandwich_norms: bool = False  # norms after attention and around the MLP (Gemma 2/3)
    query_pre_attn_scalar: float | None = None  # attention scale 1/sqrt(this); None: head_dim
    attn_softcap: float | None = None  # scores -> cap * tanh(scores / cap)
    final_softcap: float | None = None  # the same on the output logits
    sliding_window: int | None = None
    layer_types: list[str] = field(default_factory=list)  # per layer FULL or SLIDING; empty: all FULL
    local_rope_theta: float | None = None  # rotary base of sliding layers, when it differs (Gemma 3)
    local_rope_scaling: dict | None = None
    fused_projections: bool = False  # Phi-3: one qkv_proj and one gate_up_proj

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation {self.activation!r}; edgetune's decoders have {ACTIVATIONS}")
        if self.layer_types and len(self.layer_types) != self.num_layers:
            raise ConfigError(f"layer_types has {len(self.layer_types)} entries for {self.num_layers} layers")
        if any(t not in (FULL, SLIDING) for t in self.layer_types):
            raise ConfigError(f"layer_types {sorted(set(self.layer_types))}: each must be {FULL!r} or {SLIDING!r}")
        if SLIDING in self.layer_types and not self.sliding_window:
            raise ConfigError("sliding-attention layers need sliding_window")
        for s in (self.rope_scaling, self.local_rope_scaling):
            if s and s.get("rope_type", "default") not in ROPE_TYPES:
                raise ConfigError(f"rotary scaling {s.get('rope_type')!r} is not supported; edgetune computes "
                                  f"{ROPE_TYPES}")

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads

    def layer_type(self, i: int) -> str:
        return self.layer_types[i] if self.layer_types else FULL

    def to_dict(self) -> dict:
        return asdict(self)


def inv_frequencies(dim: int, theta: float, scaling: dict | None) -> torch.Tensor:
    """Rotary inverse frequencies [dim/2] (float64), with Hugging Face's static scalings."""
    inv = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    kind = (scaling or {}).get("rope_type", "default")
    if kind == "linear":
        return inv / scaling["factor"]
    if kind == "llama3":  # Llama 3.1: long wavelengths slowed by `factor`, a smooth blend between
        factor, lo, hi = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        blended = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old / hi) & (wavelen <= old / lo)
        return torch.where(medium, blended, scaled)
    return inv


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float, offset: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(d) if offset else torch.ones(d))
        self.eps, self.offset = eps, offset

    def forward(self, x):
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return y * (self.weight + self.offset) if self.offset else y * self.weight


def _rotate_half(x):
    """[..., hd] -> [..., hd]: (x1, x2) -> (-x2, x1). Unbind rather than slices: a slice's
    backward fills a zero tensor that runtimes keep as a constant buffer."""
    x1, x2 = x.unflatten(-1, (2, x.shape[-1] // 2)).unbind(-2)
    return torch.cat([-x2, x1], dim=-1)


def _rotate(x, cos, sin):
    """Rotary embedding of the first cos.shape[-1] dimensions of x [B, H, S, hd]."""
    rot = cos.shape[-1]
    if rot == x.shape[-1]:
        return x * cos + _rotate_half(x) * sin
    x_rot, x_pass = x.split([rot, x.shape[-1] - rot], dim=-1)
    return torch.cat([x_rot * cos + _rotate_half(x_rot) * sin, x_pass], dim=-1)


def _softcap(x, cap: float | None):
    return x if cap is None else torch.tanh(x / cap) * cap


def _gelu_tanh(x):
    # written out: the exporters translate these ops and their gradients everywhere
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def _silu(x):
    # spelled out: aten's silu_backward decomposes through empty_permuted + copy_,
    # which the ONNX exporter cannot translate.
    return x * torch.sigmoid(x)


class DecoderAttention(nn.Module):
    def __init__(self, c: DecoderConfig):
        super().__init__()
        self.h, self.kv, self.hd = c.num_heads, c.num_kv_heads, c.dim_per_head
        q, kv = c.num_heads * self.hd, c.num_kv_heads * self.hd
        if c.fused_projections:
            self.qkv_proj = nn.Linear(c.hidden_size, q + 2 * kv, bias=c.qkv_bias)
        else:
            self.q_proj = nn.Linear(c.hidden_size, q, bias=c.qkv_bias)
            self.k_proj = nn.Linear(c.hidden_size, kv, bias=c.qkv_bias)
            self.v_proj = nn.Linear(c.hidden_size, kv, bias=c.qkv_bias)
        self.o_proj = nn.Linear(q, c.hidden_size, bias=c.o_bias)
        if c.qk_norm:
            self.q_norm = RMSNorm(self.hd, c.rms_norm_eps, c.norm_offset)
            self.k_norm = RMSNorm(self.hd, c.rms_norm_eps, c.norm_offset)
        self.qk_norm = c.qk_norm
        self.scale = (c.query_pre_attn_scalar or self.hd) ** -0.5
        self.softcap = c.attn_softcap

    def forward(self, x, cos, sin, mask_add):
        b, s, _ = x.shape
        if hasattr(self, "qkv_proj"):
            q, k, v = self.qkv_proj(x).split([self.h * self.hd, self.kv * self.hd, self.kv * self.hd], dim=-1)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q, k, v = (t.view(b, s, -1, self.hd).transpose(1, 2) for t in (q, k, v))
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        rep = self.h // self.kv  # grouped-query attention: each k/v head serves `rep` query heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        scores = _softcap(q @ k.transpose(-1, -2) * self.scale, self.softcap)
        att = torch.softmax(scores + mask_add, dim=-1)
        return self.o_proj((att @ v).transpose(1, 2).reshape(b, s, self.h * self.hd))


class DecoderMLP(nn.Module):
    def __init__(self, c: DecoderConfig):
        super().__init__()
        if c.fused_projections:
            self.gate_up_proj = nn.Linear(c.hidden_size, 2 * c.intermediate_size, bias=c.mlp_bias)
        else:
            self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=c.mlp_bias)
            self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=c.mlp_bias)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=c.mlp_bias)
        self.act = _silu if c.activation == "silu" else _gelu_tanh

    def forward(self, x):
        if hasattr(self, "gate_up_proj"):
            g, u = self.gate_up_proj(x).chunk(2, dim=-1)
        else:
            g, u = self.gate_proj(x), self.up_proj(x)
        return self.down_proj(self.act(g) * u)


class DecoderBlock(nn.Module):
    def __init__(self, c: DecoderConfig, kind: str):
        super().__init__()
        norm = lambda: RMSNorm(c.hidden_size, c.rms_norm_eps, c.norm_offset)  # noqa: E731
        self.kind = kind  # FULL or SLIDING: which mask and rotary tables the block takes
        self.input_layernorm = norm()
        self.self_attn = DecoderAttention(c)
        self.post_attention_layernorm = norm()
        self.mlp = DecoderMLP(c)
        self.sandwich = c.sandwich_norms
        if c.sandwich_norms:  # Gemma 2/3: post_attention_layernorm normalizes the attention's output
            self.pre_feedforward_layernorm = norm()
            self.post_feedforward_layernorm = norm()

    def forward(self, x, cos, sin, mask_add):
        a = self.self_attn(self.input_layernorm(x), cos, sin, mask_add)
        if not self.sandwich:
            x = x + a
            return x + self.mlp(self.post_attention_layernorm(x))
        x = x + self.post_attention_layernorm(a)
        return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))


class DecoderModel(nn.Module):
    def __init__(self, c: DecoderConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(DecoderBlock(c, c.layer_type(i)) for i in range(c.num_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps, c.norm_offset)


class DecoderForCausalLM(nn.Module):
    """ids [B, S], mask [B, S] -> logits [B, S, vocab]. A tied head reuses the input
    embedding table."""

    task = "causal_lm"
    lora_targets = ("q_proj", "k_proj", "v_proj", "o_proj")  # the attention projections, by default

    def __init__(self, c: DecoderConfig):
        super().__init__()
        self.config = c
        self.model = DecoderModel(c)
        self.lm_head = None if c.tie_word_embeddings else nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        if c.fused_projections:
            self.lora_targets = ("qkv_proj", "o_proj")
        rot = int(c.dim_per_head * c.partial_rotary_factor)
        tables = {FULL: (c.rope_theta, c.rope_scaling)}
        if SLIDING in c.layer_types:
            tables[SLIDING] = (c.local_rope_theta or c.rope_theta,
                               c.local_rope_scaling if c.local_rope_theta else c.rope_scaling)
        pos = torch.arange(c.max_positions, dtype=torch.float64)[:, None]
        for kind, (theta, scaling) in tables.items():
            ang = pos * inv_frequencies(rot, theta, scaling)[None]
            ang = torch.cat([ang, ang], dim=-1)
            self.register_buffer(f"rope_cos_{kind}", ang.cos().to(torch.float32), persistent=False)
            self.register_buffer(f"rope_sin_{kind}", ang.sin().to(torch.float32), persistent=False)
        self.kinds = tuple(tables)

    def output_embedding(self, h: torch.Tensor, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """h [B, S, d] -> logits of tokens lo..hi-1 [B, S, hi - lo] (default: the whole vocabulary).
        With tied embeddings an embedding adapter's rows serve the output too (as in PEFT's
        trainable tokens on tied models): the frozen table's logits, plus h . delta for the
        adapted tokens' columns."""
        hi = self.config.vocab_size if hi is None else hi
        if self.lm_head is not None:
            logits = self.lm_head(h)
            return logits if (lo, hi) == (0, logits.shape[-1]) else logits[..., lo:hi]
        emb = self.model.embed_tokens
        adapter = emb if hasattr(emb, "row_delta") else None
        table = emb.base if adapter is not None else emb
        if (lo, hi) == (0, table.num_embeddings):
            logits = table.as_linear(h) if hasattr(table, "as_linear") else F.linear(h, table.weight)
        else:
            logits = table.rows_linear(h, lo, hi) if hasattr(table, "rows_linear") else F.linear(h, table.weight[lo:hi])
        if adapter is not None:  # scatter-add along the last axis: no transposes of the logits
            corr = h @ adapter.row_delta().t()
            ids = adapter.token_ids
            if (lo, hi) != (0, table.num_embeddings):  # the adapted tokens outside lo..hi add 0 to column 0
                inside = (ids >= lo) & (ids < hi)
                ids, corr = torch.where(inside, ids - lo, 0), corr * inside
            logits = logits.scatter_add(-1, ids.expand(*corr.shape), corr)
        return logits

    def vocab_blocks(self) -> list[tuple[int, int]] | None:
        """The token ranges a tied output head computes one at a time (the blocks a quantized
        table is dequantized in); None for a separate lm_head, which is computed whole."""
        if self.lm_head is not None:
            return None
        n = self.config.vocab_size
        return [(lo, min(n, lo + TABLE_BLOCK_ROWS)) for lo in range(0, n, TABLE_BLOCK_ROWS)]

    def embed(self, input_ids, attention_mask):
        """-> (h [B, S, d], ctx): token embeddings, and what every layer needs, per layer kind:
        rotary cos/sin [S, rot] and the additive mask [B, 1, S, S]."""
        s = input_ids.shape[1]
        c = self.config
        if s > c.max_positions:
            raise ConfigError(f"sequence length {s} exceeds max_positions={c.max_positions}")
        ctx = {kind: (getattr(self, f"rope_cos_{kind}")[:s], getattr(self, f"rope_sin_{kind}")[:s],
                      additive_mask(attention_mask, causal=True,
                                    window=c.sliding_window if kind == SLIDING else None))
               for kind in self.kinds}
        h = self.model.embed_tokens(input_ids)
        if c.embed_scale:  # Gemma rounds the scale to the compute dtype first
            h = h * torch.tensor(c.hidden_size ** 0.5, dtype=h.dtype)
        return h, ctx

    def head(self, h, lo: int = 0, hi: int | None = None):
        """h [B, S', d] -> logits of tokens lo..hi-1 [B, S', hi - lo] (default: all), position by position."""
        return _softcap(self.output_embedding(self.model.norm(h), lo, hi), self.config.final_softcap)

    def forward(self, input_ids, attention_mask):
        h, ctx = self.embed(input_ids, attention_mask)
        for layer in self.model.layers:
            h = layer(h, *ctx[layer.kind])
        return self.head(h)

    def segments(self):
        """The step's recompute segments (edgetune.step.segments): embedding, each layer, head."""
        from edgetune.step.segments import Block, Segments

        blocks = [Block((f"model.layers.{i}",), lambda h, ctx, layer=layer: layer(h, *ctx[layer.kind]))
                  for i, layer in enumerate(self.model.layers)]
        return Segments(("model.embed_tokens",), self.embed, blocks, ("model.norm", "model.embed_tokens", "lm_head"),
                        self.head, self.config.vocab_size, self.vocab_blocks())
