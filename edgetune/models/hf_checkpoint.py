"""Hugging Face checkpoints from a local directory (config.json + safetensors; no hub access).

A decoder becomes edgetune's `DecoderForCausalLM` with the checkpoint's weights
(`load_decoder`); an encoder becomes an `EncoderClassifier` around the Hugging Face model
itself, pooled as the checkpoint implies (`edgetune.models.encoder.load_encoder_classifier`).
`checkpoint_kind` tells them apart from config.json alone. The supported model types are the
keys of `DECODERS` and `ENCODERS`; anything else is refused with that list.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Callable, Iterator

import torch

from edgetune.errors import ConfigError
from edgetune.models.decoder import FULL, SLIDING, DecoderConfig, DecoderForCausalLM


def _act(hf) -> str:
    name = getattr(hf, "hidden_activation", None) or getattr(hf, "hidden_act", "silu")
    acts = {"silu": "silu", "swish": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh"}
    if name not in acts:
        raise ConfigError(f"{hf.model_type}: activation {name!r} is not supported; edgetune's decoders take "
                          f"{sorted(acts)}")
    return acts[name]


def _rope(params: dict | None) -> tuple[float, dict | None, float]:
    """Hugging Face rope parameters -> (theta, scaling or None, partial rotary factor)."""
    params = params or {}
    scaling = params if params.get("rope_type", "default") != "default" else None
    return float(params.get("rope_theta", 10000.0)), scaling, float(params.get("partial_rotary_factor", 1.0))


def _layer_types(hf) -> list[str]:
    """Per-layer FULL/SLIDING: the config's own list, else every layer slides when a window is set."""
    types = list(getattr(hf, "layer_types", None) or [])
    if not types and getattr(hf, "sliding_window", None):
        types = [SLIDING] * hf.num_hidden_layers
    return types


def _common(hf, max_positions: int) -> dict:
    rope = getattr(hf, "rope_parameters", None) or {}
    if FULL in rope:  # one set of rope parameters per layer type (Gemma 3)
        rope = rope[FULL]
    theta, scaling, partial = _rope(rope)
    types = _layer_types(hf)
    return dict(
        vocab_size=hf.vocab_size, hidden_size=hf.hidden_size, num_layers=hf.num_hidden_layers,
        num_heads=hf.num_attention_heads, num_kv_heads=getattr(hf, "num_key_value_heads", None) or hf.num_attention_heads,
        intermediate_size=hf.intermediate_size, head_dim=getattr(hf, "head_dim", None),
        rope_theta=theta, rope_scaling=scaling, partial_rotary_factor=float(getattr(hf, "partial_rotary_factor", partial)),
        rms_norm_eps=hf.rms_norm_eps, max_positions=min(max_positions, hf.max_position_embeddings),
        tie_word_embeddings=bool(getattr(hf, "tie_word_embeddings", False)), activation=_act(hf),
        qkv_bias=bool(getattr(hf, "attention_bias", False)), o_bias=bool(getattr(hf, "attention_bias", False)),
        mlp_bias=bool(getattr(hf, "mlp_bias", False)), layer_types=types,
        sliding_window=getattr(hf, "sliding_window", None) if SLIDING in types else None)


def _gemma(hf, c: dict) -> dict:
    c.update(norm_offset=1.0, embed_scale=True)
    if hf.model_type in ("gemma2", "gemma3_text"):
        c.update(sandwich_norms=True, query_pre_attn_scalar=hf.query_pre_attn_scalar,
                 attn_softcap=getattr(hf, "attn_logit_softcapping", None),
                 final_softcap=getattr(hf, "final_logit_softcapping", None))
    if hf.model_type == "gemma3_text":
        c["qk_norm"] = True
        local = (getattr(hf, "rope_parameters", None) or {}).get(SLIDING)
        if local:
            c["local_rope_theta"], c["local_rope_scaling"], _ = _rope(local)
    return c


# model_type -> (Hugging Face config, the _common fields) -> DecoderConfig fields
DECODERS: dict[str, Callable[[object, dict], dict]] = {
    "llama": lambda hf, c: c,
    "mistral": lambda hf, c: c,
    "qwen2": lambda hf, c: {**c, "qkv_bias": True, "o_bias": False},
    "qwen3": lambda hf, c: {**c, "qk_norm": True},
    "gemma": _gemma,
    "gemma2": _gemma,
    "gemma3_text": _gemma,
    "phi3": lambda hf, c: {**c, "fused_projections": True},
}
# model types whose Hugging Face model edgetune wraps as a sequence classifier (edgetune.models.encoder)
ENCODERS = ("bert", "roberta", "xlm-roberta", "electra", "distilbert", "deberta-v2")


def supported() -> str:
    return f"decoders {', '.join(DECODERS)}; encoders {', '.join(ENCODERS)}"


def is_checkpoint_dir(model: str | Path) -> bool:
    return Path(model).is_dir() and (Path(model) / "config.json").is_file()


def checkpoint_kind(directory: str | Path) -> str:
    """'decoder' or 'encoder', from config.json's model_type; anything else is refused."""
    d = Path(directory)
    if not (d / "config.json").is_file():
        raise ConfigError(f"{d} has no config.json; a Hugging Face checkpoint directory needs config.json and "
                          "*.safetensors (save one with model.save_pretrained(DIR))")
    try:
        kind = json.loads((d / "config.json").read_text()).get("model_type")
    except (ValueError, AttributeError) as e:
        raise ConfigError(f"{d}/config.json is not a JSON object ({e})") from e
    if kind in DECODERS:
        return "decoder"
    if kind in ENCODERS:
        return "encoder"
    raise ConfigError(f"{d}: model_type {kind!r} is not supported; edgetune takes {supported()}")


def read_config(directory: str | Path):
    """The directory's transformers config (local files only)."""
    from transformers import AutoConfig

    d = Path(directory)
    checkpoint_kind(d)
    try:
        return AutoConfig.from_pretrained(str(d), local_files_only=True)
    except (ValueError, OSError) as e:
        raise ConfigError(f"{d}/config.json cannot be read by transformers: {e}") from e


@contextlib.contextmanager
def quiet_transformers():
    """transformers' load reports (a classifier checkpoint's head is "unexpected" in its base model)
    and progress bars off: edgetune reports what it loaded itself."""
    from transformers.utils import logging

    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def tokenizer_path(directory: str | Path) -> Path:
    p = Path(directory) / "tokenizer.json"
    if not p.is_file():
        raise ConfigError(f"{directory} has no tokenizer.json; save the fast tokenizer beside the weights "
                          "(AutoTokenizer.from_pretrained(...).save_pretrained(DIR))")
    return p


def weight_files(directory: str | Path) -> list[Path]:
    d = Path(directory)
    index = d / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [d / s for s in shards]
    else:
        files = sorted(d.glob("*.safetensors"))
    if not files or not all(f.is_file() for f in files):
        raise ConfigError(f"{d} has no (or incomplete) *.safetensors weights; edgetune reads safetensors only "
                          "(never pickled .bin files): model.save_pretrained(DIR, safe_serialization=True)")
    return files


def iter_weights(directory: str | Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, fp32 tensor) for every tensor of the checkpoint, one at a time (memory-mapped)."""
    from safetensors import safe_open

    for f in weight_files(directory):
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():
                yield name, st.get_tensor(name).to(torch.float32)


def decoder_config(hf, max_positions: int = 2048) -> DecoderConfig:
    return DecoderConfig(**DECODERS[hf.model_type](hf, _common(hf, max_positions)))


def load_decoder(directory: str | Path, max_positions: int = 2048) -> DecoderForCausalLM:
    """edgetune's decoder with the checkpoint's weights, in eval mode."""
    hf = read_config(directory)
    if hf.model_type not in DECODERS:
        raise ConfigError(f"{directory} holds a {hf.model_type!r} encoder; next-token training takes the decoders "
                          f"{', '.join(DECODERS)}")
    model = DecoderForCausalLM(decoder_config(hf, max_positions))
    expected = model.state_dict()
    seen = set()
    with torch.no_grad():
        for name, t in iter_weights(directory):
            if name not in expected:
                if name == "lm_head.weight" and model.lm_head is None:
                    continue  # a tied head saved anyway
                raise ConfigError(f"{directory}: tensor {name!r} has no place in edgetune's {hf.model_type} "
                                  "decoder; is the checkpoint a text-only causal LM?")
            if tuple(t.shape) != tuple(expected[name].shape):
                raise ConfigError(f"{directory}: {name} has shape {tuple(t.shape)}, the config implies "
                                  f"{tuple(expected[name].shape)}")
            expected[name].copy_(t)
            seen.add(name)
    missing = sorted(set(expected) - seen)
    if missing:
        raise ConfigError(f"{directory}: the weights lack {missing[:4]}{' ...' if len(missing) > 4 else ''}")
    return model.eval()
