"""The runner's output lines: one JSON object per line on stdout, a step record or an event.

    {"event": "start", "step": 0, "target": 50, ...}
    {"step": 1, "loss": 2.31, "ms": 33.2, "cpu_ms": 64.1, "t": 0.41, "rss_mb": 290.0, "peak_rss_mb": 301.2}
    ...
    {"event": "end", "step": 50, "reason": "done", ...}

Everything that reads a runner's output (the demo, the harness, the benchmarks) goes
through `parse_line` / `step_records`, so a new event kind cannot be mistaken for a step.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Iterable

from edgetune.errors import ArtifactError

EVENTS = ("start", "end")


@dataclass
class StepRecord:
    """One step: wall ``ms`` of the program run, the process's ``cpu_ms`` over it (all
    threads), ``t`` seconds since the trainer opened, and resident memory (MiB) after it."""

    step: int
    loss: float
    ms: float
    cpu_ms: float
    t: float
    rss_mb: float
    peak_rss_mb: float

    def json(self) -> str:
        d = asdict(self)
        digits = {"loss": 6, "rss_mb": 1, "peak_rss_mb": 1}
        return json.dumps({k: v if k == "step" else round(v, digits.get(k, 3)) for k, v in d.items()})


STEP_FIELDS = tuple(StepRecord.__dataclass_fields__)


def parse_line(line: str) -> tuple[str, dict] | None:
    """-> ("step", record) or ("event", event) for a runner line; None for a line that is not
    a JSON object (a warning a library printed). A JSON object that is neither is an error:
    the runner and its reader disagree about the format."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ArtifactError(f"runner line {line[:80]!r} is not valid JSON ({e})") from e
    if obj.get("event") in EVENTS:
        return "event", obj
    if "event" not in obj and all(k in obj for k in STEP_FIELDS):
        return "step", obj
    raise ArtifactError(f"runner line {line[:80]!r} is neither a step record (fields {STEP_FIELDS}) nor an event "
                        f"{EVENTS}: the runner and this reader come from different edgetune versions")


def step_records(lines: Iterable[str]) -> list[dict]:
    """The step records among ``lines``, in order (events and other output left out)."""
    out = []
    for line in lines:
        parsed = parse_line(line)
        if parsed and parsed[0] == "step":
            out.append(parsed[1])
    return out
