"""Atomic file replacement, shared by the state store and the adapter writers (torch-free)."""
from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file in the same directory, fsync, rename over ``path``
    and fsync the directory: a crash at any point leaves the old file or the new one, never
    a torn one, and never a stray temporary file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dfd = os.open(p.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporary files a killed `write_atomic` of ``path`` left (SIGKILL runs no
    cleanup). Only safe when no writer of ``path`` is alive, e.g. under its lock."""
    p = Path(path)
    # the names write_atomic gives them: .<name>.<random>.tmp beside the target
    stale = [t for t in p.parent.glob(f".{glob.escape(p.name)}.*.tmp") if t.is_file()] if p.parent.is_dir() else []
    for t in stale:
        t.unlink(missing_ok=True)
    return stale
