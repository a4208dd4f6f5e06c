"""Forward-only training (MeZO, LOZO, LOZO-M) against inference and first-order training.

Memory and speed (MiniLM-L6, LoRA r=8 on query/value + head, batch 16 x 40): each row
is its own process running only that loop, so its peak RSS is the loop's: the
inference program, the LOZO step and the first-order AdamW step, on ONNX Runtime and
ExecuTorch. Targets: ZO peak RSS <= 1.15x inference; ZO ms/step ~ 2x a forward.

Quality (BANKING77, 10 examples per class, the quality benchmark's protocol): first-order
LoRA (AdamW) for its usual steps, with a random head (the quality protocol) and with a
class-centroid head; then MeZO, LOZO and LOZO-M, from the centroid head (forward-only
steps cannot learn a random 77-way head in any practical number of steps), for up to 20x as many,
all through the exported ONNX step with the runner; accuracy and cross-entropy on test.csv
at checkpoints, plotted against forward passes (a ZO step is 2 forwards; a first-order step
1 forward + 1 backward), and each low-rank method against MeZO at the same checkpoints.
ZO steps use a constant learning rate (as MeZO/LOZO do), first-order the linear schedule.

    python benchmarks/zo.py --data ../shared/data/banking77 [--part memory quality] [--zo-steps-factor 20] [--seeds 0 1 2]
    python benchmarks/zo.py --smoke          # the tiny classifier on the demo notes, LOZO only, 2x steps

Writes benchmarks/results/zo.json (seeds accumulate over invocations) and zo.png.
JSON keys: config, memory (runtime, row, ms, peak_rss_mb, error, ratios), quality
(seed -> run -> curve, final, ...), vs_mezo, over_seeds, environment, smoke.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
import common  # noqa: E402
import quality  # noqa: E402  (the shared BANKING77 protocol)

LORA = {"method": "lora", "r": 8, "alpha": 16.0, "targets": ["query", "value"]}
FO_LR = 2e-3
# MeZO's lr from 800-step probes (1e-4, 3e-4; at 1e-3 it drifted down, 81.0 -> 77.2% by step
# 2410). LOZO's perturbation U V^T has entries of variance r (MeZO's z: 1), so its update
# c U V^T is about r times MeZO's at the same lr: LOZO runs at MeZO's lr / r, the same step
# size (docs/methods.md's 1/r factor, absorbed in lr). At 1e-3 LOZO diverged (loss 2e5 by step 1200).
MEZO_LR, RANK = 3e-4, 2
ZO = {"mezo": {"lr": MEZO_LR}, "lozo": {"lr": MEZO_LR / RANK}, "lozo_m": {"lr": MEZO_LR / RANK}}
ZO_COMMON = {"eps": 1e-3, "rank": RANK, "nu": 50, "weight_decay": 0.0}


def plan(optimizer: dict, seed: int = 0, head_init: str = "random"):
    from edgetune.app.classifier import ClassifierPlan

    return ClassifierPlan(model=quality.MODEL, adapter=dict(LORA), embedding_rows=0, train_head=True,
                          head_init=head_init, optimizer=optimizer, batch_size=quality.BATCH, seq_len=quality.SEQ,
                          seed=seed)


def run_optimizer(name: str, run: dict) -> dict:
    """The optimizer a stored run used (runs recorded before it was kept: from their name)."""
    return run.get("optimizer") or zo_optimizer(name)


def zo_optimizer(run: str) -> dict:
    """``mezo`` | ``lozo`` | ``lozo_m`` (the learning rates above), or ``METHOD@LR``."""
    method, _, lr = run.partition("@")
    return {"name": "zo", "method": method, **ZO_COMMON, **ZO[method], **({"lr": float(lr)} if lr else {})}


# ------------------------------------------------------------------ memory and speed
def child(kind: str, runtime: str, art: str, data: str, steps: int) -> None:
    """One loop in this process; prints RESULT {...} with ms per iteration and peak RSS."""
    from device_harness.runner import Trainer, encode_arrays, rss_mb
    from device_harness.runtimes import open_program
    from edgetune.contract import load_manifest

    d = Path(art)
    manifest = load_manifest(d, runtime)
    arrays = encode_arrays(d, manifest, data)
    batch = {k: v[:manifest.batch_size] for k, v in arrays.items()}
    times = []
    if kind == "infer":
        from edgetune.contract.state import resume_or_initial

        prog = open_program(d, manifest, "infer", runtime)
        state, _ = resume_or_initial(d, manifest, None)
        feeds = {t.name: (state | batch)[t.name] for t in prog.spec.inputs}
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            prog.run(feeds)
            times.append(time.perf_counter() - t0)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            tr = Trainer(d, runtime, Path(tmp) / "s.safetensors")
            for _ in range(steps + 1):
                times.append(tr.train_step(batch).ms / 1000)
    _, peak = rss_mb()
    print("RESULT " + json.dumps({"ms": 1000 * statistics.median(times[1:]), "peak_rss_mb": peak, "iterations": steps}))


def memory_part(work: Path, data_csv: Path, steps: dict[str, int]) -> list[dict]:
    from edgetune.app.classifier import export_classifier

    arts = {}
    for name, opt in (("fo", {"name": "adamw", "lr": FO_LR, "weight_decay": 0.0}), ("zo", zo_optimizer("lozo"))):
        arts[name] = work / f"art_{name}"
        export_classifier(plan(opt), data_csv, arts[name], formats=("onnx", "executorch"), overwrite=True)
    rows = []
    for runtime in ("onnx", "executorch"):
        for kind, art in (("infer", arts["fo"]), ("zo_step", arts["zo"]), ("fo_step", arts["fo"])):
            p = subprocess.run([sys.executable, __file__, "--child", kind, runtime, str(art), str(data_csv),
                                str(steps[runtime])], capture_output=True, text=True,
                               env={**os.environ, "PYTHONWARNINGS": "ignore"})
            line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
            row = {"runtime": runtime, "row": kind, "ms": None, "peak_rss_mb": None, "error": None}
            if p.returncode or not line:
                row["error"] = (p.stderr.strip().splitlines() or ["no output"])[-1][:300]
            else:
                r = json.loads(line[0][7:])
                row.update(ms=round(r["ms"], 2), peak_rss_mb=round(r["peak_rss_mb"], 1), iterations=r["iterations"])
            rows.append(row)
            print(f"{runtime:<11}{kind:<9}" + (f"{row['ms']:>10.1f} ms{row['peak_rss_mb']:>9.0f} MB" if not row["error"]
                                               else f"  error: {row['error']}"), flush=True)
    for runtime in ("onnx", "executorch"):
        base = {r["row"]: r for r in rows if r["runtime"] == runtime and not r["error"]}
        for r in rows:
            if r["runtime"] == runtime and "infer" in base and not r["error"]:
                r["ms_ratio_to_forward"] = round(r["ms"] / base["infer"]["ms"], 3)
                r["rss_ratio_to_infer"] = round(r["peak_rss_mb"] / base["infer"]["peak_rss_mb"], 3)
                if "fo_step" in base:
                    r["rss_ratio_to_first_order"] = round(r["peak_rss_mb"] / base["fo_step"]["peak_rss_mb"], 3)
    return rows


# ------------------------------------------------------------------ quality
def train_curve(opt: dict, head_init: str, train_csv: Path, test_csv: Path, steps: int, checkpoints: list[int],
                seed: int, work: Path, threads: int, desc: str, schedule: str) -> dict:
    from tqdm import tqdm

    from device_harness.runner import Trainer, evaluate
    from edgetune.app.classifier import export_classifier

    art = work / "artifact"
    export_classifier(plan(opt, seed, head_init), train_csv, art, formats=("onnx",), overwrite=True)
    state = work / "trained.safetensors"
    state.unlink(missing_ok=True)
    tr = Trainer(art, "onnx", state, threads)
    def point(step: int, state_path: Path) -> dict:
        res = evaluate(art, test_csv, "onnx", state_path, threads)
        return {"step": step, "accuracy": res["accuracy"], "loss": round(res["loss"], 5)}

    curve = [point(0, art / "state.safetensors")]
    t0, losses = time.perf_counter(), []
    evaluate_at = set(checkpoints)
    with tqdm(total=steps, desc=desc, unit="step", leave=False) as bar:
        for rec in tr.train(train_csv, steps, seed=seed, save_every=0, schedule=schedule):
            losses.append(rec.loss)
            bar.set_postfix(loss=f"{statistics.fmean(losses[-50:]):.3f}")
            bar.update(1)
            if rec.step in evaluate_at:
                tr.save()
                curve.append(point(rec.step, state))
                tqdm.write(f"  {desc} step {rec.step}: acc {curve[-1]['accuracy']:.4f}, loss {curve[-1]['loss']:.4f}")
    return {"optimizer": opt, "curve": curve, "seconds": time.perf_counter() - t0, "final": curve[-1]["accuracy"],
            "loss_every_50": [round(statistics.fmean(losses[i:i + 50]), 4) for i in range(0, len(losses), 50)]}


def quality_part(a, work: Path) -> dict:
    train = quality.read_split(a.data / "train.csv")
    test = quality.read_split(a.data / "test.csv")
    test_csv = quality.write_csv(work / "test.csv", test)
    out = {}
    for seed in a.seeds:
        train_csv = quality.write_csv(work / "fewshot.csv", quality.fewshot(train, quality.PER_CLASS, seed))
        fo_steps = -(-len(quality.fewshot(train, quality.PER_CLASS, seed)) * quality.EPOCHS["fewshot"] // quality.BATCH)
        adamw = {"name": "adamw", "lr": FO_LR, "weight_decay": 0.0}
        runs = {name: train_curve(adamw, head, train_csv, test_csv, fo_steps, [fo_steps], seed, work, a.threads,
                                  f"s{seed} {name}", "linear")
                for name, head in (("lora_adamw", "random"), ("lora_adamw_centroids", "centroids"))}
        zo_steps = fo_steps * a.zo_steps_factor
        marks = sorted({max(1, round(zo_steps * f / 8)) for f in range(1, 9)})
        for run in a.zo_methods:
            runs[run] = train_curve(zo_optimizer(run), "centroids", train_csv, test_csv, zo_steps, marks, seed,
                                    work, a.threads, f"s{seed} {run}", "constant")
        for name, r in runs.items():
            per_step = 1 if name.startswith("lora_adamw") else 2
            for pt in r["curve"]:
                pt["forward_passes"] = pt["step"] * per_step * quality.BATCH
        out[seed] = runs
    return out


def plot(result: dict, path: Path) -> None:
    """Held-out accuracy and loss, and the training loss, against forward passes: means over the
    seeds that have every run (every seed takes the same steps, so the checkpoints line up)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    # the seeds that have every run, so that each curve is a mean over the same seeds
    names = list(dict.fromkeys(n for runs in result["quality"].values() for n in runs))
    kept = [seed for seed, runs in result["quality"].items() if set(names) <= set(runs)]
    if not kept:  # no seed has them all: the first seed's runs
        kept = [next(iter(result["quality"]))]
        names = list(result["quality"][kept[0]])
    seeds = [result["quality"][seed] for seed in kept]

    def mean_curve(name: str, key: str) -> tuple[list, list]:
        curves = [runs[name]["curve"] for runs in seeds]
        return ([p["forward_passes"] for p in curves[0]],
                [statistics.fmean(c[i][key] for c in curves) for i in range(len(curves[0]))])

    zo_steps = next(r["curve"][-1]["step"] for runs in seeds for n, r in runs.items() if not n.startswith("lora_adamw"))
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    for ax, key in zip(axes, ("accuracy", "loss")):
        fo, fo_c = mean_curve("lora_adamw", key)[1][-1], mean_curve("lora_adamw_centroids", key)[1][-1]
        steps = seeds[0]["lora_adamw"]["curve"][-1]["step"]
        ax.axhline(fo, color="black", lw=1, label=f"first-order LoRA (AdamW), {steps} steps")
        ax.axhline(fo_c, color="black", lw=1, ls=":", label="first-order LoRA from the centroid head")
        if key == "accuracy":
            ax.axhline(0.85 * fo, color="gray", lw=1, ls="--", label="85% of first-order")
            ax.set_ylim(0.85 * fo - 0.01, max(fo, fo_c) + 0.01)
        for name in names:
            if name.startswith("lora_adamw") or not all(key in p for runs in seeds for p in runs[name]["curve"]):
                continue
            lr = run_optimizer(name, seeds[0][name])["lr"]
            ax.plot(*mean_curve(name, key), marker="o", ms=3, label=f"{name.partition('@')[0]}, lr {lr:g}")
        ax.set_xlabel("forward passes (examples)")
        ax.set_ylabel(f"{'accuracy' if key == 'accuracy' else 'cross-entropy'} on BANKING77 test.csv")
        ax.legend(fontsize=7)
    ax = axes[2]  # what the steps minimize: the training loss, over the last 250 steps
    for name in names:
        if name.startswith("lora_adamw"):
            continue
        windows = [runs[name]["loss_every_50"] for runs in seeds]
        mean = [statistics.fmean(w[i] for w in windows) for i in range(len(windows[0]))]
        ax.plot([min(50 * (i + 1), zo_steps) * 2 * result["config"]["batch"] for i in range(len(mean))],
                [statistics.fmean(mean[max(0, i - 4):i + 1]) for i in range(len(mean))], lw=1, label=name)
    ax.set_xlabel("forward passes (examples)")
    ax.set_ylabel("training loss (mean of the last 250 steps)")
    ax.legend(fontsize=7)
    for ax in axes:
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:.0f}k"))
    fig.suptitle(f"Forward-only training, MiniLM-L6 + LoRA r=8, 10 examples per class (seed{'s' * (len(kept) > 1)} "
                 f"{', '.join(kept)}; every seed in the JSON)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", nargs=5, metavar=("KIND", "RUNTIME", "ARTIFACT", "DATA", "STEPS"), help=argparse.SUPPRESS)
    ap.add_argument("--part", nargs="+", default=["memory", "quality"], choices=["memory", "quality", "tables"],
                    help="tables: only recompute the comparisons, tables and plot from the JSON")
    ap.add_argument("--data", type=Path, default=None, help="BANKING77 directory (train.csv, test.csv: text,category)")
    ap.add_argument("--smoke", action="store_true", help="the tiny classifier on the demo notes, LOZO only, 2x steps")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--zo-methods", nargs="+", default=["mezo", "lozo", "lozo_m"],
                    help="runs: METHOD (its learning rate above) or METHOD@LR; results are added to the JSON's")
    ap.add_argument("--zo-steps-factor", type=int, default=20, help="ZO steps as a multiple of first-order steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/zo.json")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    if a.child:
        kind, runtime, art, data, steps = a.child
        return child(kind, runtime, art, data, int(steps))
    quality.configure(a.smoke)
    a.out = a.out or common.default_out("zo", a.smoke)
    mem_steps = {"onnx": 20, "executorch": 2}
    if a.smoke:
        a.data = common.smoke_classification(Path(tempfile.mkdtemp(prefix="zo_smoke.")))
        a.seeds, a.zo_methods, a.zo_steps_factor, mem_steps = [0], ["lozo"], 2, {"onnx": 3, "executorch": 2}
        a.out.unlink(missing_ok=True)  # smoke results never accumulate
    if "tables" not in a.part or len(a.part) > 1:
        common.require(a.data and a.data / "train.csv", "train.csv and test.csv (text,category; BANKING77's layout)")
    result = json.loads(a.out.read_text()) if a.out.exists() else {}
    result["config"] = {"model": "all-MiniLM-L6-v2" if quality.MODEL == "minilm" else quality.MODEL, "adapter": LORA,
                        "batch": quality.BATCH, "seq": quality.SEQ, "threads": a.threads,
                        "zo": {m: {**ZO_COMMON, **ZO[m]} for m in ZO}, "first_order_lr": FO_LR}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "memory" in a.part:
            # one example per class: the same 77-way model as the quality part
            data_csv = quality.write_csv(work / "mem.csv", quality.fewshot(quality.read_split(a.data / "train.csv"), 1, 0))
            result["memory"] = memory_part(work, data_csv, mem_steps)
        if "quality" in a.part:
            # seeds accumulate across invocations (each run records its own optimizer settings)
            for seed, runs in quality_part(a, work).items():
                result.setdefault("quality", {}).setdefault(str(seed), {}).update(runs)
    if "quality" in result:
        result["vs_mezo"] = {seed: compare_to_mezo(runs) for seed, runs in result["quality"].items()}
        result["over_seeds"] = over_seeds(result["quality"])
    result.pop("environment", None), result.pop("smoke", None)
    common.write_json(a.out, result, a.threads, a.smoke)  # atomic: a killed run leaves the old results whole
    print_tables(result)
    if "quality" in result:
        plot(result, a.out.with_suffix(".png"))
    print(f"wrote {a.out}")


def print_tables(result: dict) -> None:
    if "memory" in result:
        print(f"\n{'runtime':<11}{'row':<9}{'ms':>10}{'x forward':>11}{'peak RSS MB':>13}{'x infer':>9}{'x 1st-order':>13}")
        for r in result["memory"]:
            if r["error"]:
                print(f"{r['runtime']:<11}{r['row']:<9}  error: {r['error'][:90]}")
                continue
            print(f"{r['runtime']:<11}{r['row']:<9}{r['ms']:>10.1f}{r.get('ms_ratio_to_forward', 0):>11.2f}"
                  f"{r['peak_rss_mb']:>13.0f}{r.get('rss_ratio_to_infer', 0):>9.2f}{r.get('rss_ratio_to_first_order', 0):>13.2f}")
    for seed, runs in result.get("quality", {}).items():
        fo = runs["lora_adamw"]["final"]
        print(f"\nseed {seed}: first-order LoRA {fo:.4f} (random head), {runs['lora_adamw_centroids']['final']:.4f} "
              f"(centroid head) after {runs['lora_adamw']['curve'][-1]['step']} steps")
        for name, r in runs.items():
            if not name.startswith("lora_adamw"):
                pts = ", ".join(f"{p['step']}: {p['accuracy']:.3f}" + (f"/{p['loss']:.3f}" if "loss" in p else "")
                                for p in r["curve"])
                print(f"  {name:<8} final {r['final']:.4f} ({r['final'] / fo:.0%} of first-order); {pts}")
        for name, c in compare_to_mezo(runs).items():
            print(f"  {name} - {c['reference']} at equal forward passes, mean over {c['checkpoints']} checkpoints: accuracy "
                  f"{c['accuracy_mean']:+.4f}" + (f", loss {c['loss_mean']:+.4f}" if "loss_mean" in c else "")
                  + f"; ahead on accuracy at {c['accuracy_ahead']}"
                  + (f", on loss at {c['loss_ahead']}" if "loss_ahead" in c else "")
                  + f"; training loss {c['train_loss_mean']:+.4f} (last 50 steps {c['train_loss_last']:+.4f}), "
                    f"lower in {c['train_loss_ahead']} windows")
    if result.get("quality"):
        print(f"\n{'over seeds':<22}{'seeds':>6}{'accuracy':>18}{'held-out loss':>18}{'train loss':>11}"
              f"{'acc - mezo':>12}{'loss - mezo':>13}{'train - mezo':>14}")
        for name, row in over_seeds(result["quality"]).items():
            loss = f"{row['loss_mean']:.4f} ± {row['loss_std']:.4f}" if "loss_mean" in row else "-"
            print(f"{name:<22}{row['seeds']:>6}{row['accuracy_mean']:>10.4f} ± {row['accuracy_std']:.4f}{loss:>18}"
                  f"{row['train_loss_last_mean']:>11.4f}{row.get('vs_mezo_accuracy_mean', float('nan')):>+12.4f}"
                  f"{row.get('vs_mezo_loss_mean', float('nan')):>+13.4f}"
                  f"{row.get('vs_mezo_train_loss_mean', float('nan')):>+14.4f}")


def over_seeds(quality: dict) -> dict:
    """Per run name, across seeds: final accuracy and held-out loss (mean, sample std), training
    loss over the last 50 steps and, for all but the reference, the mean differences from the
    MeZO run of the same step size at equal forward passes (`compare_to_mezo`)."""
    out = {}
    names = sorted({n for runs in quality.values() for n in runs})
    for name in names:
        runs = [runs[name] for runs in quality.values() if name in runs]
        acc = [r["final"] for r in runs]
        loss = [r["curve"][-1]["loss"] for r in runs if "loss" in r["curve"][-1]]
        row = {"seeds": len(runs), "accuracy_mean": statistics.fmean(acc),
               "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0}
        if len(loss) == len(runs):
            row.update(loss_mean=statistics.fmean(loss), loss_std=statistics.stdev(loss) if len(loss) > 1 else 0.0)
        row["train_loss_last_mean"] = statistics.fmean(r["loss_every_50"][-1] for r in runs)
        diffs = [d[name] for d in map(compare_to_mezo, quality.values()) if name in d]
        if diffs:
            row["vs_mezo_accuracy_mean"] = statistics.fmean(d["accuracy_mean"] for d in diffs)
            row["vs_mezo_train_loss_mean"] = statistics.fmean(d["train_loss_mean"] for d in diffs)
            if all("loss_mean" in d for d in diffs):
                row["vs_mezo_loss_mean"] = statistics.fmean(d["loss_mean"] for d in diffs)
        out[name] = row
    return out


def compare_to_mezo(runs: dict) -> dict:
    """Each LOZO / LOZO-M run against the MeZO run of the same step size (MeZO's lr = rank x
    LOZO's lr, see ZO above) at the same checkpoints, which are the same forward passes (both
    take 2 per step): mean accuracy, held-out loss and training-loss differences, and where it
    is ahead."""
    def opt(name: str) -> dict:
        return run_optimizer(name, runs[name])

    mezo = {opt(n)["lr"]: n for n in runs if n.partition("@")[0] == "mezo"}
    out = {}
    for name, run in runs.items():
        if name.partition("@")[0] not in ("lozo", "lozo_m"):
            continue
        ref_name = next((m for lr, m in mezo.items() if math.isclose(lr, opt(name)["rank"] * opt(name)["lr"])), None)
        if ref_name is None:
            continue
        ref = {p["step"]: p for p in runs[ref_name]["curve"] if p["step"] > 0}
        pts = [(p, ref[p["step"]]) for p in run["curve"] if p["step"] in ref]
        if not pts:
            continue
        c = {"reference": ref_name, "checkpoints": len(pts),
             "accuracy_mean": statistics.fmean(p["accuracy"] - m["accuracy"] for p, m in pts),
             "accuracy_ahead": f"{sum(p['accuracy'] > m['accuracy'] for p, m in pts)}/{len(pts)}"}
        if all("loss" in p and "loss" in m for p, m in pts):
            c["loss_mean"] = statistics.fmean(p["loss"] - m["loss"] for p, m in pts)
            c["loss_ahead"] = f"{sum(p['loss'] < m['loss'] for p, m in pts)}/{len(pts)}"
        # the training loss in windows of 50 steps (what the step minimizes; the windows line up too)
        windows = list(zip(run["loss_every_50"], runs[ref_name]["loss_every_50"]))
        c["train_loss_mean"] = statistics.fmean(x - y for x, y in windows)
        c["train_loss_last"] = windows[-1][0] - windows[-1][1]
        c["train_loss_ahead"] = f"{sum(x < y for x, y in windows)}/{len(windows)}"
        out[name] = c
    return out


if __name__ == "__main__":
    main()
