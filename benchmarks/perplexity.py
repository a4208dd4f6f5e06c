"""Does SmolLM2-135M learn one person's writing on the device? Held-out perplexity before and
after training through the exported ONNX step.

tiny_shakespeare stands in for a user's writing: the first 90% of the text trains, the last
10% is held out. The frozen base is the GGUF file's own Q4_1 blocks (Q8_0 embedding);
LoRA-SB r=16 on q/k/v/o plus the 256 most frequent token rows train with AdamW, batch
4 x 128 tokens, through `device_harness.runner` in a separate process (the runtime alone).
Perplexity is computed from the artifact's ONNX inference program on every held-out window.

    python benchmarks/perplexity.py --data ../shared/data/tiny_shakespeare/input.txt [--steps 200] [--quant gguf]
    python benchmarks/perplexity.py --smoke      # a tiny Llama GGUF, the demo's notes, 4 steps

JSON keys: config, perplexity_before, perplexity_after, relative_drop, loss_first20,
loss_last20, median_ms_per_step, peak_rss_mb, generation, environment, smoke.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import common

from edgetune.contract.lines import step_records

ROOT = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="a UTF-8 text file (e.g. tiny_shakespeare's input.txt)")
    ap.add_argument("--smoke", action="store_true", help="tiny Llama GGUF, the demo's notes, 4 steps")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--quant", default="gguf", choices=["gguf", "int8", "int4", "int4_g64", "none"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--work", default=str(ROOT / ".work" / "perplexity"))
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/perplexity.json")
    a = ap.parse_args()
    a.out = a.out or common.default_out("perplexity", a.smoke)
    if a.smoke:
        a.steps = min(a.steps, 4)
    import warnings

    warnings.filterwarnings("ignore")
    from device_harness.runner import evaluate
    from edgetune.app.lm import LMPlan, export_lm, generate
    from edgetune.data.text import read_text, split_text

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    data = common.smoke_text(work) if a.smoke else common.require(a.data, "the training text")
    train, held = split_text(read_text(data), 0.1)
    (work / "train.txt").write_text(train, encoding="utf-8")
    (work / "held_out.txt").write_text(held, encoding="utf-8")
    model = str(common.tiny_gguf(work)) if a.smoke else "smollm2"
    size = {"batch_size": 2, "seq_len": 16, "embedding_rows": 32} if a.smoke else {}
    plan = LMPlan(model=model, quant=a.quant, optimizer={"name": "adamw", "lr": a.lr, "weight_decay": 0.0}, **size)
    art = work / f"artifact_{a.quant}"
    t0 = time.time()
    try:  # an artifact of the same plan from an earlier run is reused (exporting SmolLM2 takes minutes)
        from edgetune.contract import load_manifest

        reuse = load_manifest(art, "onnx").model.get("plan") == plan.to_dict()
    except Exception:  # absent or stale: export
        reuse = False
    if not reuse:
        export_lm(plan, work / "train.txt", art, ("onnx",), overwrite=True,
                  progress=lambda m: print(f"  {m} ({time.time() - t0:.0f} s)", flush=True))
    state = work / f"trained_{a.quant}.safetensors"
    state.unlink(missing_ok=True)
    print("held-out perplexity before", flush=True)
    before = evaluate(art, work / "held_out.txt", "onnx", None, a.threads)  # the initial state
    prompt = "ROMEO:\n"
    gen_before = generate(art, prompt, 24, "onnx")
    print(f"  {before}", flush=True)
    cmd = [sys.executable, "-m", "device_harness.runner", "train", str(art), str(work / "train.txt"), "--runtime",
           "onnx", "--steps", str(a.steps), "--state", str(state), "--threads", str(a.threads), "--lr", str(a.lr),
           "--save-every", "50"]
    losses, ms, rss = [], [], []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}) as p:
        for line in p.stdout:
            for r in step_records([line]):
                losses.append(r["loss"]), ms.append(r["ms"]), rss.append(r["peak_rss_mb"])
                if r["step"] % 20 == 0:
                    print(f"  step {r['step']}: loss {sum(losses[-20:]) / 20:.3f} ({r['ms']:.0f} ms)", flush=True)
    if p.returncode or not losses:
        raise SystemExit(f"error: training failed (exit {p.returncode}, {len(losses)} step records)")
    after = evaluate(art, work / "held_out.txt", "onnx", state, a.threads)
    gen_after = generate(art, prompt, 24, "onnx", state)
    drop = 1 - after["perplexity"] / before["perplexity"]
    out = {"config": {"model": "tiny Llama GGUF" if a.smoke else "SmolLM2-135M-Instruct", "quant": a.quant,
                      "plan": plan.to_dict(), "steps": a.steps, "data": f"{data.name} 90/10",
                      "held_out_tokens": before["tokens"]},
           "perplexity_before": round(before["perplexity"], 3), "perplexity_after": round(after["perplexity"], 3),
           "relative_drop": round(drop, 4), "loss_first20": round(sum(losses[:20]) / len(losses[:20]), 4),
           "loss_last20": round(sum(losses[-20:]) / len(losses[-20:]), 4),
           "median_ms_per_step": round(sorted(ms)[len(ms) // 2], 1),
           "peak_rss_mb": max(rss), "generation": {"prompt": prompt, "before": gen_before, "after": gen_after}}
    common.write_json(a.out, out, a.threads, a.smoke)
    print(f"\n{'':<14}{'perplexity':>12}\n{'before':<14}{before['perplexity']:>12.2f}\n{'after':<14}"
          f"{after['perplexity']:>12.2f}\n{'drop':<14}{drop:>12.1%}   (target >= 20%)")
    print(f"\n{prompt!r} before: {gen_before!r}\n{prompt!r} after:  {gen_after!r}\nwrote {a.out}")


if __name__ == "__main__":
    main()
