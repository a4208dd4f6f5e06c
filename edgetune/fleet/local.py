"""A fleet on one machine: a SuperLink and SuperNodes as real processes on 127.0.0.1, the Flower
App directory, and `flwr run` against them.

    with LocalFleet(work_dir, nodes=[{"artifact": ..., "data": ..., "state": ...}] * 3) as fleet:
        fleet.run({"artifact": ..., "num-rounds": 3, "out": ...})

``simulation=True`` starts the SuperLink with Flower's simulation runtime instead (no
SuperNodes: ``num-supernodes`` virtual clients on Ray). Every process is started in its own
session and stopped with its children (the ClientApp / ServerApp subprocesses) on exit.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from edgetune.errors import ConfigError
from edgetune.fleet.config import RUN_DEFAULTS

APP_NAME = "edgetune-fleet"
SERVER_APP, CLIENT_APP = "edgetune.fleet.server:app", "edgetune.fleet.client:app"
CONNECTION = "edgetune"
STARTUP_SECONDS = 60.0


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)


def write_app(app_dir: str | Path, client_app: str = CLIENT_APP) -> Path:
    """The Flower App directory `flwr run` ships to the SuperLink: a pyproject.toml naming the
    edgetune ServerApp and ClientApp (installed with edgetune) and the run config's defaults."""
    d = Path(app_dir)
    d.mkdir(parents=True, exist_ok=True)
    config = "\n".join(f"{k} = {_toml_value(v)}" for k, v in RUN_DEFAULTS.items())
    (d / "pyproject.toml").write_text(f"""[project]
name = "{APP_NAME}"
version = "1.0.0"
description = "edgetune fleet: an exported artifact trained on every client, shared state averaged"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "edgetune"

[tool.flwr.app.components]
serverapp = "{SERVER_APP}"
clientapp = "{client_app}"

[tool.flwr.app.config]
{config}
""")
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, log: Path, seconds: float = STARTUP_SECONDS) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise ConfigError(f"{proc.args[0]} exited with {proc.returncode} on start; its log: {log}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise ConfigError(f"{proc.args[0]} did not listen on 127.0.0.1:{port} within {seconds:.0f} s; its log: {log}")


def _node_config(node: dict) -> str:
    return " ".join(f"{k}={_toml_value(v if isinstance(v, (int, float, bool)) else str(v))}" for k, v in node.items())


class LocalFleet:
    """SuperLink (+ one SuperNode per entry of ``nodes``, each a dict of node config) on loopback.
    Logs go to ``work_dir/logs``; Flower's own settings to ``work_dir/flwr-home``."""

    def __init__(self, work_dir: str | Path, nodes: list[dict] = (), simulation: bool = False,
                 num_supernodes: int = 0, client_resources: dict | None = None, client_app: str = CLIENT_APP):
        if simulation and nodes:
            raise ConfigError("a simulation runs virtual clients: give num_supernodes, not nodes")
        self.dir = Path(work_dir).resolve()
        self.nodes, self.simulation = list(nodes), simulation
        self.num_supernodes, self.client_resources = num_supernodes, client_resources or {}
        self.app_dir = write_app(self.dir / "app", client_app)
        self.home = self.dir / "flwr-home"
        self.logs = self.dir / "logs"
        self.procs: list[subprocess.Popen] = []
        self.sessions: list[int] = []  # every process group started, kept after close for checks
        self.env = {**os.environ, "FLWR_HOME": str(self.home), "FLWR_TELEMETRY_ENABLED": "0",
                    "FLWR_DISABLE_UPDATE_CHECK": "1", "PYTHONUNBUFFERED": "1"}

    def _bin(self, name: str) -> str:
        return str(Path(sys.executable).with_name(name))

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.dir,
                             start_new_session=True)
        log.close()
        self.procs.append(p)
        self.sessions.append(p.pid)
        return p

    def __enter__(self) -> "LocalFleet":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        # Flower's SuperLink serves the Fleet and Control APIs on one HTTP port; each SuperNode
        # serves its ClientApp processes on another
        self.port = free_port()
        self.home.mkdir(parents=True, exist_ok=True)
        link = self._start("superlink", [self._bin("flower-superlink"), "--insecure", "--port", str(self.port)]
                           + (["--simulation"] if self.simulation else []))
        _wait_port(self.port, link, self.logs / "superlink.log")
        for i, node in enumerate(self.nodes):
            self._start(f"supernode-{i}", [
                self._bin("flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{self.port}",
                "--port", str(free_port()), "--node-config", _node_config(node)])
        self._write_connection()

    def _write_connection(self) -> None:
        lines = [f'[superlink]\ndefault = "{CONNECTION}"\n', f"[superlink.{CONNECTION}]",
                 f'address = "127.0.0.1:{self.port}"', "insecure = true"]
        if self.simulation:
            lines += [f"options.num-supernodes = {self.num_supernodes}"]
            lines += [f"options.backend.client-resources.{k} = {_toml_value(v)}" for k, v in self.client_resources.items()]
        (self.home / "config.toml").write_text("\n".join(lines) + "\n")

    def run_command(self, run_config: dict) -> list[str]:
        """The `flwr run` command line for ``run_config`` (keys of `RUN_DEFAULTS`)."""
        unknown = sorted(set(run_config) - set(RUN_DEFAULTS))
        if unknown:
            raise ConfigError(f"unknown run-config keys {unknown}; the keys are {sorted(RUN_DEFAULTS)}")
        cfg = " ".join(f"{k}={_toml_value(v)}" for k, v in run_config.items())
        return [self._bin("flwr"), "run", str(self.app_dir), CONNECTION, "--stream", "--run-config", cfg]

    def run(self, run_config: dict, timeout: float | None = None, echo: bool = False) -> subprocess.CompletedProcess:
        """`flwr run` the app with ``run_config`` and wait for it to finish (its output is returned
        and, with ``echo``, printed as it comes); after ``timeout`` seconds it is stopped and
        TimeoutError raised."""
        self.logs.mkdir(parents=True, exist_ok=True)
        p = subprocess.Popen(self.run_command(run_config), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env=self.env, cwd=self.dir, text=True, start_new_session=True)
        expired = threading.Event()

        def expire():
            expired.set()
            _stop(p)

        timer = threading.Timer(timeout, expire) if timeout else None
        out = []
        try:
            if timer:
                timer.start()
            for line in p.stdout:
                out.append(line)
                if echo:
                    print(line, end="", flush=True)
            p.wait()
        finally:
            if timer:
                timer.cancel()
            _stop(p)
            (self.logs / "flwr-run.log").write_text("".join(out))
        if expired.is_set():
            raise TimeoutError(f"flwr run did not finish within {timeout:.0f} s; its log: {self.logs / 'flwr-run.log'}")
        return subprocess.CompletedProcess(p.args, p.returncode, "".join(out), "")

    def alive(self) -> list[int]:
        """Processes (not zombies) left in the process groups started here (Linux: /proc)."""
        groups, out = set(self.sessions), []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) in groups:
                out.append(int(stat.parent.name))
        return out

    def close(self, seconds: float = 15.0) -> None:
        """Stop every process started here and wait (up to ``seconds``) until none is left, also
        the apps they started (an orphan killed by the group signal may take a moment to go)."""
        for p in reversed(self.procs):
            _stop(p)
        self.procs.clear()
        end = time.monotonic() + seconds
        while (left := self.alive()) and time.monotonic() < end:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)


def _stop(p: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the process's whole session (it and the apps it started), SIGKILL after ``grace``."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            break
        try:
            p.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # the session may outlive its leader (a ClientApp subprocess): sweep it
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
