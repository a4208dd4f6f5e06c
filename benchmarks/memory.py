"""Memory of one training step of SmolLM2-135M: quantized edgetune artifacts vs eager fp32 + PEFT.

Batch 4 x seq 128 of real text (--data, e.g. tiny_shakespeare's input.txt), LoRA-family adapters on
the attention projections (edgetune: LoRA-SB r=16 + 256 embedding rows; baseline: PEFT
LoRA r=16 on the same projections, the method PEFT has), AdamW. Rows:

- eager_peft_fp32: Hugging Face LlamaForCausalLM on the fp32 dequantized GGUF weights
  (memory-mapped safetensors, so loading does not double the peak) + PEFT.
- edgetune_fp32_onnx: the fp32 base, for the artifact-size ratio.
- edgetune_int8_onnx: edgetune's int8 per-channel base (embedding int8 per row).
- edgetune_int4_onnx / edgetune_int4_executorch: the file's own Q4_1 blocks (Q8_0 embedding).

``--model qwen0.5b`` / ``qwen1.5b``: a decoder with Qwen2.5-0.5B's / 1.5B's shapes and random weights
(`decoder_shapes`), batch 1 x 256 of the word tokenizer's words; its int4 rows quantize with
edgetune's int4 (group 32, zero points; int8 embedding). Honest for time and memory, not quality.

Each row's loop runs in its own process (the device runner for edgetune rows), so its
peak RSS (VmHWM) is the whole process: runtime, weights, activations.

    python benchmarks/memory.py --data ../shared/data/tiny_shakespeare/input.txt [--steps 3] [--rows ...]
    python benchmarks/memory.py --model qwen0.5b [--rows eager_peft_fp32 edgetune_int4_onnx]
    python benchmarks/memory.py --smoke      # a tiny Llama GGUF, batch 2 x 16, 2 steps

JSON keys: config, rows (name, quant, ms_per_step, ratio_to_eager, peak_rss_mb,
rss_ratio_to_eager, artifact_mb, gflops, pct_of_peak, steps, error), environment, smoke.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common
from decoder_shapes import SHAPES, TITLES, shaped_checkpoint, word_text

from edgetune.contract.lines import step_records

ROOT = Path(__file__).resolve().parent
BATCH, SEQ, R = 4, 128, 16
MODEL = "smollm2"  # or one of decoder_shapes.SHAPES, or a GGUF path (--smoke: a tiny Llama)
LR = 1e-4
ROWS = {  # name -> (quant, runtime)
    "eager_peft_fp32": ("none", "eager"),
    "edgetune_fp32_onnx": ("none", "onnx"),
    "edgetune_int8_onnx": ("int8", "onnx"),
    "edgetune_int4_onnx": ("gguf", "onnx"),
    "edgetune_int4_executorch": ("gguf", "executorch"),
}
SHAPED_ROWS = ["eager_peft_fp32", "edgetune_int4_onnx"]  # a shaped decoder's rows unless --rows says otherwise
QUANT_TITLES = {"none": "none", "int8": "int8", "gguf": "gguf Q4_1 (Q8_0 embedding)",
                "int4": "int4 group 32, zero points (int8 embedding)"}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def configure(smoke: bool, work: Path, model: str) -> None:
    """--smoke: a tiny Llama GGUF at batch 2 x 16 instead of SmolLM2 at 4 x 128; a shaped decoder
    (random weights) trains at batch 1 x 256."""
    global BATCH, SEQ, R, MODEL
    if smoke:
        BATCH, SEQ, R, MODEL = 2, 16, 4, str(common.tiny_gguf(work))
    elif model in SHAPES:
        BATCH, SEQ, MODEL = 1, 256, model


def shaped() -> bool:
    return MODEL in SHAPES


def checkpoint() -> Path:
    """The shaped decoder's checkpoint directory (built once, kept between runs)."""
    return shaped_checkpoint(MODEL, ROOT / ".work" / "checkpoints" / MODEL)


def row_quant(quant: str) -> str:
    """A shaped decoder has no GGUF file: its int4 rows quantize with edgetune's int4 (group 32, zero points)."""
    return "int4" if quant == "gguf" and shaped() else quant


def gguf_file() -> Path:
    from edgetune.models.llama import smollm2_gguf_path

    return smollm2_gguf_path() if MODEL == "smollm2" else Path(MODEL)


def train_text(work: Path, data: Path | None) -> Path:
    from edgetune.data.text import read_text, split_text

    p = work / "train.txt"
    if shaped():  # the word tokenizer's own words
        return word_text(p)
    p.write_text(split_text(read_text(data))[0][:200_000], encoding="utf-8")
    return p


def plan_for(quant: str):
    from edgetune.app.lm import LMPlan

    model = str(checkpoint()) if shaped() else MODEL
    return LMPlan(model=model, quant=row_quant(quant), adapter={"method": "lora_sb", "targets": TARGETS, "r": R, "n_samples": 16},
                  embedding_rows=256 if MODEL == "smollm2" or shaped() else 32, batch_size=BATCH, seq_len=SEQ,
                  optimizer={"name": "adamw", "lr": LR, "weight_decay": 0.0})


def export_row(work: Path, quant: str, runtime: str) -> Path:
    """The artifact of a row; an unchanged plan (same code, toolchain and model) comes from the
    export cache (`edgetune.app.export_cache`)."""
    from edgetune.app.lm import export_lm

    art = work / f"{quant}_{runtime}"
    t0 = time.time()
    export_lm(plan_for(quant), work / "train.txt", art, (runtime,), overwrite=True, cache=True,
              progress=lambda m: print(f"  {quant}/{runtime}: {m} ({time.time() - t0:.0f} s)", flush=True))
    return art


def program_mb(art: Path, runtime: str) -> float:
    from edgetune.contract import load_manifest

    m = load_manifest(art, runtime, verify=False)
    return sum((art / f).stat().st_size for f in m.programs["step"].data_files(runtime)) / 2**20


# ---------------------------------------------------------------- children
def eager_child(work: Path, threads: int, steps: int) -> dict:
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from device_harness.runner import rss_mb

    torch.set_num_threads(threads)
    if shaped():
        model = AutoModelForCausalLM.from_pretrained(str(checkpoint()), dtype=torch.float32)
    else:
        cfg = LlamaConfig.from_json_file(str(work / "hf_config.json"))
        with torch.device("meta"):
            model = LlamaForCausalLM(cfg)
        model.load_state_dict(load_file(str(work / "fp32.safetensors")), strict=False, assign=True)
        model.tie_weights()
        model.model.rotary_emb = type(model.model.rotary_emb)(config=cfg)  # its buffers were built on meta
    model = get_peft_model(model, LoraConfig(r=R, lora_alpha=2 * R, lora_dropout=0.0, target_modules=TARGETS))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    from torch.utils.flop_counter import FlopCounterMode

    ids = torch.from_numpy(np.load(work / "batches.npy"))
    times, flops = [], 0.0
    for i in range(steps):
        b = ids[(i * BATCH) % len(ids):][:BATCH]
        counter = FlopCounterMode(display=False) if i == 0 else None  # the first (untimed) step is counted
        t0 = time.perf_counter()
        with counter or contextlib.nullcontext():
            loss = model(input_ids=b, labels=b).loss
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(1000 * (time.perf_counter() - t0))
        flops = flops or float(counter.get_total_flops())
    return {"ms": times, "peak_rss_mb": rss_mb()[1], "loss": float(loss), "flops": flops}


def runner_child(art: Path, runtime: str, text: Path, threads: int, steps: int, work: Path) -> dict:
    state = work / f"{art.name}.state.safetensors"
    state.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "device_harness.runner", "train", str(art), str(text), "--runtime", runtime,
           "--steps", str(steps), "--state", str(state), "--threads", str(threads), "--lr", str(LR)]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    recs = step_records(p.stdout.splitlines())
    if p.returncode or not recs:
        raise RuntimeError((p.stderr.strip().splitlines() or ["no output"])[-1][:500])
    return {"ms": [r["ms"] for r in recs], "peak_rss_mb": max(r["peak_rss_mb"] for r in recs), "loss": recs[-1]["loss"]}


def prepare_eager(work: Path, text: Path) -> None:
    """fp32 weights (edgetune's GGUF import, equal to transformers' own: tests/edgetune/models)
    as safetensors, the HF config, and the token batches."""
    import numpy as np
    from safetensors.torch import save_file
    from transformers import AutoConfig

    from edgetune.data.text import TextEncoder
    from edgetune.models.llama import from_gguf, gguf_tokenizer_json

    if shaped():  # the eager child loads the checkpoint itself
        tok = checkpoint() / "tokenizer.json"
    else:
        path = gguf_file()
        if not (work / "fp32.safetensors").exists():
            AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name).to_json_file(str(work / "hf_config.json"))
            sd = from_gguf(path, keep_quantized=False).state_dict()
            save_file({k: v.contiguous() for k, v in sd.items() if not k.startswith("rope_")},
                      str(work / "fp32.safetensors"))
        tok = gguf_tokenizer_json(path, work / "tokenizer.json")
    ids, _ = TextEncoder(tok, SEQ).windows(text.read_text(encoding="utf-8"))
    np.save(work / "batches.npy", ids[np.random.default_rng(0).permutation(len(ids))])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="a UTF-8 text file (e.g. tiny_shakespeare's input.txt)")
    ap.add_argument("--smoke", action="store_true", help="a tiny Llama GGUF, batch 2 x 16, 2 steps")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--model", choices=("smollm2", *SHAPES), default="smollm2",
                    help="SmolLM2-135M (its GGUF), or a decoder with a larger model's shapes and random weights "
                         f"(batch 1 x 256; default rows {' '.join(SHAPED_ROWS)}) [default: smollm2]")
    ap.add_argument("--rows", nargs="+", choices=list(ROWS), default=None)
    ap.add_argument("--work", default=str(ROOT / ".work" / "memory"), help="artifacts are kept here between runs")
    ap.add_argument("--child-eager", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/memory.json")
    a = ap.parse_args()
    work = Path(a.work) / ("smoke" if a.smoke else "" if a.model == "smollm2" else a.model)
    work.mkdir(parents=True, exist_ok=True)
    configure(a.smoke, work, a.model)
    a.rows = a.rows or (SHAPED_ROWS if shaped() else list(ROWS))
    if a.child_eager:
        print("RESULT " + json.dumps(eager_child(work, a.threads, a.steps)))
        return
    import warnings

    warnings.filterwarnings("ignore")
    a.out = a.out or common.default_out("memory" if a.model == "smollm2" else f"memory_{a.model}", a.smoke)
    if a.smoke:
        a.steps = min(a.steps, 2)
    text = train_text(work, common.smoke_text(work) if a.smoke else
                      None if shaped() else common.require(a.data, "the training text"))
    sys.path.insert(0, str(ROOT))
    from step_latency import matmul_peak_gflops

    peak = matmul_peak_gflops(a.threads)
    flops = None
    rows = []
    for name in a.rows:
        quant, runtime = ROWS[name]
        print(f"{name}", flush=True)
        res = {"name": name, "quant": QUANT_TITLES[row_quant(quant)], "ms_per_step": None,
               "ratio_to_eager": None, "peak_rss_mb": None, "rss_ratio_to_eager": None, "artifact_mb": None,
               "gflops": None, "pct_of_peak": None, "steps": a.steps, "error": None}
        try:
            if runtime == "eager":
                prepare_eager(work, text)
                p = subprocess.run([sys.executable, __file__, "--child-eager", "--work", a.work, "--threads",
                                    str(a.threads), "--steps", str(a.steps), "--model", a.model] + ["--smoke"] * a.smoke,
                                   capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
                line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
                if p.returncode or not line:
                    raise RuntimeError((p.stderr.strip().splitlines() or ["no output"])[-1][:500])
                r = json.loads(line[0][7:])
                flops = r["flops"]
            else:
                art = export_row(work, row_quant(quant), runtime)
                res["artifact_mb"] = round(program_mb(art, runtime), 1)
                r = runner_child(art, runtime, text, a.threads, a.steps, work)
            res.update(ms_per_step=round(statistics.median(r["ms"][1:] or r["ms"]), 1),
                       peak_rss_mb=round(r["peak_rss_mb"], 1), last_loss=round(r["loss"], 4))
        except Exception as e:  # a row that cannot run is reported, not hidden
            res["error"] = f"{type(e).__name__}: {e}"[:500]
        print(f"  {res}", flush=True)
        rows.append(res)
    base = next((r for r in rows if r["name"] == "eager_peft_fp32" and r["peak_rss_mb"]), None)
    for r in rows:  # useful work: the eager step's FLOPs (edgetune's recomputation is not counted)
        if flops and r["ms_per_step"]:
            r["gflops"] = round(flops / r["ms_per_step"] / 1e6, 1)
            r["pct_of_peak"] = round(100 * r["gflops"] / peak, 1)
    fp32_mb = next((r["artifact_mb"] for r in rows if r["name"] == "edgetune_fp32_onnx"), None)
    for r in rows:
        if base and r["peak_rss_mb"]:
            r["ratio_to_eager"] = round(r["ms_per_step"] / base["ms_per_step"], 3)
            r["rss_ratio_to_eager"] = round(r["peak_rss_mb"] / base["peak_rss_mb"], 3)
        if fp32_mb and r["artifact_mb"]:
            r["artifact_ratio_to_fp32"] = round(r["artifact_mb"] / fp32_mb, 3)
    out = {"config": {"model": TITLES.get(MODEL, "SmolLM2-135M-Instruct" if MODEL == "smollm2" else "tiny Llama GGUF"),
                      "batch": BATCH, "seq": SEQ, "adapter_r": R, "threads": a.threads,
                      "data": "random words (the word tokenizer's)" if shaped() else str(a.data or "demo notes"),
                      "step_gflop": round(flops / 1e9, 3) if flops else None, "matmul_peak_gflops": round(peak, 1)},
           "rows": rows}
    common.write_json(a.out, out, a.threads, a.smoke)
    print(f"\n{'row':<26}{'quant':<28}{'step MB':>9}{'x fp32':>8}{'peak RSS MB':>13}{'x eager':>9}"
          f"{'ms/step':>10}{'x eager':>9}")
    dash = "-"
    for r in rows:
        if r["error"]:
            print(f"{r['name']:<26}  error: {r['error'][:110]}")
            continue
        print(f"{r['name']:<26}{r['quant']:<28}{r['artifact_mb'] or dash:>9}{r.get('artifact_ratio_to_fp32') or dash:>8}"
              f"{r['peak_rss_mb']:>13.0f}{r['rss_ratio_to_eager'] or dash:>9}{r['ms_per_step']:>10.0f}"
              f"{r['ratio_to_eager'] or dash:>9}")
    print(f"\n(step MB: the step program file; batch {BATCH} x {SEQ}; wrote {a.out})")


if __name__ == "__main__":
    main()
