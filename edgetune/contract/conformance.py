"""The conformance kit: golden vectors an implementation of the contract replays.

A kit is a directory written from one artifact (`edgetune conformance`):

    kit.json             the cases, in order (below)
    tensors.safetensors  every array the cases name, by key
    resume.safetensors   a state file (with its ``step``) to resume from

``kit.json``::

    {"format": "edgetune.conformance", "version": 1, "artifact_id": ..., "seed": 0,
     "tolerance": {"rtol": ..., "atol": ..., "atol_scale": ...},
     "tokenizer": {"seq_len": 32, "texts": [...], "input_ids": KEY, "attention_mask": KEY} | null,
     "schedule": {"total": 20, "peak": 0.001, "linear": [lr of steps 1..total]},
     "cases": [{"name": "train" | "resume" | "nonfinite", "start": KEY-PREFIX | "resume.safetensors",
                "start_step": k, "steps": [{"step": k+1, "lr": ..., "batch": KEY-PREFIX,
                "hyper": KEY-PREFIX, "accepted": true, "loss": ..., "state": KEY-PREFIX}, ...]}]}

A KEY-PREFIX names every tensor stored under ``PREFIX + <input name>``. Replaying a case:
load the start state (``start_step`` steps taken), then for each step compute the hyper
and noise inputs with the implementation's own rules and compare them with ``hyper``
(noise exactly, floats to float32), run the step program on state + ``batch`` + hyper, and
compare ``loss`` and every new state tensor with ``state`` (`mismatch`); chain the
implementation's own outputs into the next step. A step with ``accepted: false`` must be
rejected (non-finite loss or state) and leave the state and the step count as they were.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgetune.errors import ArtifactError

KIT_FORMAT = "edgetune.conformance"
KIT_VERSION = 1
KIT_FILE, TENSORS_FILE, RESUME_FILE = "kit.json", "tensors.safetensors", "resume.safetensors"
CASES = ("train", "resume", "nonfinite")

# The one tolerance rule between two implementations of a float32 step: |got - want| <=
# atol_floor + rtol |want| elementwise, with atol_floor = max(atol, atol_scale x max |want|).
# The scaled floor is for deep models: a 30-layer LM's logits near zero carry rounding of
# values of size ~30. A lowering bug (a lost epsilon, a wrong layout) is orders larger.
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5, "atol_scale": 1e-3}


def mismatch(want: np.ndarray, got: np.ndarray, tol: dict = TOLERANCE) -> str | None:
    """None when ``got`` matches ``want`` within ``tol`` and is finite, else what differs."""
    want, got = np.asarray(want), np.asarray(got)
    if want.shape != got.shape:
        return f"shape {got.shape}, expected {want.shape}"
    floor = max(tol["atol"], tol["atol_scale"] * float(np.abs(want).max(initial=0.0)))
    if not np.isfinite(got).all():
        return "not finite"
    if not np.allclose(got, want, rtol=tol["rtol"], atol=floor):
        return f"max |diff| {float(np.abs(got.astype(np.float64) - want).max()):.3g}"
    return None


def prefixed(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The tensors stored under ``prefix``, by the name after it."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def read_kit(kit_dir: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """-> (kit.json as a dict, every tensor by key). Refuses another format or version."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    d = Path(kit_dir)
    try:
        kit = json.loads((d / KIT_FILE).read_text(encoding="utf-8"))
        tensors = load_file(str(d / TENSORS_FILE))
    except (OSError, json.JSONDecodeError, SafetensorError) as e:
        raise ArtifactError(f"{d} is not a readable conformance kit ({e}); write one with `edgetune conformance`") from e
    if not isinstance(kit, dict) or kit.get("format") != KIT_FORMAT or kit.get("version") != KIT_VERSION:
        raise ArtifactError(f"{d / KIT_FILE} is not a version-{KIT_VERSION} {KIT_FORMAT} kit")
    return kit, tensors
