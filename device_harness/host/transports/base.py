"""The one interface every transport offers: push files, run a command streaming its
stdout lines, fetch files, remove what was pushed.

Remote paths are POSIX strings; relative ones are relative to the transport's ``workdir``,
where the harness keeps everything it puts on the device, and commands run there.
"""
from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from edgetune.errors import EdgetuneError


class TransportError(EdgetuneError):
    """The device could not be reached or refused what was asked."""


class ConnectionLost(TransportError):
    """The connection dropped while a command ran; the command may still be running or
    may have stopped (the runner saves and exits when its stdout goes away)."""


@dataclass
class Finished:
    """A command's end: its exit status and the tail of its stderr."""

    status: int
    stderr: str


class Transport(ABC):
    """A device reachable for pushing, running and fetching."""

    name: str = "device"
    workdir: str
    python: str

    @abstractmethod
    def push(self, local: Path, remote: str) -> None:
        """Copy a file or a directory tree to ``remote`` (parents created)."""

    @abstractmethod
    def fetch(self, remote: str, local: Path) -> None:
        """Copy the file ``remote`` to ``local``."""

    @abstractmethod
    def exists(self, remote: str) -> bool:
        ...

    @abstractmethod
    def stream(self, argv: list[str], cwd: str | None = None, env: dict[str, str] | None = None
               ) -> Iterator[str | Finished]:
        """Run ``argv`` and yield its stdout lines as they come, then one `Finished`.
        Raises `ConnectionLost` if the link drops before the command ends."""

    def run(self, argv: list[str], cwd: str | None = None, env: dict[str, str] | None = None) -> tuple[list[str], Finished]:
        """Run to the end: (stdout lines, `Finished`)."""
        lines, end = [], None
        for item in self.stream(argv, cwd, env):
            if isinstance(item, Finished):
                end = item
            else:
                lines.append(item)
        assert end is not None
        return lines, end

    def remove(self, remote: str) -> None:
        """Delete ``remote`` (file or tree); a missing path is not an error."""
        _, end = self.run(["rm", "-rf", "--", remote])
        if end.status:
            raise TransportError(f"{self.name}: cannot remove {remote}: {end.stderr.strip()}")

    def reconnect(self) -> None:
        """Open the link again after `ConnectionLost` (transports without a link: nothing)."""

    def close(self) -> None:
        """Release the link."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def shell_command(argv: list[str], cwd: str | None = None, env: dict[str, str] | None = None) -> str:
    """One POSIX shell line running ``argv`` in ``cwd`` with ``env`` set, every word quoted
    (what SSH and ``adb shell`` execute)."""
    parts = []
    if cwd:
        parts.append(f"cd {shlex.quote(cwd)} &&")
    if env:
        parts.append("env " + " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(env.items())))
    parts.append(shlex.join(argv))
    return " ".join(parts)
