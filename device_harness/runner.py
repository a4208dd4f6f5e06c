"""The device-side loop: train an artifact on a data file with only numpy and a runtime.

    python -m device_harness.runner train ARTIFACT DATA --runtime onnx --steps 50
    python -m device_harness.runner eval  ARTIFACT DATA --runtime onnx
    python -m device_harness.runner check ARTIFACT --runtime onnx   (facts, missing packages)

Each step prints one JSON line: {"step", "loss", "ms", "cpu_ms", "t", "rss_mb",
"peak_rss_mb"}, between a {"event": "start"} and an {"event": "end"} line.
State is written atomically every ``save_every`` steps and when the run ends; a
NaN/Inf step is rejected and the last good state is kept (and saved) before the
error is raised. A resumed run continues with the batch it would have seen next;
``--until N`` makes a rerun of the same command finish the same run. A hang-up,
SIGTERM or a closed stdout (the connection to the host dropped) stops the run after
the step in progress, with that step saved.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from device_harness.facts import energy_used, facts, missing_packages, read_energy
from device_harness.runtimes import RUNNERS, SharedWeights, open_program
from edgetune.contract import Manifest, load_manifest
from edgetune.contract.hyper import SCHEDULES, check_schedule, default_schedule, hyper_feeds, scheduled_lr
from edgetune.contract.lines import StepRecord
from edgetune.contract.manifest import STATE_FILE, TENSORS
from edgetune.contract.names import ATTENTION_MASK, INPUT_IDS, LABELS, LOGITS, LOSS
from edgetune.contract.state import resume_or_initial, save_state
from edgetune.data.records import iter_examples, iter_text_chunks
from edgetune.data.rows import encode_examples, encode_windows
from edgetune.data.tensors import open_tensor_rows
from edgetune.data.text import TextEncoder, fixed_batches
from edgetune.errors import ArtifactError, ConfigError, NonFiniteLossError, error_line
from edgetune.files import remove_stale_temporaries

TRAINED_STATE = "trained.{runtime}.safetensors"


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB, from /proc/self/status.
    (getrusage's ru_maxrss is not used: Linux carries it across exec, so a runner
    started by a large parent would report the parent's peak.)"""
    vals = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    vals[line[:5]] = int(line.split()[1]) / 1024.0
        return vals["VmRSS"], vals["VmHWM"]
    except (OSError, KeyError):  # not Linux: the best the OS offers
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024.0)
        return peak, peak


def encode_file(artifact_dir: Path, manifest: Manifest, data_path: str | Path):
    """A text,label file (or running .txt for a language model; an .npz / .safetensors file of
    arrays for a tensors artifact) -> an `edgetune.data.rows` object whose batches are named
    like the program's batch inputs. Text is read as a stream into a temporary file, arrays are
    memory-mapped: memory does not grow with the file. Close it when done."""
    if manifest.task == TENSORS:
        return open_tensor_rows(data_path, {t.name: (t.shape[1:], t.dtype) for t in manifest.step.of_role("batch")})
    if manifest.tokenizer is None:
        raise ArtifactError(f"{artifact_dir} has no tokenizer; text data needs an artifact exported with one")
    need_labels = manifest.task == "sequence_classification"
    enc = TextEncoder(Path(artifact_dir) / manifest.tokenizer, manifest.seq_len)
    if not need_labels and Path(data_path).suffix.lower() == ".txt":  # running text: next-token windows
        return encode_windows(enc, iter_text_chunks(data_path))
    return encode_examples(enc, iter_examples(data_path, need_labels), (manifest.labels or []) if need_labels else None)


def encode_arrays(artifact_dir: Path, manifest: Manifest, data_path: str | Path) -> dict[str, np.ndarray]:
    """`encode_file`, every row in memory: for small files (benchmarks' splits, tests)."""
    rows = encode_file(artifact_dir, manifest, data_path)
    try:
        return rows.take(np.arange(rows.n))
    finally:
        rows.close()


DEFAULT_STEPS = 50

# exit statuses of `train` besides 2 (an error): the host resumes after EXIT_INTERRUPTED
EXIT_DONE, EXIT_INTERRUPTED, EXIT_OVER_BUDGET = 0, 3, 4


class Trainer:
    """Holds an artifact's step program and the current state.

    ``state_path`` is where progress is written (default ``trained.<runtime>.safetensors``
    in the artifact); when it exists the run resumes from it, otherwise it starts
    from the artifact's ``state.safetensors``, which is never modified.
    """

    def __init__(self, artifact_dir: str | Path, runtime: str = "onnx", state_path: str | Path | None = None,
                 threads: int | None = None, share_weights: bool = True):
        self.dir = Path(artifact_dir)
        self.runtime = runtime
        self.manifest = load_manifest(self.dir, runtime)
        self.threads = threads
        # the step's shorter buckets share its weights and arena (`SharedWeights`; off only to measure what that saves)
        self._shared = SharedWeights() if share_weights and self.manifest.seq_buckets and runtime == "onnx" else None
        self.program = open_program(self.dir, self.manifest, "step", runtime, threads, self._shared)
        self._programs = {"step": self.program}  # shorter step programs load when first needed
        self.load_state(state_path or self.dir / TRAINED_STATE.format(runtime=runtime))
        self.feeds_of = {t.feeds: t.name for t in self.program.spec.of_role("state", outputs=True)}
        self.opened = time.perf_counter()

    def load_state(self, state_path: str | Path) -> None:
        """Continue from ``state_path`` (or the artifact's initial state while that file does not
        exist), and write progress there from now on: one loaded program serves many states
        (a fleet process training several clients in turn)."""
        self.state_path = Path(state_path)
        if self.state_path.resolve() == (self.dir / STATE_FILE).resolve():
            raise ConfigError(f"--state {self.state_path} is the artifact's initial state, which a trainer never "
                              "writes; pass another path (the default is trained.<runtime>.safetensors)")
        self.state, self.step = resume_or_initial(self.dir, self.manifest, self.state_path)

    def hyper(self, lr: float | None, seed: int = 0) -> dict[str, np.ndarray]:
        """The step's non-data inputs for the next step (`edgetune.contract.hyper.hyper_feeds`)."""
        lr = self.manifest.optimizer.get("lr") if lr is None else lr
        return hyper_feeds(self.program.spec, self.manifest.optimizer, self.step + 1, lr, seed)

    def train_step(self, batch: dict[str, np.ndarray], lr: float | None = None, seed: int = 0) -> StepRecord:
        """One step; the state advances only if the loss and every new tensor are finite.
        ``seed`` (with the step count) fixes a forward-only step's perturbations."""
        program, batch = self.program_for(batch)
        feeds = {**self.state, **batch, **self.hyper(lr, seed)}
        t0, c0 = time.perf_counter(), time.process_time()
        out = program.run(feeds)
        ms, cpu_ms = 1000 * (time.perf_counter() - t0), 1000 * (time.process_time() - c0)
        loss = float(out[LOSS])
        new_state = {inp: out[o] for inp, o in self.feeds_of.items()}
        if not math.isfinite(loss) or not all(np.isfinite(v).all() for v in new_state.values()):
            bad = [k for k, v in new_state.items() if not np.isfinite(v).all()][:3]
            raise NonFiniteLossError(f"step {self.step + 1}: loss={loss}, non-finite state {bad}; the step was "
                                     f"rejected and the state kept at step {self.step}. Lower the learning rate "
                                     "or check the batch for bad labels.")
        self.state, self.step = new_state, self.step + 1
        return StepRecord(self.step, loss, ms, cpu_ms, time.perf_counter() - self.opened, *rss_mb())

    def program_for(self, batch: dict[str, np.ndarray]):
        """The shortest step program that holds the batch's longest text, and the batch trimmed
        to its length (only padding is cut: masks are ones then zeros)."""
        if not self.manifest.seq_buckets or ATTENTION_MASK not in batch:
            return self.program, batch
        mask = batch[ATTENTION_MASK]
        name, n = self.manifest.step_program_for(int(mask.sum(axis=1).max()))
        if name not in self._programs:
            self._programs[name] = open_program(self.dir, self.manifest, name, self.runtime, self.threads, self._shared)
        if n == mask.shape[1]:
            return self._programs[name], batch
        return self._programs[name], {k: np.ascontiguousarray(v[:, :n]) if v.ndim == 2 else v for k, v in batch.items()}

    def save(self) -> None:
        save_state(self.state_path, self.state, self.manifest, self.step)

    def encode(self, data_path: str | Path):
        """The data file as rows for `train` (`encode_file`); close them when done."""
        return encode_file(self.dir, self.manifest, data_path)

    def epoch_steps(self, rows, epochs: float) -> int:
        """Steps that visit every row ``epochs`` times (the last batch of an epoch may wrap)."""
        if isinstance(epochs, bool) or not isinstance(epochs, (int, float)) or not 0 < epochs <= 1e6:
            raise ConfigError(f"--epochs {epochs!r} must be a number in (0, 1e6]")
        return max(1, math.ceil(epochs * math.ceil(rows.n / self.manifest.batch_size)))

    def train(self, data: str | Path, steps: int, lr: float | None = None, seed: int = 0,
              save_every: int = 10, schedule: str | None = None, total_steps: int | None = None) -> Iterator[StepRecord]:
        """Yield a record per step for ``steps`` more steps; state is saved every ``save_every``
        steps and, whatever happens, at the end (only ever the last good state). ``data``: a
        data file, or rows from `encode` (then the caller closes them).

        ``schedule`` (default `default_schedule`: linear, constant for forward-only steps):
        "linear" warms up over the first 6% of ``total_steps`` (default: this run's last
        step), then decays linearly to 0; the position is the saved step counter, so a
        resumed run continues the same schedule.
        """
        for name, value in (("--steps", steps), ("--save-every", save_every), ("--seed", seed)):
            if value < 0:
                raise ConfigError(f"{name} {value} must be >= 0")
        if total_steps is not None and total_steps < 1:
            raise ConfigError(f"--total-steps {total_steps} must be >= 1")
        schedule = schedule or default_schedule(self.manifest.optimizer)
        check_schedule(schedule)
        peak = lr if lr is not None else float(self.manifest.optimizer["lr"])
        total = total_steps or self.step + steps
        owned = isinstance(data, (str, Path))
        rows = self.encode(data) if owned else data
        batches = fixed_batches(rows, self.manifest.batch_size, seed=seed, start=self.step,
                                by_length=bool(self.manifest.seq_buckets))
        saved = self.step
        try:
            for _ in range(steps):
                rate = scheduled_lr(schedule, self.step + 1, total, peak)
                rec = self.train_step(next(batches), rate, seed)
                if save_every and self.step % save_every == 0:
                    self.save()
                    saved = self.step
                yield rec
        finally:
            if owned:
                rows.close()
            if self.step != saved:
                self.save()


def open_inference(artifact_dir: str | Path, manifest: Manifest, runtime: str, state_path: str | Path | None = None,
                   threads: int | None = None, state: dict[str, np.ndarray] | None = None):
    """-> (inference program, its trainable inputs from ``state`` (a state in memory), else from
    ``state_path``, else the runner's trained state, else the artifact's initial state)."""
    d = Path(artifact_dir)
    prog = open_program(d, manifest, "infer", runtime, threads)
    if state is None:  # a path the user named must exist (a typo must not evaluate the untrained state)
        state, _ = resume_or_initial(d, manifest, state_path or d / TRAINED_STATE.format(runtime=runtime),
                                     must_exist=bool(state_path))
    return prog, {t.name: state[t.name] for t in prog.spec.inputs if t.role == "state"}


def _logit_batches(prog, params: dict[str, np.ndarray], rows, batch_size: int) -> Iterator[tuple[dict, np.ndarray]]:
    """(the batch's rows, logits) per program batch over every row of ``rows`` (the last partial
    batch is padded by repetition and trimmed)."""
    for i in range(0, rows.n, batch_size):
        batch = rows.take(np.arange(i, i + batch_size) % rows.n)
        out = prog.run({**params, **{t.name: batch[t.name] for t in prog.spec.of_role("batch")}})
        keep = min(batch_size, rows.n - i)
        yield {k: v[:keep] for k, v in batch.items()}, out[LOGITS][:keep]


def predict(artifact_dir: str | Path, arrays: dict[str, np.ndarray], runtime: str = "onnx",
            state_path: str | Path | None = None, threads: int | None = None,
            manifest: Manifest | None = None, state: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Logits for every row of ``arrays`` through the inference program (state: `open_inference`)."""
    from edgetune.data.rows import ArrayRows

    manifest = manifest or load_manifest(Path(artifact_dir), runtime)  # hashes every program file: do it once
    prog, params = open_inference(artifact_dir, manifest, runtime, state_path, threads, state)
    return np.concatenate([lg for _, lg in _logit_batches(prog, params, ArrayRows(arrays), manifest.infer_batch)])


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis (numerically stable: the row's max is taken out first)."""
    x = logits - logits.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def evaluate(artifact_dir: str | Path, data_path: str | Path, runtime: str = "onnx",
             state_path: str | Path | None = None, threads: int | None = None,
             state: dict[str, np.ndarray] | None = None) -> dict:
    """Accuracy and mean cross-entropy (classification) or perplexity (causal LM) of the current
    state on a data file; for a tensors artifact, accuracy against an int64 target or mean
    squared error against a float one (`tensor_metrics`). Batches are scored as they come: a
    language model's logits for a whole file would not fit. ``state``: evaluate this state in
    memory instead of one on disk (`open_inference`)."""
    d = Path(artifact_dir)
    manifest = load_manifest(d, runtime)
    prog, params = open_inference(d, manifest, runtime, state_path, threads, state)  # before the data: errors first
    rows = encode_file(d, manifest, data_path)
    try:
        batches = _logit_batches(prog, params, rows, manifest.infer_batch)
        nll, count = 0.0, 0
        if manifest.task == TENSORS:
            return tensor_metrics(manifest, batches, rows.n)
        if manifest.task == "sequence_classification":
            return _classification_metrics(batches, LABELS, rows.n)
        for batch, lg in batches:
            lp = _log_softmax(lg[:, :-1])
            tgt, mask = batch[INPUT_IDS][:, 1:], batch[ATTENTION_MASK]
            valid = mask[:, 1:] * mask[:, :-1]
            nll -= float((np.take_along_axis(lp, tgt[..., None], -1)[..., 0] * valid).sum())
            count += int(valid.sum())
        return {"perplexity": float(np.exp(nll / max(1, count))), "tokens": count}
    finally:
        rows.close()


def _classification_metrics(batches, labels: str, n: int) -> dict:
    """Accuracy and mean cross-entropy over (batch, logits [B, C]) pairs against int64 ``batch[labels]``."""
    hits, nll = 0, 0.0
    for batch, lg in batches:
        hits += int((lg.argmax(-1) == batch[labels]).sum())
        nll -= float(np.take_along_axis(_log_softmax(lg), batch[labels][:, None], -1).sum())
    return {"accuracy": hits / n, "loss": nll / n, "examples": int(n)}


def tensor_metrics(manifest: Manifest, batches, n: int) -> dict:
    """A tensors artifact's metrics: the step's one target (a batch input the inference program
    does not take) against the output -- accuracy and cross-entropy for int64 class labels
    [B] of logits [B, C], mean squared error for a float target of the output's shape."""
    model_inputs = {t.name for t in manifest.programs["infer"].of_role("batch")}
    targets = [t for t in manifest.step.of_role("batch") if t.name not in model_inputs]
    out_shape = manifest.programs["infer"].outputs[0].shape
    if len(targets) != 1:
        raise ConfigError(f"{len(targets)} targets ({[t.name for t in targets]}): eval scores one target; use "
                          "predict() and your own metric")
    t = targets[0]
    if t.dtype == "int64" and len(t.shape) == 1 and len(out_shape) == 2:
        return _classification_metrics(batches, t.name, n)
    if t.dtype == "float32" and t.shape[1:] == out_shape[1:]:
        sq = sum(float(((out - batch[t.name]) ** 2).sum()) for batch, out in batches)
        return {"mse": sq / (n * max(1, int(np.prod(out_shape[1:])))), "examples": int(n)}
    raise ConfigError(f"target {t.name!r} {t.dtype}{list(t.shape)} is neither class labels nor values of the output's "
                      f"shape {list(out_shape)}; use predict() and your own metric")


class _StopRequest:
    """Set by SIGHUP/SIGTERM: the loop finishes the step in progress, saves and ends."""

    def __init__(self):
        self.signal: str | None = None

    def __call__(self, signum, _frame):
        self.signal = signal.Signals(signum).name


@contextlib.contextmanager
def exclusive(path: Path, timeout: float):
    """Hold an exclusive lock on ``path`` (a rerun after a dropped connection waits here
    for the interrupted run to save and exit, instead of both writing the state)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigError(f"another run holds {path} after {timeout:.0f} s; stop it or pass another --state")
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def apply_budget(cpus: int | None, max_rss_mb: float | None) -> dict:
    """Pin this process to its first ``cpus`` usable cores (Linux); the memory cap is
    checked after each step. Returns what was applied, with any shortfall stated."""
    applied: dict = {}
    if cpus:
        usable = sorted(os.sched_getaffinity(0))
        if len(usable) < cpus:
            applied["cpus_note"] = f"the budget asks for {cpus} cores, this machine lets the run use {len(usable)}"
        os.sched_setaffinity(0, usable[:cpus])
        applied["cpus"] = sorted(os.sched_getaffinity(0))
    if max_rss_mb:
        applied["max_rss_mb"] = max_rss_mb
    return applied


def _emit(out: Callable[[str], None], line: str) -> bool:
    """Print one line; False when stdout is gone (the host's connection dropped)."""
    try:
        out(line)
        return True
    except OSError:  # BrokenPipeError: nobody reads any more; keep exit quiet
        sys.stdout = open(os.devnull, "w")
        return False


def run_training(a, out: Callable[[str], None]) -> int:
    """The ``train`` command: budget, lock, start event, steps (logged and printed), end event."""
    budget = apply_budget(a.cpus, a.max_rss_mb)
    state = Path(a.state) if a.state else Path(a.artifact) / TRAINED_STATE.format(runtime=a.runtime)
    stop = _StopRequest()
    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, stop)
    log = open(a.log, "a") if a.log else None
    # a budget's runtime threads: one per core it was pinned to (more would oversubscribe them)
    threads = a.threads or (len(budget["cpus"]) if "cpus" in budget else None)
    with exclusive(state.with_name(state.name + ".lock"), a.lock_timeout):
        remove_stale_temporaries(state)  # a writer killed mid-save (SIGKILL) left them; none is alive now
        tr = Trainer(a.artifact, a.runtime, state, threads)
        rows = tr.encode(a.data)
        try:
            return _train_rows(a, out, tr, rows, budget, threads, stop, log)
        finally:
            rows.close()


def _train_rows(a, out: Callable[[str], None], tr: Trainer, rows, budget: dict, threads, stop, log) -> int:
    """The steps of `run_training` over encoded rows: start event, steps, end event."""
    if a.epochs is not None:
        steps = tr.epoch_steps(rows, a.epochs)
    else:
        steps = a.steps if a.until is None else max(0, a.until - tr.step)
    energy0 = read_energy()
    connected = _emit(out, json.dumps({"event": "start", "step": tr.step, "target": tr.step + steps,
                                       "budget": budget, "threads": threads, "energy": energy0}))
    reason = "done"
    records = tr.train(rows, steps, a.lr, a.seed, a.save_every, a.schedule, a.total_steps)
    try:
        for rec in records:
            if log:
                log.write(rec.json() + "\n")
                log.flush()
            connected = connected and _emit(out, rec.json())
            if a.max_rss_mb and rec.peak_rss_mb > a.max_rss_mb:
                reason = (f"over budget: peak RSS {rec.peak_rss_mb:.0f} MB at step {rec.step} exceeds the "
                          f"budget's {a.max_rss_mb:.0f} MB, so the run would not fit that device (state saved)")
                print(f"error: {reason}", file=sys.stderr)
                break
            if not connected or stop.signal:
                reason = f"interrupted ({stop.signal or 'stdout closed'})"
                break
    finally:
        records.close()  # saves the last good step
        if log:
            log.close()
    end = {"event": "end", "step": tr.step, "reason": reason, "energy": energy_used(energy0, read_energy())}
    _emit(out, json.dumps(end))
    return EXIT_DONE if reason == "done" else EXIT_OVER_BUDGET if reason.startswith("over budget") else EXIT_INTERRUPTED


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one ``error:`` line, like every other refusal."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def main(argv: list[str] | None = None, out: Callable[[str], None] | None = None) -> int:
    out = out or (lambda line: print(line, flush=True))  # flushed: the host streams the lines
    ap = OneLineParser(prog="python -m device_harness.runner", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    check = sub.add_parser("check", help="device facts, missing packages and the artifact's manifest, as JSON")
    check.add_argument("artifact", nargs="?")
    check.add_argument("--runtime", default="onnx", choices=list(RUNNERS))
    for name in ("train", "eval"):
        p = sub.add_parser(name)
        p.add_argument("artifact")
        p.add_argument("data", help="CSV (text,label header) or JSONL; running .txt for a language model")
        p.add_argument("--runtime", default="onnx", choices=list(RUNNERS))
        p.add_argument("--state", default=None, help="state file to resume from and write to")
        p.add_argument("--threads", type=int, default=None,
                       help="threads of the runtime (ONNX Runtime intra-op, ExecuTorch XNNPACK pool)")
        if name == "train":
            p.add_argument("--steps", type=int, default=None, help=f"steps to take [default: {DEFAULT_STEPS}]")
            p.add_argument("--epochs", type=float, default=None,
                           help="instead of --steps: visit every row of DATA this many times")
            p.add_argument("--until", type=int, default=None, help="train until the state has taken this many steps "
                           "(instead of --steps more): rerunning the command resumes the same run")
            p.add_argument("--lr", type=float, default=None, help="default: the artifact's optimizer lr")
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--save-every", type=int, default=10)
            p.add_argument("--schedule", default=None, choices=SCHEDULES,
                           help="learning-rate schedule [default: linear (6%% warm-up, decay to 0 at --total-steps); "
                                "constant for forward-only steps]")
            p.add_argument("--total-steps", type=int, default=None, help="schedule length (default: this run's end)")
            p.add_argument("--log", default=None, help="also append each step's JSON line to this file")
            p.add_argument("--cpus", type=int, default=None, help="pin the run to this many cores (emulated budget)")
            p.add_argument("--max-rss-mb", type=float, default=None,
                           help="stop with an error once peak RSS passes this (emulated memory budget)")
            p.add_argument("--lock-timeout", type=float, default=120.0,
                           help="seconds to wait for another run on the same state to end")
    a = ap.parse_args(argv)
    if a.cmd == "train":
        given = [n for n, v in (("--steps", a.steps), ("--epochs", a.epochs), ("--until", a.until)) if v is not None]
        if len(given) > 1:
            ap.error(f"{' and '.join(given)} both set the run's length; give one")
        if not given:
            a.steps = DEFAULT_STEPS
    try:
        if a.cmd == "check":
            return run_check(a, out)
        if a.cmd == "train":
            return run_training(a, out)

        out(json.dumps(evaluate(a.artifact, a.data, a.runtime, a.state, a.threads)))
    except Exception as e:  # one line, never a traceback: the host parses stderr
        print(error_line(e), file=sys.stderr)
        return 2
    return 0


def run_check(a, out: Callable[[str], None]) -> int:
    """Print {"facts", "missing", "artifact"}; exit 2 if a package is missing or the artifact
    cannot run here (a wrong or corrupt manifest, a program file missing or altered)."""
    report: dict = {"facts": facts(), "missing": missing_packages(a.runtime)}
    if a.artifact and not report["missing"]:
        manifest = load_manifest(Path(a.artifact), a.runtime)  # checks every file's hash
        report["artifact"] = {"artifact_id": manifest.artifact_id, "task": manifest.task,
                              "programs": sorted(manifest.programs), "optimizer": manifest.optimizer.get("name")}
    out(json.dumps(report))
    if report["missing"]:
        print(f"error: the runner needs {', '.join(report['missing'])} on this device", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
