"""The Kotlin trainer (android_demo/trainer) against the Python runner: the same ONNX artifact,
data, steps and threads, each in its own process, on this machine's JVM.

MiniLM-L6, batch 8 x seq 64, LoRA r=8 on query/value + embedding rows + a 77-way head
(BANKING77's categories), AdamW. Each trainer runs --steps steps of `train` and prints the
runner's JSON step lines; the table compares the median wall time of the step program's run
(its first step left out: ONNX Runtime allocates then) and the process's peak RSS. The Kotlin
trainer runs on a JVM (Temurin 25) with ONNX Runtime's C library from the npm package
onnxruntime-node (1.30) called through Java's foreign-function API, as the suite's tests do;
the Python runner uses the onnxruntime wheel (pyproject.toml). On a phone the Kotlin trainer runs
on ART with ONNX Runtime's Android package instead, so these are JVM numbers, not phone numbers.

    python benchmarks/kotlin_trainer.py --data ../shared/data/banking77 [--threads N] [--steps 30]
    python benchmarks/kotlin_trainer.py --smoke    # the tiny classifier, batch 4 x 16, 4 steps

JSON keys: config, rows (name, ms_per_step, peak_rss_mb, first_step_ms, losses, error),
ratios (<kotlin row>_to_python_ms, <kotlin row>_to_python_rss), environment, smoke. The
kotlin_trainer_small_heap row runs the same JVM with a 128 MB heap and the serial collector.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import common

MODEL, BATCH, SEQ, TEXTS = "minilm", 8, 64, 960
SMALL_HEAP = ("-Xmx128m", "-XX:+UseSerialGC")


def labelled_csv(src: Path, out: Path, n: int) -> Path:
    """``n`` evenly spaced rows of a text,category CSV (every category, when the file is sorted
    by category) as text,label, the trainers' format."""
    with open(src, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with open(out, "w", newline="", encoding="utf-8") as g:
        w = csv.writer(g)
        w.writerow(["text", "label"])
        w.writerows([r["text"], r["category"]] for r in rows[:: max(1, len(rows) // n)][:n])
    return out


def export(work: Path, train: Path) -> Path:
    from edgetune.app.classifier import ClassifierPlan, export_classifier

    out = work / "artifact"
    plan = ClassifierPlan(model=MODEL, batch_size=BATCH, seq_len=SEQ, embedding_rows=128,
                          optimizer={"name": "adamw", "lr": 1e-4, "weight_decay": 0.01})
    export_classifier(plan, train, out, ("onnx",))
    return out


def summarize(name: str, proc: subprocess.CompletedProcess) -> dict:
    from edgetune.contract.lines import step_records

    steps = step_records(proc.stdout.splitlines())
    row = {"name": name, "ms_per_step": None, "peak_rss_mb": None, "first_step_ms": None, "losses": [], "error": None}
    if proc.returncode != 0 or not steps:
        row["error"] = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:300]
        return row
    timed = [s["ms"] for s in steps[1:]] or [steps[0]["ms"]]
    row.update(ms_per_step=round(statistics.median(timed), 2), peak_rss_mb=max(s["peak_rss_mb"] for s in steps),
               first_step_ms=steps[0]["ms"], losses=[s["loss"] for s in steps])
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="BANKING77 directory (train.csv with text,category)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--smoke", action="store_true", help="the tiny classifier, batch 4 x 16, 4 steps")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/kotlin_trainer.json")
    a = ap.parse_args()
    global MODEL, BATCH, SEQ, TEXTS
    work = Path(tempfile.mkdtemp(prefix="kotlin_trainer."))
    if a.smoke:
        MODEL, BATCH, SEQ, TEXTS, a.steps = "tiny", 4, 16, 12, min(a.steps, 4)
        a.data = common.smoke_classification(work)
    common.require(a.data and a.data / "train.csv", "BANKING77's train.csv (text,category)")
    a.out = a.out or common.default_out("kotlin_trainer", a.smoke)
    kt = common.test_helper("kotlin")
    try:
        trainer = kt.build(common.ROOT.parent / "android_demo" / "trainer" / "build")
    except RuntimeError as e:
        sys.exit(f"error: {e}")
    train = labelled_csv(a.data / "train.csv", work / "train.csv", TEXTS)
    print(f"exporting {MODEL} at batch {BATCH} x {SEQ}", flush=True)
    art = export(work, train)
    common_args = [str(art), str(train), "--steps", str(a.steps), "--threads", str(a.threads), "--save-every", "0"]
    def kotlin(name: str, *jvm: str) -> list[str]:
        return trainer.command("TrainMain", kt.ort_library(), *common_args, "--state", work / f"{name}.safetensors", jvm=jvm)

    runs = {
        "python_runner": [sys.executable, "-m", "device_harness.runner", "train", *common_args, "--runtime", "onnx",
                          "--state", str(work / "python.safetensors")],
        "kotlin_trainer": kotlin("kotlin"),
        # a phone-sized heap and the simplest collector: what the JVM itself adds to RSS shrinks
        "kotlin_trainer_small_heap": kotlin("kotlin_small", *SMALL_HEAP),
    }
    rows = []
    for name, cmd in runs.items():
        print(f"running {name} ({a.steps} steps, {a.threads} threads)", flush=True)
        rows.append(summarize(name, subprocess.run(cmd, capture_output=True, text=True, timeout=3600,
                                                   env={**os.environ, "PYTHONWARNINGS": "ignore"})))
    by = {r["name"]: r for r in rows}
    ok = all(r["error"] is None for r in rows)
    base = by["python_runner"]
    ratios = {f"{r['name']}_to_python_{key}": round(r[field] / base[field], 3) if ok else None
              for r in rows[1:] for key, field in (("ms", "ms_per_step"), ("rss", "peak_rss_mb"))}
    print(f"\n{'trainer':26} {'ms/step':>9} {'ratio':>6} {'peak RSS MB':>12} {'ratio':>6}  error")
    for r in rows:
        rm = f"{r['ms_per_step'] / base['ms_per_step']:.2f}" if ok else "-"
        rr = f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}" if ok else "-"
        print(f"{r['name']:26} {r['ms_per_step'] or '-':>9} {rm:>6} {r['peak_rss_mb'] or '-':>12} {rr:>6}  {r['error'] or ''}")
    shutil.rmtree(work, ignore_errors=True)
    ort_version = json.loads((kt.NODE_MODULES / "onnxruntime-node" / "package.json").read_text())["version"]
    config = {"model": MODEL, "small_heap_jvm_flags": list(SMALL_HEAP), "batch_size": BATCH, "seq_len": SEQ,
              "texts": TEXTS, "steps": a.steps, "java": str(trainer.java),
              "onnxruntime_c_library": f"onnxruntime-node {ort_version}"}
    common.write_json(a.out, {"config": config, "rows": rows, "ratios": ratios}, a.threads, a.smoke)
    print(f"wrote {a.out}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
