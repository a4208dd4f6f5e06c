"""This machine as the device: a working directory and a child process."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from device_harness.host.transports.base import Finished, Transport, TransportError


class LocalTransport(Transport):
    """Runs the device side in ``workdir`` (a new temporary directory by default) with
    this interpreter, or ``python``."""

    def __init__(self, workdir: str | Path | None = None, python: str | None = None):
        self.name = "local"
        self._owned = workdir is None  # a temporary directory of ours goes away on close()
        self.workdir = str(workdir or tempfile.mkdtemp(prefix="edgetune-device-"))
        self.python = python or sys.executable

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _path(self, remote: str) -> Path:
        p = Path(remote)
        return p if p.is_absolute() else Path(self.workdir) / p

    def push(self, local: Path, remote: str) -> None:
        dst = self._path(remote)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if Path(local).is_dir():
            shutil.copytree(local, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(local, dst)

    def fetch(self, remote: str, local: Path) -> None:
        src = self._path(remote)
        if not src.is_file():
            raise TransportError(f"local: {src} does not exist")
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, local)

    def exists(self, remote: str) -> bool:
        return self._path(remote).exists()

    def remove(self, remote: str) -> None:
        p = self._path(remote)
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()

    def stream(self, argv, cwd=None, env=None) -> Iterator[str | Finished]:
        # stderr goes to a file: a pipe nobody reads while stdout streams could fill and block the child
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(argv, cwd=self._path(cwd) if cwd else self.workdir,
                                    env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=err, text=True)
            try:
                for line in proc.stdout:
                    yield line.rstrip("\n")
                status = proc.wait()
                err.seek(0)
                yield Finished(status, err.read().decode(errors="replace")[-4000:])
            finally:
                if proc.poll() is None:  # the caller stopped reading: end the child like a dropped link would
                    proc.terminate()
                    proc.wait()
                proc.stdout.close()
