"""Decoders with real models' shapes and random weights: honest for step time, memory and
artifact size, not for quality. One source for the export-cost and memory benchmarks."""
from __future__ import annotations

import random
from pathlib import Path

import common

_QWEN25 = dict(vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
               tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151643)
# the shapes of Qwen2.5-0.5B's and Qwen2.5-1.5B's config.json
SHAPES = {
    "qwen0.5b": dict(_QWEN25, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                     num_attention_heads=14, num_key_value_heads=2),
    "qwen1.5b": dict(_QWEN25, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                     num_attention_heads=12, num_key_value_heads=2),
}
TITLES = {"qwen0.5b": "Qwen2.5-0.5B shapes, random weights", "qwen1.5b": "Qwen2.5-1.5B shapes, random weights"}


def shaped_checkpoint(name: str, d: Path) -> Path:
    """A Qwen2 checkpoint directory with ``SHAPES[name]`` and random bf16 weights (saved tensor by
    tensor from a meta-device model, so building it never holds an fp32 copy), and a word-level
    tokenizer of the model's vocabulary (words w4, w5, ...). Reused when it exists."""
    import torch
    import transformers
    from safetensors.torch import save_file

    if (d / "model.safetensors").is_file():
        return d
    d.mkdir(parents=True, exist_ok=True)
    cfg = transformers.Qwen2Config(**SHAPES[name])
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for pname, p in model.named_parameters():
        if pname == "lm_head.weight":  # tied to the embedding
            continue
        t = torch.ones(p.shape) if "norm" in pname else torch.randn(p.shape, generator=g) * 0.02
        tensors[pname] = t.to(torch.bfloat16)
    save_file(tensors, str(d / "model.safetensors"), metadata={"format": "pt"})
    cfg.save_pretrained(d)
    common.test_helper("hf_tiny").word_tokenizer(cfg.vocab_size).save(str(d / "tokenizer.json"))
    return d


def word_text(path: Path, words: int = 20000, seed: int = 0) -> Path:
    """Running text in the word tokenizer's words (w4 ... w4999), enough for many 256-token windows."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(" ".join(f"w{rng.randrange(4, 5000)}" for _ in range(words)), encoding="utf-8")
    return path
