"""Write an artifact directory from a compiled step: programs per runtime, manifest, state, tokenizer."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from device_harness.runtimes import RUNNERS
from edgetune.contract import RUNTIMES, Manifest, ProgramSpec, bucket_program, sha256_program
from edgetune.contract.conformance import TOLERANCE, mismatch
from edgetune.contract.manifest import ID_PLACEHOLDER, ONNX_WEIGHTS_KEY, STATE_FILE
from edgetune.contract.schema import MAX_BATCH, MAX_BATCH_TOKENS, batch_shape_ok
from edgetune.errors import ConfigError, InternalError
from edgetune.files import replacing_directory
from edgetune.step.compile import CompiledStep
from edgetune.step.zeroth_order import ZOStep
from exporters.cost import step_cost
from exporters.stages import StageLog

# Tolerance of every parity check between eager PyTorch and a runtime: the contract's
# (`edgetune.contract.conformance.TOLERANCE`). SmolLM2's embedding-row gradients (summed
# over every position, through every layer) differed from eager by up to 1e-4 of their
# largest value, hence its scaled absolute floor.
RTOL, ATOL = TOLERANCE["rtol"], TOLERANCE["atol"]
# Learning rate of parity checks. AdamW's step-1 update is lr * g / (|g| + eps): where
# |g| is near eps (1e-8), rounding-level differences in g move the update by a
# sizeable fraction of lr, on any two implementations. At 1e-4 that stays below ATOL,
# while a lost epsilon (0/0 where g == 0) still shows as NaN at any lr.
PARITY_LR = 1e-4
# Integer matmuls round activations to codes, and a code flips when an input moves by
# rounding noise: eager PyTorch itself moves by ~10% of an untrained head's logits when
# one LayerNorm weight moves by 1e-7. A runtime can therefore match eager only in
# distribution. Those programs are checked from a smooth point (optimizer slots at
# SMOOTH_SLOT, where AdamW's update is linear in the gradient, instead of step 1's
# lr * sign(g)), by each output's change in relative L2: measured <= 2.3% on MiniLM
# (w8a8g8); a wrong scale, axis or transpose gives ~100%.
SMOOTH_SLOT, NOISY_REL_L2 = 1e-2, 0.1
# How each runtime rounds an integer matmul's activations (`edgetune.quant.int8_matmul`);
# its programs are checked against eager PyTorch rounding the same way. Others: "symmetric".
ACTIVATION_ROUNDING = {"executorch": "asymmetric"}


# onnxruntime packs a constant weight once per MatMul that reads it. A forward-only step
# reads every frozen weight in two forwards, so packing would hold two packed copies of
# the model: +40 MB peak RSS on MiniLM-L6 (1.16x the inference process instead of 1.02x)
# for ~6% of the step's time. The runner applies these entries to the session.
ZO_SESSION_CONFIG = {"session.disable_prepacking": "1"}


def _write_program(fmt: str, ep, spec, path: Path, forward_only: bool = False) -> dict:
    """Lower one program; returns what the manifest records of the lowering. ``forward_only``:
    a zeroth-order step (two forwards over the same frozen weights)."""
    if fmt == "onnx":
        from exporters.onnx import export_onnx, session_config

        export_onnx(ep, spec, path)
        config = {**session_config(ep), **(ZO_SESSION_CONFIG if forward_only else {})}
        return {"session_config": config} if config else {}
    if fmt == "coreml":
        from exporters.coreml import export_coreml

        return export_coreml(ep, spec, path)
    from exporters.executorch import export_executorch

    return export_executorch(ep, path)


def compare_outputs(want: dict[str, torch.Tensor], got: dict[str, np.ndarray], rtol=RTOL, atol=ATOL) -> list[str]:
    """Names (with max error) of outputs that differ beyond tolerance or are not finite."""
    tol = {**TOLERANCE, "rtol": rtol, "atol": atol}
    bad = []
    for name, w in want.items():
        why = mismatch(w.detach().numpy(), got[name], tol)
        if why:
            bad.append(f"{name} ({why})")
    return bad


def compare_changes(want: dict[str, torch.Tensor], got: dict[str, np.ndarray], start: dict[str, np.ndarray],
                    feeds_of: dict[str, str], limit: float = NOISY_REL_L2) -> list[str]:
    """Names of outputs whose change (from the state input they replace; values for the
    rest) differs from eager's by more than ``limit`` in relative L2, or is not finite."""
    bad = []
    for name, w in want.items():
        g = got[name].astype(np.float64)
        base = start[feeds_of[name]].astype(np.float64) if name in feeds_of else 0.0
        dw, dg = w.detach().numpy().astype(np.float64) - base, g - base
        rel = float(np.linalg.norm(dg - dw) / max(float(np.linalg.norm(dw)), 1e-30))
        if not np.isfinite(g).all() or rel > limit:
            bad.append(f"{name} (relative L2 of the change {rel:.3g}, finite={bool(np.isfinite(g).all())})")
    return bad


def self_check(artifact_dir: Path, manifest: Manifest, variants: dict[str, tuple[CompiledStep, str]],
               runtimes: Sequence[str], eps: dict[str, torch.export.ExportedProgram],
               log: StageLog | None = None) -> None:
    """Run each exported program (name -> (its compiled step, "step" | "infer")) once at step 1
    from the initial state (where LoRA's A has an exactly-zero gradient) on each of ``runtimes``
    and compare with eager PyTorch (run once per program and activation rounding). A graph
    rewrite or lowering that changed the numbers is an `InternalError`. Programs with integer
    activations are compared in distribution (`compare_changes`). Core ML predicts only on
    Apple's systems: what is run of it is the rewritten graph the converter received (from the
    captured ``eps``), whose features were checked when written."""
    from edgetune.quant import uses_integer_activations
    from edgetune.quant.int8_matmul import activation_rounding

    log = log if log is not None else StageLog()
    for program, (compiled, kind) in variants.items():
        noisy = uses_integer_activations(compiled.prepared.model)
        feeds = compiled.example_feeds(lr=PARITY_LR)
        if noisy:
            for t in compiled.state_specs()[len(compiled.names):]:  # optimizer slots
                feeds[t.name] = torch.full(t.shape, SMOOTH_SLOT)
        np_feeds = {k: v.numpy() for k, v in feeds.items()}
        wants: dict[str, dict[str, torch.Tensor]] = {}  # by the runtime's activation rounding
        for runtime in runtimes:
            rounding = ACTIVATION_ROUNDING.get(runtime, "symmetric") if noisy else "symmetric"
            if rounding not in wants:
                with log.stage("eager reference", program), activation_rounding(rounding):
                    wants[rounding] = (compiled.eager_step(feeds) if kind == "step"
                                       else {"logits": compiled.eager_infer(feeds)})
            with log.stage(f"check {runtime}", program):
                _check_program(artifact_dir, manifest, program, runtime, eps, wants[rounding], np_feeds, noisy)


def _check_program(artifact_dir: Path, manifest: Manifest, program: str, runtime: str,
                   eps: dict[str, torch.export.ExportedProgram], want: dict[str, torch.Tensor],
                   np_feeds: dict[str, np.ndarray], noisy: bool) -> None:
    from device_harness.runtimes import open_program
    from exporters.coreml import RewrittenProgram

    prog = (RewrittenProgram(eps[program], manifest.programs[program]) if runtime == "coreml" else
            open_program(artifact_dir, manifest, program, runtime))
    got = prog.run({t.name: np_feeds[t.name] for t in prog.spec.inputs})
    feeds_of = {t.name: t.feeds for t in prog.spec.outputs if t.feeds}
    bad = compare_changes(want, got, np_feeds, feeds_of) if noisy else compare_outputs(want, got)
    if bad:
        raise InternalError(f"the {runtime} {program} program differs from eager PyTorch in {len(bad)} "
                            f"outputs: {bad[:4]}. The lowering changed the step's numbers.")


def _variants(compiled: CompiledStep, seq_buckets: Sequence[int],
              infer_batch: int | None = None) -> dict[str, tuple[CompiledStep, str]]:
    """Program name -> (compiled step at its shape, "step" | "infer"); the inference program
    runs ``infer_batch`` rows per call (default: the step's batch)."""
    if infer_batch is not None and not batch_shape_ok(infer_batch, max(compiled.seq_len, 2)):
        raise ConfigError(f"eval batch {infer_batch!r} must be a whole number in [1, {MAX_BATCH}] with "
                          f"batch x seq_len <= {MAX_BATCH_TOKENS} (--eval-batch-size)")
    infer = (replace(compiled, batch_size=infer_batch) if infer_batch else compiled), "infer"
    if compiled.inference_only:
        return {"infer": infer}
    bad = [n for n in seq_buckets if not 2 <= n < compiled.seq_len]
    if bad or compiled.task != "sequence_classification" and seq_buckets:
        raise ConfigError(f"seq_buckets {list(seq_buckets)}: shorter step programs are for text classifiers, "
                          f"with lengths from 2 to below seq_len={compiled.seq_len}")
    out = {"step": (compiled, "step")}
    for n in sorted(set(seq_buckets)):
        out[bucket_program(n)] = (replace(compiled, seq_len=n), "step")
    out["infer"] = infer
    return out


def export_artifact(compiled: CompiledStep, out_dir: str | Path, formats: Sequence[str] = RUNNERS,
                    tokenizer_json: str | Path | None = None, labels: list[str] | None = None,
                    model_info: dict | None = None, overwrite: bool = False, seq_buckets: Sequence[int] = (),
                    progress: Callable[[str], None] = lambda msg: None, infer_batch: int | None = None,
                    log: StageLog | None = None) -> Manifest:
    """Capture, lower to each of ``formats``, self-check, and move the directory into place
    (built in a temporary sibling, so a failed export leaves no half artifact).

    ``seq_buckets`` adds step programs at those shorter sequence lengths (a text
    classifier's padding-free batches: the runner groups texts by length and runs each
    batch at the shortest length that holds it). ``infer_batch``: rows per call of the
    inference program (evaluation), default the step's batch. ``log`` collects the seconds and
    peak RSS of each stage (a new one by default); the artifact gets them as ``export_cost.json``."""
    from edgetune.contract.state import save_state

    out = Path(out_dir)
    unknown = [f for f in formats if f not in RUNTIMES]
    if unknown or not formats:
        raise ConfigError(f"formats {list(formats)}: choose from {sorted(RUNTIMES)}")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; choose another directory or pass overwrite=True (--overwrite)")
    if compiled.task == "sequence_classification":
        n = compiled.num_classes()
        if labels is not None and len(labels) != n:
            raise ConfigError(f"{len(labels)} labels given but the head has {n} outputs")
    with replacing_directory(out) as tmp:
        progress("capturing the training step")
        variants = _variants(compiled, seq_buckets, infer_batch)
        names = tuple(variants)
        log = log if log is not None else StageLog()
        eps = {}
        for p, (c, kind) in variants.items():
            with log.stage("capture", p):
                eps[p] = c.capture(kind)
        specs = {p: c.step_spec() if kind == "step" else c.infer_spec() for p, (c, kind) in variants.items()}
        files: dict[str, dict[str, str]] = {p: {} for p in names}
        lowering: dict[str, dict[str, dict]] = {p: {} for p in names}
        for fmt in formats:
            for program in names:
                progress(f"lowering {program} to {fmt}")
                fname = f"{program}{RUNTIMES[fmt]}"
                compiled_p, kind = variants[program]
                with log.stage(f"lower {fmt}", program):
                    info = _write_program(fmt, eps[program], specs[program], tmp / fname,
                                          forward_only=kind == "step" and isinstance(compiled_p, ZOStep))
                files[program][fmt] = fname
                if info:
                    lowering[program][fmt] = info
        if "onnx" in formats:
            from exporters.onnx_external import share_onnx_weights

            with log.stage("share ONNX weights"):
                weights = share_onnx_weights(tmp, [files[p]["onnx"] for p in names])
            for p in names if weights else ():
                lowering[p]["onnx"] = {**lowering[p].get("onnx", {}), ONNX_WEIGHTS_KEY: weights}
        programs = {p: ProgramSpec(specs[p].inputs, specs[p].outputs, files[p], lowering[p]) for p in specs}
        model = {k: v for k, v in (model_info or {}).items() if k != "step_cost"}  # a merged artifact's was its source's
        if "step" in variants:  # for step-time predictions on named boards (device_harness.host.predict)
            progress("counting the step's FLOPs and bytes")
            with log.stage("count FLOPs", "step"):
                model["step_cost"] = step_cost(eps["step"], specs["step"])
        if tokenizer_json is not None:
            shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")
        manifest = Manifest(
            artifact_id=ID_PLACEHOLDER, task=compiled.task, batch_size=compiled.batch_size, seq_len=compiled.seq_len,
            programs=programs, optimizer=compiled.optimizer.to_dict() if compiled.optimizer else {}, hashes={},
            labels=labels, tokenizer="tokenizer.json" if tokenizer_json is not None else None, model=model,
            adapters=compiled.prepared.report.to_dict(), seq_buckets=sorted(set(seq_buckets)))
        save_state(tmp / STATE_FILE, {k: v.numpy() for k, v in compiled.initial_state().items()}, manifest,
                   step=0, initial=True)
        hashed = sorted({f for p in programs.values() for f in p.data_files()}) + [STATE_FILE] + (
            [manifest.tokenizer] if manifest.tokenizer else [])
        manifest, raw = replace(manifest, hashes={f: sha256_program(tmp / f) for f in hashed}).stamped()
        if not compiled.inference_only:  # the adapters' frozen factors, to restore or merge trained state
            from edgetune.adapters.io import save_adapter

            save_adapter(compiled.prepared, tmp, base=model_info)
        (tmp / "manifest.json").write_bytes(raw)
        progress(f"checking the {', '.join(formats)} programs against eager PyTorch")
        self_check(tmp, manifest, variants, formats, eps, log)
        log.write(tmp)
    return manifest
