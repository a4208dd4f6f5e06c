"""The values a device feeds a step besides state and batch: hyper inputs, noise, schedules.

All of it is decided by the step count (1-based: the step being taken), the artifact's
optimizer entry, the learning rate of that step and the run's seed
(docs/artifact-contract.md, "The step loop").
"""
from __future__ import annotations

import math

import numpy as np

from edgetune.contract.manifest import ProgramSpec
from edgetune.contract.names import EPS, LR, RESAMPLE, STEP
from edgetune.contract.noise import resample_due, zo_noise
from edgetune.contract.schema import FLOAT32_MAX
from edgetune.errors import ConfigError

SCHEDULES = ("constant", "linear")
WARMUP_FRACTION = 0.06


def linear_schedule(step: int, total: int, peak: float, warmup_frac: float = WARMUP_FRACTION) -> float:
    """Learning rate of ``step`` (1-based) of ``total``: linear warm-up over round(6% of total)
    steps (at least 1), then linear decay to 0."""
    warmup = max(1, round(warmup_frac * total))
    if step <= warmup:
        return peak * step / warmup
    return peak * max(0.0, (total - step + 1) / max(1, total - warmup + 1))


def default_schedule(optimizer: dict) -> str:
    """The schedule a run uses unless told: warm-up then decay for first-order fine-tuning;
    constant for forward-only steps (as MeZO and LOZO train)."""
    return "constant" if optimizer.get("name") == "zo" else "linear"


def check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule={schedule!r}; choose one of {SCHEDULES}")


def scheduled_lr(schedule: str, step: int, total: int, peak: float) -> float:
    """Learning rate of ``step`` (1-based) under a schedule `check_schedule` accepted."""
    return peak if schedule == "constant" else linear_schedule(step, total, peak)


def hyper_feeds(spec: ProgramSpec, optimizer: dict, step: int, lr: float, seed: int = 0) -> dict[str, np.ndarray]:
    """The step program's hyper and noise inputs for step ``step`` (1-based) at learning rate ``lr``:
    ``lr``; ``step`` (Adam's bias correction); ``eps`` from the optimizer entry; for
    forward-only steps the perturbations drawn from (seed, step) and LOZO's resampling flag."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or not 0 < lr <= FLOAT32_MAX:
        raise ConfigError(f"learning rate {lr!r} must be a positive number that fits float32 (--lr)")
    names = {t.name for t in spec.inputs}
    h = {LR: np.array(lr, dtype=np.float32)}
    if STEP in names:
        h[STEP] = np.array(step, dtype=np.float32)
    if EPS in names:
        h[EPS] = np.array(optimizer["eps"], dtype=np.float32)
    noise = spec.of_role("noise")
    if noise or RESAMPLE in names:
        due = resample_due(step, int(optimizer.get("nu", 1)))
        if RESAMPLE in names:
            h[RESAMPLE] = np.array(float(due), dtype=np.float32)
        h.update(zo_noise(noise, seed, step, due))
    return h
