"""Every benchmark script runs at its --smoke size and writes its JSON with the documented
keys, the machine it ran on, and no row error: a benchmark broken by a change under it
fails here, not months later on a quiet machine."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def run(script: str, tmp_path: Path, *args: str, out_flag: Path | None = None) -> dict:
    """Run ``script --smoke``; -> its JSON. ``out_flag``: what --out takes when it is not the JSON's path."""
    out = tmp_path / f"{script}.json"
    p = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), "--smoke", "--out", str(out_flag or out), *args],
                       capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert p.returncode == 0, p.stdout[-1500:] + p.stderr[-2500:]
    return json.loads(out.read_text())


def check_common(result: dict, keys: set[str]) -> None:
    assert keys | {"environment", "smoke"} <= set(result), sorted(result)
    env = result["environment"]
    assert result["smoke"] is True and env["cpu"] and env["versions"]["onnxruntime"] and env["logical_cores"] >= 1


def check_rows(rows: list[dict]) -> None:
    assert rows
    for r in rows:
        name = r.get("name") or r.get("row") or r.get("method")
        assert not r.get("error"), (name, r.get("error"))


def test_quality(tmp_path):
    res = run("quality", tmp_path)
    check_common(res, {"config", "rows"})
    check_rows(res["rows"])
    assert {r["method"] for r in res["rows"]} == {"head only", "LoRA r=8"}
    assert all(0 <= r["acc_mean"] <= 1 and r["steps"] > 0 for r in res["rows"])
    assert (tmp_path / "quality.md").is_file()


def test_perplexity(tmp_path):
    res = run("perplexity", tmp_path, "--work", str(tmp_path / "work"))
    check_common(res, {"config", "perplexity_before", "perplexity_after", "relative_drop", "median_ms_per_step",
                       "peak_rss_mb", "generation"})
    assert res["config"]["steps"] == 4 and res["perplexity_before"] > 1 and res["peak_rss_mb"] > 0


@pytest.mark.slow
def test_memory(tmp_path):
    res = run("memory", tmp_path, "--work", str(tmp_path / "work"), "--rows", "eager_peft_fp32", "edgetune_int4_onnx")
    check_common(res, {"config", "rows"})
    check_rows(res["rows"])
    int4 = res["rows"][1]
    assert int4["ms_per_step"] > 0 and int4["rss_ratio_to_eager"] > 0 and int4["artifact_mb"] > 0


@pytest.mark.slow
def test_step_latency(tmp_path):
    res = run("step_latency", tmp_path, "--rows", "eager_peft", "edgetune_onnx", "ort_training_artifacts",
              "natural_eager_peft", "natural_edgetune_onnx_buckets", "--repeats", "2")
    check_common(res, {"config", "rows", "natural_rows"})
    check_rows(res["rows"] + res["natural_rows"])
    for r in res["rows"] + res["natural_rows"]:  # two rounds; the row's time is their median
        runs = r["ms_per_step_runs"]
        assert len(runs) == 2 and abs(r["ms_per_step"] - (runs[0] + runs[1]) / 2) <= 2e-3, r
    assert res["rows"][1]["ratio_to_eager"] > 0 and res["natural_rows"][1]["token_efficiency"] > 0
    # ONNX Runtime's training API (its own environment) computes the eager model's loss on the same batch
    eager, ort = res["rows"][0], res["rows"][2]
    assert ort["ms_per_step"] > 0 and abs(ort["first_loss"] - eager["first_loss"]) <= 2e-3, (eager, ort)


@pytest.mark.slow
def test_zo(tmp_path):
    res = run("zo", tmp_path)
    check_common(res, {"config", "memory", "quality", "over_seeds"})
    check_rows(res["memory"])
    assert set(res["quality"]["0"]) == {"lora_adamw", "lora_adamw_centroids", "lozo"}
    assert (tmp_path / "zo.png").is_file()


@pytest.mark.slow
def test_device_profile(tmp_path):
    if not shutil.which("sshd") and not Path("/usr/sbin/sshd").exists():
        pytest.skip("OpenSSH's server is not installed (the README's test command installs it)")
    res = run("device_profile", tmp_path, "--runtime", "onnx", out_flag=tmp_path / "device_profile")  # the report's dir
    assert (tmp_path / "device_profile" / "report.md").is_file()
    check_common(res, {"steps", "warmup", "device", "rows"})
    measured = ["onnx local", "onnx ssh", "onnx ssh + pi4-2gb", "onnx ssh + phone-2gb"]
    assert [r["row"] for r in res["rows"]] == measured + ["onnx predicted pi4", "onnx predicted pi5", "onnx predicted phone-a76"]
    assert all(r["ms_p50"] > 0 for r in res["rows"])
    predicted = [r for r in res["rows"] if r.get("predicted")]
    assert all(r["floor_ms"] <= r["ms_p50"] and r["bound"] in ("compute", "memory") for r in predicted)
    assert "## Predicted step times on named boards" in (tmp_path / "device_profile" / "report.md").read_text()


def test_robustness(tmp_path):
    res = run("robustness", tmp_path)
    check_common(res, {"config", "rows", "outcomes", "failures", "seconds", "cases_per_second"})
    assert res["config"]["cases"] == 45 and sum(r["cases"] for r in res["rows"]) == 45
    assert res["failures"] == dict.fromkeys(res["failures"], 0) and res["failures"], res.get("examples")
    # the stock loaders were asked about every damaged file, and edgetune accepted none of them
    damaged = [r for r in res["rows"] if r["must_refuse"]]
    assert sum(r["stock_checked"] for r in damaged) > 0 and sum(r["accepted"] for r in damaged) == 0


def test_kotlin_trainer(tmp_path, kotlin_trainer):  # the fixture builds the trainer (or skips, naming what is missing)
    res = run("kotlin_trainer", tmp_path)
    check_common(res, {"config", "rows", "ratios"})
    check_rows(res["rows"])
    assert [r["name"] for r in res["rows"]] == ["python_runner", "kotlin_trainer", "kotlin_trainer_small_heap"]
    assert all(r["ms_per_step"] > 0 and r["peak_rss_mb"] > 0 and len(r["losses"]) == 4 for r in res["rows"])
    assert all(v > 0 for v in res["ratios"].values())


def test_web_trainer(tmp_path, node_trainer):  # the fixture builds the trainer (or skips, naming what is missing)
    from helpers.web import CHROMIUM

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium), which .ci/run installs")
    res = run("web_trainer", tmp_path)
    check_common(res, {"config", "rows"})
    check_rows(res["rows"])
    names = [r["name"] for r in res["rows"]]
    assert names[:3] == ["python_runner", "node_onnxruntime_node", "chromium_wasm_1_thread"]
    assert all(r["ms_per_step"] > 0 and len(r["losses"]) == 4 and r["ratio_to_python"] > 0 for r in res["rows"])


def test_pruning(tmp_path):
    res = run("pruning", tmp_path)
    check_common(res, {"config", "rows", "ratios"})
    check_rows(res["rows"])
    assert [(r["runtime"], r["pruned"]) for r in res["rows"]] == [("eager", False), ("onnx", False), ("eager", True),
                                                                  ("onnx", True)]
    full, pruned = (next(r for r in res["rows"] if r["runtime"] == "onnx" and r["pruned"] == p) for p in (False, True))
    assert len(full["losses"]) == 4 and max(abs(a - b) for a, b in zip(full["losses"], pruned["losses"])) < 1e-4
    assert all(v > 0 for v in res["ratios"].values())


def test_architectures(tmp_path):
    res = run("architectures", tmp_path)
    check_common(res, {"rows", "formats"})
    assert [r["name"] for r in res["rows"]] == ["llama", "bert"]
    for r in res["rows"]:
        assert r["runtimes"]["onnx"]["parity"] is True, r
    assert res["rows"][0]["logits_max_abs_diff"] < 1e-5


def test_fleet(tmp_path):
    res = run("fleet", tmp_path)
    check_common(res, {"config", "split", "rows"})
    rows = {r["name"]: r for r in res["rows"]}
    assert list(rows) == ["fed_lora_sb", "fed_lora", "local_only", "centralized"]
    assert all(0 <= r["test_accuracy"] <= 1 and 0 <= r["user_accuracy"] <= 1 for r in rows.values())
    for name in ("fed_lora_sb", "fed_lora"):
        rounds = rows[name]["rounds"]
        assert len(rounds) == res["config"]["rounds"]
        assert all(r["accepted"] == res["config"]["clients_per_round"] and not r["refused"] for r in rounds)
    # LoRA-SB's shared tensors are smaller than LoRA's, and the server counted at least their data
    assert rows["fed_lora_sb"]["shared_values"] < rows["fed_lora"]["shared_values"]
    assert rows["fed_lora_sb"]["bytes_up_per_client"] > 4 * rows["fed_lora_sb"]["shared_values"]
    assert rows["fed_lora_sb"]["bytes_up_per_client"] < rows["fed_lora"]["bytes_up_per_client"]
    assert (tmp_path / "fleet.png").is_file()


def test_export_cost(tmp_path):
    res = run("export_cost", tmp_path)
    check_common(res, {"rows"})
    check_rows(res["rows"])
    rows = {r["mode"]: r for r in res["rows"]}
    assert list(rows) == ["stock", "edgetune", "cached"] and all(r["runtime"] == "onnx" for r in rows.values())
    for mode in ("stock", "edgetune"):  # each exported, with its own stage table, self-check included
        stages = {s["stage"] for s in rows[mode]["stages"]}
        assert {"load and prepare", "capture", "lower onnx", "check onnx"} <= stages, stages
    assert rows["cached"]["stages"] == [] and rows["cached"]["seconds"] < rows["edgetune"]["seconds"]
    assert rows["cached"]["artifact_mb"] == rows["edgetune"]["artifact_mb"]
