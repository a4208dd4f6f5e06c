"""Replay a conformance kit through the Python runner.

    python -m device_harness.conformance ARTIFACT KIT --runtime onnx

prints {"checks", "failures", ...} as JSON and exits 2 when a check fails.

The same checks every implementation of the contract must pass: the tokenizer's ids,
the learning-rate schedule, the hyper and noise inputs it draws, each step's loss and
state against eager PyTorch, the rejection of a non-finite step, resuming from a state
file, and a state file written and read back.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from device_harness.runner import OneLineParser, Trainer
from device_harness.runtimes import RUNNERS
from edgetune.contract.conformance import RESUME_FILE, mismatch, prefixed, read_kit
from edgetune.contract.hyper import linear_schedule
from edgetune.contract.names import LOSS
from edgetune.contract.state import load_state
from edgetune.data.text import TextEncoder
from edgetune.errors import ArtifactError, EdgetuneError, NonFiniteLossError


class _Checks:
    def __init__(self):
        self.count, self.failures = 0, []

    def check(self, what: str, problem: str | None) -> None:
        self.count += 1
        if problem:
            self.failures.append(f"{what}: {problem}")


def replay(artifact_dir: str | Path, kit_dir: str | Path, runtime: str = "onnx", threads: int | None = None) -> dict:
    """-> {"checks": n, "failures": [...], "cases": [...]} for the kit at ``kit_dir``."""
    d, k = Path(artifact_dir), Path(kit_dir)
    kit, tensors = read_kit(k)
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(d, runtime, Path(tmp) / "state.safetensors", threads)  # checks the manifest and its hashes
        if kit["artifact_id"] != tr.manifest.artifact_id:
            raise ArtifactError(f"kit {k} was written for artifact {kit['artifact_id']!r}, "
                                f"not {tr.manifest.artifact_id!r}")
        c = _Checks()
        _replay_inputs(d, tr.manifest, kit, tensors, c)
        for case in kit["cases"]:
            _replay_case(tr, case, kit, tensors, k, tr.manifest, c)
    return {"checks": c.count, "failures": c.failures, "cases": [case["name"] for case in kit["cases"]],
            "runtime": runtime}


def _replay_inputs(d: Path, manifest, kit: dict, tensors: dict, c: _Checks) -> None:
    """The tokenizer's ids and masks (exactly) and the linear schedule's values."""
    tok = kit.get("tokenizer")
    if tok:
        ids, mask = TextEncoder(d / manifest.tokenizer, tok["seq_len"]).encode(tok["texts"])
        for name, got in (("input_ids", ids), ("attention_mask", mask)):
            want = tensors[tok[name]]
            c.check(f"tokenizer {name}", None if np.array_equal(got, want) else
                    f"{int((got != want).sum()) if got.shape == want.shape else 'shape'} entries differ")
    sch = kit["schedule"]
    lrs = [linear_schedule(s, sch["total"], sch["peak"]) for s in range(1, sch["total"] + 1)]
    c.check("linear schedule", None if np.allclose(lrs, sch["linear"], rtol=1e-12, atol=0) else f"{lrs} != {sch['linear']}")


def _replay_case(tr: Trainer, case: dict, kit: dict, tensors: dict, kit_dir: Path, manifest, c: _Checks) -> None:
    name, tol = case["name"], kit["tolerance"]
    if case["start"] == RESUME_FILE:
        tr.state, tr.step = load_state(kit_dir / RESUME_FILE, manifest)
        c.check(f"{name}: step counter of {RESUME_FILE}", None if tr.step == case["start_step"] else
                f"{tr.step}, expected {case['start_step']}")
    else:
        tr.state, tr.step = prefixed(tensors, case["start"]), case["start_step"]
    for s in case["steps"]:
        where = f"{name} step {s['step']}"
        want_h = prefixed(tensors, s["hyper"])
        got_h = tr.hyper(s["lr"], kit["seed"])
        c.check(f"{where}: hyper inputs", None if set(got_h) == set(want_h) else f"{sorted(got_h)} != {sorted(want_h)}")
        for h in sorted(set(got_h) & set(want_h)):
            c.check(f"{where}: {h}", None if np.array_equal(got_h[h], want_h[h]) else "differs (must match exactly)")
        before, step_before = tr.state, tr.step
        try:
            rec = tr.train_step(prefixed(tensors, s["batch"]), s["lr"], kit["seed"])
        except NonFiniteLossError:
            rec = None
        if not s["accepted"]:
            kept = rec is None and tr.step == step_before and all(tr.state[n] is before[n] for n in before)
            c.check(f"{where}: non-finite step rejected, state kept", None if kept else "the step was accepted")
            continue
        if rec is None:
            c.check(f"{where}: accepted", "rejected as non-finite")
            return
        c.check(f"{where}: {LOSS}", mismatch(np.float32(s["loss"]), np.float32(rec.loss), tol))
        for n, want in prefixed(tensors, s["state"]).items():
            c.check(f"{where}: {n}", mismatch(want, tr.state[n], tol))
    tr.save()
    back, step = load_state(tr.state_path, manifest)
    same = step == tr.step and all(np.array_equal(back[n], tr.state[n]) for n in tr.state)
    c.check(f"{name}: state file round trip", None if same else "the saved state reads back differently")


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m device_harness.conformance", description=__doc__.split("\n")[0])
    ap.add_argument("artifact")
    ap.add_argument("kit", help="a directory written by `edgetune conformance`")
    ap.add_argument("--runtime", default="onnx", choices=list(RUNNERS))
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    try:
        report = replay(a.artifact, a.kit, a.runtime, a.threads)
    except EdgetuneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, ValueError) as e:  # a kit.json of the right format but not its shape
        print(f"error: kit {a.kit} is malformed ({type(e).__name__}: {e}); write it again with `edgetune conformance`",
              file=sys.stderr)
        return 2
    print(json.dumps(report))
    if report["failures"]:
        print(f"error: {len(report['failures'])} of {report['checks']} conformance checks failed; first: "
              f"{report['failures'][0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
