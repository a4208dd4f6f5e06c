"""Training-step latency and memory: edgetune's exported step vs eager PyTorch + PEFT.

MiniLM-L6, batch 8 x seq 64, LoRA r=8 (alpha 16) on query/value + a trainable
77-way head, AdamW (ExecuTorch's TrainingModule row: its SGD). Every row runs in its
own process that does only that loop (exports happen in the parent), so its peak RSS
is the loop's. The physical limit is measured in the same run: FLOPs of one step
(FlopCounterMode on the eager step) and this machine's fp32 matmul peak on the same
threads.

    python benchmarks/step_latency.py [--threads N] [--steps 20] [--max-seconds 60]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ROWS = ["eager_peft", "edgetune_onnx", "edgetune_executorch", "et_training_module", "ort_training_artifacts"]
BATCH, SEQ, LABELS, R, ALPHA = 8, 64, 77, 8, 16.0
LR = 1e-4


def numpy_batch(seed: int = 0) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)
    return {"input_ids": rng.integers(1000, 30000, (BATCH, SEQ)).astype(np.int64),
            "attention_mask": np.ones((BATCH, SEQ), np.int64),
            "labels": rng.integers(0, LABELS, BATCH).astype(np.int64)}


# ---------------------------------------------------------------- models (parent and eager child)
def peft_classifier():
    """MiniLM + PEFT LoRA on query/value + trainable head: the baseline users write today."""
    import peft

    from edgetune.models.minilm import load_minilm_classifier

    clf, _ = load_minilm_classifier(LABELS)
    for p in clf.parameters():
        p.requires_grad_(False)
    clf.encoder = peft.get_peft_model(clf.encoder, peft.LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0,
                                                                    target_modules=["query", "value"]))
    for p in clf.head.parameters():
        p.requires_grad_(True)
    return clf


def edgetune_prepared():
    from edgetune import FullyTrainable, LoRA, prepare
    from edgetune.models.minilm import load_minilm_classifier

    clf, _ = load_minilm_classifier(LABELS)
    return prepare(clf, [LoRA(targets=("query", "value"), r=R, alpha=ALPHA), FullyTrainable(("head",))])


def eager_step_fn(clf):
    import torch
    import torch.nn.functional as F

    opt = torch.optim.AdamW([p for p in clf.parameters() if p.requires_grad], lr=LR)

    def step(b):
        loss = F.cross_entropy(clf(b["input_ids"], b["attention_mask"]), b["labels"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)
    return step


# ---------------------------------------------------------------- children: one loop each
def child(row: str, work: Path, threads: int, steps: int, max_seconds: float) -> dict:
    from device_harness.runner import rss_mb

    nb = numpy_batch()
    if row == "eager_peft":
        import torch

        torch.set_num_threads(threads)
        step = eager_step_fn(peft_classifier().train(False))
        b = {k: torch.from_numpy(v) for k, v in nb.items()}
        run = lambda: step(b)  # noqa: E731
    elif row in ("edgetune_onnx", "edgetune_executorch"):
        from device_harness.runner import Trainer

        tr = Trainer(work / "artifact", row.split("_")[1], work / f"{row}.state", threads)
        run = lambda: tr.train_step(nb, LR)  # noqa: E731
    elif row == "et_training_module":
        import torch
        from executorch.extension.training import _load_for_executorch_for_training, get_sgd_optimizer

        torch.set_num_threads(threads)
        mod = _load_for_executorch_for_training(str(work / "et_training.pte"))
        inputs = [torch.from_numpy(nb[k]) for k in ("input_ids", "attention_mask", "labels")]
        mod.forward_backward("forward", inputs)  # parameters are only reachable after one call
        opt = get_sgd_optimizer(mod.named_parameters(), LR, 0.9)

        def run():
            out = mod.forward_backward("forward", inputs)
            opt.step(mod.named_gradients())
            return out
    else:
        raise SystemExit(f"unknown row {row}")
    for _ in range(3):  # warm-up: allocator, kernels, caches
        run()
    times, t_end = [], time.perf_counter() + max_seconds
    while len(times) < steps and (len(times) < 3 or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        run()
        times.append(1000 * (time.perf_counter() - t0))
    return {"ms_per_step": statistics.median(times), "steps": len(times), "peak_rss_mb": rss_mb()[1]}


# ---------------------------------------------------------------- parent
def matmul_peak_gflops(threads: int, n: int = 2048) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = min(_timed(lambda: a @ b) for _ in range(10))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def step_flops() -> float:
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    clf = peft_classifier()
    b = {k: torch.from_numpy(v) for k, v in numpy_batch().items()}
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(clf(b["input_ids"], b["attention_mask"]), b["labels"]).backward()
    return float(fc.get_total_flops())


def export_all(work: Path) -> dict[str, float]:
    """edgetune artifact (both runtimes) and the ExecuTorch TrainingModule program -> sizes in MB."""
    from edgetune import AdamW, compile_step
    from exporters.artifact import export_artifact

    compiled = compile_step(edgetune_prepared(), AdamW(lr=LR), BATCH, SEQ)
    art = work / "artifact"
    m = export_artifact(compiled, art, ("onnx", "executorch"), overwrite=True, progress=lambda s: print("  " + s))
    sizes = {f"edgetune_{rt}": sum((art / m.programs[p].files[rt]).stat().st_size for p in ("step",)) / 2**20
             + (art / "state.safetensors").stat().st_size / 2**20 for rt in ("onnx", "executorch")}
    print("  exporting the ExecuTorch TrainingModule program")
    try:
        sizes["et_training_module"] = export_et_training(work / "et_training.pte")
    except Exception as e:  # a baseline that cannot be built is reported, not hidden
        sizes["et_training_module"] = f"{type(e).__name__}: {e}"[:500]
    return sizes


def export_et_training(path: Path) -> float:
    import torch
    import torch.nn.functional as F
    from executorch.exir import to_edge
    from torch.export.experimental import _export_forward_backward

    prepared = edgetune_prepared()

    class LossNet(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids, mask, labels):
            logits = self.m(ids, mask)
            return F.cross_entropy(logits, labels), logits.detach().argmax(-1)

    b = {k: torch.from_numpy(v) for k, v in numpy_batch().items()}
    ep = torch.export.export(LossNet(prepared.model), (b["input_ids"], b["attention_mask"], b["labels"]), strict=False)
    ep = _export_forward_backward(ep)
    path.write_bytes(to_edge(ep).to_executorch().buffer)
    return path.stat().st_size / 2**20


def ort_training_error() -> str:
    try:
        from onnxruntime.training import artifacts  # noqa: F401
    except ImportError as e:
        return (f"onnxruntime-training is not installed ({e}); it ships the `onnxruntime` module itself, so it "
                "cannot sit beside the onnxruntime that edgetune pins, and its last release (1.19.2) caps ONNX IR at 10")
    return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--max-seconds", type=float, default=60.0, help="cap per row (at least 3 timed steps)")
    ap.add_argument("--child", choices=ROWS, help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "results" / "step_latency.json"))
    a = ap.parse_args()
    if a.child:
        print("RESULT " + json.dumps(child(a.child, Path(a.work), a.threads, a.steps, a.max_seconds)))
        return
    import warnings

    warnings.filterwarnings("ignore")
    print(f"threads={a.threads}; measuring the step's FLOPs and the matmul peak")
    flops = step_flops()
    peak = matmul_peak_gflops(a.threads)
    print(f"step: {flops / 1e9:.2f} GFLOP; fp32 matmul peak {peak:.1f} GFLOP/s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("exporting")
        sizes = export_all(work)
        for row in ROWS:
            print(f"running {row}", flush=True)
            res = {"name": row, "ms_per_step": None, "ratio_to_eager": None, "peak_rss_mb": None,
                   "artifact_mb": None, "gflops": None, "pct_of_peak": None, "error": None}
            size = sizes.get(row)
            if isinstance(size, str):
                res["error"] = size
            elif row == "ort_training_artifacts":
                res["error"] = ort_training_error() or "not measured"
            else:
                res["artifact_mb"] = round(size, 2) if size is not None else None
                p = subprocess.run([sys.executable, __file__, "--child", row, "--work", str(work), "--threads",
                                    str(a.threads), "--steps", str(a.steps), "--max-seconds", str(a.max_seconds)],
                                   capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
                line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
                if p.returncode or not line:
                    res["error"] = (p.stderr.strip().splitlines() or ["no output"])[-1][:500]
                else:
                    r = json.loads(line[0][7:])
                    res.update(ms_per_step=round(r["ms_per_step"], 2), peak_rss_mb=round(r["peak_rss_mb"], 1),
                               steps=r["steps"], gflops=round(flops / r["ms_per_step"] / 1e6, 1))
                    res["pct_of_peak"] = round(100 * res["gflops"] / peak, 1)
            rows.append(res)
    eager = rows[0]
    for r in rows:
        if r["ms_per_step"] and eager["ms_per_step"]:
            r["ratio_to_eager"] = round(r["ms_per_step"] / eager["ms_per_step"], 3)
            r["rss_ratio_to_eager"] = round(r["peak_rss_mb"] / eager["peak_rss_mb"], 3)
    out = {"config": {"model": "all-MiniLM-L6-v2", "batch": BATCH, "seq": SEQ, "lora_r": R, "threads": a.threads,
                      "step_gflop": round(flops / 1e9, 3), "matmul_peak_gflops": round(peak, 1)},
           "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"\n{'row':<24}{'ms/step':>10}{'x eager':>9}{'GFLOP/s':>9}{'% peak':>8}{'peak RSS MB':>13}{'x eager':>9}"
          f"{'artifact MB':>13}")
    for r in rows:
        if r["error"]:
            print(f"{r['name']:<24}  error: {r['error'][:110]}")
            continue
        print(f"{r['name']:<24}{r['ms_per_step']:>10.1f}{r['ratio_to_eager']:>9.2f}{r['gflops']:>9.1f}"
              f"{r['pct_of_peak']:>8.1f}{r['peak_rss_mb']:>13.0f}{r['rss_ratio_to_eager']:>9.2f}"
              + (f"{r['artifact_mb']:>13.1f}" if r["artifact_mb"] is not None else f"{'-':>13}"))
    print(f"\nstep = {flops / 1e9:.2f} GFLOP, matmul peak = {peak:.1f} GFLOP/s on {a.threads} threads; wrote {a.out}")


if __name__ == "__main__":
    main()
