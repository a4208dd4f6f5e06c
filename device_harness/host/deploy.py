"""Ship an artifact and the runner to a device, run local updates there, bring the results back.

On the device, under the transport's working directory::

    runner/                   the device-side modules (device_modules()), pushed every run
    artifacts/<artifact_id>/  the artifact, pushed once (its manifest's hashes are checked)
    runs/<run_id>/            data, state.safetensors, steps.jsonl (removed after fetching)

The data file stays on the device side of the link for the whole run; only the step
records and the trained state come back. A dropped connection is retried: the runner
saves its last finished step when its stdout goes away, and the same command, rerun with
``--until``, resumes from there, so no step is lost or repeated.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from device_harness.host.budgets import Budget
from device_harness.host.transports.base import ConnectionLost, Finished, Transport, TransportError
from device_harness.runner import EXIT_DONE, EXIT_INTERRUPTED, EXIT_OVER_BUDGET
from edgetune.contract import load_manifest
from edgetune.contract.lines import parse_line, step_records
from edgetune.errors import ArtifactError, ConfigError, EdgetuneError

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
# Everything `python -m device_harness.runner` imports from this project: the contract and
# device-runtime layers (numpy, safetensors, tokenizers and the runtime come from the
# device's own Python). tests/test_layers.py checks these layers import nothing above them.
DEVICE_MODULE_GLOBS = (
    "device_harness/__init__.py", "device_harness/facts.py", "device_harness/runner.py",
    "device_harness/runtimes.py", "device_harness/onnx_weights.py", "device_harness/conformance.py",
    "edgetune/__init__.py", "edgetune/errors.py", "edgetune/files.py", "edgetune/contract/*.py",
    "edgetune/data/__init__.py", "edgetune/data/text.py", "edgetune/data/records.py", "edgetune/data/rows.py",
    "edgetune/data/tensors.py",
)


def device_modules() -> list[str]:
    """Paths (relative to the package root) of the files the device runner needs."""
    return sorted(str(p.relative_to(PACKAGE_ROOT)) for g in DEVICE_MODULE_GLOBS for p in PACKAGE_ROOT.glob(g))
RUN_FILE = "run.json"


class RunError(EdgetuneError):
    """The device-side runner failed; the message carries its error."""


@dataclass
class RunConfig:
    steps: int = 50
    runtime: str = "onnx"
    threads: int | None = None
    seed: int = 0
    lr: float | None = None
    schedule: str | None = None  # None: the runner's default for the artifact (edgetune.contract.hyper.default_schedule)
    total_steps: int | None = None  # the schedule's length; None: ``steps`` (a shorter run of a longer one: more)
    save_every: int = 10
    budget: Budget | None = None
    retries: int = 5  # reconnections before giving up
    cleanup: bool = True  # remove runs/<id> from the device after fetching


@dataclass
class RunResult:
    """What ``run.json`` holds: the device, the artifact, the settings, every step's record
    (one per step, from the device's log), the runner's start/end events, and how often
    the link dropped."""

    run_id: str
    device: str
    facts: dict
    artifact: dict
    config: dict
    records: list[dict]
    starts: list[dict] = field(default_factory=list)
    end: dict = field(default_factory=dict)
    reconnects: int = 0
    wall_s: float = 0.0
    energy: dict = field(default_factory=dict)
    created: str = ""

    def save(self, out_dir: Path) -> Path:
        from edgetune.files import write_atomic

        path = Path(out_dir) / RUN_FILE
        write_atomic(path, json.dumps(asdict(self), indent=1).encode())
        return path


def load_run(path: str | Path) -> RunResult:
    """A run directory (or its run.json) -> `RunResult`, with a clear error if it is not one."""
    p = Path(path)
    p = p / RUN_FILE if p.is_dir() else p
    try:
        data = json.loads(p.read_text())
        return RunResult(**data)
    except FileNotFoundError as e:
        raise ConfigError(f"{p} does not exist; pass a directory written by `device-harness run`") from e
    except (json.JSONDecodeError, TypeError) as e:
        raise ConfigError(f"{p} is not a run.json written by `device-harness run` ({e})") from e


def push_runner(transport: Transport) -> None:
    for rel in device_modules():
        transport.push(PACKAGE_ROOT / rel, f"runner/{rel}")


def device_check(transport: Transport, runtime: str, artifact_remote: str | None = None) -> dict:
    """Run the device-side checks: the packages the runner needs (before numpy is known to
    exist), then the artifact's manifest and file hashes. Raises with what is missing."""
    lines, end = transport.run([transport.python, "-m", "device_harness.facts", "--runtime", runtime], cwd="runner")
    if end.status or not lines:
        raise RunError(f"{transport.name}: `{transport.python}` cannot run the device facts "
                       f"(exit {end.status}): {end.stderr.strip()[-500:]}; is Python 3 installed there?")
    report = json.loads(lines[-1])
    if report["missing"]:
        raise RunError(f"{transport.name} lacks {', '.join(report['missing'])}: install them with that device's "
                       f"Python ({transport.python})")
    if artifact_remote:
        lines, end = transport.run([transport.python, "-m", "device_harness.runner", "check", artifact_remote,
                                    "--runtime", runtime], cwd="runner")
        if end.status:
            raise ArtifactError(f"{transport.name}: the artifact does not pass the device's check: "
                                f"{end.stderr.strip()[-500:]}")
        report["artifact"] = json.loads(lines[-1])["artifact"]
    return report


def _runner_argv(transport: Transport, artifact_remote: str, data_remote: str, run_dir: str, cfg: RunConfig) -> list[str]:
    argv = [transport.python, "-u", "-m", "device_harness.runner", "train", artifact_remote, data_remote,
            "--runtime", cfg.runtime, "--until", str(cfg.steps), "--state", f"{run_dir}/state.safetensors",
            "--log", f"{run_dir}/steps.jsonl", "--seed", str(cfg.seed), "--save-every", str(cfg.save_every),
            "--total-steps", str(cfg.total_steps or cfg.steps)]
    if cfg.schedule:
        argv += ["--schedule", cfg.schedule]
    if cfg.lr is not None:
        argv += ["--lr", repr(cfg.lr)]
    if cfg.threads:
        argv += ["--threads", str(cfg.threads)]
    if cfg.budget:
        argv += ["--cpus", str(cfg.budget.cores), "--max-rss-mb", str(cfg.budget.max_rss_mb)]
    return argv


def _from_runner(rel: str) -> str:
    """The runner runs in runner/; it is handed paths from the working directory's root."""
    return f"../{rel}"


def run_on_device(transport: Transport, artifact: str | Path, data: str | Path, out_dir: str | Path,
                  cfg: RunConfig = RunConfig(), run_id: str | None = None,
                  on_record: Callable[[dict], None] | None = None,
                  progress: Callable[[str], None] = lambda msg: None) -> RunResult:
    """Deploy, train ``cfg.steps`` steps on ``data`` on the device, stream the records to
    ``on_record``, fetch the log and the state into ``out_dir``, clean up; returns (and
    writes to out_dir/run.json) the `RunResult`."""
    artifact, data, out_dir = Path(artifact), Path(data), Path(out_dir)
    manifest = load_manifest(artifact, cfg.runtime)
    if not data.is_file():
        raise ConfigError(f"data file {data} does not exist")
    run_id = run_id or f"{manifest.artifact_id}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    art_remote, run_dir = f"artifacts/{manifest.artifact_id}", f"runs/{run_id}"
    out_dir.mkdir(parents=True, exist_ok=True)

    progress(f"pushing the runner to {transport.name}")
    push_runner(transport)
    if not transport.exists(f"{art_remote}/manifest.json"):
        progress(f"pushing the artifact ({sum(f.stat().st_size for f in artifact.iterdir() if f.is_file()) / 2**20:.0f} MB)")
        transport.push(artifact, art_remote)
    try:
        report = device_check(transport, cfg.runtime, _from_runner(art_remote))
    except ArtifactError:  # a stale or damaged copy from an earlier run: replace it once
        progress("the device's copy of the artifact fails its check; pushing it again")
        transport.remove(art_remote)
        transport.push(artifact, art_remote)
        report = device_check(transport, cfg.runtime, _from_runner(art_remote))
    data_remote = f"{run_dir}/{data.name}"
    transport.push(data, data_remote)
    battery = getattr(transport, "battery", None)
    battery_start = battery() if battery else None

    argv = _runner_argv(transport, _from_runner(art_remote), _from_runner(data_remote),
                        _from_runner(run_dir), cfg)
    streamed: dict[int, dict] = {}
    starts, end, reconnects, t0 = [], {}, 0, time.perf_counter()
    while True:
        try:
            finished = None
            for item in transport.stream(argv, cwd="runner"):
                if isinstance(item, Finished):
                    finished = item
                    continue
                try:
                    parsed = parse_line(item)
                except ArtifactError:
                    parsed = None
                if parsed is None:  # not a runner line: a library's warning, shown as it is
                    progress(f"device: {item}")
                    continue
                kind, rec = parsed
                if kind == "event" and rec["event"] == "start":
                    starts.append(rec)
                elif kind == "event":
                    end = rec
                else:
                    streamed[rec["step"]] = rec
                    if on_record:
                        on_record(rec)
            if finished.status in (EXIT_DONE, EXIT_OVER_BUDGET):  # the end event says which
                break
            if finished.status == EXIT_INTERRUPTED:  # stopped by a signal on the device: resume like a drop
                raise ConnectionLost(f"the runner was interrupted: {end.get('reason')}")
            raise RunError(f"{transport.name}: the runner failed (exit {finished.status}): "
                           f"{finished.stderr.strip()[-800:]}")
        except ConnectionLost as e:
            reconnects += 1
            if reconnects > cfg.retries:
                raise TransportError(f"{transport.name}: gave up after {cfg.retries} reconnections ({e}). The device "
                                     f"keeps the state in {transport.workdir}/{run_dir}; run the same command with "
                                     f"--run-id {run_id} to resume it") from e
            delay = min(30.0, 2.0 ** (reconnects - 1))
            progress(f"connection lost ({e}); resuming in {delay:.0f} s (attempt {reconnects}/{cfg.retries})")
            time.sleep(delay)
            try:
                transport.reconnect()
            except TransportError as again:
                progress(f"reconnect failed: {again}")
    wall = time.perf_counter() - t0

    log_path = out_dir / "steps.jsonl"
    transport.fetch(f"{run_dir}/steps.jsonl", log_path)
    transport.fetch(f"{run_dir}/state.safetensors", out_dir / "state.safetensors")
    records = merge_log(log_path.read_text().splitlines(), streamed)
    energy = end.get("energy", {})
    if battery_start is not None:
        from device_harness.facts import energy_used

        energy = energy_used(battery_start, battery())
    if cfg.cleanup:
        transport.remove(run_dir)
    result = RunResult(
        run_id=run_id, device=transport.name, facts=report["facts"],
        artifact=artifact_summary(manifest, artifact),
        config={**{k: v for k, v in asdict(cfg).items() if k != "budget"},
                "budget": asdict(cfg.budget) if cfg.budget else None, "data": data.name},
        records=records, starts=starts, end=end, reconnects=reconnects, wall_s=round(wall, 3), energy=energy,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    result.save(out_dir)
    return result


def artifact_summary(manifest, artifact: Path) -> dict:
    """What run.json records of the artifact a run trained."""
    return {"artifact_id": manifest.artifact_id, "path": str(artifact), "task": manifest.task,
            "model": manifest.model.get("name"), "method": _method(manifest.adapters),
            "optimizer": manifest.optimizer, "batch_size": manifest.batch_size, "seq_len": manifest.seq_len,
            "step_cost": manifest.model.get("step_cost")}


def merge_log(lines: list[str], streamed: dict[int, dict]) -> list[dict]:
    """One record per step, in order: the device's log (complete even when a line never
    reached the host), with a hard-killed attempt's unsaved steps replaced by their rerun."""
    by_step = dict(streamed)
    for rec in step_records(lines):
        by_step[rec["step"]] = rec
    return [by_step[s] for s in sorted(by_step)]


def _method(adapters: dict) -> str | None:
    """The adapter methods named in the manifest's adapter report ("lora", "lora + embedding_rows")."""
    names = [a.get("method") for a in adapters.get("adapters", []) if a.get("method")]
    return " + ".join(dict.fromkeys(names)) or None
