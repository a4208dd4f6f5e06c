"""A run's profile: step-time distribution after warm-up, throughput, memory and CPU.

    summarize(run, warmup=3) -> {"ms_p50", "ms_p95", "ms_max", "steps_per_s", "peak_rss_mb", ...}

``ms`` is the step program's own time; ``steps_per_s`` comes from the device's clock
between the first and last measured steps, so it includes batching and state handling.
``cpu_util`` is CPU time over wall time of the program (2.0: two cores busy throughout).
"""
from __future__ import annotations

import numpy as np

from device_harness.host.deploy import RunResult
from edgetune.errors import ConfigError

DEFAULT_WARMUP = 3


def timeline(records: list[dict]) -> np.ndarray:
    """Seconds since the run began for each record; a resumed attempt's clock (which
    restarts at 0) continues from where the previous attempt's ended."""
    out, offset, last = [], 0.0, None
    for r in records:
        t = float(r["t"])
        if last is not None and t + offset < last:
            offset = last - t
        last = t + offset
        out.append(last)
    return np.asarray(out)


def summarize(run: RunResult, warmup: int = DEFAULT_WARMUP) -> dict:
    """Profile of ``run`` with its first ``warmup`` steps excluded (they include the
    runtime's one-time allocations and kernel selection), unless it was stopped over its
    budget before they were over."""
    if warmup < 0:
        raise ConfigError(f"warmup={warmup} must be >= 0")
    recs = run.records[warmup:]
    if not recs and run.records and run.end.get("reason", "").startswith("over budget"):
        warmup, recs = 0, run.records  # stopped over budget during warm-up: the steps it took are its profile
    if not recs:
        raise ConfigError(f"run {run.run_id} has {len(run.records)} steps, none left after {warmup} warm-up steps; "
                          "run more steps or pass a smaller --warmup")
    ms = np.array([r["ms"] for r in recs])
    cpu = np.array([r.get("cpu_ms", np.nan) for r in recs])
    t = timeline(run.records)[warmup:]
    span = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    budget = run.config.get("budget")
    peak = max(r["peak_rss_mb"] for r in run.records)
    return {
        "run_id": run.run_id, "device": run.device, "cpu_model": run.facts.get("cpu_model"),
        "runtime": run.config.get("runtime"), "method": run.artifact.get("method"),
        "optimizer": run.artifact.get("optimizer", {}).get("name"), "budget": budget["name"] if budget else None,
        "steps": len(run.records), "warmup": warmup, "measured": len(recs),
        "ms_p50": float(np.percentile(ms, 50)), "ms_p95": float(np.percentile(ms, 95)), "ms_max": float(ms.max()),
        "ms_mean": float(ms.mean()),
        "steps_per_s": (len(recs) - 1) / span if span > 0 else 1000.0 / float(ms.mean()),
        "cpu_ms_p50": float(np.nanpercentile(cpu, 50)) if np.isfinite(cpu).any() else None,
        "cpu_util": float(np.nansum(cpu) / ms.sum()) if np.isfinite(cpu).any() else None,
        "peak_rss_mb": float(peak),
        "fits_budget": (peak <= budget["max_rss_mb"] and not run.end.get("reason", "").startswith("over budget"))
        if budget else None,
        "loss_first": float(run.records[0]["loss"]), "loss_last": float(run.records[-1]["loss"]),
        "energy": run.energy or {"unavailable": "not recorded"},
        "reconnects": run.reconnects,
    }
