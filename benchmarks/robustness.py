"""Hostile input: the device runner against thousands of damaged artifacts, manifests, state
files, data files and options (the suite's fuzzer, `device_harness.fuzz`, run longer).

A small classifier (the tiny BERT-shaped model, LoRA + embedding rows + head, AdamW) is
exported from the first --rows rows of --data (a text,label CSV such as BANKING77's
train.csv) for each runtime; then --cases cases are split over the runtimes. The model is
small on purpose: the fuzzer tests the contract and the runner, not the model, and a few
thousand cases then take minutes.

The baseline is what an app that only calls the stock loaders would notice: for each case
that damages one file (manifest, state, tokenizer, program), whether ``json.loads``,
``safetensors.numpy.load``, ``tokenizers.Tokenizer.from_str``, ONNX Runtime's
``InferenceSession`` or ExecuTorch's ``load_program``/``load_method`` accept the damaged
file (run in a separate worker process, so a crash is counted, not fatal). edgetune must
refuse every such change (zero accepted), except changes that leave the parsed content
identical.

    python benchmarks/robustness.py --data ../shared/data/banking77/train.csv [--cases 2000]
    python benchmarks/robustness.py --smoke     # the demo data, 45 cases, ONNX only

JSON keys: config, rows (runtime, kind, cases, accepted, must_refuse, stock_checked,
stock_accepted, stock_crashed), outcomes (exit codes per runtime), failures (totals by name),
examples, seconds (fuzzing, exports excluded), cases_per_second, environment, smoke.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import common

from device_harness.fuzz import FAILURES, KINDS, MUST_REFUSE, Case, Worker, answer_channel, fuzz

STOCK_CHECKED = MUST_REFUSE | {"manifest-restamped"}


def stock_loader_accepts(kind: str, path: str, runtime: str) -> bool:
    """Whether the stock loader for the file a case damaged reads it without an error."""
    raw = Path(path).read_bytes()
    try:
        if kind.startswith("manifest"):
            json.loads(raw)
        elif kind in ("state", "initial-state"):
            from safetensors.numpy import load

            load(raw)
        elif kind == "tokenizer":
            from tokenizers import Tokenizer

            Tokenizer.from_str(raw.decode("utf-8"))
        elif runtime == "onnx":
            import onnxruntime as ort

            ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        else:
            from executorch.runtime import Runtime

            Runtime.get().load_program(path).load_method("forward")
    except Exception:  # any refusal by the stock loader counts as noticed
        return False
    return True


def stock_worker() -> int:
    """Answer {"accepted": bool} for each JSON [kind, path, runtime] line on stdin."""
    answer = answer_channel()
    for line in sys.stdin:
        kind, path, runtime = json.loads(line)
        answer.write(json.dumps({"accepted": stock_loader_accepts(kind, path, runtime)}) + "\n")
    return 0


def write_subset(src: Path, dst: Path, rows: int) -> Path:
    """The first ``rows`` rows of a text,label CSV (the label column: `label` or `category`)."""
    with open(src, newline="", encoding="utf-8") as f, open(dst, "w", newline="", encoding="utf-8") as g:
        reader = csv.DictReader(f)
        label = "label" if "label" in (reader.fieldnames or []) else "category"
        w = csv.writer(g)
        w.writerow(["text", "label"])
        for r in itertools.islice(reader, rows):
            w.writerow([r["text"], r[label]])
    return dst


def export(data: Path, out: Path, runtime: str) -> Path:
    from edgetune.app.classifier import ClassifierPlan, export_classifier

    plan = ClassifierPlan(model="tiny", adapter={"method": "lora", "r": 4}, embedding_rows=64, batch_size=4, seq_len=32,
                          optimizer={"name": "adamw", "lr": 1e-2, "weight_decay": 0.0})
    export_classifier(plan, data, out, formats=(runtime,), overwrite=True)
    return out


def run_runtime(art: Path, data: Path, runtime: str, cases: int, seed: int, bar) -> tuple[dict, list[dict]]:
    """Fuzz one runtime's artifact; -> (the fuzz report, one row per kind)."""
    stock = Worker([sys.executable, __file__, "--stock-worker"])
    stock_counts: dict[str, Counter] = {k: Counter() for k in KINDS}

    def before_run(case: Case) -> None:
        if case.kind in STOCK_CHECKED and case.damaged is not None and not case.benign:
            ans = stock.run([case.kind, str(case.damaged), runtime], timeout=120)
            c = stock_counts[case.kind]
            c["stock_checked"] += 1
            c["stock_accepted"] += bool(ans.get("accepted"))
            c["stock_crashed"] += "crash" in ans or "hang" in ans

    def progress(report) -> None:
        bar.update(1)
        bar.set_postfix(runtime=runtime, failures=sum(report.failures.values()))

    try:
        report = fuzz(art, data, cases, seed, runtime, progress=progress, before_run=before_run).to_dict()
    finally:
        stock.stop()
    rows = [{"runtime": runtime, "kind": k, "cases": report["by_kind"].get(k, 0),
             "accepted": report["accepted_by_kind"].get(k, 0), "must_refuse": k in MUST_REFUSE,
             **{n: stock_counts[k][n] for n in ("stock_checked", "stock_accepted", "stock_crashed")}} for k in KINDS]
    return report, rows


def _rate(n: int, of: int) -> str:
    return f"{n}/{of} ({n / of:.0%})" if of else "-"


def main() -> int:
    if sys.argv[1:] == ["--stock-worker"]:
        return stock_worker()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="a text,label CSV (e.g. banking77/train.csv)")
    ap.add_argument("--rows", type=int, default=400, help="rows of --data the artifact is exported from and trains on")
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--runtimes", default="onnx,executorch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    from tqdm import tqdm

    runtimes = ["onnx"] if a.smoke else [r.strip() for r in a.runtimes.split(",") if r.strip()]
    cases = 45 if a.smoke else a.cases
    out = a.out or common.default_out("robustness", a.smoke)
    with tempfile.TemporaryDirectory(prefix="edgetune-robustness-") as tmp:
        work = Path(tmp)
        if a.smoke:
            from edgetune.data.demo import write_demo_data

            data = write_demo_data(work / "data", n_train=12, n_test=4)[0]
        else:
            data = write_subset(common.require(a.data, "a text,label CSV"), work / "train.csv", a.rows)
        reports, rows, seconds = {}, [], 0.0
        arts = {rt: export(data, work / f"artifact-{rt}", rt) for rt in runtimes}
        with tqdm(total=cases, desc="fuzz", unit="case") as bar:
            for i, rt in enumerate(runtimes):
                share = cases // len(runtimes) + (i < cases % len(runtimes))
                t0 = time.perf_counter()
                reports[rt], kind_rows = run_runtime(arts[rt], data, rt, share, a.seed + i, bar)
                seconds += time.perf_counter() - t0
                rows += kind_rows
    total = Counter()
    for rep in reports.values():
        total.update(rep["failures"])
    result = {"config": {"cases": cases, "runtimes": runtimes, "seed": a.seed, "data": str(a.data) if a.data else "demo",
                         "rows": a.rows, "model": "tiny"},
              "rows": rows, "outcomes": {rt: rep["outcomes"] for rt, rep in reports.items()},
              "failures": {name: total.get(name, 0) for name in FAILURES},
              "examples": {rt: rep["examples"] for rt, rep in reports.items() if rep["examples"]},
              "seconds": round(seconds, 1), "cases_per_second": round(cases / seconds, 2)}
    # accepted = the run went on (exit 0); for damaged files a stock-loader app would go on
    # with what it read, edgetune must not (benign changes, identical when parsed, excluded)
    print(f"\n{'runtime':<11}{'kind':<20}{'cases':>6}{'stock loaders accept':>24}{'edgetune accepts':>20}")
    for r in rows:
        print(f"{r['runtime']:<11}{r['kind']:<20}{r['cases']:>6}{_rate(r['stock_accepted'], r['stock_checked']):>24}"
              f"{_rate(r['accepted'], r['cases']):>20}")
    print(f"\nfailures: {result['failures']}\n{cases} cases in {seconds:.0f} s")
    common.write_json(out, result, None, a.smoke)
    print(f"wrote {out}")
    return 1 if sum(total.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
