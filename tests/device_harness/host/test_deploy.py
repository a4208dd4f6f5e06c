"""Deploying through the local transport: budgets, the device-side package check, run files."""
import json
import os
import stat
import sys

import pytest

from device_harness.host.budgets import Budget, get_budget
from device_harness.host.deploy import RunConfig, RunError, device_check, load_run, push_runner, run_on_device
from device_harness.host.profile import summarize
from device_harness.host.transports.local import LocalTransport
from edgetune.errors import ConfigError


def test_budget_pins_cores_and_stops_a_run_over_its_memory_cap(tiny_artifact, demo_data, tmp_path):
    art = tiny_artifact[0]
    tight = Budget("tight", cores=1, max_rss_mb=10, description="smaller than any Python process")
    with LocalTransport() as t:
        result = run_on_device(t, art, demo_data[0], tmp_path / "run", RunConfig(steps=5, budget=tight))
    applied = result.starts[0]["budget"]
    assert applied["cpus"] == sorted(os.sched_getaffinity(0))[:1] and applied["max_rss_mb"] == 10
    assert result.end["reason"].startswith("over budget: peak RSS") and result.end["step"] == 1
    assert len(result.records) == 1 and summarize(result, warmup=0)["fits_budget"] is False
    stopped = summarize(result)  # stopped during warm-up: still a profile, of the one step it took
    assert stopped["measured"] == 1 and stopped["warmup"] == 0 and stopped["fits_budget"] is False
    roomy = get_budget("pi4-2gb")
    with LocalTransport() as t:
        result = run_on_device(t, art, demo_data[0], tmp_path / "run2", RunConfig(steps=5, budget=roomy))
    assert result.end["reason"] == "done" and summarize(result, warmup=0)["fits_budget"] is True
    if os.cpu_count() < roomy.cores:
        assert "the budget asks for 4 cores" in result.starts[0]["budget"]["cpus_note"]
    with pytest.raises(ConfigError, match="unknown budget 'pi5'"):
        get_budget("pi5")


def test_device_without_the_runner_packages_is_told_what_to_install(tmp_path):
    bare = tmp_path / "bare-python"  # a Python that sees no site-packages: no numpy, no runtime
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    bare.chmod(bare.stat().st_mode | stat.S_IEXEC)
    with LocalTransport(python=str(bare)) as t:
        push_runner(t)
        with pytest.raises(RunError, match=r"lacks numpy \(pip install numpy\).*onnxruntime \(pip install onnxruntime\)"):
            device_check(t, "onnx")


def test_failed_runner_and_bad_run_files(tiny_artifact, tmp_path):
    bad_data = tmp_path / "bad.csv"
    bad_data.write_text("text,label\nhello,no-such-label\n")
    with LocalTransport() as t, pytest.raises(RunError, match="the runner failed.*no-such-label"):
        run_on_device(t, tiny_artifact[0], bad_data, tmp_path / "run", RunConfig(steps=2))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "run.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a run.json"):
        load_run(tmp_path / "junk")
    (tmp_path / "junk" / "run.json").write_text(json.dumps({"run_id": "x"}))
    with pytest.raises(ConfigError, match="not a run.json"):
        load_run(tmp_path / "junk")
    with pytest.raises(ConfigError, match="does not exist"):
        load_run(tmp_path / "nothing")


def test_the_files_deployed_hold_everything_the_runner_imports():
    """Every project module a deployed module imports (at any depth of the import graph) is deployed too."""
    import ast

    from device_harness.host.deploy import PACKAGE_ROOT, device_modules

    shipped = set(device_modules())
    missing = []
    for rel in sorted(shipped):
        tree = ast.parse((PACKAGE_ROOT / rel).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            for name in names:
                if name.split(".")[0] not in ("edgetune", "device_harness"):
                    continue
                path = name.replace(".", "/")
                if f"{path}.py" not in shipped and f"{path}/__init__.py" not in shipped:
                    missing.append((rel, name))
    assert not missing, missing
