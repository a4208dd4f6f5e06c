"""What the classifier and language-model recipes (and the export cache) share: adapter configs from
plan dicts (and the model's default targets), calibration samples, a GGUF model's file."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgetune.adapters import ADAPTERS, AdapterConfig, Calibration, config_from_dict
from edgetune.errors import ConfigError


def adapter_config(adapter: dict, seed: int) -> AdapterConfig:
    """A plan's adapter dict -> its config; methods with a ``seed`` field get the plan's
    seed unless the dict sets one."""
    cls = ADAPTERS.get(adapter.get("method"))
    takes_seed = cls is not None and "seed" in {f.name for f in dataclasses.fields(cls)}
    return config_from_dict({"seed": seed, **adapter} if takes_seed else adapter)


def calibration_sample(arrays: dict[str, np.ndarray], n_samples: int, seed: int,
                       batch_size: int | None = None) -> Calibration:
    """``n_samples`` examples drawn at random (data files are often sorted by label), in
    batches of ``batch_size`` (default `Calibration.from_arrays`'s)."""
    order = np.random.default_rng(seed).permutation(len(arrays["input_ids"]))
    kw = {"batch_size": batch_size} if batch_size else {}
    return Calibration.from_arrays({k: v[order] for k, v in arrays.items()}, n_samples, **kw)


def model_targets(adapter: dict, model) -> dict:
    """``adapter`` with the model's default targets (``model.lora_targets``: its attention
    projections) where the dict names none."""
    if adapter.get("targets"):
        return adapter
    default = getattr(model, "lora_targets", None)
    if default is None:
        raise ConfigError(f"{type(model).__name__} has no default adapter targets; name them (targets=[...])")
    return {**adapter, "targets": list(default)}


def gguf_path(model: str) -> Path:
    """The GGUF file of a plan's ``model`` ('smollm2' or a .gguf path)."""
    from edgetune.models.llama import smollm2_gguf_path

    if model == "smollm2":
        return smollm2_gguf_path()
    p = Path(model)
    if p.suffix.lower() != ".gguf" or not p.is_file():
        raise ConfigError(f"model {model!r}: use 'smollm2', the path of an existing .gguf file or a Hugging Face "
                          "checkpoint directory (config.json + *.safetensors + tokenizer.json)")
    return p
