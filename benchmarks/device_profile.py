"""The MiniLM-L6 demo artifact profiled through the device harness on this machine.

Rows, for each runtime (same artifact, data, steps and seed; each a fresh device-side process):
  local          the runner as a local process (the baseline: no transport)
  ssh            deployed and run through a real OpenSSH server on 127.0.0.1
  ssh + pi4-2gb  the same under an emulated Raspberry Pi 4 (2 GB) budget
  ssh + phone-2gb  and under the 2 GB phone budget
  emulated pi4   with --emulated-pi DIR (ONNX Runtime only): the runner on an emulated Raspberry Pi 4
                 (device-harness emulate: arm64 Debian under qemu), --emulated-steps steps. Correctness
                 only: its losses are compared with the local run's; its step times are an emulator's
  predicted B    for each named board B (device_harness.host.boards): the local run's p50 scaled by the
                 ratio of the step's roofline floors there and here (device_harness.host.predict). On
                 paper, from published throughput figures: no board ran it

The budgets pin cores and cap memory; they do not slow this CPU down to a board's, so
their step times are this machine's (see device_harness.host.budgets).

    python benchmarks/device_profile.py [--steps 60] [--runtime onnx executorch] [--ssh URL --key K --known-hosts F]
    python benchmarks/device_profile.py --smoke   # the tiny classifier, 6 steps per run
    python benchmarks/device_profile.py --emulated-pi ~/.cache/edgetune/emulated/pi4

Without --ssh it starts its own sshd on 127.0.0.1 (as the tests do). Writes the report
(Markdown + PNGs + JSON) and each run's run.json to benchmarks/results/device_profile/,
and the ratio table to benchmarks/results/device_profile.json (keys: steps, warmup, runtime,
device, rows (row, runtime, ms_p50, ms_p95, ms_max, steps_per_s, peak_rss_mb, cpu_util,
fits_budget, budget, ratios to local, and for the emulated row max_loss_rel_to_local),
for the predicted rows predicted, floor_ms, bound, environment, smoke).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import common

from device_harness.host.boards import BOARDS
from device_harness.runtimes import RUNNERS

ROOT = Path(__file__).resolve().parent


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runtime", nargs="+", default=list(RUNNERS), choices=list(RUNNERS))
    ap.add_argument("--ssh", default=None, help="ssh://user@host:port of a board (default: a local sshd)")
    ap.add_argument("--key", default=None)
    ap.add_argument("--known-hosts", default=None)
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/device_profile")
    ap.add_argument("--smoke", action="store_true", help="the tiny classifier, 6 steps per run")
    ap.add_argument("--emulated-pi", type=Path, default=None,
                    help="root of an emulated Pi 4 (built or reused here, as `device-harness emulate pi4 --root`)")
    ap.add_argument("--emulated-steps", type=int, default=10, help="steps of the emulated row (tens of times slower)")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    a.out = a.out or common.default_out("device_profile", a.smoke).with_suffix("")
    if a.smoke:
        a.steps, a.warmup = min(a.steps, 6), min(a.warmup, 1)
    if a.emulated_pi and a.emulated_steps <= a.warmup:
        ap.error(f"--emulated-steps {a.emulated_steps} leaves no step after the {a.warmup} warm-up steps")

    from tqdm import tqdm

    from device_harness.host.budgets import get_budget
    from device_harness.host.cli import device_spec, open_transport
    from device_harness.host.deploy import RunConfig, run_on_device
    from device_harness.host.report import write_report
    from device_harness.host.transports.local import LocalTransport
    from edgetune.app.classifier import ClassifierPlan, export_classifier
    from edgetune.data.demo import write_demo_data

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train_csv, _ = write_demo_data(work / "data")
        art = work / "artifact"
        plan = ClassifierPlan(model="tiny", embedding_rows=64) if a.smoke else ClassifierPlan()
        print(f"exporting the demo artifact ({plan.model}, LoRA + embedding rows + head)", flush=True)
        export_classifier(plan, train_csv, art, formats=tuple(a.runtime))
        server = None
        if a.ssh:
            spec = device_spec(a.ssh, {}, key=a.key, known_hosts=a.known_hosts)
        else:
            server = common.test_helper("sshd_server").start_sshd(work / "sshd")
            spec = {**device_spec(server.url, {}), "key": str(server.key), "known_hosts": str(server.known_hosts),
                    "workdir": server.workdir, "python": sys.executable}
        rows = [(f"{rt} {where}", rt, s, budget) for rt in a.runtime
                for where, s, budget in (("local", None, None), ("ssh", spec, None), ("ssh + pi4-2gb", spec, "pi4-2gb"),
                                         ("ssh + phone-2gb", spec, "phone-2gb"))]
        if a.emulated_pi and "onnx" in a.runtime:
            from device_harness.host.emulate import prepare

            python = prepare("pi4", a.emulated_pi, progress=lambda m: print(m, flush=True))
            rows.append(("onnx emulated pi4", "onnx", {"transport": "local", "python": str(python)}, None))
        results = []
        try:
            for name, runtime, s, budget in rows:
                steps = min(a.steps, a.emulated_steps) if "emulated" in name else a.steps
                cfg = RunConfig(steps=steps, runtime=runtime, budget=get_budget(budget) if budget else None,
                                total_steps=a.steps)  # the emulated row's first steps: the same learning rates
                transport = LocalTransport() if s is None else open_transport(s)
                with transport, tqdm(total=steps, desc=name, unit="step", leave=False) as bar:
                    run_id = name.replace(" + ", "-").replace(" ", "-")
                    results.append(run_on_device(transport, art, train_csv, work / "runs" / run_id, cfg, run_id=run_id,
                                                 on_record=lambda r: bar.update(1)))
        finally:
            if server:
                server.stop()
    md = write_report(results, a.out, a.warmup, boards=tuple(BOARDS))
    for r in results:  # the runs themselves: `device-harness report benchmarks/results/device_profile/runs/*`
        r.save(a.out / "runs" / r.run_id)
    # the report's profiles, with its predictions (this machine measured once, there)
    summaries = [r["summary"] for r in json.loads((md.parent / "report.json").read_text())["runs"]]
    local = {rt: s for (_, rt, where, _), s in zip(rows, summaries) if where is None}  # each runtime's baseline
    local_losses = {rt: [x["loss"] for x in r.records] for (_, rt, where, _), r in zip(rows, results) if where is None}
    table = []
    print(f"\n{'row':<32}{'p50 ms':>9}{'x local':>9}{'p95 ms':>9}{'steps/s':>9}{'peak MB':>9}{'x local':>9}{'fits':>6}")
    for (name, rt, _, _), s in zip(rows, summaries):
        row = {"row": name, "runtime": rt,
               **{k: s[k] for k in ("ms_p50", "ms_p95", "ms_max", "steps_per_s", "peak_rss_mb", "cpu_util",
                                    "fits_budget", "budget")},
               "ms_p50_ratio_to_local": s["ms_p50"] / local[rt]["ms_p50"],
               "peak_rss_ratio_to_local": s["peak_rss_mb"] / local[rt]["peak_rss_mb"]}
        if "emulated" in name:  # correctness only: the same losses as this machine's run
            mine = [x["loss"] for x in results[len(table)].records]
            row["max_loss_rel_to_local"] = max(abs(x - y) / abs(y) for x, y in zip(mine, local_losses[rt]))
            print(f"{name}: correctness only (an emulator's speed); losses within "
                  f"{row['max_loss_rel_to_local']:.1e} (relative) of the local run's")
        table.append(row)
        fits = "-" if s["fits_budget"] is None else ("yes" if s["fits_budget"] else "NO")
        print(f"{name:<32}{s['ms_p50']:>9.1f}{row['ms_p50_ratio_to_local']:>9.2f}{s['ms_p95']:>9.1f}"
              f"{s['steps_per_s']:>9.2f}{s['peak_rss_mb']:>9.0f}{row['peak_rss_ratio_to_local']:>9.2f}{fits:>6}")
    print(f"\npredicted from each runtime's local run (on paper, not measured on the boards):\n"
          f"{'row':<32}{'p50 ms':>9}{'x local':>9}{'floor ms':>10}  bound")
    for rt, s in local.items():
        for p in s["predicted"]:
            row = {"row": f"{rt} predicted {p['board']}", "runtime": rt, "predicted": True, "ms_p50": p["predicted_ms"],
                   "ms_p50_ratio_to_local": p["predicted_ms"] / s["ms_p50"], "floor_ms": p["floor_ms"],
                   "bound": p["bound"], "source": p["source"]}
            table.append(row)
            print(f"{row['row']:<32}{row['ms_p50']:>9.1f}{row['ms_p50_ratio_to_local']:>9.2f}{p['floor_ms']:>10.1f}  "
                  f"{p['bound']}")
    out_json = a.out.parent / "device_profile.json"
    common.write_json(out_json, {"steps": a.steps, "warmup": a.warmup, "runtime": a.runtime, "model": plan.model,
                                 "device": next(r.facts for r in results if r.device != "local"), "rows": table},
                      None, a.smoke)
    print(f"wrote {md} and {out_json}")


if __name__ == "__main__":
    main()
