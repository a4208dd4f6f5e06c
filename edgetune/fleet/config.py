"""The fleet's settings: Flower's run config (server and clients) and node config (one client).

`RUN_DEFAULTS` is the one list of run-config keys; the Flower App's pyproject.toml is written
from it (`edgetune.fleet.local.write_app`) and `run_settings` reads a run's values against it.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from edgetune.errors import ConfigError

STRATEGIES = ("fedavg", "fedadam", "dp-fixed")

# key -> default; a run overrides them with `flwr run ... --run-config 'key=value ...'`
RUN_DEFAULTS: dict[str, str | int | float | bool] = {
    "artifact": "",           # the artifact directory (the server's copy; clients may name their own)
    "runtime": "onnx",        # onnx or executorch, on every client
    "client-threads": 0,      # each client's runtime threads (0: the runtime's choice)
    "num-rounds": 3,
    "fraction-train": 1.0,    # share of the connected clients sampled each round
    "min-clients": 2,         # a round waits for at least this many clients
    "fraction-evaluate": 0.0,  # share of clients that score their held-out file after each round
    "local-steps": 10,        # steps each sampled client takes per round
    "lr": 0.0,                # 0: the artifact's learning rate
    "schedule": "constant",   # the clients' learning-rate schedule (edgetune.contract.hyper.SCHEDULES)
    "seed": 0,
    "personal": "",           # comma-separated name patterns of trainable tensors kept on each client
    "strategy": "fedavg",     # one of STRATEGIES
    "server-lr": 0.01,        # fedadam's server learning rate (eta)
    "dp-noise": 1.0,          # dp-fixed: noise multiplier
    "dp-clip": 1.0,           # dp-fixed: clipping norm of a client's update
    "round-timeout": 600.0,   # seconds a round waits for replies; a client that has not answered is left out
    "partitions": "",         # a directory of <partition-id>.csv (+ <partition-id>.eval.csv): the simulation's clients
    "state-dir": "",          # where simulated clients keep their state files
    "out": "",                # the server writes global.safetensors and rounds.json here
}


def _personal_patterns(self) -> tuple[str, ...]:
    return tuple(p.strip() for p in self.personal.split(",") if p.strip())


# A run's settings, checked: one field per key of RUN_DEFAULTS ('_' for '-'), of its default's type.
RunSettings = dataclasses.make_dataclass(
    "RunSettings", [(k.replace("-", "_"), type(v)) for k, v in RUN_DEFAULTS.items()], frozen=True,
    namespace={"personal_patterns": property(_personal_patterns, doc="the personal fnmatch patterns, one per comma")})


def run_settings(run_config: dict) -> RunSettings:
    """Flower's run config (missing keys take `RUN_DEFAULTS`) -> checked `RunSettings`."""
    from edgetune.contract.hyper import SCHEDULES

    unknown = sorted(set(run_config) - set(RUN_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown run-config keys {unknown}; the keys are {sorted(RUN_DEFAULTS)}")
    values = {}
    for key, default in RUN_DEFAULTS.items():
        v = run_config.get(key, default)
        kind = type(default)
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if type(v) is not kind:
            raise ConfigError(f"run-config {key}={v!r} must be a {kind.__name__} (default {default!r})")
        values[key.replace("-", "_")] = v
    s = RunSettings(**values)
    checks = [
        (s.num_rounds >= 1, "num-rounds", "at least 1"),
        (s.client_threads >= 0, "client-threads", ">= 0"),
        (0 < s.fraction_train <= 1, "fraction-train", "in (0, 1]"),
        (0 <= s.fraction_evaluate <= 1, "fraction-evaluate", "in [0, 1]"),
        (s.min_clients >= 1, "min-clients", "at least 1"),
        (s.local_steps >= 1, "local-steps", "at least 1"),
        (math.isfinite(s.lr) and s.lr >= 0, "lr", "a finite number >= 0"),
        (s.schedule in SCHEDULES, "schedule", f"one of {SCHEDULES}"),
        (s.strategy in STRATEGIES, "strategy", f"one of {STRATEGIES}"),
        (math.isfinite(s.server_lr) and s.server_lr > 0, "server-lr", "a finite number > 0"),
        (math.isfinite(s.dp_noise) and s.dp_noise >= 0, "dp-noise", "a finite number >= 0"),
        (math.isfinite(s.dp_clip) and s.dp_clip > 0, "dp-clip", "a finite number > 0"),
        (math.isfinite(s.round_timeout) and s.round_timeout > 0, "round-timeout", "a finite number of seconds > 0"),
    ]
    for ok, key, want in checks:
        if not ok:
            raise ConfigError(f"run-config {key}={getattr(s, key.replace('-', '_'))!r} must be {want}")
    return s


@dataclasses.dataclass(frozen=True)
class ClientSetup:
    """Where one client's artifact, data and state live.

    From the SuperNode's node config (``artifact``, ``data``, ``eval-data``, ``state``), or, for a
    simulated client, from the run's ``partitions`` (``<partition-id>.csv`` and, if present, its
    `held_out_path`) / ``state-dir`` and its ``partition-id``."""

    artifact: Path
    data: Path
    eval_data: Path | None
    state: Path
    name: str


def held_out_path(data: Path) -> Path:
    """A client's held-out file beside its data file: NAME.csv -> NAME.eval.csv."""
    return data.with_name(f"{data.stem}.eval{data.suffix}")


def client_setup(node_config: dict, s: RunSettings) -> ClientSetup:
    """-> ClientSetup; names the missing key and how to give it."""
    if "data" in node_config:
        for key in ("artifact", "state"):
            if key not in node_config:
                raise ConfigError(f"node config has data= but no {key}=; start the SuperNode with "
                                  f"--node-config 'artifact=\"DIR\" data=\"FILE\" state=\"FILE\"'")
        ev = node_config.get("eval-data")
        return ClientSetup(Path(str(node_config["artifact"])), Path(str(node_config["data"])),
                           Path(str(ev)) if ev else None, Path(str(node_config["state"])), Path(str(node_config["data"])).stem)
    if "partition-id" not in node_config or not s.partitions or not s.state_dir:
        raise ConfigError("this client has no data: give the SuperNode --node-config 'artifact=\"DIR\" data=\"FILE\" "
                          "state=\"FILE\"', or run a simulation with run-config partitions=DIR state-dir=DIR")
    pid = int(node_config["partition-id"])
    data = Path(s.partitions) / f"{pid}.csv"
    ev = held_out_path(data)
    return ClientSetup(Path(str(node_config.get("artifact", s.artifact))), data,
                       ev if ev.exists() else None, Path(s.state_dir) / f"{pid}.safetensors", str(pid))
