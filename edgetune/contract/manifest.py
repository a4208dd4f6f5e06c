"""The artifact manifest: what a device needs to know to run an artifact's programs.

An artifact is a directory:

    manifest.json        this contract, versioned
    state.safetensors    initial trainable tensors and optimizer state
    step.onnx / step.pte / step.mlpackage   the training step, one per runtime
    step_s16.onnx ...              the step at shorter sequence lengths (optional buckets)
    infer.onnx / infer.pte / infer.mlpackage   logits from the current trainable state
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
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from edgetune.contract import schema
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
from edgetune.errors import ArtifactError, InternalError, shorten

MANIFEST_FORMAT = "edgetune.artifact"
MANIFEST_VERSION = 2
ROLES = ("state", "batch", "hyper", "noise", "metric")
# manifest dtype -> numpy dtype (safetensors: F32, I64, I32, BOOL)
NP_DTYPES = {"float32": np.dtype(np.float32), "int64": np.dtype(np.int64), "int32": np.dtype(np.int32),
             "bool": np.dtype(np.bool_)}
DTYPES = tuple(NP_DTYPES)
RUNTIMES = {"onnx": ".onnx", "executorch": ".pte", "coreml": ".mlpackage"}  # runtime name -> program file suffix
# lowering.onnx key: the file holding an ONNX program's frozen weights (ONNX external data),
# shared by the artifact's ONNX programs; absent when the weights are inside the .onnx file
ONNX_WEIGHTS_KEY, ONNX_WEIGHTS_SUFFIX = "external_data", ".onnx.data"
# Runtimes whose program is a directory (a Core ML package: its spec plus a weights file),
# hashed as a tree (`sha256_tree`).
PACKAGE_RUNTIMES = ("coreml",)
MAX_PACKAGE_FILES = 1024
# "tensors": a module of tensor inputs (images, audio features, sensor windows); its batch
# inputs are whatever the manifest lists, with no tokenizer and no sequence length (seq_len 0)
TASKS = ("sequence_classification", "causal_lm", "tensors")
TENSORS = "tensors"
OPTIMIZERS = ("adamw", "sgd", "zo")
STATE_FILE = "state.safetensors"  # the initial state, never written by a trainer
ID_PLACEHOLDER = "0" * 16  # artifact_id while the manifest's digest is taken
MAX_MANIFEST_BYTES = 16 * 2**20
FIELDS = ("format", "version", "artifact_id", "task", "batch_size", "seq_len", "programs", "seq_buckets",
          "optimizer", "hashes", "labels", "tokenizer", "model", "adapters")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str
    role: str
    feeds: str | None = None  # for outputs: the input this value replaces next step

    def __post_init__(self):
        if self.role not in ROLES:
            raise ArtifactError(f"tensor {shorten(self.name)}: role {shorten(self.role)} is not one of {ROLES}")
        if self.dtype not in DTYPES:
            raise ArtifactError(f"tensor {shorten(self.name)}: dtype {shorten(self.dtype)} is not one of {DTYPES}")

    @staticmethod
    def from_dict(d, where: str) -> "TensorSpec":
        """One tensor entry of untrusted JSON; ValueError names what is wrong."""
        d = schema.mapping(d, where)
        name = schema.text(d.get("name"), f"{where} name")
        where = f"tensor {shorten(name)}"
        shape = tuple(schema.whole(x, f"{where} shape", hi=schema.MAX_ELEMENTS)
                      for x in schema.listing(d.get("shape"), f"{where} shape", limit=8))
        if math.prod(shape) > schema.MAX_ELEMENTS:
            raise ValueError(f"{where} has {math.prod(shape)} elements, more than {schema.MAX_ELEMENTS}")
        feeds = d.get("feeds")
        if set(d) - {"name", "shape", "dtype", "role", "feeds"}:
            raise ValueError(f"{where} has unknown keys {shorten(sorted(set(d) - {'name', 'shape', 'dtype', 'role', 'feeds'}))}")
        for key in ("dtype", "role"):
            schema.text(d.get(key), f"{where} {key}", limit=16)
        return TensorSpec(name, shape, d["dtype"], d["role"], None if feeds is None else schema.text(feeds, f"{where} feeds"))


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

    def data_files(self, runtime: str | None = None) -> dict[str, str]:
        """File name -> runtime of every file this program reads on ``runtime`` (all runtimes
        when None): its program files and the ONNX program's external weights file."""
        out = {f: rt for rt, f in self.files.items() if runtime in (None, rt)}
        weights = self.lowering.get("onnx", {}).get(ONNX_WEIGHTS_KEY)
        if weights is not None and "onnx" in self.files and runtime in (None, "onnx"):
            out[weights] = "onnx"
        return out


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

    def stamped(self) -> tuple["Manifest", bytes]:
        """(this manifest with its artifact_id set to its digest, the bytes of manifest.json).
        The id is the first 16 hex digits of the sha256 of the file with the id written as
        16 zeros (`manifest_digest`), so any edit of the file is detected, and state files,
        which carry the id, belong to exactly this manifest."""
        aid, raw = stamp(replace(self, artifact_id=ID_PLACEHOLDER).to_json().encode("ascii"))
        if aid is None:
            raise InternalError("the manifest repeats the artifact_id key; this is a bug in edgetune")
        return replace(self, artifact_id=aid), raw

    @staticmethod
    def from_json(text: str, where: str = "manifest.json") -> "Manifest":
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, a 5,000-digit number, nesting too deep
            raise ArtifactError(f"{where} is not valid JSON ({shorten(str(e), 120)}); re-export the artifact") from e
        if not isinstance(d, dict) or d.get("format") != MANIFEST_FORMAT:
            found = d.get("format") if isinstance(d, dict) else None
            raise ArtifactError(f"{where} is not an edgetune manifest (format={shorten(found)})")
        if d.get("version") != MANIFEST_VERSION:
            raise ArtifactError(
                f"{where} has manifest version {shorten(d.get('version'))}; this edgetune reads version "
                f"{MANIFEST_VERSION}: re-export the artifact with this edgetune")
        try:
            return Manifest._from_dict(d)
        except (KeyError, TypeError, ValueError, ArtifactError) as e:
            raise ArtifactError(f"{where} is missing or has a malformed field: {shorten(str(e), 200)}; "
                                "re-export the artifact") from e

    @staticmethod
    def _from_dict(d: dict) -> "Manifest":
        if set(d) - set(FIELDS):
            raise ValueError(f"unknown keys {shorten(sorted(set(d) - set(FIELDS)))}")
        for key in ("artifact_id", "task", "batch_size", "seq_len", "programs", "hashes"):
            if key not in d:
                raise ValueError(f"{key!r} is missing")
        programs = {}
        for name, p in schema.mapping(d["programs"], "programs").items():
            schema.text(name, "program name", limit=32)
            p = schema.mapping(p, f"program {name!r}")
            files = {schema.text(rt, f"program {name!r} runtime", limit=32): schema.file_name(f, f"program {name!r} file")
                     for rt, f in schema.mapping(p.get("files", {}), f"program {name!r} files").items()}
            lowering = {rt: schema.mapping(v, f"program {name!r} lowering.{shorten(rt)}")
                        for rt, v in schema.mapping(p.get("lowering", {}), f"program {name!r} lowering").items()}
            if ONNX_WEIGHTS_KEY in lowering.get("onnx", {}):
                schema.file_name(lowering["onnx"][ONNX_WEIGHTS_KEY], f"program {name!r} lowering.onnx.{ONNX_WEIGHTS_KEY}")
            programs[name] = ProgramSpec(
                *(tuple(TensorSpec.from_dict(t, f"program {name!r} {key}") for t in
                        schema.listing(p.get(key), f"program {name!r} {key}", limit=1 << 16))
                  for key in ("inputs", "outputs")), files, lowering)
        labels = d.get("labels")
        if labels is not None:
            labels = [schema.text(x, "label") for x in schema.listing(labels, "labels", limit=1 << 16)]
        tokenizer = d.get("tokenizer")
        return Manifest(
            artifact_id=schema.text(d["artifact_id"], "artifact_id", limit=16),
            task=schema.text(d["task"], "task", limit=64),
            batch_size=schema.whole(d["batch_size"], "batch_size", 1, schema.MAX_BATCH),
            seq_len=schema.whole(d["seq_len"], "seq_len", 0, schema.MAX_SEQ_LEN),
            programs=programs, optimizer=schema.mapping(d.get("optimizer") or {}, "optimizer"),
            hashes={schema.file_name(f, "hashes key"): schema.sha256_hex(h, f"hashes[{shorten(f)}]")
                    for f, h in schema.mapping(d["hashes"], "hashes").items()},
            labels=labels, tokenizer=None if tokenizer is None else schema.file_name(tokenizer, "tokenizer"),
            model=schema.mapping(d.get("model", {}), "model"), adapters=schema.mapping(d.get("adapters", {}), "adapters"),
            seq_buckets=[schema.whole(n, "seq_buckets", 2, schema.MAX_SEQ_LEN)
                         for n in schema.listing(d.get("seq_buckets", []), "seq_buckets", limit=64)])

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

    @property
    def infer_batch(self) -> int:
        """Rows per call of the inference program: its own batch, which may exceed the step's
        (an evaluation batch chosen at export), else ``batch_size``."""
        prog = self.programs.get("infer")
        first = next((t for t in prog.inputs if t.role == "batch"), None) if prog else None
        return first.shape[0] if first is not None and first.shape else self.batch_size

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
    if m.task == TENSORS:
        if m.seq_len != 0 or m.seq_buckets or m.tokenizer:
            out.append("a tensors artifact has seq_len 0, no seq_buckets and no tokenizer")
        if not schema.batch_shape_ok(m.batch_size, 2):
            out.append(f"batch_size={m.batch_size} must lie in [1, {schema.MAX_BATCH}]")
    elif not schema.batch_shape_ok(m.batch_size, m.seq_len):
        out.append(f"batch_size={m.batch_size} must lie in [1, {schema.MAX_BATCH}], seq_len={m.seq_len} in "
                   f"[2, {schema.MAX_SEQ_LEN}], their product at most {schema.MAX_BATCH_TOKENS}")
    if not (len(m.artifact_id) == 16 and all(c in "0123456789abcdef" for c in m.artifact_id)):
        out.append(f"artifact_id {shorten(m.artifact_id)} must be 16 lowercase hex digits")
    files = {f for p in m.programs.values() for f in p.data_files()} | {STATE_FILE} | (
        {m.tokenizer} if m.tokenizer else set())
    if set(m.hashes) != files:
        out.append(f"hashes must list exactly the artifact's files {shorten(sorted(files))}, "
                   f"not {shorten(sorted(m.hashes))}")
    if "step" in m.programs:
        out += _optimizer_problems(m.optimizer)
    if "infer" not in m.programs:
        out.append("there is no infer program")
    expected = {"infer"} | ({"step"} | {bucket_program(n) for n in m.seq_buckets} if "step" in m.programs else set())
    if set(m.programs) != expected:
        out.append(f"programs {shorten(sorted(m.programs))} do not match seq_buckets {m.seq_buckets} "
                   f"(expected {sorted(expected)})")
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
                out.append(f"infer input {shorten(t.name)} is not a state input of the step with the same shape and dtype")
        for name, prog in m.programs.items():
            if name.startswith("step_s") and {t.name: t for t in prog.of_role("state")} != state:
                out.append(f"program {name!r} has other state inputs than 'step'")
    if m.labels is not None:  # optional: an artifact exported from Python may train on label indices only
        n_logits = m.programs["infer"].outputs[0].shape[-1] if "infer" in m.programs and m.programs["infer"].outputs else None
        if m.task != "sequence_classification":
            out.append("labels are for sequence classification")
        elif (not isinstance(m.labels, list) or len(set(m.labels)) != len(m.labels)
              or not all(isinstance(x, str) for x in m.labels)):
            out.append(f"labels {shorten(m.labels)} must be distinct strings")
        elif n_logits is not None and len(m.labels) != n_logits:
            out.append(f"{len(m.labels)} labels but the logits have {n_logits} classes")
    return out


def _optimizer_problems(opt: dict) -> list[str]:
    """The optimizer entry of a training artifact: a known name, a learning rate, plain values."""
    out = []
    if opt.get("name") not in OPTIMIZERS:
        out.append(f"optimizer name {shorten(opt.get('name'))} must be one of {OPTIMIZERS}")
    for key, value in opt.items():
        try:
            if key in ("lr", "eps"):
                schema.number(value, f"optimizer {key}", positive=True)
            elif key in ("nu", "rank"):
                schema.whole(value, f"optimizer {key}", 1, 1 << 20)
            elif key not in ("name", "method") and not isinstance(value, bool):
                schema.number(value, f"optimizer {shorten(key)}")
            elif key == "method" and not isinstance(value, str):
                raise ValueError(f"optimizer method must be a string, not {shorten(value)}")
        except ValueError as e:
            out.append(str(e))
    if "lr" not in opt:
        out.append("the optimizer entry has no default lr")
    return out


def _program_problems(m: Manifest, name: str, prog: ProgramSpec, seq: int) -> list[str]:
    out = []
    for kind, specs in (("input", prog.inputs), ("output", prog.outputs)):
        names = [t.name for t in specs]
        if len(set(names)) != len(names):
            out.append(f"{kind} names repeat: {shorten(sorted({n for n in names if names.count(n) > 1}))}")
    for rt, fname in prog.files.items():
        if rt not in RUNTIMES or not fname.endswith(RUNTIMES.get(rt, "?")) or "/" in fname or fname.startswith("."):
            out.append(f"file {shorten(fname)} for runtime {shorten(rt)} is not a {sorted(RUNTIMES)} program file "
                       "in the artifact")
    weights = prog.lowering.get("onnx", {}).get(ONNX_WEIGHTS_KEY)
    if weights is not None and ("onnx" not in prog.files or not weights.endswith(ONNX_WEIGHTS_SUFFIX)):
        out.append(f"lowering.onnx.{ONNX_WEIGHTS_KEY} {shorten(weights)} must name a {ONNX_WEIGHTS_SUFFIX} file "
                   "of an ONNX program")
    b = m.batch_size
    if name == "infer":  # the inference program may run more rows per call than the step
        b = m.infer_batch
        if not schema.batch_shape_ok(b, max(seq, 2)):
            out.append(f"the inference batch {shorten(b)} must lie in [1, {schema.MAX_BATCH}], times seq_len at most "
                       f"{schema.MAX_BATCH_TOKENS}")
    batch = {t.name: t for t in prog.of_role("batch")}
    if m.task == TENSORS:
        out += _tensor_batch_problems(m, name, batch, b)
    else:
        want = {INPUT_IDS: ((b, seq), "int64"), ATTENTION_MASK: ((b, seq), "int64")}
        if m.task == "sequence_classification" and name != "infer":
            want[LABELS] = ((b,), "int64")
        for n, (shape, dtype) in want.items():
            t = batch.get(n)
            if t is None or t.shape != shape or t.dtype != dtype:
                out.append(f"batch input {n!r} must be {dtype}{list(shape)}, is {t and (t.dtype, list(t.shape))}")
        if set(batch) - set(want):
            out.append(f"unknown batch inputs {shorten(sorted(set(batch) - set(want)))}")
    for t in prog.of_role("hyper"):
        if t.name not in HYPER_INPUTS or t.shape != () or t.dtype != "float32":
            out.append(f"hyper input {shorten(t.name)} must be a float32 scalar named one of {HYPER_INPUTS}")
    for t in prog.of_role("noise"):
        if not t.name.startswith((NOISE_U_PREFIX, NOISE_V_PREFIX, NOISE_Z_PREFIX)) or t.dtype != "float32":
            out.append(f"noise input {shorten(t.name)} must be float32 and named noise.U./noise.V./noise.z.<tensor>")
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
                out.append(f"state output {shorten(t.name)} feeds {shorten(t.feeds)}, which is not a state input")
            elif t.feeds in fed:
                out.append(f"state outputs {shorten(fed[t.feeds])} and {shorten(t.name)} both feed {shorten(t.feeds)}")
            elif (src.shape, src.dtype) != (t.shape, t.dtype) or t.name != next_name(t.feeds):
                out.append(f"state output {shorten(t.name)} must be named {shorten(next_name(t.feeds))} with the "
                           f"shape and dtype of {shorten(t.feeds)}")
            else:
                fed[t.feeds] = t.name
        elif t.feeds:
            out.append(f"output {shorten(t.name)} has role {t.role!r} but feeds {shorten(t.feeds)}: "
                       "only state outputs feed inputs")
    if set(state_in) - set(fed):
        out.append(f"state inputs {shorten(sorted(set(state_in) - set(fed))[:3])} are fed by no output")
    hyper = {t.name for t in prog.of_role("hyper")}
    if EPS in hyper and "eps" not in m.optimizer:
        out.append("the step takes 'eps' but the optimizer entry has no eps")
    if RESAMPLE in hyper and "nu" not in m.optimizer:
        out.append("the step resamples V but the optimizer entry has no nu")
    return out


def _tensor_batch_problems(m: Manifest, name: str, batch: dict[str, TensorSpec], b: int) -> list[str]:
    """A tensors artifact's batch inputs: at least one, each [b, ...]; the step's are the
    inference program's (the model's inputs) plus what the loss reads (its targets)."""
    out = []
    if not batch:
        out.append("a tensors program needs at least one batch input")
    for t in batch.values():
        if not t.shape or t.shape[0] != b:
            out.append(f"batch input {shorten(t.name)} must have the batch ({b}) as its first dimension, "
                       f"has shape {list(t.shape)}")
    infer = m.programs.get("infer")
    if name != "infer" and infer is not None:
        model_inputs = {t.name: t.shape[1:] for t in infer.of_role("batch")}
        mine = {n: t.shape[1:] for n, t in batch.items()}
        if any(mine.get(n) != shape for n, shape in model_inputs.items()):
            out.append(f"the step's batch inputs must include the inference program's {shorten(sorted(model_inputs))} "
                       "with the same shapes")
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


def sha256_tree(path: str | os.PathLike) -> str:
    """Hash of a package directory: the sha256 of the lines ``<sha256 of file>  <relative
    path>\n`` of its regular files, sorted by the paths' UTF-8 bytes (what
    ``find . -type f | sort | xargs sha256sum`` prints, without "./"). `ArtifactError` on a
    symlink or special file (a package holds neither) or more than MAX_PACKAGE_FILES files."""
    root = Path(path)
    files = []
    for dirpath, dirs, names in os.walk(root):
        for name in dirs + names:
            p = Path(dirpath, name)
            if p.is_symlink() or not (p.is_dir() or p.is_file()):
                raise ArtifactError(f"{p} is a link or special file, which no program package holds; "
                                    "copy the artifact directory as a whole")
        files += [Path(dirpath, n).relative_to(root).as_posix().encode() for n in names]
        if len(files) > MAX_PACKAGE_FILES:
            raise ArtifactError(f"{root} holds more than {MAX_PACKAGE_FILES} files, more than any program package; "
                                "re-export the artifact")
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(sha256_file(root / rel.decode()).encode() + b"  " + rel + b"\n")
    return h.hexdigest()


def sha256_program(path: str | os.PathLike) -> str:
    """`sha256_tree` of a package directory, `sha256_file` of anything else."""
    return sha256_tree(path) if Path(path).is_dir() else sha256_file(path)


def _id_field(artifact_id: str) -> bytes:
    return b'"artifact_id": "' + artifact_id.encode("ascii", "replace") + b'"'


def manifest_digest(raw: bytes, artifact_id: str) -> str | None:
    """The artifact id that manifest.json's bytes ``raw`` must carry: the first 16 hex digits
    of the sha256 of ``raw`` with its one ``"artifact_id": "<id>"`` field written with 16
    zeros. None when that field does not occur exactly once."""
    key = _id_field(artifact_id)
    if raw.count(key) != 1:
        return None
    return hashlib.sha256(raw.replace(key, _id_field(ID_PLACEHOLDER))).hexdigest()[:16]


def stamp(raw: bytes) -> tuple[str | None, bytes]:
    """Manifest bytes whose id is `ID_PLACEHOLDER` -> (their digest, the bytes carrying it);
    (None, ``raw``) when the id field does not occur exactly once."""
    aid = manifest_digest(raw, ID_PLACEHOLDER)
    return aid, raw if aid is None else raw.replace(_id_field(ID_PLACEHOLDER), _id_field(aid))


def load_manifest(artifact_dir: str | os.PathLike, runtime: str | None = None, verify: bool = True) -> Manifest:
    """Read and check an artifact's manifest: its schema and every rule of the contract.

    With ``verify`` the manifest's digest (its artifact_id) is checked, so a hand-edited
    value is refused, and the files ``runtime`` needs (programs of that runtime, all
    runtimes when None, the initial state, the tokenizer) are hashed and compared, so a
    manifest copied from another artifact or a changed file is refused.
    """
    d = Path(artifact_dir)
    mpath = d / "manifest.json"
    if not mpath.is_file():
        raise ArtifactError(f"{d} has no manifest.json: is it an edgetune artifact directory? "
                            "Create one with `edgetune export`.")
    if runtime is not None and runtime not in RUNTIMES:
        raise ArtifactError(f"runtime {shorten(runtime)} is unknown; choose one of {sorted(RUNTIMES)}")
    size = mpath.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ArtifactError(f"{mpath} is {size} bytes, more than any manifest ({MAX_MANIFEST_BYTES}); re-export the artifact")
    raw = mpath.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ArtifactError(f"{mpath} is not UTF-8 text ({e.reason} at byte {e.start}); re-export the artifact") from e
    m = Manifest.from_json(text, str(mpath))
    m.validate(str(mpath))
    if not verify:
        return m
    if manifest_digest(raw, m.artifact_id) != m.artifact_id:
        raise ArtifactError(f"{mpath} was changed after export (its content does not match its artifact_id "
                            f"{m.artifact_id}); re-export the artifact instead of editing its manifest")
    if runtime is not None and not any(runtime in p.files for p in m.programs.values()):
        have = sorted({r for p in m.programs.values() for r in p.files})
        raise ArtifactError(f"{d} has no {runtime} program (it has {have}); re-export with --format {runtime}")
    needed = {f: False for f in [STATE_FILE] + ([m.tokenizer] if m.tokenizer else [])}
    needed.update({f: rt in PACKAGE_RUNTIMES for p in m.programs.values() for f, rt in p.data_files(runtime).items()})
    for fname, package in needed.items():
        f = d / fname
        if not ((f.is_dir() and not f.is_symlink()) if package else f.is_file()):
            raise ArtifactError(f"{f} is listed in the manifest but missing; copy the whole artifact directory")
        if (sha256_tree(f) if package else sha256_file(f)) != m.hashes[fname]:
            raise ArtifactError(
                f"{f} does not match manifest.json (sha256 differs): the manifest belongs to another "
                "artifact or the file was changed; re-export or copy the artifact directory as a whole")
    return m
