"""CLS pooling with the last layer computed at position 0 alone, against the same step without.

With CLS pooling only position 0 of the last layer reaches the loss; edgetune then computes
that layer's queries, attention output and MLP for one position instead of S (keys and values
still for all). Same model, data, adapters and batches in both artifacts: MiniLM-L6 as a
checkpoint directory with ``pooling="cls"``, batch 8 x seq 64, LoRA r=8 on query/value, the
512 most frequent token rows and a 77-way head (BANKING77's categories), AdamW. Rows: the
eager step (the exported function run by PyTorch) and each runtime's step program through the
device runner, without pruning (the baseline) and with it; the median step time after one
warm-up step, and the largest loss difference between the two (the same mathematics: rounding
only).

    python benchmarks/pruning.py --data ../shared/data/banking77 [--threads 2] [--steps 20]
    python benchmarks/pruning.py --smoke    # a tiny random BERT checkpoint, batch 4 x 16, 3 steps, ONNX

JSON keys: config, rows (name, runtime, pruned, ms_per_step, losses, error), ratios
(runtime -> pruned / full), environment, smoke.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common

BATCH, SEQ, TEXTS = 8, 64, 2000


def write_labelled(data: Path, out: Path, n: int) -> Path:
    """BANKING77's train.csv (text,category) -> the first ``n`` rows as text,label."""
    with open(data / "train.csv", newline="", encoding="utf-8") as f:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(f)][:n]
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return out


def batches(art: Path, manifest, csv_path: Path, n: int) -> list[dict]:
    from device_harness.runner import encode_arrays
    from edgetune.data.text import fixed_batches

    it = fixed_batches(encode_arrays(art, manifest, csv_path), manifest.batch_size, seed=0)
    return [next(it) for _ in range(n)]


def time_runtime(art: Path, runtime: str, threads: int, bs: list[dict]) -> tuple[list[float], list[float]]:
    """-> (ms per step, losses) of the device runner's step program over ``bs``."""
    from device_harness.runner import Trainer

    tr = Trainer(art, runtime, art.parent / f"{art.name}.{runtime}.state", threads)
    recs = [tr.train_step(b) for b in bs]
    return [r.ms for r in recs], [r.loss for r in recs]


def time_eager(compiled, bs: list[dict], lr: float) -> tuple[list[float], list[float]]:
    """The exported function itself, run by PyTorch (each step fed the previous state)."""
    import torch

    state = compiled.initial_state()
    feeds_of = {t.feeds: t.name for t in compiled.step_spec().outputs if t.feeds}
    ms, losses = [], []
    for i, b in enumerate(bs, 1):
        feeds = {**state, **{k: torch.from_numpy(v) for k, v in b.items()}, "lr": torch.tensor(lr),
                 "step": torch.tensor(float(i))}
        t0 = time.perf_counter()
        out = compiled.eager_step(feeds)
        ms.append(1000 * (time.perf_counter() - t0))
        losses.append(float(out["loss"]))
        state = {inp: out[o] for inp, o in feeds_of.items()}
    return ms, losses


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="BANKING77 directory (train.csv with text,category)")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--formats", default="onnx,executorch", help="runtimes to export and time")
    ap.add_argument("--smoke", action="store_true", help="a tiny random BERT checkpoint, batch 4 x 16, 3 steps")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/pruning.json")
    a = ap.parse_args()

    import torch

    from edgetune.app.classifier import ClassifierPlan, export_classifier
    from edgetune.models.minilm import minilm_path

    torch.set_num_threads(a.threads)
    work = Path(tempfile.mkdtemp(prefix="pruning."))
    formats = tuple(f for f in a.formats.split(",") if f)
    batch, seq = BATCH, SEQ
    if a.smoke:
        hf_tiny = common.test_helper("hf_tiny")
        model = str(hf_tiny.save_tiny("bert", work / "bert"))
        csv_path, _ = hf_tiny.write_word_data(work / "data")
        batch, seq, a.steps, formats = 4, 16, min(a.steps, 3), ("onnx",)
    else:
        common.require(a.data and a.data / "train.csv", "BANKING77's train.csv (text,category)")
        model = str(minilm_path())
        csv_path = write_labelled(a.data, work / "train.csv", TEXTS)
    lr = 2e-3
    rows, compiled_of = [], {}
    for pruned in (False, True):
        art = work / ("pruned" if pruned else "full")
        plan = ClassifierPlan(model=model, pooling="cls", prune=pruned, batch_size=batch, seq_len=seq,
                              optimizer={"name": "adamw", "lr": lr, "weight_decay": 0.0})
        print(f"exporting {'pruned' if pruned else 'full'} ({', '.join(formats)}) ...", file=sys.stderr)
        manifest, compiled = export_classifier(plan, csv_path, art, formats)
        assert compiled.prepared.model.pruned == pruned
        compiled_of[pruned] = compiled
        bs = batches(art, manifest, csv_path, a.steps + 1)
        for runtime in ("eager", *formats):
            try:
                ms, losses = time_eager(compiled, bs, lr) if runtime == "eager" else \
                    time_runtime(art, runtime, a.threads, bs)
                rows.append({"name": f"cls_{'pruned' if pruned else 'full'}_{runtime}", "runtime": runtime,
                             "pruned": pruned, "ms_per_step": round(statistics.median(ms[1:]), 2),
                             "losses": losses, "error": None})
            except Exception as e:  # a runtime that fails is a row with its error, not a lost run
                rows.append({"name": f"cls_{'pruned' if pruned else 'full'}_{runtime}", "runtime": runtime,
                             "pruned": pruned, "ms_per_step": None, "losses": [], "error": str(e)[-300:]})
    ratios, print_rows = {}, []
    for runtime in ("eager", *formats):
        full, pr = (next(r for r in rows if r["runtime"] == runtime and r["pruned"] == p) for p in (False, True))
        ok = full["ms_per_step"] and pr["ms_per_step"]
        ratios[runtime] = round(pr["ms_per_step"] / full["ms_per_step"], 3) if ok else None
        dloss = max((abs(x - y) for x, y in zip(full["losses"], pr["losses"])), default=None)
        print_rows.append((runtime, full["ms_per_step"], pr["ms_per_step"], ratios[runtime], dloss))
    print(f"\nCLS pooling, batch {batch} x {seq}, {a.steps} timed steps, {a.threads} threads")
    print(f"{'runtime':<12}{'full ms':>10}{'pruned ms':>11}{'ratio':>8}{'max |dloss|':>13}")
    for rt, f, p, r, d in print_rows:
        print(f"{rt:<12}{f or float('nan'):>10.1f}{p or float('nan'):>11.1f}{r or float('nan'):>8.3f}"
              f"{d if d is not None else float('nan'):>13.2e}")
    for r in rows:
        if r["error"]:
            print(f"{r['name']}: {r['error']}")
    cfg = {"model": "tiny-bert (random)" if a.smoke else "all-MiniLM-L6-v2", "pooling": "cls", "batch": batch,
           "seq": seq, "steps": a.steps, "formats": list(formats),
           "layers": compiled_of[True].prepared.model.encoder.config.num_hidden_layers}
    out = a.out or common.default_out("pruning", a.smoke)
    common.write_json(out, {"config": cfg, "rows": rows, "ratios": ratios}, a.threads, a.smoke)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
