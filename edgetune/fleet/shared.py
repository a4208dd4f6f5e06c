"""What leaves a device, and what the server accepts back.

The shared part of a state is its trainable tensors (``param.<path>``) except those matching a
``personal`` pattern (fnmatch on ``<path>``, e.g. ``head.*``); optimizer slots, forward-only
subspaces and the step count never leave the client. With LoRA-SB only the r x r cores are
trainable (B and A are frozen in the artifact, the same on every client), so the mean of the
clients' cores is exactly the mean of their weight updates B R A.
"""
from __future__ import annotations

import fnmatch
import math

import numpy as np

from edgetune.contract import Manifest
from edgetune.contract.names import PARAM_PREFIX
from edgetune.errors import ConfigError


def shared_names(manifest: Manifest, personal: tuple[str, ...] = ()) -> list[str]:
    """State inputs the fleet averages, in the manifest's order; refuses a pattern that matches
    nothing (a typo would silently share what was meant to stay on the device) or everything."""
    params = [t.name for t in manifest.state_specs() if t.name.startswith(PARAM_PREFIX)]
    for p in personal:
        if not any(fnmatch.fnmatchcase(n[len(PARAM_PREFIX):], p) for n in params):
            raise ConfigError(f"personal pattern {p!r} matches no trainable tensor; they are "
                              f"{[n[len(PARAM_PREFIX):] for n in params][:8]}...")
    out = [n for n in params if not any(fnmatch.fnmatchcase(n[len(PARAM_PREFIX):], p) for p in personal)]
    if not out:
        raise ConfigError(f"personal={','.join(personal)!r} keeps every trainable tensor on the clients: nothing "
                          "would be shared; leave at least one out")
    return out


def expected_specs(manifest: Manifest, names: list[str]) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, dtype) of each shared tensor, as the manifest declares it."""
    specs = {t.name: t for t in manifest.state_specs()}
    return {n: (tuple(specs[n].shape), specs[n].dtype) for n in names}


def reply_problem(arrays: dict[str, tuple[tuple[int, ...], str]], expected: dict[str, tuple[tuple[int, ...], str]],
                  artifact_id: object, want_id: str, weight: object) -> str | None:
    """Why a client's reply must be refused, or None. ``arrays``: name -> (shape, dtype) as the
    reply declares them (checked before any payload is decoded); finiteness is `nonfinite`."""
    if artifact_id != want_id:
        return f"artifact_id {str(artifact_id)[:24]!r} is not this run's {want_id[:24]!r} (another artifact)"
    if set(arrays) != set(expected):
        missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
        return f"tensors differ: missing {missing[:3]}, unexpected {extra[:3]}"
    for name, (shape, dtype) in expected.items():
        if tuple(arrays[name][0]) != shape or arrays[name][1] != dtype:
            return f"{name} is {arrays[name][1]}{list(arrays[name][0])}, expected {dtype}{list(shape)}"
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
        return f"num-examples {weight!r} is not a positive finite number"
    return None


def nonfinite(arrays: dict[str, np.ndarray]) -> str | None:
    """The first tensor holding NaN or Inf, as a refusal reason, or None."""
    for name, a in arrays.items():
        if not np.isfinite(a).all():
            return f"{name} holds {int((~np.isfinite(a)).sum())} non-finite values"
    return None
