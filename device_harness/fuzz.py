"""Mutation fuzzing of the device runner: damaged artifacts, manifests, state files and data files.

    python -m device_harness.fuzz ARTIFACT DATA --cases 500 --seed 0 [--out report.json]

Each case copies the artifact (hard links), damages one input in one of the `KINDS`, runs
``python -m device_harness.runner train`` (or ``eval``) on it in a worker process, and
checks the outcome:

- no traceback and no "internal error" line; a refusal is exit 2 with one ``error:`` line
  and nothing else on stderr (no warnings);
- no crash (the worker killed by a signal) and no hang (a case over ``--timeout`` seconds);
- a state file the run wrote loads with the artifact's own check (`load_state`);
- a changed state, tokenizer, program or manifest file is never accepted (exit 0) unless
  the change leaves the parsed content identical (e.g. padding spaces of a state header);
- a manifest edited and re-stamped with a correct digest (a consistent but odd manifest)
  may train, but under the same rules.

The worker runs cases in-process (one Python start per ``RESTART_EVERY`` cases), so a
few thousand cases take minutes. Counts are printed as JSON and written to ``--out``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgetune.contract.manifest import ID_PLACEHOLDER, STATE_FILE, load_manifest, stamp
from edgetune.contract.state import load_state
from edgetune.errors import EdgetuneError

KINDS = ("manifest-edited", "manifest-restamped", "manifest-bytes", "state", "initial-state", "tokenizer",
         "program", "data", "options")
MUST_REFUSE = {"manifest-edited", "manifest-bytes", "state", "initial-state", "tokenizer", "program"}
RESTART_EVERY = 200
FAILURES = ("traceback", "internal_error", "crash", "hang", "messy_stderr", "state_written_unloadable",
            "accepted_modified_file")


@dataclass
class Case:
    kind: str
    what: str
    argv: list[str]
    state: Path
    state_before: bytes | None = None
    benign: bool = False  # the damage leaves the parsed content identical
    damaged: Path | None = None  # the one artifact or state file changed (None: data or options)


@dataclass
class Report:
    cases: int = 0
    by_kind: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)  # exit 0, exit 2, ...
    accepted: Counter = field(default_factory=Counter)  # kind -> cases run to exit 0 (benign ones not counted)
    failures: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)  # failure -> first few (kind, what, stderr)

    def fail(self, name: str, case: Case, detail: str) -> None:
        self.failures[name] += 1
        self.examples.setdefault(name, [])
        if len(self.examples[name]) < 5:
            self.examples[name].append({"kind": case.kind, "what": case.what, "detail": detail[-600:]})

    def to_dict(self) -> dict:
        return {"cases": self.cases, "by_kind": dict(self.by_kind), "outcomes": dict(self.outcomes),
                "accepted_by_kind": dict(self.accepted),
                "failures": {name: self.failures.get(name, 0) for name in FAILURES}, "examples": self.examples}


# ---------------------------------------------------------------- mutations
ODD_VALUES = [0, -1, 1, 2**63, -(2**63), 10**30, 1e30, 4.7, -0.5, float("nan"), "x", "", True, False, None, [], {},
              "🙂" * 3, "a" * 200_000, "DEEP", "BIGINT"]


def _paths(obj, prefix=()):
    """Every (path, value) of a JSON tree."""
    yield prefix, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    if value is _DELETE:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


_DELETE = object()


def _dump(d: dict) -> bytes:
    text = json.dumps(d, indent=1, sort_keys=True)
    text = text.replace('"DEEP"', "[" * 50_000 + "]" * 50_000).replace('"BIGINT"', "7" * 5000)
    return text.encode("utf-8")


def mutate_json(rng: random.Random, d: dict) -> tuple[dict, str]:
    """One structural edit of a manifest: a value replaced by an odd one, a key deleted, a list
    reversed, shuffled or shortened, two same-shaped entries swapped, a string changed."""
    d = json.loads(json.dumps(d))
    paths = [p for p, _ in _paths(d) if p]
    path = rng.choice(paths)
    parent = d
    for k in path[:-1]:
        parent = parent[k]
    value = parent[path[-1]]
    op = rng.choice(["odd", "odd", "delete", "reverse", "string", "swap"])
    if op == "delete" and isinstance(parent, dict):
        _set(d, path, _DELETE)
    elif op == "reverse" and isinstance(value, list) and len(value) > 1:
        _set(d, path, value[::-1] if rng.random() < 0.5 else value[:-1])
    elif op == "string" and isinstance(value, str):
        _set(d, path, value[::-1] if rng.random() < 0.5 else value + "x")
    elif op == "swap" and isinstance(parent, list) and len(parent) > 1:
        j = rng.randrange(len(parent))
        parent[path[-1]], parent[j] = parent[j], parent[path[-1]]
    else:
        op = "odd"
        _set(d, path, rng.choice(ODD_VALUES))
    return d, f"{op} at {'/'.join(map(str, path))[:120]}"


def restamp(d: dict) -> bytes:
    """Manifest bytes of ``d`` with the digest their content has (a consistent hand edit)."""
    return stamp(_dump({**d, "artifact_id": ID_PLACEHOLDER}))[1]


def mutate_bytes(rng: random.Random, raw: bytes) -> tuple[bytes, str]:
    """Bit flips, a truncation, appended garbage, a zeroed span or a byte run repeated."""
    b = bytearray(raw)
    op = rng.choice(["flip", "flip", "truncate", "append", "zero", "header"])
    if op == "flip" or not b:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(max(1, len(b)))
            if b:
                b[i] ^= 1 << rng.randrange(8)
        return bytes(b), "bit flips"
    if op == "truncate":
        return bytes(b[:rng.randrange(len(b))]), "truncated"
    if op == "append":
        return bytes(b) + rng.randbytes(rng.randint(1, 64)), "garbage appended"
    if op == "zero":
        i = rng.randrange(len(b))
        n = rng.randint(1, 256)
        b[i:i + n] = bytes(len(b[i:i + n]))
        return bytes(b), "span zeroed"
    i = rng.randrange(min(len(b), 4096))  # the header region of safetensors and JSON files
    b[i] = rng.randrange(256)
    return bytes(b), "header byte"


def mutate_state_header(rng: random.Random, raw: bytes) -> tuple[bytes, str]:
    """Edit the JSON header of a safetensors state file: metadata values, dtypes, shapes, names."""
    import struct

    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.setdefault("__metadata__", {})
    names = [k for k in header if k != "__metadata__"]
    op = rng.choice(["step", "id", "checksum", "dtype", "shape", "rename", "swap"])
    if op == "step":
        meta["step"] = rng.choice(["-1", "1e30", "x", "", "99999999999999999999", " 3", "٣"])
    elif op == "id":
        meta["artifact_id"] = rng.choice(["", "0" * 16, "x" * 500])
    elif op == "checksum":
        meta["sha256"] = "0" * 64
    elif op == "dtype":
        header[rng.choice(names)]["dtype"] = rng.choice(["F16", "I64", "BF16", "U8"])
    elif op == "shape":
        t = header[rng.choice(names)]
        t["shape"] = t["shape"][::-1] if len(t["shape"]) > 1 and t["shape"][0] != t["shape"][-1] else t["shape"] + [1]
    elif op == "rename":
        k = rng.choice(names)
        header[k + "x"] = header.pop(k)
    else:  # two tensors of one shape and dtype trade names
        groups: dict = {}
        for k in names:
            groups.setdefault((header[k]["dtype"], tuple(header[k]["shape"])), []).append(k)
        pairs = [g for g in groups.values() if len(g) > 1]
        if pairs:
            a, b = rng.sample(rng.choice(pairs), 2)
            header[a], header[b] = header[b], header[a]
    body = json.dumps(header).encode()
    body += b" " * (-len(body) % 8)
    return struct.pack("<Q", len(body)) + body + raw[8 + n:], f"header {op}"


def _data_cases(rng: random.Random, good: bytes) -> tuple[bytes, str, str]:
    """(bytes, suffix, what) of one hostile data file, grown from the good CSV's rows."""
    lines = good.decode("utf-8").splitlines()
    header, rows = lines[0], lines[1:] or ["hello,x"]
    label = rows[0].rsplit(",", 1)[-1]
    pick = rng.choice([
        ("random bytes", ".csv", lambda: rng.randbytes(rng.randint(0, 4096))),
        ("not UTF-8", ".csv", lambda: (header + "\n").encode() + b"caf\xe9 ,\xff" + label.encode() + b"\n"),
        ("NUL in a row", ".csv", lambda: (header + "\nhe\0llo," + label + "\n").encode()),
        ("empty", ".csv", lambda: b""),
        ("header only", ".csv", lambda: (header + "\n").encode()),
        ("repeated header", ".csv", lambda: ("text,label,text\nx," + label + ",y\n").encode()),
        ("no text column", ".csv", lambda: ("sentence,label\nx," + label + "\n").encode()),
        ("unknown label", ".csv", lambda: (header + "\nhello,no-such-label\n").encode()),
        ("5,000-digit label", ".csv", lambda: (header + "\nhello," + "9" * 5000 + "\n").encode()),
        ("field over 131,072 characters", ".csv", lambda: (header + "\n" + "w " * 70_000 + "," + label + "\n").encode()),
        ("line over the record limit", ".csv", lambda: (header + "\n" + "w" * (1 << 21) + "," + label + "\n").encode()),
        ("unclosed quote", ".csv", lambda: (header + '\n"hello,' + label + "\n" + "\n".join(rows)).encode()),
        ("multi-line quoted text", ".csv", lambda: (header + '\n"two\nlines",' + label + "\n" + "\n".join(rows)).encode()),
        ("CRLF and BOM", ".csv", lambda: ("\ufeff" + "\r\n".join([header] + rows) + "\r\n").encode()),
        ("extra field", ".csv", lambda: (header + "\nhello," + label + ",extra\n").encode()),
        ("lone surrogate", ".jsonl", lambda: ('{"text": "bad \\ud800 text", "label": "' + label + '"}\n').encode()),
        ("deep JSON", ".jsonl", lambda: ("[" * 100_000 + "]" * 100_000 + "\n").encode()),
        ("5,000-digit JSON label", ".jsonl", lambda: ('{"text": "hi", "label": ' + "9" * 5000 + "}\n").encode()),
        ("label of another type", ".jsonl",
         lambda: ('{"text": "hi", "label": ' + rng.choice(["[1]", "{}", "true", "1.5", "null"]) + "}\n").encode()),
        ("text of another type", ".jsonl",
         lambda: ('{"text": ' + rng.choice(["5", "[]", "null", '""']) + ', "label": "' + label + '"}\n').encode()),
        ("JSON that is not an object", ".jsonl", lambda: b'"just a string"\n'),
        ("mutated rows", ".csv", lambda: mutate_bytes(rng, good)[0]),
        ("wrong suffix", ".xml", lambda: good),
    ])
    what, suffix, make = pick
    return make(), suffix, what


def _options(rng: random.Random) -> tuple[list[str], str]:
    flag, values = rng.choice([
        ("--lr", ["nan", "inf", "-1", "0", "1e300", "1e-300", "5"]),
        ("--steps", ["-1", "0", "3"]),
        ("--save-every", ["0", "-3", "1"]),
        ("--threads", ["0", "-1", "1"]),
        ("--schedule", ["linear", "cosine"]),
        ("--total-steps", ["0", "-5", "1", "1000000000000"]),
        ("--seed", ["-1", str(2**70), "7"]),
        ("--until", ["0", "-1", "4"]),
    ])
    value = rng.choice(values)
    return [flag, value], f"{flag} {value}"


# ---------------------------------------------------------------- cases
def _link_copy(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and not f.name.startswith(("trained.", ".")):
            os.link(f, dst / f.name)


def _replace(path: Path, data: bytes) -> None:
    path.unlink()  # never write through a hard link into the pristine artifact
    path.write_bytes(data)


class CaseMaker:
    """Builds one damaged case directory at a time from a good artifact, data file and state."""

    def __init__(self, artifact: Path, data: Path, good_state: Path, work: Path, runtime: str):
        self.artifact, self.data, self.good_state, self.work, self.runtime = artifact, data, good_state, work, runtime
        self.manifest_raw = (artifact / "manifest.json").read_bytes()
        self.manifest = json.loads(self.manifest_raw)
        self.programs = sorted({f for p in self.manifest["programs"].values() for rt, f in p["files"].items()
                                if rt == runtime})

    def make(self, rng: random.Random, kind: str, i: int) -> Case:
        d = self.work / f"case{i}"
        if d.exists():
            shutil.rmtree(d)
        art = d / "artifact"
        _link_copy(self.artifact, art)
        data = d / "data.csv"
        shutil.copyfile(self.data, data)
        state = d / "state.safetensors"
        command = "eval" if rng.random() < 0.2 else "train"
        extra: list[str] = []
        benign = False
        what = ""
        damaged = {"state": state, "initial-state": art / STATE_FILE, "tokenizer": art / "tokenizer.json"}.get(
            kind, art / "manifest.json" if kind.startswith("manifest") else None)
        if kind in ("manifest-edited", "manifest-restamped"):
            edited, what = mutate_json(rng, self.manifest)
            _replace(art / "manifest.json", restamp(edited) if kind == "manifest-restamped" else _dump(edited))
        elif kind == "manifest-bytes":
            raw, what = mutate_bytes(rng, self.manifest_raw)
            _replace(art / "manifest.json", raw)
        elif kind == "state":
            good = self.good_state.read_bytes()
            raw, what = mutate_state_header(rng, good) if rng.random() < 0.5 else mutate_bytes(rng, good)
            state.write_bytes(raw)
            benign = _same_state(good, raw)
        elif kind == "initial-state":
            raw, what = mutate_bytes(rng, (art / STATE_FILE).read_bytes())
            _replace(art / STATE_FILE, raw)
        elif kind == "tokenizer":
            raw, what = mutate_bytes(rng, (art / "tokenizer.json").read_bytes())
            _replace(art / "tokenizer.json", raw)
        elif kind == "program":
            name = rng.choice(self.programs)
            raw, what = mutate_bytes(rng, (art / name).read_bytes())
            _replace(art / name, raw)
            what, damaged = f"{name}: {what}", art / name
        elif kind == "data":
            raw, suffix, what = _data_cases(rng, self.data.read_bytes())
            data.unlink()
            data = d / f"data{suffix}"
            data.write_bytes(raw)
        elif kind == "options":
            extra, what = _options(rng)
            if extra[0] in ("--save-every", "--schedule", "--total-steps", "--until", "--lr", "--seed"):
                command = "train"
        if kind in MUST_REFUSE and kind != "state":
            benign = all((art / f.name).read_bytes() == f.read_bytes() for f in self.artifact.iterdir()
                         if f.is_file() and (art / f.name).exists() and not (art / f.name).samefile(f))
        if command == "train" and kind != "state" and rng.random() < 0.5:
            shutil.copyfile(self.good_state, state)  # resume from a good state
        argv = [command, str(art), str(data), "--runtime", self.runtime, "--state", str(state)]
        if command == "train":
            if "--steps" not in extra and "--until" not in extra:
                argv += ["--steps", "2"]
            if "--save-every" not in extra:
                argv += ["--save-every", "1"]
        elif extra and extra[0] not in ("--threads",):
            extra = []
        return Case(kind, what, argv + extra, state, state.read_bytes() if state.exists() else None, benign, damaged)


def _same_state(a: bytes, b: bytes) -> bool:
    """Whether two state files parse to the same tensors and metadata."""
    from safetensors.numpy import load

    try:
        from edgetune.contract.state import _metadata

        ta, tb = load(a), load(b)
        return (_metadata(a) == _metadata(b) and ta.keys() == tb.keys()
                and all(ta[k].dtype == tb[k].dtype and ta[k].shape == tb[k].shape and ta[k].tobytes() == tb[k].tobytes()
                        for k in ta))
    except Exception:
        return False


# ---------------------------------------------------------------- the worker
def answer_channel():
    """A line-buffered text file on the original stdout, with fd 1 itself sent to /dev/null,
    so what a runtime's C++ code prints cannot get between a worker's answers."""
    answer = os.fdopen(os.dup(1), "w", buffering=1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    return answer


def worker() -> int:
    """Read one JSON argv per line on stdin; run the runner in-process with fd 1 sent to
    /dev/null and fd 2 to a file (so C++ log lines are caught too); answer
    {"code", "stderr"} per line on the original stdout."""
    import traceback

    from device_harness import runner
    from device_harness.runtimes import native_log_captured

    answer = answer_channel()
    for line in sys.stdin:
        argv = json.loads(line)
        with native_log_captured() as log:
            try:
                code = runner.main(argv, out=lambda s: None)
            except SystemExit as x:  # argparse
                code = x.code if isinstance(x.code, int) else 2
            except BaseException:  # would have been a traceback
                traceback.print_exc()
                code = 1
            text = log()
        answer.write(json.dumps({"code": code, "stderr": text[-4000:]}) + "\n")
    return 0


class Worker:
    """A worker process (by default the runner's, `worker`) answering one JSON line per JSON
    request line; restarted after a crash, a hang or every RESTART_EVERY requests."""

    def __init__(self, command: list[str] | None = None):
        self.command = command or [sys.executable, "-m", "device_harness.fuzz", "--worker"]
        self.proc: subprocess.Popen | None = None
        self.used = 0

    def run(self, argv: list[str], timeout: float) -> dict:
        """The worker's answer to ``argv``, or {"hang": True} / {"crash": exit code}."""
        if self.proc is None or self.proc.poll() is not None or self.used >= RESTART_EVERY:
            self.stop()
            self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                         bufsize=1)
            self.used = 0
        self.used += 1
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.stop()
            return {"hang": True}
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            return {"crash": code}
        try:
            return json.loads(line)
        except json.JSONDecodeError:  # something in the worker wrote to its answer channel
            self.stop()
            return {"crash": f"unreadable answer {line[:80]!r}"}

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None


def judge(case: Case, result: dict, report: Report) -> None:
    report.cases += 1
    report.by_kind[case.kind] += 1
    if "hang" in result:
        return report.fail("hang", case, " ".join(case.argv[-4:]))
    if "crash" in result:
        return report.fail("crash", case, f"worker exited with {result['crash']}")
    code, err = result["code"], result["stderr"]
    report.outcomes[f"exit {code}"] += 1
    report.accepted[case.kind] += code == 0 and not case.benign
    lines = [line for line in err.splitlines() if line.strip()]
    if "Traceback" in err:
        report.fail("traceback", case, err)
    elif any("internal error" in line for line in lines):
        report.fail("internal_error", case, err)
    elif code == 2 and not (lines and lines[-1].startswith("error: ")
                            and all(line.startswith(("error: ", "usage: ", "       ")) or line.startswith(" ")
                                    for line in lines) and sum(line.startswith("error: ") for line in lines) == 1):
        report.fail("messy_stderr", case, err)
    elif code == 0 and lines:
        report.fail("messy_stderr", case, err)
    if code == 0 and case.kind in MUST_REFUSE and not case.benign:
        report.fail("accepted_modified_file", case, case.what)
    if case.state.exists() and case.state.read_bytes() != case.state_before:
        try:
            art = Path(case.argv[1])
            load_state(case.state, load_manifest(art, verify=False))
        except EdgetuneError as e:
            report.fail("state_written_unloadable", case, str(e))


def fuzz(artifact: Path, data: Path, cases: int, seed: int = 0, runtime: str = "onnx", timeout: float = 120.0,
         progress: Callable[[Report], None] = lambda r: None,
         before_run: Callable[[Case], None] = lambda c: None) -> Report:
    """Run ``cases`` damaged cases (the kinds in turn, the damage drawn from ``seed``);
    ``before_run`` sees each case once its files are damaged, before the runner does."""
    from device_harness import runner

    report = Report()
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="edgetune-fuzz-") as tmp:
        work = Path(tmp)
        good_state = work / "good.safetensors"
        with contextlib.redirect_stdout(io.StringIO()):
            if runner.main(["train", str(artifact), str(data), "--runtime", runtime, "--state", str(good_state),
                            "--steps", "3"], out=lambda s: None):
                raise SystemExit(f"error: the undamaged artifact does not train on {data}; fuzz a working pair")
        maker = CaseMaker(artifact, data, good_state, work, runtime)
        w = Worker()
        try:
            for i in range(cases):
                case = maker.make(rng, KINDS[i % len(KINDS)], i % 4)
                before_run(case)
                judge(case, w.run(case.argv, timeout), report)
                progress(report)
        finally:
            w.stop()
    return report


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:] == ["--worker"]:
        return worker()
    ap = argparse.ArgumentParser(prog="python -m device_harness.fuzz", description=__doc__.split("\n")[0])
    ap.add_argument("artifact", type=Path)
    ap.add_argument("data", type=Path, help="a data file the artifact trains on")
    ap.add_argument("--cases", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runtime", default="onnx")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds after which a case counts as a hang")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    rep = fuzz(a.artifact, a.data, a.cases, a.seed, a.runtime, a.timeout,
               progress=lambda r: print(f"\r{r.cases}/{a.cases} cases, {sum(r.failures.values())} failures",
                                        end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    out = {**rep.to_dict(), "seconds": round(time.perf_counter() - t0, 1), "seed": a.seed}
    text = json.dumps(out, indent=1)
    if a.out:
        from edgetune.files import write_atomic

        write_atomic(a.out, text.encode("utf-8"))
    print(text)
    return 1 if sum(rep.failures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
