"""The export cache: an unchanged plan is copied, not re-exported; any change to what an artifact is
made from is a miss; a damaged entry is dropped; the cache keeps its newest entries."""
import json
import os

import pytest
from click.testing import CliRunner

from edgetune.app import export_cache
from edgetune.app.classifier import ClassifierPlan, export_classifier
from edgetune.app.cli import main
from edgetune.contract import load_manifest
from edgetune.errors import ConfigError
from exporters.stages import COST_FILE

PLAN = ClassifierPlan(model="tiny", adapter={"method": "lora", "r": 4}, embedding_rows=32, batch_size=4, seq_len=16)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("EDGETUNE_CACHE_DIR", str(d))
    return d


def _files(d):
    return {p.name: p.read_bytes() for p in d.iterdir() if p.name != COST_FILE}


def test_key_changes_with_every_input(demo_data, tmp_path):
    key = lambda plan=PLAN, data=demo_data[0], formats=("onnx",): export_cache.cache_key(  # noqa: E731
        "classifier", plan.to_dict(), data, formats, plan.model)
    base = key()
    assert key() == base
    other_data = tmp_path / "train.csv"
    other_data.write_bytes(demo_data[0].read_bytes() + b"one more note,work\n")
    assert len({base, key(plan=ClassifierPlan(**{**PLAN.to_dict(), "seed": 1})), key(data=other_data),
                key(formats=("onnx", "executorch"))}) == 4


def test_unchanged_plan_is_copied_from_the_cache(demo_data, tmp_path, cache):
    first, second = tmp_path / "a", tmp_path / "b"
    m1, compiled = export_classifier(PLAN, demo_data[0], first, ("onnx",), cache=True)
    assert compiled is not None and (first / COST_FILE).is_file()
    stages = {r["stage"] for r in json.loads((first / COST_FILE).read_text())["stages"]}
    assert {"load and prepare", "capture", "lower onnx", "eager reference", "check onnx"} <= stages
    m2, compiled = export_classifier(PLAN, demo_data[0], second, ("onnx",), cache=True)
    assert compiled is None and m2.artifact_id == m1.artifact_id
    assert _files(second) == _files(first)
    assert load_manifest(second, "onnx").artifact_id == m1.artifact_id
    with pytest.raises(ConfigError, match="exists"):  # an existing output is refused before the cache is read
        export_classifier(PLAN, demo_data[0], second, ("onnx",), cache=True)

    # a damaged entry is dropped and the plan exported afresh, which stores a good entry again
    (entry,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    (entry / "step.onnx").write_bytes(b"not a program")
    m3, compiled = export_classifier(PLAN, demo_data[0], second, ("onnx",), overwrite=True, cache=True)
    assert compiled is not None
    assert load_manifest(entry, "onnx").artifact_id == m3.artifact_id


def test_the_cache_keeps_its_newest_entries(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(export_cache, "MAX_ENTRIES", 2)
    src = tmp_path / "art"
    src.mkdir()
    (src / "manifest.json").write_text("{}")
    for i, key in enumerate(["k1", "k2", "k3"]):
        export_cache.store(key, src)
        os.utime(cache / key, (1000 + i, 1000 + i))
    export_cache.store("k4", src)
    assert sorted(p.name for p in cache.iterdir()) == ["k3", "k4"]


def test_cli_says_where_the_artifact_came_from(demo_data, tmp_path, cache):
    args = ["export", str(demo_data[0]), "--model", "tiny", "--format", "onnx", "--batch-size", "4", "--seq-len", "16",
            "--embedding-rows", "16"]
    r = CliRunner().invoke(main, ["--verbose", *args[:2], str(tmp_path / "a"), *args[2:]])
    assert r.exit_code == 0, r.output
    assert "lower onnx" in r.output and "total" in r.output  # the stage table
    r = CliRunner().invoke(main, ["--verbose", *args[:2], str(tmp_path / "b"), *args[2:]])
    assert r.exit_code == 0, r.output
    assert "copied from the export cache" in r.output and "trainable" in r.output  # the report, from the manifest
    r = CliRunner().invoke(main, ["--verbose", *args[:2], str(tmp_path / "c"), *args[2:], "--no-cache"])
    assert r.exit_code == 0 and "lower onnx" in r.output
