"""Android phones over ADB (adbutils): push/pull through the sync service, commands through
``adb shell``, with the exit status and stderr carried back by the shell line itself
(the legacy shell service returns neither).

The device side needs a Python with numpy and onnxruntime, e.g. Termux's: pass its
interpreter as ``python`` and a directory that interpreter can read as ``workdir``.
"""
from __future__ import annotations

import posixpath
import re
import shlex
from pathlib import Path
from typing import Iterator

from device_harness.host.transports.base import ConnectionLost, Finished, Transport, TransportError, shell_command

EXIT_MARKER = "__edgetune_exit="
DEFAULT_WORKDIR = "/data/local/tmp/edgetune"


def wrapped_shell_line(argv: list[str], cwd: str | None, env: dict[str, str] | None, stderr_path: str) -> str:
    """The line ``adb shell`` runs: the command with stderr to a file, then a marker line
    carrying its exit status (parsed by `exit_status`)."""
    return f"{{ {shell_command(argv, cwd, env)} ; }} 2>{shlex.quote(stderr_path)}; echo {EXIT_MARKER}$?"


def split_exit_marker(line: str) -> tuple[str, int | None]:
    """(the line's text, the exit status if the marker ends it). The marker follows the
    command's last output on the same line when that output has no final newline."""
    m = re.search(re.escape(EXIT_MARKER) + r"(\d+)$", line.rstrip())
    return (line[:m.start()], int(m.group(1))) if m else (line, None)


def parse_battery(dumpsys: str) -> dict:
    """``dumpsys battery`` -> a `device_harness.facts.read_energy`-style reading: µWh from
    the charge counter (µAh) and voltage (mV), status Discharging unless a charger is on."""
    fields = {}
    for line in dumpsys.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    if "Charge counter" not in fields or "voltage" not in fields:
        return {"unavailable": "dumpsys battery reports no charge counter and voltage on this phone"}
    powered = [k for k in ("AC powered", "USB powered", "Wireless powered", "Dock powered") if fields.get(k) == "true"]
    return {"source": "dumpsys battery (charge counter x voltage)",
            "uwh": int(fields["Charge counter"]) * int(fields["voltage"]) / 1000.0,
            "status": "Charging" if powered else "Discharging", "level": fields.get("level")}


def parse_getprop(text: str) -> dict[str, str]:
    """``getprop`` output ``[key]: [value]`` lines -> dict."""
    return dict(re.findall(r"^\[([^\]]+)\]: \[([^\]]*)\]", text, flags=re.M))


class ADBTransport(Transport):
    """The phone with ``serial`` (default: the only one attached) through the adb server."""

    def __init__(self, serial: str | None = None, workdir: str = DEFAULT_WORKDIR, python: str = "python3",
                 host: str | None = None, port: int | None = None):
        import adbutils

        self.workdir, self.python = workdir, python
        try:
            client = adbutils.AdbClient(host=host, port=port)
            devices = client.device_list()
        except (adbutils.AdbError, OSError) as e:
            raise TransportError(f"adb server not reachable ({e}); start it with `adb start-server` "
                                 "and connect the phone with USB debugging on") from e
        if serial:
            matches = [d for d in devices if d.serial == serial]
            if not matches:
                raise TransportError(f"no phone {serial!r} attached; attached: {[d.serial for d in devices] or 'none'}")
            self.device = matches[0]
        elif len(devices) == 1:
            self.device = devices[0]
        else:
            raise TransportError(f"{len(devices)} phones attached ({[d.serial for d in devices]}); pass --serial")
        self.name = f"adb://{self.device.serial}"

    def _abs(self, remote: str) -> str:
        return remote if remote.startswith("/") else posixpath.join(self.workdir, remote)

    def push(self, local: Path, remote: str) -> None:
        local, dst = Path(local), self._abs(remote)
        files = sorted(f for f in local.rglob("*") if f.is_file()) if local.is_dir() else [local]
        try:
            for f in files:
                target = posixpath.join(dst, *f.relative_to(local).parts) if local.is_dir() else dst
                self.device.shell(["mkdir", "-p", posixpath.dirname(target)])
                self.device.sync.push(f, target)
        except Exception as e:
            raise ConnectionLost(f"{self.name}: pushing {local} failed: {e}") from e

    def fetch(self, remote: str, local: Path) -> None:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        if not self.exists(remote):
            raise TransportError(f"{self.name}: {self._abs(remote)} does not exist")
        try:
            self.device.sync.pull(self._abs(remote), Path(local))
        except Exception as e:
            raise ConnectionLost(f"{self.name}: fetching {remote} failed: {e}") from e

    def exists(self, remote: str) -> bool:
        return bool(self.device.sync.exists(self._abs(remote)))

    def battery(self) -> dict:
        """The battery gauge now (`parse_battery`)."""
        return parse_battery(self.device.shell(["dumpsys", "battery"]))

    def properties(self) -> dict[str, str]:
        return parse_getprop(self.device.shell(["getprop"]))

    def stream(self, argv, cwd=None, env=None) -> Iterator[str | Finished]:
        err_path = self._abs(".last_stderr")
        line = wrapped_shell_line(argv, self._abs(cwd) if cwd else self.workdir, env, err_path)
        status = None
        try:
            self.device.shell(["mkdir", "-p", self.workdir])
            conn = self.device.shell(line, stream=True)
            with conn.conn.makefile("r", encoding="utf-8", errors="replace") as out:
                for raw in out:
                    text, status = split_exit_marker(raw.rstrip("\r\n"))
                    if text or status is None:
                        yield text
                    if status is not None:
                        break
            conn.close()
        except Exception as e:
            raise ConnectionLost(f"{self.name}: the link dropped while {argv[-1]!r} ran: {e}") from e
        if status is None:
            raise ConnectionLost(f"{self.name}: the shell ended without the command's exit status (cable pulled?)")
        yield Finished(status, self.device.shell(["cat", err_path])[-4000:])
