"""Drive the Android demo app's benchmark mode over ADB (android_demo/app, BenchmarkActivity):
the app trains with the Kotlin trainer on the phone's own runtimes and writes the Python
runner's JSON lines to a file, which the host follows.

On the phone, under the app's external files directory (where `adb push` can write and the
app can read)::

    <run_id>/artifact/   the artifact; the app writes trained.<runtime>.safetensors into it
    <run_id>/<data>      the data file
    <run_id>/run.jsonl   the lines, ending with the end event
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from device_harness.host.deploy import RunConfig, RunError, RunResult, artifact_summary
from device_harness.host.transports.base import Transport
from edgetune.contract import load_manifest
from edgetune.contract.lines import parse_line
from edgetune.errors import ConfigError

APP_ACTIVITY = "edgetune.demo/.BenchmarkActivity"
APP_FILES = "/sdcard/Android/data/edgetune.demo/files"
PROPERTIES = ("ro.product.manufacturer", "ro.product.model", "ro.soc.model", "ro.product.cpu.abi",
              "ro.build.version.release", "ro.build.version.sdk")


def app_start_argv(artifact_remote: str, data_remote: str, out_remote: str, cfg: RunConfig) -> list[str]:
    """The `am start` command that starts a benchmark run in the app (it returns once the activity is up)."""
    argv = ["am", "start", "-W", "-n", APP_ACTIVITY, "--es", "artifact", artifact_remote, "--es", "data", data_remote,
            "--ei", "steps", str(cfg.steps), "--es", "runtime", cfg.runtime, "--es", "out", out_remote]
    if cfg.threads:
        argv += ["--ei", "threads", str(cfg.threads)]
    return argv


def follow_lines(read: Callable[[], str], timeout: float, interval: float = 1.0) -> Iterator[str]:
    """Each new complete line of a file another process appends to (``read`` returns its whole
    text so far), until an end event line; ConfigError when nothing new arrives for ``timeout`` s."""
    seen, last = 0, time.monotonic()
    while True:
        text = read()
        done = text.rfind("\n") + 1  # a line still being written waits for its newline
        new = text[seen:done].splitlines()
        seen = max(seen, done)
        for line in new:
            yield line
            parsed = parse_line(line)
            if parsed and parsed[0] == "event" and parsed[1]["event"] == "end":
                return
        if new:
            last = time.monotonic()
        elif time.monotonic() - last > timeout:
            raise ConfigError(f"no line from the app for {timeout:.0f} s; is edgetune.demo installed and in front? "
                              "(adb logcat -s edgetune shows its output)")
        time.sleep(interval)


def run_app_on_device(transport: Transport, artifact: str | Path, data: str | Path, out_dir: str | Path,
                      cfg: RunConfig = RunConfig(), run_id: str | None = None,
                      on_record: Callable[[dict], None] | None = None,
                      progress: Callable[[str], None] = lambda msg: None, line_timeout: float = 600.0) -> RunResult:
    """Push the artifact and data, start the app's benchmark mode, follow its lines, fetch the
    trained state; returns (and writes to out_dir/run.json) the `RunResult`."""
    artifact, data, out_dir = Path(artifact), Path(data), Path(out_dir)
    manifest = load_manifest(artifact, cfg.runtime)
    if not data.is_file():
        raise ConfigError(f"data file {data} does not exist")
    if cfg.budget:
        raise ConfigError("--budget emulates a device on this one; the app runs on the phone itself: leave it out")
    run_id = run_id or f"{manifest.artifact_id}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    base = f"{APP_FILES}/{run_id}"
    out_dir.mkdir(parents=True, exist_ok=True)
    progress(f"pushing the artifact and {data.name} to {transport.name}")
    transport.push(artifact, f"{base}/artifact")
    transport.push(data, f"{base}/{data.name}")
    out_remote = f"{base}/run.jsonl"
    lines, end = transport.run(app_start_argv(f"{base}/artifact", f"{base}/{data.name}", out_remote, cfg))
    if end.status or any(line.startswith("Error") for line in lines):
        raise RunError(f"{transport.name}: the app did not start ({' '.join(lines)[-400:]} {end.stderr[-400:]}); "
                       "install it from android_demo (see the README, 'On Android')")
    battery = getattr(transport, "battery", None)
    battery_start = battery() if battery else None
    records, starts, final, t0 = [], [], {}, time.perf_counter()

    def read() -> str:
        got, fin = transport.run(["cat", out_remote])
        return "\n".join(got) + "\n" if fin.status == 0 and got else ""

    for line in follow_lines(read, line_timeout):
        parsed = parse_line(line)
        if parsed is None:
            continue
        kind, rec = parsed
        if kind == "step":
            records.append(rec)
            if on_record:
                on_record(rec)
        elif rec["event"] == "start":
            starts.append(rec)
        else:
            final = rec
    if final.get("reason") != "done":
        raise RunError(f"{transport.name}: the app's run ended with {final.get('reason')!r}")
    (out_dir / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    transport.fetch(f"{base}/artifact/trained.{cfg.runtime}.safetensors", out_dir / "state.safetensors")
    energy = {}
    if battery_start is not None:
        from device_harness.facts import energy_used

        energy = energy_used(battery_start, battery())
    props = transport.properties() if hasattr(transport, "properties") else {}
    if cfg.cleanup:
        transport.remove(base)
    result = RunResult(
        run_id=run_id, device=transport.name,
        facts={"trainer": "edgetune.demo (Kotlin)", **{k: props[k] for k in PROPERTIES if k in props}},
        artifact=artifact_summary(manifest, artifact),
        config={"steps": cfg.steps, "runtime": cfg.runtime, "threads": cfg.threads, "trainer": "app", "data": data.name},
        records=records, starts=starts, end=final, wall_s=round(time.perf_counter() - t0, 3), energy=energy,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    result.save(out_dir)
    return result
