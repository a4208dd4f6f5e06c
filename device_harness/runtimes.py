"""One `Program` interface over the runtimes: named numpy arrays in, named numpy arrays out."""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from device_harness.onnx_weights import DTYPES, read_initializers
from edgetune.contract import NP_DTYPES, Manifest, ProgramSpec
from edgetune.errors import ArtifactError, BatchError, ConfigError, shorten


def check_feeds(spec: ProgramSpec, feeds: dict[str, np.ndarray]) -> None:
    """Every input present with the manifest's exact shape and dtype, else `BatchError`."""
    for t in spec.inputs:
        if t.name not in feeds:
            raise BatchError(f"input {t.name!r} ({t.role}) is missing; the program needs "
                             f"{[i.name for i in spec.inputs if i.role != 'state'][:6]} besides its state")
        a = feeds[t.name]
        if not isinstance(a, np.ndarray):
            raise BatchError(f"input {t.name!r} is a {type(a).__name__}; pass a numpy array")
        if a.dtype != NP_DTYPES[t.dtype]:
            raise BatchError(f"input {t.name!r} has dtype {a.dtype}, the program takes {t.dtype}: "
                             f"convert it with .astype(np.{t.dtype})")
        if tuple(a.shape) != t.shape:
            hint = (" (the artifact has a fixed batch shape; pad or trim the batch, or re-export with "
                    "--batch-size/--seq-len)") if t.role == "batch" else ""
            raise BatchError(f"input {t.name!r} has shape {tuple(a.shape)}, the program takes {t.shape}{hint}")


# how each runtime names the manifest's dtypes in a loaded program's signature
ONNX_TYPES = {"float32": "tensor(float)", "int64": "tensor(int64)", "int32": "tensor(int32)", "bool": "tensor(bool)"}
EXECUTORCH_TYPES = {"float32": 6, "int64": 4, "int32": 3, "bool": 11}  # c10::ScalarType codes


def check_signature(path: Path, spec: ProgramSpec, kind: str, have: list[tuple]) -> None:
    """Refuse a program whose ``kind`` ("inputs" or "outputs") differ from the manifest's:
    ``have`` lists what the runtime reports for the loaded program, per position, as
    (name or None where the runtime keeps no names, dtype as the runtime names it, shape
    with None for a symbolic dimension), with the dtype already mapped by the caller."""
    want = spec.inputs if kind == "inputs" else spec.outputs
    if len(have) != len(want):
        raise ArtifactError(f"{path} has {len(have)} {kind}, the manifest lists {len(want)}: the manifest "
                            "belongs to another artifact; re-export")
    for i, (t, (name, dtype, shape)) in enumerate(zip(want, have)):
        same_shape = len(shape) == len(t.shape) and all(d is None or d == w for d, w in zip(shape, t.shape))
        if (name is not None and name != t.name) or dtype != t.dtype or not same_shape:
            raise ArtifactError(f"{path}: {kind[:-1]} {i} is {shorten(name or '?')} {dtype}{list(shape)}, the manifest "
                                f"says {shorten(t.name)} {t.dtype}{list(t.shape)}: the manifest belongs to another "
                                "artifact or was edited; re-export")


class Program:
    """A loaded program; ``run(feeds) -> outputs`` by manifest names."""

    def __init__(self, spec: ProgramSpec):
        self.spec = spec

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feeds(self.spec, feeds)
        outs = self._run([feeds[t.name] for t in self.spec.inputs])
        return {t.name: o for t, o in zip(self.spec.outputs, outs)}

    def _run(self, args: list[np.ndarray]) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError


# The session entry with which onnxruntime makes u8 x s8 integer products exact on x86 CPUs
# whose kernels saturate (exporters.onnx.INT8_SESSION_CONFIG): it shifts constant int8 weights
# to uint8 at load, on every x86 CPU, VNNI or not. Where the CPU has VNNI the runner leaves it
# out: the u8 x s8 products are exact there and 2.5x faster than u8 x u8.
INT8_PRODUCTS_KEY = "session.x64quantprecision"


def int8_products_saturate() -> bool:
    """Whether onnxruntime's u8 x s8 matmul kernels sum in saturating int16 on this CPU: x86
    without AVX-512 VNNI (read with CPUID by numpy, so an emulated CPU answers for itself;
    AVX-VNNI without AVX-512 is not in numpy's list and counts as saturating, the safe side)."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    return not features.get("AVX512VNNI", False)


class SharedWeights:
    """One copy of the frozen weights for all ONNX step programs of an artifact (the full-length
    step and its shorter buckets hold the same weights), and one arena for their intermediates
    (one program runs at a time).

    Each session gets the pool's tensor for every initializer of at least `MIN_BYTES` instead of
    its own; tensors are matched by dtype, shape and content (names are per capture). Constant
    folding and weight prepacking are off in these sessions: both make a private copy of every
    weight per session (a folded transpose, a packed matrix); folding stays on for integer
    products on CPUs that need their weights widened (`INT8_PRODUCTS_KEY`). MiniLM's step and
    four buckets (benchmarks/step_latency.py): 1158 MB in separate sessions, 398 MB shared, 397
    MB for the step alone; step times within the machine's run-to-run spread.
    The files are read with `device_harness.onnx_weights` (a device has no `onnx` package)."""

    MIN_BYTES = 1 << 16
    _arena_registered = False

    def __init__(self):
        self._pool: dict[tuple, object] = {}  # (dtype, dims, digest) -> OrtValue over an array it keeps alive

    @classmethod
    def _register_arena(cls, ort) -> None:
        if not cls._arena_registered:  # once per process: a second registration is an error
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(info, None)
            cls._arena_registered = True

    def configure(self, ort, opts, path: Path, config: dict[str, str]) -> dict:
        """Point ``opts`` at the shared arena and the pooled weights of ``path`` (a program
        with session ``config``); -> keyword arguments for `InferenceSession`."""
        self._register_arena(ort)
        opts.add_session_config_entry("session.use_env_allocators", "1")
        opts.add_session_config_entry("session.disable_prepacking", "1")
        for init in read_initializers(path):
            if len(init.raw) < self.MIN_BYTES or init.data_type not in DTYPES:
                continue
            key = (init.data_type, init.dims, hashlib.blake2b(init.raw, digest_size=16).digest())
            if key not in self._pool:
                self._pool[key] = ort.OrtValue.ortvalue_from_numpy(init.array().copy())  # writable, owned
            opts.add_initializer(init.name, self._pool[key])
        if config.get(INT8_PRODUCTS_KEY) == "1":
            # onnxruntime widens int8 weights for exact products only where they are constants,
            # so the transposes of the forward's weights must fold: a copy per session here
            return {}
        return {"disabled_optimizers": ["ConstantFolding"]}


class OnnxProgram(Program):
    def __init__(self, path: Path, spec: ProgramSpec, threads: int | None = None, shared: SharedWeights | None = None):
        super().__init__(spec)
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ArtifactError("the ONNX runtime is not installed: pip install onnxruntime") from e
        opts = ort.SessionOptions()
        # Only ORT's own exact graph rewrites run; the exporter applies none (see exporters.onnx).
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The memory-pattern planner preallocates one block per run for every
        # intermediate; off, the MiniLM step's peak RSS drops from ~377 to ~319 MB at
        # the same speed (measured with benchmarks/step_latency.py's shape).
        opts.enable_mem_pattern = False
        # Entries the exporter chose for this program (e.g. no weight prepacking for
        # forward-only steps: see exporters.artifact.ZO_SESSION_CONFIG).
        config = spec.lowering.get("onnx", {}).get("session_config", {})  # lowering values are JSON objects (schema)
        if not isinstance(config, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in config.items()):
            raise ArtifactError(f"{path}: the manifest's onnx session_config {config!r} is not a map of strings; "
                                "re-export the artifact")
        if config.get(INT8_PRODUCTS_KEY) == "1" and not int8_products_saturate():
            config = {k: v for k, v in config.items() if k != INT8_PRODUCTS_KEY}
        for key, value in config.items():
            opts.add_session_config_entry(key, value)
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            extra = shared.configure(ort, opts, path, config) if shared is not None else {}
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"], **extra)
        except Exception as e:  # onnxruntime raises its own non-Exception-derived types too
            raise ArtifactError(f"onnxruntime cannot load {path}: {e}") from e
        dtypes = {v: k for k, v in ONNX_TYPES.items()}
        for kind, args in (("inputs", self.session.get_inputs()), ("outputs", self.session.get_outputs())):
            check_signature(path, spec, kind, [(a.name, dtypes.get(a.type, a.type),
                                                [d if isinstance(d, int) else None for d in a.shape]) for a in args])
        self.output_names = [t.name for t in spec.outputs]

    def _run(self, args):
        feeds = {t.name: a for t, a in zip(self.spec.inputs, args)}
        return self.session.run(self.output_names, feeds)


@contextlib.contextmanager
def native_log_captured():
    """Send fd 2 to a temporary file while a runtime's C++ code logs what a user need not see
    (ExecuTorch's CPU detection and thread-pool lines); yields a function that returns what
    was written, for an error message. fd 2 is restored before an exception leaves."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        def written() -> str:
            sys.stderr.flush()
            f.seek(0)
            return f.read().decode("utf-8", "replace")

        try:
            yield written
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _last_line(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return f" (runtime log: {shorten(lines[-1], 200)})" if lines else ""


class ExecuTorchProgram(Program):
    def __init__(self, path: Path, spec: ProgramSpec, threads: int | None = None):
        super().__init__(spec)
        with native_log_captured() as log:
            try:
                import torch
                from executorch.runtime import Runtime
            except ImportError as e:
                raise ArtifactError("the ExecuTorch runtime is not installed: pip install executorch") from e
            self._torch = torch
            if threads:  # XNNPACK's delegates use ExecuTorch's own thread pool, portable ops run on one
                from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

                _unsafe_reset_threadpool(threads)
            try:
                self.method = Runtime.get().load_program(str(path)).load_method("forward")
            except Exception as e:
                raise ArtifactError(f"ExecuTorch cannot load {path}: {shorten(str(e), 200)}{_last_line(log())}") from e
        meta = self.method.metadata
        dtypes = {v: k for k, v in EXECUTORCH_TYPES.items()}
        for kind, n, get in (("inputs", meta.num_inputs(), meta.input_tensor_meta),
                             ("outputs", meta.num_outputs(), meta.output_tensor_meta)):
            infos = [get(i) for i in range(n)]
            check_signature(path, spec, kind, [(None, dtypes.get(int(t.dtype()), str(t.dtype())), list(t.sizes()))
                                               for t in infos])

    def _run(self, args):
        outs = self.method.execute([self._torch.from_numpy(np.require(a, requirements="C")) for a in args])
        return [o.numpy() for o in outs]


_CLASSES = {"onnx": OnnxProgram, "executorch": ExecuTorchProgram}
RUNNERS = tuple(_CLASSES)  # the runtimes this runner opens; Core ML programs run in the Swift trainer


def open_program(artifact_dir: str | Path, manifest: Manifest, program: str = "step",
                 runtime: str = "onnx", threads: int | None = None, shared: SharedWeights | None = None) -> Program:
    """Load ``program`` ('step' or 'infer') of an artifact for ``runtime``; ``shared``: the
    weights pool of the artifact's other programs already open (ONNX only)."""
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads {threads} must be >= 1 (leave it out for the runtime's default)")
    if program not in manifest.programs:
        raise ArtifactError(f"{artifact_dir} has no {program} program (it has {sorted(manifest.programs)}); "
                            + ("it is inference-only: train the artifact it was merged from" if program == "step" else
                               "re-export it"))
    if runtime not in _CLASSES:
        raise ConfigError(f"the Python runner runs {list(RUNNERS)}, not {runtime!r}: "
                          + ("Core ML programs run in the Swift trainer (ios_demo/)" if runtime == "coreml" else
                             "choose one of those"))
    spec = manifest.programs[program]
    if runtime not in spec.files:
        raise ArtifactError(f"the artifact has no {runtime} {program} program (formats: {sorted(spec.files)}); "
                            f"re-export with --format {runtime}")
    path = Path(artifact_dir) / spec.files[runtime]
    return OnnxProgram(path, spec, threads, shared) if runtime == "onnx" else _CLASSES[runtime](path, spec, threads)
