"""What an export costs on the host: wall time and peak RSS, per stage and in total, per model and runtime.

Each export runs in its own process (so its peak RSS is its own), in three modes:
  stock     the export before edgetune traced the step on fake tensors, lifted the traced
            graph's constants itself (`edgetune.step.lift`), skipped the passes that rewrite
            nothing (`exporters.decompositions`, `exporters.xnnpack_passes`), partitioned in
            linear time (`exporters.xnnpack_partition`) and planned memory without per-node
            signature rebuilds (`exporters.exir_planning`): the step traced on real tensors,
            re-traced by torch.export, every decomposition pass the toolchains run, and
            ExecuTorch's own XNNPACK partitioning, passes and memory planning;
  edgetune  the default export (`edgetune.step.compile`, `exporters.decompositions`);
  cached    the same plan again, from the export cache (`edgetune.app.export_cache`).
Models: MiniLM-L6 (the classifier demo's plan), SmolLM2-135M (the --llm demo's plan, Q4_1 GGUF
base), and a decoder with Qwen2.5-0.5B's shapes (random weights, int4 base, batch 1 x 256:
honest for time and memory, not for quality). Every export passes its self-check against eager
PyTorch, or the row carries the error.

    python benchmarks/export_cost.py [--models minilm,smollm2,qwen0.5b] [--runtimes onnx,executorch]
                                     [--modes stock,edgetune,cached]
    python benchmarks/export_cost.py --smoke    # the tiny classifier, ONNX only

JSON keys: rows (model, runtime, mode, seconds, peak_rss_mb, stages, artifact_mb, error, stopped),
complete (false while running: the JSON is rewritten after each row), environment, smoke.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from decoder_shapes import shaped_checkpoint

MODELS = ("minilm", "smollm2", "qwen0.5b")
SMOKE_MODELS = ("tiny",)
MODES = ("stock", "edgetune", "cached")


def plan_and_data(model: str, work: Path):
    """-> (recipe, plan, data path) of ``model``."""
    from edgetune.app.classifier import ClassifierPlan
    from edgetune.app.lm import LMPlan
    from edgetune.data.demo import write_demo_data, write_demo_text

    if model in ("minilm", "tiny"):
        train, _ = write_demo_data(work / "data")
        return "classifier", ClassifierPlan(model=model), train
    if model == "smollm2":
        return "lm", LMPlan(), write_demo_text(work / "text")[0]
    d = shaped_checkpoint(model, work / model)
    text = common.test_helper("hf_tiny").write_word_data(work / "words")[1]
    return "lm", LMPlan(model=str(d), quant="int4", batch_size=1, seq_len=256), text


def one(model: str, runtime: str, mode: str, work: Path) -> dict:
    """Export ``model`` to ``runtime`` in this process -> its row."""
    from edgetune.app.classifier import export_classifier
    from edgetune.app.lm import export_lm
    from exporters.stages import StageLog

    if mode == "stock":  # the step traced on real tensors; every toolchain pass runs
        import contextlib

        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        import edgetune.step.compile as capture
        import exporters.decompositions as dec
        import exporters.exir_planning as planning
        import exporters.onnx as onnx_exporter
        import exporters.xnnpack_partition as partition
        import exporters.xnnpack_passes as xnnpack_passes

        partition.LinearTimeXnnpackPartitioner = XnnpackPartitioner
        partition.contiguous_partitions_need_no_sort = contextlib.nullcontext
        xnnpack_passes.only_passes_that_act = contextlib.nullcontext
        planning.mutable_buffer_checks_by_outputs = contextlib.nullcontext

        fake_mode_make_fx = capture.make_fx
        capture.make_fx = lambda fn, decomposition_table, **kw: fake_mode_make_fx(fn, decomposition_table)
        capture.mutates = lambda gm: True  # torch.export's re-trace of the traced graph
        dec.nothing_to_decompose = onnx_exporter.nothing_to_decompose = lambda ep, table: False
    recipe, plan, data = plan_and_data(model, work)
    export = export_classifier if recipe == "classifier" else export_lm
    log = StageLog()
    t = time.perf_counter()
    manifest, compiled = export(plan, data, work / f"artifact-{mode}", (runtime,), overwrite=True,
                                cache=mode != "stock", log=log)
    seconds = time.perf_counter() - t
    if mode == "cached" and compiled is not None:
        raise RuntimeError("the cached export was not served from the cache")
    # the stage log resets the high-water mark at each stage: the process's peak is the highest stage's
    peak = max([_peak_mb(os.getpid()) or 0.0] + [s["peak_rss_mb"] for s in log.rows])
    return {"seconds": round(seconds, 2), "peak_rss_mb": peak,
            "stages": log.summary()["stages"], "artifact_mb": round(sum(
                f.stat().st_size for f in (work / f"artifact-{mode}").iterdir()) / 2**20, 1)}


def _peak_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def run_one(model: str, runtime: str, mode: str, work: Path, cache: Path, timeout: float) -> dict:
    """One export in a fresh process -> its row (or the error's last line). A stock export still
    running after ``timeout`` seconds is stopped: its row says so, with its peak RSS until then."""
    out = work / f"{model}-{runtime}-{mode}.json"
    env = {**os.environ, "EDGETUNE_CACHE_DIR": str(cache), "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, __file__, "--one", model, runtime, mode, str(work), str(out)]
    row = {"model": model, "runtime": runtime, "mode": mode}
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        t, peak = time.monotonic(), None
        while p.poll() is None:
            peak = max(peak or 0.0, _peak_mb(p.pid) or 0.0)  # the child resets its high-water mark per stage
            if mode == "stock" and time.monotonic() - t > timeout:
                p.kill()
                p.wait()
                return {**row, "stopped": True, "seconds": round(time.monotonic() - t, 1), "peak_rss_mb": peak,
                        "error": f"stopped after {timeout:.0f} s (--stock-timeout)"}
            time.sleep(0.5)
        err.seek(0)
        lines = [ln for ln in err.read().strip().splitlines() if ln.strip()]
    if p.returncode != 0 or not out.is_file():
        raised = [ln for ln in lines if not ln.startswith((" ", "W1", "I1")) and ("Error" in ln or "Exception" in ln)]
        why = raised[-1] if raised else (f"killed by signal {-p.returncode}" if p.returncode < 0 else
                                         f"exit {p.returncode}")
        return {**row, "error": why, "seconds": round(time.monotonic() - t, 1), "peak_rss_mb": peak}
    return {**row, **json.loads(out.read_text())}


def _line(r: dict, stock: dict | None) -> str:
    """A row of the table; against a stopped stock export the ratios are upper bounds ("<")."""
    head = f"{r['model']:<10}{r['runtime']:<12}{r['mode']:<10}"
    if r.get("stopped"):
        return head + f"{'>' + str(r['seconds']):>9}{'>=' + str(r['peak_rss_mb']):>13}   (stopped)"
    if "error" in r:
        return head + f"  failed after {r.get('seconds', '?')} s: {r['error']}"
    bound = "<" if stock and stock.get("stopped") else ""

    def ratio(k):
        return f"{bound}{r[k] / stock[k]:.2f}x" if stock and stock.get(k) else "-"

    return head + f"{r['seconds']:>9.1f}{r['peak_rss_mb']:>13.0f}{ratio('seconds'):>14}{ratio('peak_rss_mb'):>13}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--runtimes", default="onnx,executorch")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--stock-timeout", type=float, default=900,
                    help="seconds after which a stock export is stopped (its row says so) [default: 900]")
    ap.add_argument("--work", type=Path, default=None, help="where checkpoints and artifacts go (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--one", nargs=5, metavar=("MODEL", "RUNTIME", "MODE", "WORK", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        model, runtime, mode, work, out = a.one
        Path(out).write_text(json.dumps(one(model, runtime, mode, Path(work))))
        return
    models = SMOKE_MODELS if a.smoke else tuple(a.models.split(","))
    runtimes = ("onnx",) if a.smoke else tuple(a.runtimes.split(","))
    modes = [m for m in MODES if m in a.modes.split(",")]
    if "cached" in modes and "edgetune" not in modes:
        sys.exit("error: --modes cached needs edgetune too (its export fills the cache)")
    out = a.out or common.default_out("export_cost", a.smoke)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = a.work or Path(tmp)
        for model in models:
            for runtime in runtimes:
                work = base / model
                work.mkdir(parents=True, exist_ok=True)
                cache = Path(tempfile.mkdtemp(dir=tmp, prefix="cache-"))  # empty: the edgetune row exports
                for mode in modes:
                    fresh = next((r for r in rows if r["model"] == model and r["runtime"] == runtime
                                  and r["mode"] == "edgetune"), None)
                    if mode == "cached" and (fresh is None or "error" in fresh):
                        row = {"model": model, "runtime": runtime, "mode": mode,
                               "error": "no cache entry: the edgetune export did not finish"}
                    else:
                        row = run_one(model, runtime, mode, work, cache, a.stock_timeout)
                    rows.append(row)
                    common.write_json(out, {"rows": rows, "complete": False}, None, a.smoke)  # a stopped run keeps its rows
                    print(_line(row, None), flush=True)
    print(f"\n{'model':<10}{'runtime':<12}{'mode':<10}{'seconds':>9}{'peak RSS MB':>13}{'x stock time':>14}"
          f"{'x stock RSS':>13}")
    for r in rows:
        print(_line(r, next((s for s in rows if s["mode"] == "stock" and s["model"] == r["model"]
                             and s["runtime"] == r["runtime"] and ("error" not in s or s.get("stopped"))), None)))
    common.write_json(out, {"rows": rows, "complete": True}, None, a.smoke)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
