"""The TypeScript trainer (web_demo) against the Python runner: the same ONNX artifact, texts,
steps and threads, on onnxruntime-node and in headless Chromium on onnxruntime-web (WebAssembly).

MiniLM-L6, batch 8 x seq 64, LoRA r=8 on query/value + embedding rows + a 77-way head
(BANKING77's categories), AdamW, as benchmarks/kotlin_trainer.py. Rows: the Python runner
(onnxruntime wheel), the Node command (onnxruntime-node 1.30, the page's batching), and the
demo page in Chromium with one WASM thread and with two (served cross-origin isolated). The
table compares the median wall time of the step program's run, its first step left out (the
runtime allocates then). The trainers draw their batches in their own orders; each step is
the same shape and work.

    python benchmarks/web_trainer.py --data ../shared/data/banking77 [--threads 2] [--steps 20]
    python benchmarks/web_trainer.py --smoke    # the tiny classifier, batch 4 x 16, 4 steps

JSON keys: config, rows (name, ms_per_step, first_step_ms, ratio_to_python, losses, error),
environment, smoke.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import common
import kotlin_trainer as kt_bench


def row(name: str, steps: list[dict] | None, error: str | None) -> dict:
    if error or not steps:
        return {"name": name, "ms_per_step": None, "first_step_ms": None, "losses": [], "error": (error or "no steps")[-300:]}
    timed = [s["ms"] for s in steps[1:]] or [steps[0]["ms"]]
    return {"name": name, "ms_per_step": round(statistics.median(timed), 2), "first_step_ms": round(steps[0]["ms"], 2),
            "losses": [s["loss"] for s in steps], "error": None}


def lines(proc: subprocess.CompletedProcess) -> tuple[list[dict] | None, str | None]:
    if proc.returncode:
        return None, (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    return [json.loads(x) for x in proc.stdout.splitlines() if x.startswith('{"step"')], None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="BANKING77 directory (train.csv with text,category)")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--smoke", action="store_true", help="the tiny classifier, batch 4 x 16, 4 steps")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/web_trainer.json")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="web_trainer."))
    if a.smoke:
        kt_bench.MODEL, kt_bench.BATCH, kt_bench.SEQ, kt_bench.TEXTS, a.steps = "tiny", 4, 16, 12, min(a.steps, 4)
        a.data = common.smoke_classification(work)
    common.require(a.data and a.data / "train.csv", "BANKING77's train.csv (text,category)")
    a.out = a.out or common.default_out("web_trainer", a.smoke)
    web = common.test_helper("web")
    try:
        node = web.build()
    except RuntimeError as e:
        sys.exit(f"error: {e}")
    if not web.CHROMIUM.exists():
        sys.exit(f"error: {web.CHROMIUM} is missing: apt-get install chromium")
    from edgetune.app.web import serve, write_notes

    train = kt_bench.labelled_csv(a.data / "train.csv", work / "train.csv", kt_bench.TEXTS)
    held = work / "held.csv"  # the page evaluates before and after: a few rows keep that short
    held.write_text("".join(train.read_text(encoding="utf-8").splitlines(keepends=True)[:9]), encoding="utf-8")
    notes = write_notes(train, held, work / "data" / "notes.json")
    print(f"exporting {kt_bench.MODEL} at batch {kt_bench.BATCH} x {kt_bench.SEQ}", flush=True)
    art = kt_bench.export(work, train)
    rows = []
    print(f"python runner ({a.steps} steps, {a.threads} threads)", flush=True)
    rows.append(row("python_runner", *lines(subprocess.run(
        [sys.executable, "-m", "device_harness.runner", "train", str(art), str(train), "--steps", str(a.steps),
         "--threads", str(a.threads), "--save-every", "0", "--runtime", "onnx", "--state", str(work / "py.safetensors")],
        capture_output=True, text=True, timeout=3600, env={**os.environ, "PYTHONWARNINGS": "ignore"}))))
    print("onnxruntime-node", flush=True)
    rows.append(row("node_onnxruntime_node", *lines(node.run("train", str(art), str(notes), "--steps", str(a.steps),
                                                               "--threads", str(a.threads), "--state",
                                                               str(work / "node.safetensors"), timeout=3600))))
    for threads in sorted({1, a.threads}):
        print(f"Chromium, onnxruntime-web WASM, {threads} thread(s)", flush=True)
        with serve({"web": web.WEB / "dist" / "web", "artifact": art, "data": notes.parent}) as base:
            proc = subprocess.run(["node", str(web.WEB / "scripts" / "demo-e2e.mjs"),
                                   f"{base}web/index.html?threads={threads}", str(a.steps), str(work / "shot.png")],
                                  capture_output=True, text=True, timeout=3600)
        got = json.loads(proc.stdout) if proc.returncode == 0 else None
        steps = [{"ms": m, "loss": l} for m, l in zip(got["ms"], got["losses"])] if got else None
        rows.append(row(f"chromium_wasm_{threads}_thread{'s' if threads > 1 else ''}", steps,
                        None if got else proc.stderr.strip()[-300:]))
    base_ms = rows[0]["ms_per_step"]
    for r in rows:
        r["ratio_to_python"] = round(r["ms_per_step"] / base_ms, 3) if r["ms_per_step"] and base_ms else None
    print(f"\n{'trainer':28} {'ms/step':>9} {'x python':>9}  error")
    for r in rows:
        print(f"{r['name']:28} {r['ms_per_step'] or '-':>9} {r['ratio_to_python'] or '-':>9}  {r['error'] or ''}")
    shutil.rmtree(work, ignore_errors=True)
    versions = {p: json.loads((web.WEB / "node_modules" / p / "package.json").read_text())["version"]
                for p in ("onnxruntime-node", "onnxruntime-web", "playwright-core")}
    chromium = subprocess.run([str(web.CHROMIUM), "--version"], capture_output=True, text=True).stdout.strip()
    config = {"model": kt_bench.MODEL, "batch_size": kt_bench.BATCH, "seq_len": kt_bench.SEQ, "texts": kt_bench.TEXTS,
              "steps": a.steps, "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
              "chromium": chromium, **versions}
    common.write_json(a.out, {"config": config, "rows": rows}, a.threads, a.smoke)
    print(f"wrote {a.out}")
    if any(r["error"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
