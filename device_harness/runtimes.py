"""One `Program` interface over the runtimes: named numpy arrays in, named numpy arrays out."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgetune.contract import NP_DTYPES, Manifest, ProgramSpec
from edgetune.errors import ArtifactError, BatchError


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


class OnnxProgram(Program):
    def __init__(self, path: Path, spec: ProgramSpec, threads: int | None = None):
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
        config = spec.lowering.get("onnx", {}).get("session_config", {})
        if not isinstance(config, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in config.items()):
            raise ArtifactError(f"{path}: the manifest's onnx session_config {config!r} is not a map of strings; "
                                "re-export the artifact")
        for key, value in config.items():
            opts.add_session_config_entry(key, value)
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own non-Exception-derived types too
            raise ArtifactError(f"onnxruntime cannot load {path}: {e}") from e
        have = [i.name for i in self.session.get_inputs()]
        want = [t.name for t in spec.inputs]
        if have != want:
            raise ArtifactError(f"{path} takes inputs {have[:4]}..., the manifest lists {want[:4]}...: "
                                "the manifest belongs to another artifact; re-export")
        self.output_names = [t.name for t in spec.outputs]

    def _run(self, args):
        feeds = {t.name: a for t, a in zip(self.spec.inputs, args)}
        return self.session.run(self.output_names, feeds)


class ExecuTorchProgram(Program):
    def __init__(self, path: Path, spec: ProgramSpec, threads: int | None = None):
        super().__init__(spec)
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
            raise ArtifactError(f"ExecuTorch cannot load {path}: {e}") from e

    def _run(self, args):
        outs = self.method.execute([self._torch.from_numpy(np.require(a, requirements="C")) for a in args])
        return [o.numpy() for o in outs]


_CLASSES = {"onnx": OnnxProgram, "executorch": ExecuTorchProgram}


def open_program(artifact_dir: str | Path, manifest: Manifest, program: str = "step",
                 runtime: str = "onnx", threads: int | None = None) -> Program:
    """Load ``program`` ('step' or 'infer') of an artifact for ``runtime``."""
    if program not in manifest.programs:
        raise ArtifactError(f"{artifact_dir} has no {program} program (it has {sorted(manifest.programs)}); "
                            + ("it is inference-only: train the artifact it was merged from" if program == "step" else
                               "re-export it"))
    spec = manifest.programs[program]
    if runtime not in spec.files:
        raise ArtifactError(f"the artifact has no {runtime} {program} program (formats: {sorted(spec.files)}); "
                            f"re-export with --format {runtime}")
    return _CLASSES[runtime](Path(artifact_dir) / spec.files[runtime], spec, threads)
