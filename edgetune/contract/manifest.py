"""The artifact manifest: what a device needs to know to run an artifact's programs.

An artifact is a directory:

    manifest.json        this contract, versioned
    state.safetensors    initial trainable tensors and optimizer state
    step.onnx / step.pte           the training step, one per runtime
    step_s16.onnx ...              the step at shorter sequence lengths (optional buckets)
    infer.onnx / infer.pte         logits from the current trainable state
    tokenizer.json       when the model takes text

Every program input and output is a `TensorSpec` with a role:
``state`` (fed back each step), ``batch`` (user data), ``hyper`` (chosen by the
device: learning rate, step count), ``noise`` (standard-normal perturbations of a
forward-only step, drawn by the host from (seed, step)), ``metric`` (reported, e.g. the loss).
A state output names the input it feeds on the next step.

Torch-free on purpose: the device runner imports it. The normative text is
docs/artifact-contract.md; this module implements it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgetune.contract.names import (
    ATTENTION_MASK,
    EPS,
    HYPER_INPUTS,
    INPUT_IDS,
    LABELS,
    LOGITS,
    LOSS,
    NOISE_U_PREFIX,
    NOISE_V_PREFIX,
    NOISE_Z_PREFIX,
    RESAMPLE,
    next_name,
)
from edgetune.errors import ArtifactError

MANIFEST_FORMAT = "edgetune.artifact"
MANIFEST_VERSION = 1
ROLES = ("state", "batch", "hyper", "noise", "metric")
# manifest dtype -> numpy dtype (safetensors: F32, I64, I32, BOOL)
NP_DTYPES = {"float32": np.dtype(np.float32), "int64": np.dtype(np.int64), "int32": np.dtype(np.int32),
             "bool": np.dtype(np.bool_)}
DTYPES = tuple(NP_DTYPES)
RUNTIMES = {"onnx": ".onnx", "executorch": ".pte"}  # runtime name -> program file suffix
TASKS = ("sequence_classification", "causal_lm")


def whole(x, field: str) -> int:
    """``x`` if it is a non-negative whole number (JSON 4, not 4.7, "4" or true), else ValueError."""
    if isinstance(x, bool) or not isinstance(x, int) or x < 0:
        raise ValueError(f"{field} must be a non-negative whole number, not {x!r}")
    return x


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str
    role: str
    feeds: str | None = None  # for outputs: the input this value replaces next step

    def __post_init__(self):
        if self.role not in ROLES:
            raise ArtifactError(f"tensor {self.name!r}: role {self.role!r} is not one of {ROLES}")
        if self.dtype not in DTYPES:
            raise ArtifactError(f"tensor {self.name!r}: dtype {self.dtype!r} is not one of {DTYPES}")

    @staticmethod
    def from_dict(d: dict) -> "TensorSpec":
        try:
            return TensorSpec(d["name"], tuple(whole(x, "shape") for x in d["shape"]), d["dtype"], d["role"], d.get("feeds"))
        except (KeyError, TypeError, ValueError) as e:
            raise ArtifactError(f"manifest tensor entry {d!r} is malformed ({e}); re-export the artifact") from e


@dataclass(frozen=True)
class ProgramSpec:
    """One program (``step`` or ``infer``) with its files per runtime."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    files: dict[str, str] = field(default_factory=dict)  # runtime -> file name
    # runtime -> how the program was lowered, e.g. ExecuTorch's delegation coverage
    # {"backend", "delegated_ops", "total_ops", "delegated_matmuls", "matmuls", ...}
    lowering: dict[str, dict] = field(default_factory=dict)

    def of_role(self, role: str, outputs: bool = False) -> list[TensorSpec]:
        return [t for t in (self.outputs if outputs else self.inputs) if t.role == role]


@dataclass
class Manifest:
    artifact_id: str
    task: str  # "sequence_classification" | "causal_lm"
    batch_size: int
    seq_len: int
    programs: dict[str, ProgramSpec]
    optimizer: dict
    hashes: dict[str, str]  # file name -> sha256 of every program file
    labels: list[str] | None = None
    tokenizer: str | None = None
    model: dict = field(default_factory=dict)
    adapters: dict = field(default_factory=dict)
    seq_buckets: list[int] = field(default_factory=list)  # shorter step programs: bucket_program(n)
    format: str = MANIFEST_FORMAT
    version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        d = asdict(self)
        return json.dumps(d, indent=1, sort_keys=True)

    @staticmethod
    def from_json(text: str, where: str = "manifest.json") -> "Manifest":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ArtifactError(f"{where} is not valid JSON ({e}); re-export the artifact") from e
        if not isinstance(d, dict) or d.get("format") != MANIFEST_FORMAT:
            found = d.get("format") if isinstance(d, dict) else None
            raise ArtifactError(f"{where} is not an edgetune manifest (format={found!r})")
        if d.get("version") != MANIFEST_VERSION:
            raise ArtifactError(
                f"{where} has manifest version {d.get('version')!r}; this edgetune reads version "
                f"{MANIFEST_VERSION}: re-export the artifact with this edgetune")
        try:
            programs = {
                name: ProgramSpec(
                    tuple(TensorSpec.from_dict(t) for t in p["inputs"]),
                    tuple(TensorSpec.from_dict(t) for t in p["outputs"]),
                    dict(p.get("files", {})), dict(p.get("lowering", {})))
                for name, p in d["programs"].items()}
            return Manifest(
                artifact_id=str(d["artifact_id"]), task=str(d["task"]), batch_size=whole(d["batch_size"], "batch_size"),
                seq_len=whole(d["seq_len"], "seq_len"), programs=programs, optimizer=dict(d.get("optimizer") or {}),
                hashes=dict(d["hashes"]), labels=d.get("labels"), tokenizer=d.get("tokenizer"),
                model=dict(d.get("model", {})), adapters=dict(d.get("adapters", {})),
                seq_buckets=[whole(n, "seq_buckets") for n in d.get("seq_buckets", [])])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ArtifactError(f"{where} is missing or has a malformed field ({e!r}); re-export the artifact") from e

    @property
    def step(self) -> ProgramSpec:
        return self.programs["step"]

    def validate(self, where: str = "manifest.json") -> None:
        """Check every rule of docs/artifact-contract.md that the manifest alone decides; raise
        `ArtifactError` naming the first value that breaks one."""
        problems = manifest_problems(self)
        if problems:
            raise ArtifactError(f"{where}: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                                + "; re-export the artifact")

    def step_program_for(self, length: int) -> tuple[str, int]:
        """(program name, its sequence length) of the shortest step that holds ``length`` tokens."""
        n = min((b for b in self.seq_buckets if b >= length), default=self.seq_len)
        return (bucket_program(n) if n != self.seq_len else "step"), n

    def state_specs(self) -> list[TensorSpec]:
        """The tensors kept in state.safetensors: the step's state inputs (none for an
        inference-only artifact, whose weights are constants of its program)."""
        return list(self.step.of_role("state")) if "step" in self.programs else []


def manifest_problems(m: Manifest) -> list[str]:
    """Every broken contract rule of ``m``, as messages (empty: the manifest is valid)."""
    out: list[str] = []
    if m.task not in TASKS:
        out.append(f"task {m.task!r} is not one of {TASKS}")
    if m.batch_size < 1 or m.seq_len < 2:
        out.append(f"batch_size={m.batch_size} must be >= 1 and seq_len={m.seq_len} >= 2")
    if "infer" not in m.programs:
        out.append("there is no infer program")
    expected = {"infer"} | ({"step"} | {bucket_program(n) for n in m.seq_buckets} if "step" in m.programs else set())
    if set(m.programs) != expected:
        out.append(f"programs {sorted(m.programs)} do not match seq_buckets {m.seq_buckets} (expected {sorted(expected)})")
    if any(not 2 <= n < m.seq_len for n in m.seq_buckets):
        out.append(f"seq_buckets {m.seq_buckets} must lie in [2, seq_len={m.seq_len})")
    for name, prog in m.programs.items():
        if name not in expected:
            continue  # reported above
        seq = m.seq_len if name in ("step", "infer") else int(name.removeprefix("step_s"))
        out += [f"program {name!r}: {p}" for p in _program_problems(m, name, prog, seq)]
    if "step" in m.programs and "infer" in m.programs:
        state = {t.name: t for t in m.step.of_role("state")}
        for t in m.programs["infer"].of_role("state"):
            if state.get(t.name) != t:
                out.append(f"infer input {t.name!r} is not a state input of the step with the same shape and dtype")
        for name, prog in m.programs.items():
            if name.startswith("step_s") and {t.name: t for t in prog.of_role("state")} != state:
                out.append(f"program {name!r} has other state inputs than 'step'")
    if m.labels is not None:  # optional: an artifact exported from Python may train on label indices only
        n_logits = m.programs["infer"].outputs[0].shape[-1] if "infer" in m.programs and m.programs["infer"].outputs else None
        if m.task != "sequence_classification":
            out.append("labels are for sequence classification")
        elif (not isinstance(m.labels, list) or len(set(m.labels)) != len(m.labels)
              or not all(isinstance(x, str) for x in m.labels)):
            out.append(f"labels {m.labels!r} must be distinct strings")
        elif n_logits is not None and len(m.labels) != n_logits:
            out.append(f"{len(m.labels)} labels but the logits have {n_logits} classes")
    return out


def _program_problems(m: Manifest, name: str, prog: ProgramSpec, seq: int) -> list[str]:
    out = []
    for kind, specs in (("input", prog.inputs), ("output", prog.outputs)):
        names = [t.name for t in specs]
        if len(set(names)) != len(names):
            out.append(f"{kind} names repeat: {sorted({n for n in names if names.count(n) > 1})}")
    for rt, fname in prog.files.items():
        if rt not in RUNTIMES or not fname.endswith(RUNTIMES.get(rt, "?")) or "/" in fname or fname.startswith("."):
            out.append(f"file {fname!r} for runtime {rt!r} is not a {sorted(RUNTIMES)} program file in the artifact")
        elif fname not in m.hashes:
            out.append(f"file {fname!r} has no sha256 in hashes")
    b = m.batch_size
    batch = {t.name: t for t in prog.of_role("batch")}
    want = {INPUT_IDS: ((b, seq), "int64"), ATTENTION_MASK: ((b, seq), "int64")}
    if m.task == "sequence_classification" and name != "infer":
        want[LABELS] = ((b,), "int64")
    for n, (shape, dtype) in want.items():
        t = batch.get(n)
        if t is None or t.shape != shape or t.dtype != dtype:
            out.append(f"batch input {n!r} must be {dtype}{list(shape)}, is {t and (t.dtype, list(t.shape))}")
    if set(batch) - set(want):
        out.append(f"unknown batch inputs {sorted(set(batch) - set(want))}")
    for t in prog.of_role("hyper"):
        if t.name not in HYPER_INPUTS or t.shape != () or t.dtype != "float32":
            out.append(f"hyper input {t.name!r} must be a float32 scalar named one of {HYPER_INPUTS}")
    for t in prog.of_role("noise"):
        if not t.name.startswith((NOISE_U_PREFIX, NOISE_V_PREFIX, NOISE_Z_PREFIX)) or t.dtype != "float32":
            out.append(f"noise input {t.name!r} must be float32 and named noise.U./noise.V./noise.z.<tensor>")
    if any(t.feeds for t in prog.inputs):
        out.append("inputs may not name a 'feeds' target")
    if name == "infer":
        if [t.name for t in prog.outputs] != [LOGITS] or prog.outputs[0].dtype != "float32":
            out.append(f"outputs must be one float32 {LOGITS!r}")
        if prog.of_role("hyper") or prog.of_role("noise"):
            out.append("an inference program takes no hyper or noise inputs")
        return out
    loss = [t for t in prog.outputs if t.name == LOSS]
    if len(loss) != 1 or loss[0].role != "metric" or loss[0].shape != () or loss[0].dtype != "float32":
        out.append(f"a step needs one float32 scalar metric output {LOSS!r}")
    state_in = {t.name: t for t in prog.of_role("state")}
    fed: dict[str, str] = {}
    for t in prog.outputs:
        if t.role == "state":
            src = state_in.get(t.feeds or "")
            if src is None:
                out.append(f"state output {t.name!r} feeds {t.feeds!r}, which is not a state input")
            elif t.feeds in fed:
                out.append(f"state outputs {fed[t.feeds]!r} and {t.name!r} both feed {t.feeds!r}")
            elif (src.shape, src.dtype) != (t.shape, t.dtype) or t.name != next_name(t.feeds):
                out.append(f"state output {t.name!r} must be named {next_name(t.feeds)!r} with the shape and dtype "
                           f"of {t.feeds!r}")
            else:
                fed[t.feeds] = t.name
        elif t.feeds:
            out.append(f"output {t.name!r} has role {t.role!r} but feeds {t.feeds!r}: only state outputs feed inputs")
    if set(state_in) - set(fed):
        out.append(f"state inputs {sorted(set(state_in) - set(fed))[:3]} are fed by no output")
    hyper = {t.name for t in prog.of_role("hyper")}
    if EPS in hyper and "eps" not in m.optimizer:
        out.append("the step takes 'eps' but the optimizer entry has no eps")
    if RESAMPLE in hyper and "nu" not in m.optimizer:
        out.append("the step resamples V but the optimizer entry has no nu")
    return out


def bucket_program(seq_len: int) -> str:
    """Name of the step program at a shorter sequence length."""
    return f"step_s{seq_len}"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(artifact_dir: str | os.PathLike, runtime: str | None = None, verify: bool = True) -> Manifest:
    """Read and check an artifact's manifest.

    With ``verify`` the program files of ``runtime`` (all runtimes when None) are
    hashed and compared, so a manifest copied from another artifact is refused.
    """
    d = Path(artifact_dir)
    mpath = d / "manifest.json"
    if not mpath.is_file():
        raise ArtifactError(f"{d} has no manifest.json: is it an edgetune artifact directory? "
                            "Create one with `edgetune export`.")
    m = Manifest.from_json(mpath.read_text(encoding="utf-8"), str(mpath))
    m.validate(str(mpath))
    if runtime is not None and runtime not in RUNTIMES:
        raise ArtifactError(f"runtime {runtime!r} is unknown; choose one of {sorted(RUNTIMES)}")
    if verify:
        for prog_name, prog in m.programs.items():
            for rt, fname in prog.files.items():
                if runtime is not None and rt != runtime:
                    continue
                f = d / fname
                if not f.is_file():
                    raise ArtifactError(f"{f} is listed in the manifest but missing; copy the whole artifact directory")
                want = m.hashes.get(fname)
                if want is None or sha256_file(f) != want:
                    raise ArtifactError(
                        f"{f} does not match manifest.json (sha256 differs): the manifest belongs to another "
                        "artifact or the file was changed; re-export or copy the artifact directory as a whole")
        if runtime is not None and not any(runtime in p.files for p in m.programs.values()):
            have = sorted({r for p in m.programs.values() for r in p.files})
            raise ArtifactError(f"{d} has no {runtime} program (it has {have}); "
                                f"re-export with --format {runtime}")
    return m
