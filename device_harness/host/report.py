"""Side-by-side report of runs: Markdown table, PNG plots, JSON.

    write_report(runs, out_dir, warmup=3, boards=()) -> out_dir/report.md, report.json,
        loss.png (loss per step), latency.png (step-time distribution after warm-up),
        memory.png (RSS over time); with ``boards``, a "predicted" table per named board
        (`device_harness.host.predict`: on paper, not measured there)
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

from device_harness.host.deploy import RunResult
from device_harness.host.predict import add_predictions
from device_harness.host.profile import DEFAULT_WARMUP, summarize, timeline
from edgetune.errors import ConfigError
from edgetune.files import write_atomic


def label(run: RunResult) -> str:
    """``run_id (runtime, method, optimizer[, budget])``; the device is in the devices table."""
    budget = run.config.get("budget")
    parts = [run.config.get("runtime"), run.artifact.get("method") or "?", run.artifact.get("optimizer", {}).get("name")]
    if budget:
        parts.append(f"budget {budget['name']}")
    return f"{run.run_id} ({', '.join(str(p) for p in parts)})"


def _energy(e: dict) -> str:
    return f"{e['uwh'] / 1000:.2f} mWh" if "uwh" in e else "unavailable"


def markdown(summaries: list[dict], labels: list[str], runs: list[RunResult]) -> str:
    lines = ["# Device runs", "",
             f"Step times exclude the first {max(s['warmup'] for s in summaries)} (warm-up) steps. "
             "`ms` is the step program's wall "
             "time; steps/s is the device's clock over the measured steps (batching and state handling included); "
             "CPU util is CPU time over wall time (2.0 = two cores busy).", "",
             "| run | steps | p50 ms | p95 ms | max ms | steps/s | CPU ms p50 | CPU util | peak RSS MB | fits budget | "
             "loss first → last | energy |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s, name in zip(summaries, labels):
        fits = "—" if s["fits_budget"] is None else ("yes" if s["fits_budget"] else "**no**")
        cpu = f"{s['cpu_ms_p50']:.1f}" if s["cpu_ms_p50"] is not None else "—"
        util = f"{s['cpu_util']:.2f}" if s["cpu_util"] is not None else "—"
        lines.append(f"| {name} | {s['steps']} | {s['ms_p50']:.1f} | {s['ms_p95']:.1f} | {s['ms_max']:.1f} | "
                     f"{s['steps_per_s']:.2f} | {cpu} | {util} | {s['peak_rss_mb']:.0f} | {fits} | "
                     f"{s['loss_first']:.3f} → {s['loss_last']:.3f} | {_energy(s['energy'])} |")
    lines += ["", "## Devices", "", "| run | device | CPU | cores usable/all | RAM MB | OS | runtime versions | budget |",
              "|---|---|---|---|---|---|---|---|"]
    for run, name in zip(runs, labels):
        f, budget = run.facts, run.config.get("budget")
        pk = ", ".join(f"{k} {v}" for k, v in f.get("packages", {}).items() if v and k in ("onnxruntime", "executorch"))
        applied = next((s.get("budget") for s in run.starts if s.get("budget")), {}) or {}
        btxt = (f"{budget['name']}: {budget['cores']} cores, {budget['max_rss_mb']:.0f} MB"
                + (f" ({applied['cpus_note']})" if applied.get("cpus_note") else "")) if budget else "—"
        ram = f"{f['ram_mb']:.0f}" if f.get("ram_mb") else "?"
        lines.append(f"| {run.run_id} | {run.device} | {f.get('cpu_model')} | {f.get('usable_cores')}/{f.get('cores')} | {ram} | "
                     f"{f.get('os')} | {pk} | {btxt} |")
    if any(s.get("predicted") for s in summaries):
        lines += ["", "## Predicted step times on named boards (on paper, not measured there)", "",
                  PREDICTED_NOTE, "", "| run | board | floor ms (bound) | predicted p50 ms | measured p50 ms |",
                  "|---|---|---|---|---|"]
        for s, name in zip(summaries, labels):
            for p in s.get("predicted", []):
                lines.append(f"| {name} | {p['board']} | {p['floor_ms']:.1f} ({p['bound']}) | {_predicted(p)} | "
                             f"{s['ms_p50']:.1f} |")
        lines += ["", "Throughput sources:", *[f"- {b}: {src}" for b, src in _sources(summaries).items()]]
    notes = [f"- {run.run_id}: {s['energy'].get('unavailable')}" for s, run in zip(summaries, runs)
             if "unavailable" in s["energy"]]
    if notes:
        lines += ["", "Energy could not be measured where:", *notes]
    lines += ["", "![loss](loss.png)", "", "![step latency](latency.png)", "", "![memory](memory.png)", ""]
    return "\n".join(lines)


def plots(runs: list[RunResult], labels: list[str], summaries: list[dict], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)

    fig, ax = plt.subplots(figsize=(7, 4))
    for run, name in zip(runs, labels):
        ax.plot([r["step"] for r in run.records], [r["loss"] for r in run.records], lw=1, label=name)
    ax.set(xlabel="step", ylabel="training loss", title="Loss")
    ax.legend(fontsize=7)
    save(fig, "loss.png")

    # wide and one band per run: the run labels sit on the y axis
    fig, ax = plt.subplots(figsize=(10, max(3.0, 1.5 + 0.5 * len(runs))))
    # the steps each profile measured (a run stopped over budget during warm-up: all it took)
    data = [[r["ms"] for r in run.records[s["warmup"]:]] for run, s in zip(runs, summaries)]
    ax.boxplot(data, orientation="horizontal", showfliers=True)
    ax.set_yticks(range(1, len(labels) + 1), [textwrap.fill(n, 40) for n in labels], fontsize=7)
    ax.set(xlabel="ms per step (after warm-up)", title="Step latency")
    save(fig, "latency.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    for run, name in zip(runs, labels):
        ax.plot(timeline(run.records), [r["rss_mb"] for r in run.records], lw=1, label=name)
        budget = run.config.get("budget")
        if budget:
            ax.axhline(budget["max_rss_mb"], ls="--", lw=1, color="gray")
            ax.text(0, budget["max_rss_mb"], f" {budget['name']} cap", fontsize=7, va="bottom", color="gray")
    ax.set(xlabel="seconds since the run began", ylabel="RSS MB", title="Memory over time")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    save(fig, "memory.png")
    return written


def write_report(runs: list[RunResult], out_dir: str | Path, warmup: int = DEFAULT_WARMUP, boards=()) -> Path:
    """Write the report of ``runs`` side by side, with step times predicted for ``boards``;
    returns the Markdown file's path."""
    if not runs:
        raise ConfigError("no runs to report; pass run directories written by `device-harness run`")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summaries = [summarize(r, warmup) for r in runs]
    if boards:
        add_predictions(summaries, runs, boards)
    labels = [label(r) for r in runs]
    images = plots(runs, labels, summaries, out)
    payload = {"warmup": warmup, "runs": [{"label": n, "summary": s, "facts": r.facts, "config": r.config,
                                           "artifact": r.artifact, "memory": [[float(t), r2["rss_mb"]] for t, r2 in
                                                                               zip(timeline(r.records), r.records)]}
                                          for n, s, r in zip(labels, summaries, runs)],
               "images": images}
    write_atomic(out / "report.json", json.dumps(payload, indent=1).encode())
    md = out / "report.md"
    write_atomic(md, markdown(summaries, labels, runs).encode())
    return md


PREDICTED_NOTE = ("Predicted from the step's counted FLOPs and bytes and each board's published throughput: the "
                  "floor is the roofline's (no step is faster); the prediction scales the measured p50 by the ratio of "
                  "floors, assuming the step keeps the fraction of its floor it reached where it was measured.")


def _predicted(p: dict) -> str:
    return f"{p['predicted_ms']:.1f}" if p["predicted_ms"] is not None else "— (the run's device has no known throughput)"


def _sources(summaries: list[dict]) -> dict[str, str]:
    return {p["board"]: p["source"] for s in summaries for p in s.get("predicted", [])}


def prediction_table(summaries: list[dict]) -> str:
    """The predicted step times of `add_predictions`, for the terminal."""
    rows = ["predicted (on paper, not measured on the board):",
            f"{'run':<34}{'board':<11}{'floor ms':>10}{'bound':>9}{'predicted ms':>14}{'measured ms':>13}"]
    for s in summaries:
        for p in s.get("predicted", []):
            pred = f"{p['predicted_ms']:.1f}" if p["predicted_ms"] is not None else "-"
            rows.append(f"{s['run_id'][:33]:<34}{p['board']:<11}{p['floor_ms']:>10.1f}{p['bound']:>9}{pred:>14}"
                        f"{s['ms_p50']:>13.1f}")
    if any(p["predicted_ms"] is None for s in summaries for p in s.get("predicted", [])):
        rows.append("-: the run's device is neither this machine nor a named board, so only the floor is known")
    rows += ["sources:", *[f"  {b}: {src}" for b, src in _sources(summaries).items()]]
    return "\n".join(rows)


def profile_table(summaries: list[dict]) -> str:
    """A compact text table for the terminal."""
    rows = [f"{'run':<34}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'steps/s':>9}{'peak MB':>9}{'fits':>6}  energy"]
    for s in summaries:
        fits = "-" if s["fits_budget"] is None else ("yes" if s["fits_budget"] else "NO")
        rows.append(f"{s['run_id'][:33]:<34}{s['ms_p50']:>9.1f}{s['ms_p95']:>9.1f}{s['ms_max']:>9.1f}"
                    f"{s['steps_per_s']:>9.2f}{s['peak_rss_mb']:>9.0f}{fits:>6}  {_energy(s['energy'])}")
    return "\n".join(rows)
