"""Accuracy per trainable parameter: every adapter method on BANKING77 with MiniLM-L6.

Training runs through the exported ONNX step with the device runner (not eager
PyTorch); accuracy comes from the exported inference program on the full test.csv
(3,080 examples). Settings: ``fewshot`` (10 examples per class drawn from train.csv
per seed) and ``full`` (all 10,003). Every method gets the same batches, schedule
(AdamW, 6% warm-up then linear decay) and number of steps; each row's learning rate
is in ROWS. Trainable parameters exclude the 77-way head, reported separately.

    python benchmarks/quality.py --data ../shared/data/banking77 [--settings fewshot full] [--seeds 0 1 2] [--rows ...]
    python benchmarks/quality.py --smoke     # the tiny classifier on the demo notes, 2 rows, 1 seed

JSON keys: config, rows (setting, method, adapter, lr, quant, buckets, embedding_rows,
trainable_params, head_params, acc_mean, acc_std, accs, seeds, steps, seconds, loss_curve),
environment, smoke.

Writes benchmarks/results/quality.json and quality.md. The quantized-base rows (frozen int8 /
int4 MiniLM, fp32 adapters) were run with their fp32 row in one run:

    python benchmarks/quality.py --settings full --seeds 0 --rows "LoRA r=8" "LoRA r=8, int8 base" \
        "LoRA r=8, int4 g32 base" --out benchmarks/results/quality_quant.json

and the faster variants (integer matmuls, padding-free batches) likewise:

    python benchmarks/quality.py --settings full --seeds 0 1 --rows "LoRA r=8" "LoRA r=8, w8a8 base" \
        "LoRA r=8, w8a8g8 base" "LoRA r=8, length buckets" "LoRA r=8, w8a8g8 + buckets" \
        --out benchmarks/results/quality_speed.json
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import common

ROOT = Path(__file__).resolve().parent
MODEL = "minilm"
BATCH, SEQ = 16, 40  # 95% of BANKING77 texts fit in 40 tokens
EPOCHS = {"fewshot": 5, "full": 1}
PER_CLASS = 10
SMOKE_ROWS = ["head only", "LoRA r=8"]


def configure(smoke: bool) -> None:
    """--smoke: the tiny classifier at batch 4 x 16, 2 examples per class, one epoch."""
    global MODEL, BATCH, SEQ, EPOCHS, PER_CLASS
    if smoke:
        MODEL, BATCH, SEQ, EPOCHS, PER_CLASS = "tiny", 4, 16, {"fewshot": 1, "full": 1}, 2


@dataclass
class Row:
    name: str
    adapter: dict | None
    lr: float
    embedding_rows: int = 0
    quant: str | None = None  # frozen base: None (fp32), "int8", "w8a8g8", "int4" (edgetune.quant.config_from)
    buckets: tuple[int, ...] = ()  # padding-free batches: texts grouped by length, shorter step programs


ROWS = [
    Row("head only", None, 5e-3),
    Row("LoRA r=8", {"method": "lora", "r": 8, "alpha": 16.0}, 2e-3),
    Row("LoRA-XS r=16", {"method": "lora_xs", "r": 16, "alpha": 16.0}, 5e-3),
    Row("LoRA-SB r=16", {"method": "lora_sb", "r": 16, "init_lr": 1e-3, "n_samples": 64}, 5e-3),
    Row("PiCa r=8 (shared)", {"method": "pica", "r": 8}, 2e-3),
    Row("LoRA-SP r=8", {"method": "lora_sp", "r": 8, "alpha": 16.0}, 2e-3),
    Row("Kronecker", {"method": "kronecker"}, 2e-3),
    Row("Fastfood d=384/tensor", {"method": "fastfood", "d_int": 384}, 5e-3),
    Row("embedding rows + LoRA-SB", {"method": "lora_sb", "r": 16, "init_lr": 1e-3, "n_samples": 64}, 5e-3, 512),
    Row("LoRA r=8, int8 base", {"method": "lora", "r": 8, "alpha": 16.0}, 2e-3, quant="int8"),
    Row("LoRA r=8, int4 g32 base", {"method": "lora", "r": 8, "alpha": 16.0}, 2e-3, quant="int4"),
    Row("LoRA r=8, w8a8 base", {"method": "lora", "r": 8, "alpha": 16.0}, 2e-3, quant="w8a8"),
    Row("LoRA r=8, w8a8g8 base", {"method": "lora", "r": 8, "alpha": 16.0}, 2e-3, quant="w8a8g8"),
    Row("LoRA r=8, length buckets", {"method": "lora", "r": 8, "alpha": 16.0}, 2e-3, buckets=(16, 24, 32)),
    Row("LoRA r=8, w8a8g8 + buckets", {"method": "lora", "r": 8, "alpha": 16.0}, 2e-3, quant="w8a8g8",
        buckets=(16, 24, 32)),
]
TARGETS = ["query", "value"]


@dataclass
class Run:
    setting: str
    seed: int
    accuracy: float
    steps: int
    seconds: float
    trainable_params: int
    head_params: int
    losses: list = field(default_factory=list)


def read_split(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [(r["text"], r["category"]) for r in csv.DictReader(f)]


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def fewshot(rows: list[tuple[str, str]], per_class: int, seed: int) -> list[tuple[str, str]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    by_label: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        by_label.setdefault(r[1], []).append(r)
    picked = [ex for lab in sorted(by_label) for ex in
              (by_label[lab][i] for i in rng.choice(len(by_label[lab]), per_class, replace=False))]
    return [picked[i] for i in rng.permutation(len(picked))]


def run_one(row: Row, train_csv: Path, test_csv: Path, seed: int, steps: int, work: Path, threads: int,
            progress) -> Run:
    from device_harness.runner import Trainer, evaluate
    from edgetune.app.classifier import ClassifierPlan, export_classifier

    plan = ClassifierPlan(model=MODEL, adapter=dict(row.adapter, targets=TARGETS) if row.adapter else None,
                          embedding_rows=row.embedding_rows, train_head=True,
                          optimizer={"name": "adamw", "lr": row.lr, "weight_decay": 0.0},
                          batch_size=BATCH, seq_len=SEQ, seed=seed, quant=row.quant, seq_buckets=list(row.buckets))
    art = work / "artifact"
    _, compiled = export_classifier(plan, train_csv, art, formats=("onnx",), overwrite=True)
    report = compiled.prepared.report
    head = sum(a.trainable_params for a in report.adapters if a.method == "full")
    state = work / "trained.safetensors"
    state.unlink(missing_ok=True)
    trainer = Trainer(art, "onnx", state, threads)
    t0 = time.perf_counter()
    losses = []
    for rec in trainer.train(train_csv, steps, seed=seed, save_every=0, schedule="linear"):
        losses.append(rec.loss)
        progress(rec.loss)
    seconds = time.perf_counter() - t0
    acc = evaluate(art, test_csv, "onnx", state, threads)["accuracy"]
    return Run(train_csv.stem, seed, acc, steps, seconds, report.trainable_params - head, head, losses[::10])


def main(argv=None):
    from tqdm import tqdm

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="directory with train.csv and test.csv (text,category)")
    ap.add_argument("--smoke", action="store_true", help="the tiny classifier on the demo notes, 2 rows, 1 seed")
    ap.add_argument("--settings", nargs="+", default=["fewshot", "full"], choices=["fewshot", "full"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--rows", nargs="+", default=None, help="row names (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test rows (pilots only)")
    ap.add_argument("--lr", type=float, default=None, help="override every row's learning rate (pilots only)")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/quality.json")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    configure(a.smoke)
    a.out = a.out or common.default_out("quality", a.smoke)
    if a.smoke:
        a.data = common.smoke_classification(Path(tempfile.mkdtemp(prefix="quality_smoke.")))
        a.settings, a.seeds, a.rows = ["fewshot"], [0], a.rows or SMOKE_ROWS
    common.require(a.data and a.data / "train.csv", "train.csv and test.csv (text,category; BANKING77's layout)")
    rows = [r for r in ROWS if a.rows is None or r.name in a.rows]
    if a.lr is not None:
        rows = [dataclasses.replace(r, lr=a.lr) for r in rows]
    train, test = read_split(a.data / "train.csv"), read_split(a.data / "test.csv")
    if a.test_limit:
        test = [test[i] for i in range(0, len(test), max(1, len(test) // a.test_limit))][: a.test_limit]
    runs: dict[tuple[str, str], list[Run]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        test_csv = write_csv(tmp / "test.csv", test)
        jobs = [(s, seed, r) for seed in a.seeds for s in a.settings for r in rows]  # a whole table per seed first
        for setting, seed, row in tqdm(jobs, desc="runs", unit="run"):
            data = fewshot(train, PER_CLASS, seed) if setting == "fewshot" else train
            train_csv = write_csv(tmp / f"{setting}.csv", data)
            steps = -(-len(data) * EPOCHS[setting] // BATCH)
            with tqdm(total=steps, desc=f"{setting} s{seed} {row.name}", unit="step", leave=False) as bar:
                def progress(loss):
                    bar.set_postfix(loss=f"{loss:.3f}")
                    bar.update(1)
                run = run_one(row, train_csv, test_csv, seed, steps, tmp, a.threads, progress)
            runs.setdefault((setting, row.name), []).append(run)
            tqdm.write(f"{setting:<8} seed {seed} {row.name:<26} acc {run.accuracy:.4f}  ({run.seconds:.0f} s)")
            table = write_results(a, rows, runs, len(test))  # after every run: a long job keeps what it measured
    print("\n" + table + f"\n\nwrote {a.out} and {a.out.with_suffix('.md')}")


def write_results(a, rows: list[Row], runs: dict, test_examples: int) -> str:
    out_rows = []
    for (setting, name), rs in runs.items():
        accs = [r.accuracy for r in rs]
        row = next(r for r in rows if r.name == name)
        out_rows.append({"setting": setting, "method": name, "adapter": row.adapter, "lr": row.lr, "quant": row.quant,
                         "buckets": list(row.buckets),
                         "embedding_rows": row.embedding_rows, "trainable_params": rs[0].trainable_params,
                         "head_params": rs[0].head_params, "acc_mean": statistics.mean(accs),
                         "acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0, "accs": accs,
                         "seeds": [r.seed for r in rs], "steps": rs[0].steps,
                         "seconds": statistics.mean(r.seconds for r in rs), "loss_curve": rs[0].losses})
    result = {"config": {"model": "all-MiniLM-L6-v2" if MODEL == "minilm" else MODEL, "data": str(a.data),
                         "batch": BATCH, "seq": SEQ,
                         "epochs": EPOCHS, "per_class": PER_CLASS, "targets": TARGETS, "runtime": "onnx",
                         "threads": a.threads, "test_examples": test_examples, "schedule": "linear, 6% warm-up"},
              "rows": out_rows}
    common.write_json(a.out, result, a.threads, a.smoke)
    table = markdown(out_rows)
    a.out.with_suffix(".md").write_text(table + "\n")
    return table


def markdown(rows: list[dict]) -> str:
    lines = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        sub = [r for r in rows if r["setting"] == setting]
        lora = next((r for r in sub if r["method"].startswith("LoRA r=")), None)
        lines += [f"\n**{setting}** ({sub[0]['steps']} steps of {BATCH} x {SEQ}; accuracy on test.csv, "
                  f"mean ± std over seeds {sub[0]['seeds']})\n",
                  "| method | trainable params | x fewer than LoRA | head params | accuracy | vs LoRA (points) | lr | s/run |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in sub:
            fewer = f"{lora['trainable_params'] / r['trainable_params']:.1f}" if lora and r["trainable_params"] else "-"
            delta = f"{100 * (r['acc_mean'] - lora['acc_mean']):+.2f}" if lora else "-"
            lines.append(f"| {r['method']} | {r['trainable_params']:,} | {fewer} | {r['head_params']:,} | "
                         f"{100 * r['acc_mean']:.2f} ± {100 * r['acc_std']:.2f} | {delta} | {r['lr']:g} | {r['seconds']:.0f} |")
    return "\n".join(lines).strip()


if __name__ == "__main__":
    main()
