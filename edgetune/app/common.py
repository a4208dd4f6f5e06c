"""What the classifier and language-model recipes share: adapter configs from plan dicts, calibration samples."""
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
