"""Profiles and reports of real runs (local transport): the numbers are the records' own."""
import json

import numpy as np
import pytest

from device_harness.host.deploy import RunConfig, load_run, run_on_device
from device_harness.host.profile import summarize, timeline
from device_harness.host.report import write_report
from device_harness.host.transports.local import LocalTransport
from edgetune.errors import ConfigError


@pytest.fixture(scope="module")
def runs(tiny_artifact, demo_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    with LocalTransport() as t:
        a = run_on_device(t, tiny_artifact[0], demo_data[0], out / "a", RunConfig(steps=12, threads=1), run_id="a")
        b = run_on_device(t, tiny_artifact[0], demo_data[0], out / "b", RunConfig(steps=12, threads=2), run_id="b")
    return out, a, b


def test_profile_is_the_records_statistics_after_warm_up(runs):
    _, a, _ = runs
    s = summarize(a, warmup=3)
    ms = [r["ms"] for r in a.records[3:]]
    assert s["measured"] == 9 and s["ms_p50"] == pytest.approx(np.median(ms)) and s["ms_max"] == max(ms)
    assert s["ms_p95"] == pytest.approx(np.percentile(ms, 95))
    t = [r["t"] for r in a.records]
    assert s["steps_per_s"] == pytest.approx(8 / (t[-1] - t[3]))
    assert s["peak_rss_mb"] == max(r["peak_rss_mb"] for r in a.records) and s["fits_budget"] is None
    assert "unavailable" in s["energy"] or "uwh" in s["energy"]
    with pytest.raises(ConfigError, match="none left after 12 warm-up steps"):
        summarize(a, warmup=12)


def test_timeline_continues_across_a_resumed_attempt():
    recs = [{"t": 1.0}, {"t": 2.0}, {"t": 0.5}, {"t": 1.5}]  # the second attempt's clock restarts
    assert timeline(recs).tolist() == [1.0, 2.0, 2.0, 3.0]


def test_report_puts_runs_side_by_side(runs, tmp_path):
    out, a, b = runs
    md = write_report([load_run(out / "a"), load_run(out / "b")], tmp_path / "report")
    text = md.read_text()
    rows = [l for l in text.splitlines() if l.startswith(("| a ", "| b "))]
    assert len(rows) == 4 and all(" local " in r for r in rows[2:])  # two in the profile table, two devices
    assert f"{summarize(a)['ms_p50']:.1f}" in rows[0] and f"{summarize(b)['ms_p50']:.1f}" in rows[1]
    for png in ("loss.png", "latency.png", "memory.png"):
        assert (tmp_path / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({png})" in text
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [r["summary"]["run_id"] for r in data["runs"]] == ["a", "b"]
    assert len(data["runs"][0]["memory"]) == 12
    with pytest.raises(ConfigError, match="no runs"):
        write_report([], tmp_path / "empty")
