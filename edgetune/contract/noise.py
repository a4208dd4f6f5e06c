"""Randomness of zeroth-order steps, drawn by the device (numpy only).

A ZO step's perturbations are inputs of the step program (role ``noise``), drawn
here from numpy's PCG64 seeded with SeedSequence([seed, step]): a step is
reproducible from (state, batch, seed) on any runtime, and the eager reference
draws the same numbers (docs/artifact-contract.md, "Noise").
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from edgetune.contract.names import NOISE_V_PREFIX


def resample_due(step: int, nu: int) -> bool:
    """LOZO draws a new V on steps 1, nu + 1, 2 nu + 1, ... (1-based)."""
    return (step - 1) % max(1, nu) == 0


def zo_noise(specs: Iterable, seed: int, step: int, resample: bool) -> dict[str, np.ndarray]:
    """Standard normal float32 noise for every spec (objects with ``name`` and ``shape``), drawn
    in spec order. V candidates are zeros on steps that keep V (the program ignores them)."""
    rng = np.random.default_rng([int(seed), int(step)])
    out = {}
    for s in specs:
        if s.name.startswith(NOISE_V_PREFIX) and not resample:
            out[s.name] = np.zeros(s.shape, np.float32)
        else:
            out[s.name] = rng.standard_normal(s.shape, dtype=np.float32)
    return out
