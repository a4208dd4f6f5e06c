"""Trainable state on disk: safetensors (never pickle), checked against the manifest, written atomically.

The file holds one tensor per state input of the step program, named like the input,
and two metadata strings: ``artifact_id`` and ``step`` (steps taken so far).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgetune.contract.manifest import NP_DTYPES, Manifest
from edgetune.errors import StateError
from edgetune.files import write_atomic


def load_state(path: str | Path, manifest: Manifest) -> tuple[dict[str, np.ndarray], int]:
    """-> (state tensors by input name, steps already taken). Refuses a file that is
    corrupt, from another artifact, or whose tensors do not match the manifest."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    p = Path(path)
    if not p.is_file():
        raise StateError(f"state file {p} does not exist; start from the artifact's state.safetensors "
                         "or pass the path of a state written by an earlier run")
    try:
        raw = p.read_bytes()
        tensors = load(raw)
        meta = _metadata(raw)
    except (SafetensorError, ValueError, OSError) as e:
        raise StateError(f"state file {p} is corrupt or not safetensors ({e}); restore it from a backup or "
                         "start again from the artifact's state.safetensors") from e
    if meta.get("artifact_id") != manifest.artifact_id:
        raise StateError(f"state file {p} belongs to artifact {meta.get('artifact_id')!r}, not to this one "
                         f"({manifest.artifact_id!r}); use the state written for this artifact")
    for spec in manifest.state_specs():
        a = tensors.get(spec.name)
        if a is None:
            raise StateError(f"state file {p} lacks tensor {spec.name!r}; it does not match the manifest")
        if tuple(a.shape) != spec.shape or a.dtype != NP_DTYPES[spec.dtype]:
            raise StateError(f"state tensor {spec.name!r} in {p} is {a.dtype}{list(a.shape)}, the manifest "
                             f"says {spec.dtype}{list(spec.shape)}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise StateError(f"state tensor {spec.name!r} in {p} holds NaN/Inf; restore an earlier state")
    try:
        step = int(meta.get("step", "0"))
    except ValueError as e:
        raise StateError(f"state file {p} has a malformed step counter {meta.get('step')!r}") from e
    return {s.name: tensors[s.name] for s in manifest.state_specs()}, step


def _metadata(raw: bytes) -> dict[str, str]:
    import json
    import struct

    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8: 8 + n])
    return header.get("__metadata__", {}) or {}


def save_state(path: str | Path, tensors: dict[str, np.ndarray], artifact_id: str, step: int) -> None:
    """Write atomically: a temporary file in the same directory, fsync, rename over ``path``.
    A crash at any point leaves either the old file or the new one, never a torn one."""
    from safetensors.numpy import save

    # np.require, not np.ascontiguousarray: the latter turns 0-d arrays into 1-d ones.
    data = save({k: np.require(v, requirements="C") for k, v in tensors.items()},
                metadata={"artifact_id": artifact_id, "step": str(int(step))})
    write_atomic(path, data)
