"""Atomic file and directory replacement, shared by the state store, the adapter, artifact and kit
writers and the emulated boards (torch-free)."""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


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


@contextlib.contextmanager
def replacing_directory(out: str | Path) -> Iterator[Path]:
    """Yield a new empty directory beside ``out`` to build in; when the block ends, it replaces
    ``out``. On an error it is removed and ``out`` is left as it was: never a half directory.
    (rmtree unlinks links inside without following them.)"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
