"""Where an export's time and host memory go: one row per stage (seconds, peak RSS).

    log = StageLog()
    with log.stage("capture", "step"):
        ...
    log.rows -> [{"stage": "capture", "program": "step", "seconds": 12.3, "peak_rss_mb": 2110.0}, ...]

Peak RSS is the process's high-water mark *within* the stage: Linux resets it when "5"
is written to /proc/self/clear_refs, so each stage starts from its current RSS. Where
that file cannot be written (not Linux, or a locked-down kernel), a stage reports the
process's peak so far instead, and ``per_stage_peak`` is False.

Each stage first hands the heap memory the previous ones freed back to the system
(glibc's ``malloc_trim``; nothing elsewhere). glibc keeps it otherwise: after SmolLM2 was
loaded and prepared, the process held 2.3 GB for 0.5 GB of live objects, and every later
stage, the self-checks' loaded programs included, came on top of that.
"""
from __future__ import annotations

import ctypes
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

from device_harness.runner import rss_mb

COST_FILE = "export_cost.json"  # sidecar beside the manifest: host provenance, not part of the contract


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _return_freed_memory() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class StageLog:
    """Rows of (stage, program, seconds, peak RSS MiB), in the order the stages ran."""

    def __init__(self):
        self.rows: list[dict] = []
        self.per_stage_peak = True
        self._start = time.perf_counter()
        self._peak = rss_mb()[1]

    @contextmanager
    def stage(self, stage: str, program: str = ""):
        _return_freed_memory()
        self.per_stage_peak &= _reset_peak()
        t = time.perf_counter()
        try:
            yield
        finally:
            peak = rss_mb()[1]
            self._peak = max(self._peak, peak)
            self.rows.append({"stage": stage, "program": program, "seconds": round(time.perf_counter() - t, 3),
                              "peak_rss_mb": round(peak, 1)})

    def summary(self) -> dict:
        """The rows, the total seconds since the log began and the highest peak of any stage."""
        return {"stages": self.rows, "total_seconds": round(time.perf_counter() - self._start, 3),
                "peak_rss_mb": round(self._peak, 1), "per_stage_peak": self.per_stage_peak}

    def table(self) -> str:
        """A plain-text table of the rows and the total."""
        s = self.summary()
        lines = [f"{'stage':<28}{'program':<12}{'seconds':>9}{'peak RSS MB':>13}"]
        lines += [f"{r['stage']:<28}{r['program']:<12}{r['seconds']:>9.1f}{r['peak_rss_mb']:>13.0f}" for r in self.rows]
        lines.append(f"{'total':<40}{s['total_seconds']:>9.1f}{s['peak_rss_mb']:>13.0f}")
        return "\n".join(lines)

    def write(self, artifact_dir: str | Path, extra: dict | None = None) -> Path:
        """Write the summary (plus ``extra``) as ``export_cost.json`` in ``artifact_dir``."""
        path = Path(artifact_dir) / COST_FILE
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({**self.summary(), **(extra or {})}, indent=1))
        os.replace(tmp, path)
        return path
