"""What the classifier and language-model recipes share: adapter configs from plan dicts (and the
model's default targets), calibration samples."""
from __future__ import annotations

import dataclasses

import numpy as np

from edgetune.adapters import ADAPTERS, AdapterConfig, Calibration, config_from_dict


def adapter_config(adapter: dict, seed: int) -> AdapterConfig:
    """A plan's adapter dict -> its config; methods with a ``seed`` field get the plan's
    seed unless the dict sets one."""
    cls = ADAPTERS.get(adapter.get("method"))
    takes_seed = cls is not None and "seed" in {f.name for f in dataclasses.fields(cls)}
    return config_from_dict({"seed": seed, **adapter} if takes_seed else adapter)


def calibration_sample(arrays: dict[str, np.ndarray], n_samples: int, seed: int) -> Calibration:
    """``n_samples`` examples drawn at random (data files are often sorted by label)."""
    order = np.random.default_rng(seed).permutation(len(arrays["input_ids"]))
    return Calibration.from_arrays({k: v[order] for k, v in arrays.items()}, n_samples)


def model_targets(adapter: dict, model) -> dict:
    """``adapter`` with the model's default targets (``model.lora_targets``: its attention
    projections) where the dict names none."""
    if adapter.get("targets"):
        return adapter
    default = getattr(model, "lora_targets", None)
    if default is None:
        from edgetune.errors import ConfigError

        raise ConfigError(f"{type(model).__name__} has no default adapter targets; name them (targets=[...])")
    return {**adapter, "targets": list(default)}
