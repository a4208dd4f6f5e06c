"""The export's stage log: each stage's own seconds and peak RSS, its table and its sidecar file."""
import json
from pathlib import Path

import numpy as np
import pytest

from device_harness.runner import rss_mb
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


def test_a_stage_starts_without_the_heap_memory_earlier_work_freed():
    import ctypes.util

    if ctypes.util.find_library("c") is None or not Path("/proc/self/status").exists():
        pytest.skip("not Linux with a C library ctypes can find: the stage log returns nothing there")
    blocks = [bytearray(1000) for _ in range(300_000)]  # 300 MB in chunks from the C heap
    survivors = blocks[::64]  # one live chunk in every 64 KB: the heap's top cannot shrink by itself
    del blocks
    held = rss_mb()[0]
    with StageLog().stage("next"):
        start = rss_mb()[0]
    assert held - start > 200, (held, start)
    assert len(survivors) == 300_000 // 64 + 1
