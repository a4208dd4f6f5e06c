"""Training-step latency and memory: edgetune's exported step vs eager PyTorch + PEFT.

Table 1 (fixed shape): MiniLM-L6, batch 8 x seq 64, LoRA r=8 (alpha 16) on query/value +
a trainable 77-way head, AdamW (ExecuTorch's TrainingModule row: its SGD). The int8 rows
keep the frozen weights as int8 codes and multiply on integers, forward and backward
(quant "w8a8g8"). The physical limit is measured in the same run: FLOPs of one step
(FlopCounterMode on the eager step) and this machine's fp32 matmul peak on the same threads.
ExecuTorch rows report how many ops (and matmuls) XNNPACK runs.

Table 2 (natural lengths): the same model on real BANKING77 texts, batch 16, at most 64
tokens, one pass over the same --texts texts per row. Eager PEFT pads each random batch to
its longest text (the usual dynamic padding); edgetune's fixed program pads to 64; its
padding-free rows group texts by length and run each batch at the shortest of the
bucket programs 16/24/32/48/64 that holds it, all loaded in one process that keeps one copy
of the weights (the _unshared rows: each program's session with its own, as before).

Every row runs in its own process that does only that loop (exports happen in the
parent), so its peak RSS is the loop's; every runtime gets --threads.

    python benchmarks/step_latency.py --data ../shared/data/banking77 [--threads N] [--steps 20] [--max-seconds 60]
    python benchmarks/step_latency.py --smoke    # the tiny classifier, batch 4 x 16, 3 steps per row

The ort_training_artifacts row is ONNX Runtime's own training API (onnxruntime-training
1.19.2: generate_artifacts, then Module/Optimizer, AdamW) on the same PEFT model and batch,
in its own cached environment (ort_training_peer.py); first_loss checks it computes the same
loss as the eager row.

`--repeats N` runs all rows N times round robin; a row's time is then the median of its runs
(each in ms_per_step_runs) and its peak RSS the largest.

JSON keys: config, rows and natural_rows (name, ms_per_step, ratio_to_eager, peak_rss_mb,
rss_ratio_to_eager, artifact_mb, first_loss, error, ms_per_step_runs, ...), environment, smoke.
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

import common
import ort_training_peer

ROOT = Path(__file__).resolve().parent
ROWS = ["eager_peft", "edgetune_onnx", "edgetune_executorch", "edgetune_int8_onnx", "edgetune_int8_executorch",
        "et_training_module", "ort_training_artifacts"]
NATURAL_ROWS = ["natural_eager_peft", "natural_edgetune_onnx", "natural_edgetune_onnx_buckets",
                "natural_edgetune_int8_onnx_buckets", "natural_edgetune_onnx_buckets_unshared",
                "natural_edgetune_int8_onnx_buckets_unshared"]
UNSHARED = "_unshared"  # the same bucket programs, each session with its own weights and arena
MODEL = "minilm"
BATCH, SEQ, LABELS, R, ALPHA = 8, 64, 77, 8, 16.0
NAT_BATCH, NAT_BUCKETS = 16, [16, 24, 32, 48]


def configure(smoke: bool) -> None:
    """--smoke: the tiny classifier (MiniLM's tokenizer) at batch 4 x 16, one bucket."""
    global MODEL, BATCH, SEQ, NAT_BATCH, NAT_BUCKETS
    if smoke:
        MODEL, BATCH, SEQ, NAT_BATCH, NAT_BUCKETS = "tiny", 4, 16, 4, [8]
INT8 = "w8a8g8"
LR = 1e-4
# row -> (artifact directory, runtime) for edgetune rows
ARTIFACTS = {"edgetune_onnx": ("fp32", "onnx"), "edgetune_executorch": ("fp32", "executorch"),
             "edgetune_int8_onnx": ("int8", "onnx"), "edgetune_int8_executorch": ("int8", "executorch"),
             "natural_edgetune_onnx": ("nat_fp32", "onnx"), "natural_edgetune_onnx_buckets": ("nat_buckets", "onnx"),
             "natural_edgetune_int8_onnx_buckets": ("nat_int8_buckets", "onnx"),
             "natural_edgetune_onnx_buckets" + UNSHARED: ("nat_buckets", "onnx"),
             "natural_edgetune_int8_onnx_buckets" + UNSHARED: ("nat_int8_buckets", "onnx")}


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

    from edgetune.app.classifier import load_classifier

    clf, _ = load_classifier(MODEL, [str(i) for i in range(LABELS)])
    for p in clf.parameters():
        p.requires_grad_(False)
    clf.encoder = peft.get_peft_model(clf.encoder, peft.LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0,
                                                                    target_modules=["query", "value"]))
    for p in clf.head.parameters():
        p.requires_grad_(True)
    return clf


def edgetune_prepared(quant: str | None = None):
    from edgetune import FullyTrainable, LoRA, prepare
    from edgetune.app.classifier import load_classifier

    clf, _ = load_classifier(MODEL, [str(i) for i in range(LABELS)], quant=quant)
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
def natural_texts(data: Path, n: int) -> list[tuple[str, str]]:
    import csv

    with open(data / "train.csv", newline="", encoding="utf-8") as f:
        return [(r["text"], r["category"]) for r in csv.DictReader(f)][:n]


def natural_child(row: str, work: Path, threads: int, data: Path, n_texts: int) -> dict:
    """One pass over the same texts: ms per batch (mean), tokens computed vs tokens of text."""
    import numpy as np

    from device_harness.runner import Trainer, encode_arrays, rss_mb
    from edgetune.data.text import fixed_batches

    art = work / ARTIFACTS.get(row, ("nat_fp32",))[0]
    csv_path = work / "natural.csv"
    tr = None if row == "natural_eager_peft" else Trainer(art, "onnx", work / f"{row}.state", threads,
                                                          share_weights=not row.endswith(UNSHARED))
    manifest = tr.manifest if tr else None
    if tr is None:
        from edgetune.contract import load_manifest

        manifest = load_manifest(art, verify=False)
    arrays = encode_arrays(art, manifest, csv_path)
    n_batches = -(-len(arrays["input_ids"]) // NAT_BATCH)
    batches = fixed_batches(arrays, NAT_BATCH, seed=0, by_length=bool(manifest.seq_buckets))
    batches = [next(batches) for _ in range(n_batches)]
    if tr is None:
        import torch

        torch.set_num_threads(threads)
        step = eager_step_fn(peft_classifier().train(False))

        def run(b):  # dynamic padding: each batch cut to its longest text
            n = int(b["attention_mask"].sum(1).max())
            return step({k: torch.from_numpy(np.ascontiguousarray(v[:, :n]) if v.ndim == 2 else v) for k, v in b.items()})

        def width(b):
            return int(b["attention_mask"].sum(1).max())
    else:
        def run(b):
            return tr.train_step(b, LR)

        def width(b):
            return manifest.step_program_for(int(b["attention_mask"].sum(1).max()))[1] if manifest.seq_buckets \
                else manifest.seq_len
    for b in batches[:3]:  # warm-up (and, for bucketed artifacts, loading the programs used first)
        run(b)
    if tr is not None:  # load every bucket program before timing
        for n in manifest.seq_buckets + [manifest.seq_len]:
            tr.program_for({"attention_mask": np.ones((NAT_BATCH, n), np.int64)})
    t0 = time.perf_counter()
    for b in batches:
        run(b)
    total = time.perf_counter() - t0
    computed = sum(width(b) * NAT_BATCH for b in batches)
    text_tokens = int(sum(b["attention_mask"].sum() for b in batches))
    return {"ms_per_step": 1000 * total / len(batches), "steps": len(batches), "peak_rss_mb": rss_mb()[1],
            "token_efficiency": text_tokens / computed}


def child(row: str, work: Path, threads: int, steps: int, max_seconds: float) -> dict:
    from device_harness.runner import rss_mb

    nb = numpy_batch()
    if row == "eager_peft":
        import torch

        torch.set_num_threads(threads)
        step = eager_step_fn(peft_classifier().train(False))
        b = {k: torch.from_numpy(v) for k, v in nb.items()}
        run = lambda: step(b)  # noqa: E731
    elif row in ARTIFACTS:
        from device_harness.runner import Trainer

        art, runtime = ARTIFACTS[row]
        tr = Trainer(work / art, runtime, work / f"{row}.state", threads)
        run = lambda: tr.train_step(nb, LR)  # noqa: E731
    elif row == "et_training_module":
        import torch
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        from executorch.extension.training import _load_for_executorch_for_training, get_sgd_optimizer

        torch.set_num_threads(threads)
        _unsafe_reset_threadpool(threads)
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
    first, timing = common.timed_steps(run, steps, max_seconds)
    first_loss = first if isinstance(first, float) else getattr(first, "loss", None)  # for the peers' parity
    return {**timing, "peak_rss_mb": rss_mb()[1], "first_loss": first_loss}


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


def export_all(work: Path, data: Path, n_texts: int, rows: list[str]) -> dict[str, float | str]:
    """Every artifact ``rows`` run -> program sizes in MB (step program + state) by row."""
    needed = {ARTIFACTS[r][0] for r in rows if r in ARTIFACTS}
    from edgetune import AdamW, compile_step
    from edgetune.app.classifier import ClassifierPlan, export_classifier
    from exporters.artifact import export_artifact

    sizes: dict[str, float | str] = {}

    def size(art, m, rt):
        return ((art / m.programs["step"].files[rt]).stat().st_size + (art / "state.safetensors").stat().st_size) / 2**20

    for name, quant in (("fp32", None), ("int8", INT8)):
        if name not in needed:
            continue
        print(f"  exporting {MODEL} {name} (ONNX and ExecuTorch)", flush=True)
        compiled = compile_step(edgetune_prepared(quant), AdamW(lr=LR), BATCH, SEQ)
        m = export_artifact(compiled, work / name, ("onnx", "executorch"), overwrite=True)
        for row, (art, rt) in ARTIFACTS.items():
            if art == name:
                sizes[row] = size(work / name, m, rt)
    if "et_training_module" in rows:
        print("  exporting the ExecuTorch TrainingModule program", flush=True)
        try:
            sizes["et_training_module"] = export_et_training(work / "et_training.pte")
        except Exception as e:  # a baseline that cannot be built is reported, not hidden
            sizes["et_training_module"] = f"{type(e).__name__}: {e}"[:500]
    texts = natural_texts(data, n_texts)
    csv_path = work / "natural.csv"
    import csv

    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *texts])
    for name, quant, buckets in (("nat_fp32", None, []), ("nat_buckets", None, NAT_BUCKETS),
                                 ("nat_int8_buckets", INT8, NAT_BUCKETS)):
        if name not in needed and not (name == "nat_fp32" and "natural_eager_peft" in rows):
            continue
        print(f"  exporting {name} (ONNX, batch {NAT_BATCH} x {SEQ}, buckets {buckets})", flush=True)
        plan = ClassifierPlan(model=MODEL, adapter={"method": "lora", "r": R, "alpha": ALPHA, "targets": ["query", "value"]},
                              embedding_rows=0, optimizer={"name": "adamw", "lr": LR, "weight_decay": 0.0},
                              batch_size=NAT_BATCH, seq_len=SEQ, quant=quant, seq_buckets=buckets)
        m, _ = export_classifier(plan, csv_path, work / name, ("onnx",), overwrite=True)
        for row, (art, rt) in ARTIFACTS.items():
            if art == name:
                sizes[row] = size(work / name, m, rt)
    return sizes


def delegation(work: Path, row: str) -> dict | None:
    from edgetune.contract import load_manifest

    if row not in ARTIFACTS or ARTIFACTS[row][1] != "executorch":
        return None
    return load_manifest(work / ARTIFACTS[row][0], verify=False).step.lowering.get("executorch")


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


def int8_matmul_peak_gops(threads: int, n: int = 2048) -> float:
    """onnxruntime's MatMulInteger on n x n x n as the int8 rows run it: uint8 activations x
    int8 weights, widened to u8 x u8 where this CPU's u8 x s8 kernels saturate (the runner's
    choice, device_harness.runtimes.INT8_PRODUCTS_KEY)."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from device_harness.runtimes import INT8_PRODUCTS_KEY, int8_products_saturate

    rng = np.random.default_rng(0)
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "mm",
                              [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
                              [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])],
                              [numpy_helper.from_array(rng.integers(-127, 128, (n, n)).astype(np.int8), "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    if int8_products_saturate():
        opts.add_session_config_entry(INT8_PRODUCTS_KEY, "1")
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    a = {"A": rng.integers(0, 256, (n, n)).astype(np.uint8)}
    for _ in range(3):
        sess.run(None, a)
    best = min(_timed(lambda: sess.run(None, a)) for _ in range(10))
    return 2 * n ** 3 / best / 1e9


def run_child(row: str, a, work: Path) -> dict:
    """The row's loop in a fresh process -> its RESULT dict, or {"error": last stderr line}."""
    p = subprocess.run([sys.executable, __file__, "--child", row, "--work", str(work), "--threads", str(a.threads),
                        "--steps", str(a.steps), "--max-seconds", str(a.max_seconds), "--data", str(a.data),
                        "--texts", str(a.texts)] + ["--smoke"] * a.smoke,
                       capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    if p.returncode or not line:
        return {"error": (p.stderr.strip().splitlines() or ["no output"])[-1][:500]}
    return json.loads(line[0][7:])


def combined(results: list[dict]) -> dict:
    """A row's runs -> one result: the median time (each run's in ``ms_per_step_runs``), the
    largest peak RSS, the first run's other fields; the first error if no run succeeded."""
    ok = [r for r in results if not r.get("error") and r.get("ms_per_step")]
    if not ok:
        return {"error": next((r["error"] for r in results if r.get("error")), "no run")}
    times = sorted(r["ms_per_step"] for r in ok)
    out = {k: round(v, 3) if isinstance(v, float) else v for k, v in ok[0].items() if k != "error"}
    out["ms_per_step"] = round(statistics.median(times), 3)
    out["peak_rss_mb"] = round(max(r["peak_rss_mb"] for r in ok), 3)
    if len(results) > 1:
        out["ms_per_step_runs"] = [round(r["ms_per_step"], 3) for r in ok]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--max-seconds", type=float, default=60.0, help="cap per row (at least 3 timed steps)")
    ap.add_argument("--data", type=Path, default=None, help="BANKING77 directory (train.csv) for table 2")
    ap.add_argument("--smoke", action="store_true", help="the tiny classifier, batch 4 x 16, 3 steps per row")
    ap.add_argument("--texts", type=int, default=960, help="texts per row in table 2")
    ap.add_argument("--rows", nargs="+", choices=ROWS + NATURAL_ROWS, default=ROWS + NATURAL_ROWS,
                    help="rows to run (default: all; the ratios need the eager row of each table)")
    ap.add_argument("--child", choices=ROWS + NATURAL_ROWS, help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=1,
                    help="rounds over all rows, each row's time the median of its rounds (for a noisy machine)")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/step_latency.json")
    a = ap.parse_args()
    configure(a.smoke)
    if a.child:
        res = (natural_child(a.child, Path(a.work), a.threads, a.data, a.texts) if a.child in NATURAL_ROWS
               else child(a.child, Path(a.work), a.threads, a.steps, a.max_seconds))
        print("RESULT " + json.dumps(res))
        return
    import warnings

    warnings.filterwarnings("ignore")
    a.out = a.out or common.default_out("step_latency", a.smoke)
    if a.smoke:
        a.steps, a.max_seconds, a.texts = min(a.steps, 3), min(a.max_seconds, 5.0), min(a.texts, 12)
        a.data = common.smoke_classification(Path(tempfile.mkdtemp(prefix="step_latency_smoke.")))
    common.require(a.data and a.data / "train.csv", "BANKING77's train.csv (text,category)")
    print(f"threads={a.threads}; measuring the step's FLOPs and the matmul peaks")
    flops = step_flops()
    peak = matmul_peak_gflops(a.threads)
    peak8 = int8_matmul_peak_gops(a.threads)
    print(f"step: {flops / 1e9:.2f} GFLOP; fp32 matmul peak {peak:.1f} GFLOP/s, int8 {peak8:.1f} GOP/s")
    rows, natural = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("exporting")
        sizes = export_all(work, a.data, a.texts, a.rows)
        runs: dict[str, list[dict]] = {row: [] for row in a.rows}
        for round_ in range(a.repeats):  # round robin: a slow spell of a shared machine hits every row
            for row in a.rows:
                if isinstance(sizes.get(row), str):
                    continue
                print(f"running {row}" + (f" (round {round_ + 1} of {a.repeats})" if a.repeats > 1 else ""), flush=True)
                if row == "ort_training_artifacts":  # its own environment (ort_training_peer)
                    runs[row].append(ort_training_peer.measure(peft_classifier(), numpy_batch(), work / "ort_training",
                                                               a.threads, a.steps, a.max_seconds, LR))
                else:
                    runs[row].append(run_child(row, a, work))
        for row in a.rows:
            res = {"name": row, "ms_per_step": None, "ratio_to_eager": None, "peak_rss_mb": None, "error": None}
            size = sizes.get(row)
            if isinstance(size, str):
                res["error"] = size
            else:
                if row != "ort_training_artifacts":
                    res["artifact_mb"] = round(size, 2) if size is not None else None
                res.update(combined(runs[row]))
                if row in ROWS and res["ms_per_step"]:
                    res["gflops"] = round(flops / res["ms_per_step"] / 1e6, 1)
                    res["pct_of_peak"] = round(100 * res["gflops"] / (peak8 if "int8" in row else peak), 1)
                res["delegation"] = delegation(work, row)
            (rows if row in ROWS else natural).append(res)
    for table in (rows, natural):
        eager = table[0] if table and "eager" in table[0]["name"] else {"ms_per_step": None}
        for r in table:
            if r["ms_per_step"] and eager["ms_per_step"]:
                r["ratio_to_eager"] = round(r["ms_per_step"] / eager["ms_per_step"], 3)
                r["rss_ratio_to_eager"] = round(r["peak_rss_mb"] / eager["peak_rss_mb"], 3)
    out = {"config": {"model": "all-MiniLM-L6-v2" if MODEL == "minilm" else MODEL, "batch": BATCH, "seq": SEQ,
                      "lora_r": R, "threads": a.threads,
                      "step_gflop": round(flops / 1e9, 3), "matmul_peak_gflops": round(peak, 1),
                      "int8_matmul_peak_gops": round(peak8, 1), "int8_quant": INT8,
                      "natural": {"batch": NAT_BATCH, "max_seq": SEQ, "buckets": NAT_BUCKETS + [SEQ], "texts": a.texts,
                                  "data": f"{a.data}/train.csv (first texts)"}},
           "rows": rows, "natural_rows": natural}
    common.write_json(a.out, out, a.threads, a.smoke)
    print(f"\nTable 1: batch {BATCH} x seq {SEQ} (% peak: of the fp32 matmul peak; int8 rows: of the int8 one)")
    print(f"{'row':<26}{'ms/step':>9}{'x eager':>9}{'G(FL)OP/s':>10}{'% peak':>8}{'peak RSS MB':>12}{'x eager':>9}"
          f"{'MB':>7}  delegated to XNNPACK")
    for r in rows:
        if r["error"]:
            print(f"{r['name']:<26}  error: {r['error'][:110]}")
            continue
        d = r.get("delegation")
        cov = (f"{d['delegated_ops']}/{d['total_ops']} ops, {d['delegated_matmuls']}/{d['matmuls']} matmuls"
               if d else "")
        nan = float("nan")
        print(f"{r['name']:<26}{r['ms_per_step']:>9.1f}{r['ratio_to_eager'] or nan:>9.2f}{r['gflops']:>10.1f}"
              f"{r['pct_of_peak']:>8.1f}{r['peak_rss_mb']:>12.0f}{r.get('rss_ratio_to_eager') or nan:>9.2f}"
              + (f"{r['artifact_mb']:>7.1f}" if r.get("artifact_mb") is not None else f"{'-':>7}") + f"  {cov}")
    print(f"\nTable 2: BANKING77 natural lengths, batch {NAT_BATCH}, {a.texts} texts, one pass")
    print(f"{'row':<36}{'ms/batch':>9}{'x eager':>9}{'tokens used':>12}{'peak RSS MB':>12}")
    for r in natural:
        if r["error"]:
            print(f"{r['name']:<36}  error: {r['error'][:110]}")
            continue
        print(f"{r['name']:<36}{r['ms_per_step']:>9.1f}{r['ratio_to_eager'] or float('nan'):>9.2f}"
              f"{r['token_efficiency']:>12.0%}"
              f"{r['peak_rss_mb']:>12.0f}")
    print(f"\nstep = {flops / 1e9:.2f} GFLOP, fp32 matmul peak = {peak:.1f} GFLOP/s, int8 = {peak8:.1f} GOP/s on "
          f"{a.threads} threads; wrote {a.out}")


if __name__ == "__main__":
    main()
