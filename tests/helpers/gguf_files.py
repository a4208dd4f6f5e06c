"""Test helpers: the SmolLM2 GGUF file (skipped with the reason when its package is absent)
and tiny Llama GGUF files written with the `gguf` package's own quantizers and writer."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def smollm2_path() -> Path:
    from edgetune.errors import ConfigError
    from edgetune.models.llama import smollm2_gguf_path

    try:
        return smollm2_gguf_path()
    except ConfigError as e:
        pytest.skip(f"SmolLM2 GGUF unavailable: {e}")


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's conversion permutation of q/k rows (convert_hf_to_gguf.py, LlamaModel.permute)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_llama(path: Path, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                     ffn: int = 128, qtypes=("Q4_1", "Q4_0", "Q8_0"), embed_qtype: str = "Q8_0", seed: int = 0,
                     tokenizer_from: Path | None = None) -> tuple[Path, dict[str, np.ndarray]]:
    """A random Llama GGUF whose linear layers cycle through ``qtypes``; with ``tokenizer_from``
    (a GGUF file) its tokenizer and vocabulary are copied, else the vocabulary is 256 ids.
    -> (path, fp32 weights in Hugging Face naming before quantization)."""
    import gguf

    rng = np.random.default_rng(seed)
    src = gguf.GGUFReader(str(tokenizer_from)) if tokenizer_from else None
    vocab = len(src.fields["tokenizer.ggml.tokens"].contents()) if src else 256
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(layers)
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    if src:
        f = src.fields
        w.add_tokenizer_model(f["tokenizer.ggml.model"].contents())
        w.add_tokenizer_pre(f["tokenizer.ggml.pre"].contents())
        w.add_token_list(f["tokenizer.ggml.tokens"].contents())
        w.add_token_types(f["tokenizer.ggml.token_type"].contents())
        w.add_token_merges(f["tokenizer.ggml.merges"].contents())
        w.add_bos_token_id(f["tokenizer.ggml.bos_token_id"].contents())
        w.add_eos_token_id(f["tokenizer.ggml.eos_token_id"].contents())
        w.add_pad_token_id(f["tokenizer.ggml.padding_token_id"].contents())
    hf: dict[str, np.ndarray] = {}

    def quant(name, arr, qtype):
        t = getattr(gguf.GGMLQuantizationType, qtype)
        w.add_tensor(name, gguf.quants.quantize(arr.astype(np.float32), t), raw_dtype=t)

    emb = rng.normal(0, 0.5, (vocab, hidden)).astype(np.float32)
    quant("token_embd.weight", emb, embed_qtype)
    hf["model.embed_tokens.weight"] = emb
    hd = hidden // heads
    shapes = {"attn_q": (heads * hd, hidden), "attn_k": (kv_heads * hd, hidden), "attn_v": (kv_heads * hd, hidden),
              "attn_output": (hidden, heads * hd), "ffn_gate": (ffn, hidden), "ffn_up": (ffn, hidden),
              "ffn_down": (hidden, ffn)}
    names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj"}
    k = 0
    for i in range(layers):
        for g, shape in shapes.items():
            arr = rng.normal(0, 0.3 / np.sqrt(shape[1]) * 4, shape).astype(np.float32)
            hf[f"model.layers.{i}.{names[g]}.weight"] = arr
            stored = _permute(arr, heads) if g == "attn_q" else _permute(arr, kv_heads) if g == "attn_k" else arr
            quant(f"blk.{i}.{g}.weight", stored, qtypes[k % len(qtypes)])
            k += 1
        for g, hfn in (("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm")):
            norm = (1 + 0.1 * rng.normal(size=hidden)).astype(np.float32)
            w.add_tensor(f"blk.{i}.{g}.weight", norm)
            hf[f"model.layers.{i}.{hfn}.weight"] = norm
    norm = (1 + 0.1 * rng.normal(size=hidden)).astype(np.float32)
    w.add_tensor("output_norm.weight", norm)
    hf["model.norm.weight"] = norm
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path, hf
