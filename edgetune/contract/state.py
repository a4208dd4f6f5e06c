"""Trainable state on disk: safetensors (never pickle), checked against the manifest, written atomically.

The file holds one tensor per state input of the step program, named like the input,
and metadata strings: ``step`` (steps taken so far, a decimal integer), ``sha256`` (the
`tensors_digest` of its tensors) and, except in the artifact's own initial
``state.safetensors`` (bound to the artifact by the manifest's hash instead),
``artifact_id``. A state is checked by one function, `check_state`, on load and before
every save, so a trainer never writes a state it would refuse to load.
"""
from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np

from edgetune.contract.manifest import NP_DTYPES, STATE_FILE, Manifest
from edgetune.contract.schema import MAX_WHOLE
from edgetune.errors import StateError, shorten
from edgetune.files import write_atomic

MAX_HEADER_BYTES = 100 * 2**20  # the safetensors library's own cap
# safetensors dtype names of the manifest's dtypes
ST_DTYPES = {"float32": "F32", "int64": "I64", "int32": "I32", "bool": "BOOL"}
_ST_OF_NUMPY = {NP_DTYPES[k]: v for k, v in ST_DTYPES.items()}


def tensors_digest(tensors: dict[str, np.ndarray]) -> str:
    """sha256 over every tensor in the order of its name's UTF-8 bytes: the name, a 0 byte,
    the safetensors dtype, a 0 byte, the shape as comma-joined decimals, a 0 byte, then the
    raw little-endian bytes. Renaming, reshaping or changing any tensor changes it."""
    h = hashlib.sha256()
    for name in sorted(tensors, key=lambda n: n.encode("utf-8")):
        a = np.require(tensors[name], requirements="C")
        dtype = _ST_OF_NUMPY.get(a.dtype, str(a.dtype))
        h.update(b"\0".join([name.encode("utf-8"), dtype.encode(), ",".join(map(str, a.shape)).encode(), b""]))
        h.update(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()


def check_state(raw: bytes, manifest: Manifest, where: str, initial: bool = False) -> tuple[dict[str, np.ndarray], int]:
    """Parse and check the bytes of a state file -> (state tensors by input name, steps taken).

    Refuses bytes that are not safetensors, a state of another artifact (``initial``: the
    artifact's own initial state, which carries no id), a tensor missing, extra or of
    another shape or dtype, NaN/Inf in a float tensor, a step that is not a whole number,
    or tensors that do not match their checksum (a changed file)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        meta = _metadata(raw)
        tensors = load(raw)
    except (SafetensorError, ValueError, struct.error, RecursionError, UnicodeDecodeError) as e:
        raise StateError(f"state file {where} is corrupt or not safetensors ({shorten(str(e), 120)}); restore it "
                         "from a backup or start again from the artifact's state.safetensors") from e
    owner = meta.get("artifact_id")
    if (owner is not None) if initial else (owner != manifest.artifact_id):
        raise StateError(f"state file {where} belongs to artifact {shorten(owner)}, not to this one "
                         f"({manifest.artifact_id!r}); use the state written for this artifact")
    specs = manifest.state_specs()
    extra = set(tensors) - {s.name for s in specs}
    if extra:
        raise StateError(f"state file {where} holds tensors the manifest does not list: {shorten(sorted(extra))}")
    for spec in specs:
        a = tensors.get(spec.name)
        if a is None:
            raise StateError(f"state file {where} lacks tensor {shorten(spec.name)}; it does not match the manifest")
        if tuple(a.shape) != spec.shape or a.dtype != NP_DTYPES[spec.dtype]:
            raise StateError(f"state tensor {shorten(spec.name)} in {where} is {a.dtype}{list(a.shape)}, the manifest "
                             f"says {spec.dtype}{list(spec.shape)}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise StateError(f"state tensor {shorten(spec.name)} in {where} holds NaN/Inf; restore an earlier state")
    step = meta.get("step")
    if not (isinstance(step, str) and step.isascii() and step.isdigit() and len(step) <= 16 and int(step) <= MAX_WHOLE):
        raise StateError(f"state file {where} has step counter {shorten(step)}, not a whole number of steps; "
                         "restore it from a backup")
    if meta.get("sha256") != tensors_digest(tensors):
        raise StateError(f"state file {where} does not match its checksum: its tensors were changed or damaged "
                         "after it was written; restore it from a backup or start again from state.safetensors")
    return {s.name: tensors[s.name] for s in specs}, int(step)


def load_state(path: str | Path, manifest: Manifest, initial: bool = False) -> tuple[dict[str, np.ndarray], int]:
    """Read ``path`` and `check_state` it. ``initial``: the artifact's own state.safetensors."""
    p = Path(path)
    if not p.is_file():
        raise StateError(f"state file {p} does not exist; start from the artifact's state.safetensors "
                         "or pass the path of a state written by an earlier run")
    limit = MAX_HEADER_BYTES + 8 + sum(int(np.prod(s.shape)) * NP_DTYPES[s.dtype].itemsize for s in manifest.state_specs())
    size = p.stat().st_size
    if size > limit:
        raise StateError(f"state file {p} is {size} bytes, more than this artifact's state can take ({limit}); "
                         "it is not a state of this artifact")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise StateError(f"cannot read state file {p}: {e.strerror}") from e
    return check_state(raw, manifest, str(p), initial)


def _metadata(raw: bytes) -> dict[str, str]:
    (n,) = struct.unpack("<Q", raw[:8])
    if n > min(MAX_HEADER_BYTES, len(raw) - 8):
        raise ValueError(f"header length {n} exceeds the file")
    header = json.loads(raw[8: 8 + n].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError("__metadata__ is not a map of strings")
    return meta


def encode_state(tensors: dict[str, np.ndarray], manifest: Manifest, step: int, initial: bool = False) -> bytes:
    """The bytes of a state file, checked by `check_state` exactly as a load would check them."""
    from safetensors.numpy import save

    # np.require, not np.ascontiguousarray: the latter turns 0-d arrays into 1-d ones.
    tensors = {k: np.require(v, requirements="C") for k, v in tensors.items()}
    meta = {"step": str(int(step)), "sha256": tensors_digest(tensors)}
    if not initial:
        meta["artifact_id"] = manifest.artifact_id
    data = save(tensors, metadata=meta)
    check_state(data, manifest, "about to be written", initial)
    return data


def save_state(path: str | Path, tensors: dict[str, np.ndarray], manifest: Manifest, step: int,
               initial: bool = False) -> None:
    """Check, then write atomically (`edgetune.files.write_atomic`): a crash at any point leaves
    the old file or the new one, and a state that would not load is never written."""
    write_atomic(path, encode_state(tensors, manifest, step, initial))


def resume_or_initial(artifact_dir: str | Path, manifest: Manifest, path: str | Path | None,
                      must_exist: bool = False) -> tuple[dict[str, np.ndarray], int]:
    """The state at ``path`` when that file exists (it may be the artifact's own initial
    state), else the artifact's initial state; with ``must_exist`` a named ``path`` that does
    not exist is an error (a mistyped path must not silently mean "untrained")."""
    initial = Path(artifact_dir) / STATE_FILE
    if path is not None and Path(path).exists():
        return load_state(path, manifest, initial=Path(path).resolve() == initial.resolve())
    if path is not None and must_exist:
        raise StateError(f"state file {path} does not exist; pass the --state a training run wrote "
                         f"(by default ARTIFACT/trained.<runtime>.safetensors), or leave --state out")
    return load_state(initial, manifest, initial=True)
