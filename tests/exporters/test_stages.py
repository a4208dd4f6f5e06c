"""The export's stage log: each stage's own seconds and peak RSS, its table and its sidecar file."""
import json

import numpy as np
import pytest

from exporters.stages import COST_FILE, StageLog


def test_each_stage_reports_its_own_peak():
    log = StageLog()
    with log.stage("big", "step"):
        block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
        del block
    with log.stage("small", "step"):
        sum(range(1000))
    if not log.per_stage_peak:
        pytest.skip("/proc/self/clear_refs cannot be written here: stages report the process's peak so far")
    big, small = log.rows
    assert (big["stage"], big["program"]) == ("big", "step")
    assert big["peak_rss_mb"] - small["peak_rss_mb"] > 250, log.rows  # the second stage's peak was reset
    assert log.summary()["peak_rss_mb"] >= big["peak_rss_mb"]


def test_table_and_sidecar(tmp_path):
    log = StageLog()
    with log.stage("capture", "infer"):
        pass
    with pytest.raises(ValueError), log.stage("lower onnx", "infer"):
        raise ValueError("a failing stage is still recorded")
    assert [r["stage"] for r in log.rows] == ["capture", "lower onnx"]
    lines = log.table().splitlines()
    assert lines[0].split()[:2] == ["stage", "program"] and lines[-1].startswith("total") and len(lines) == 4
    path = log.write(tmp_path, {"formats": ["onnx"]})
    assert path.name == COST_FILE
    data = json.loads(path.read_text())
    assert data["formats"] == ["onnx"] and len(data["stages"]) == 2 and data["total_seconds"] >= 0
    assert [p.name for p in tmp_path.iterdir()] == [COST_FILE]  # no temporary left
