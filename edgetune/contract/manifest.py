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

from edgetune.errors import ArtifactError

MANIFEST_FORMAT = "edgetune.artifact"
MANIFEST_VERSION = 1
ROLES = ("state", "batch", "hyper", "noise", "metric")
# manifest dtype -> numpy dtype (safetensors: F32, I64, I32, BOOL)
NP_DTYPES = {"float32": np.dtype(np.float32), "int64": np.dtype(np.int64), "int32": np.dtype(np.int32),
             "bool": np.dtype(np.bool_)}
DTYPES = tuple(NP_DTYPES)
RUNTIMES = {"onnx": ".onnx", "executorch": ".pte"}  # runtime name -> program file suffix


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
            return TensorSpec(d["name"], tuple(int(x) for x in d["shape"]), d["dtype"], d["role"], d.get("feeds"))
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
    hashes: dict[str, str]  # file name -> sha256 of every program and the state file
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
                artifact_id=str(d["artifact_id"]), task=str(d["task"]), batch_size=int(d["batch_size"]),
                seq_len=int(d["seq_len"]), programs=programs, optimizer=dict(d.get("optimizer") or {}),
                hashes=dict(d["hashes"]), labels=d.get("labels"), tokenizer=d.get("tokenizer"),
                model=dict(d.get("model", {})), adapters=dict(d.get("adapters", {})),
                seq_buckets=[int(n) for n in d.get("seq_buckets", [])])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ArtifactError(f"{where} is missing or has a malformed field ({e!r}); re-export the artifact") from e

    @property
    def step(self) -> ProgramSpec:
        return self.programs["step"]

    def step_program_for(self, length: int) -> tuple[str, int]:
        """(program name, its sequence length) of the shortest step that holds ``length`` tokens."""
        n = min((b for b in self.seq_buckets if b >= length), default=self.seq_len)
        return (bucket_program(n) if n != self.seq_len else "step"), n

    def state_specs(self) -> list[TensorSpec]:
        """The tensors kept in state.safetensors: the step's state inputs (none for an
        inference-only artifact, whose weights are constants of its program)."""
        return list(self.step.of_role("state")) if "step" in self.programs else []


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
