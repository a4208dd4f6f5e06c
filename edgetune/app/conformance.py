"""Write an artifact's conformance kit: golden vectors from the eager PyTorch step.

Every implementation of the contract (the Python runner, and trainers in Kotlin, Swift
or TypeScript) replays the kit (`device_harness.conformance`); the format is in
`edgetune.contract.conformance`. The expected values come from eager PyTorch, not from
a runtime, so a kit checks the runner as much as any other implementation.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from edgetune.contract import Manifest, load_manifest
from edgetune.contract.conformance import KIT_FILE, KIT_FORMAT, KIT_VERSION, RESUME_FILE, TENSORS_FILE, TOLERANCE
from edgetune.contract.hyper import hyper_feeds, linear_schedule
from edgetune.contract.names import ATTENTION_MASK, INPUT_IDS, LABELS, LOSS, PARAM_PREFIX
from edgetune.contract.state import resume_or_initial, save_state
from edgetune.data.text import TextEncoder
from edgetune.errors import ConfigError, InternalError
from edgetune.files import replacing_directory, write_atomic
from edgetune.step.compile import CompiledStep

# Texts the tokenizer case encodes: accents, CJK, emoji, punctuation, a URL, runs of
# whitespace and one text longer than any sequence length (truncation).
KIT_TEXTS = (
    "Remind me to call the dentist tomorrow at 9am.",
    "Grocery list: milk, eggs, 2 x bread - and coffee!",
    "Café au lait, naïve résumé, Straße; 東京で会いましょう 🙂",
    "UPPER lower MiXeD   spaces\tand\ttabs\nnew line",
    "don't won't it's o'clock #tag @someone https://example.org/a?b=1",
    " ".join(["a long note that keeps going"] * 40),
)
# Learning rate of the kit's steps: small enough that AdamW's first update, lr x g / (|g| + eps),
# stays within tolerance where |g| is near eps (`exporters.artifact.PARITY_LR`).
KIT_LR = 1e-4
POISON = 3e38  # every trainable value of the non-finite case: the next forward overflows


def kit_batches(compiled: CompiledStep, encoded: tuple[np.ndarray, np.ndarray] | None,
                steps: int) -> list[dict[str, np.ndarray]]:
    """Batch of step t (1-based): rows (t-1) b .. t b - 1 of the encoded kit texts (ids, mask),
    cyclically; labels cycle over the classes. Without a tokenizer, the compiled step's random batches."""
    if encoded is None:
        return [{k: v.numpy() for k, v in compiled.example_batch(seed=t).items()} for t in range(1, steps + 1)]
    ids, mask = encoded
    b, n = compiled.batch_size, len(ids)
    out = []
    for t in range(1, steps + 1):
        rows = np.arange((t - 1) * b, t * b) % n
        batch = {INPUT_IDS: ids[rows], ATTENTION_MASK: mask[rows]}
        if compiled.task == "sequence_classification":
            batch[LABELS] = (np.arange((t - 1) * b, t * b) % compiled.num_classes()).astype(np.int64)
        out.append(batch)
    return out


def write_kit(compiled: CompiledStep, artifact_dir: str | Path, out_dir: str | Path, steps: int = 4,
              resume_at: int = 2, seed: int = 0, overwrite: bool = False) -> dict:
    """Write the kit of the artifact at ``artifact_dir``, whose step ``compiled`` is (the eager
    reference) -> kit.json as a dict. Cases: ``train`` (``steps`` steps from the initial
    state), ``resume`` (from a state file after ``resume_at`` steps), ``nonfinite`` (a step
    that must be rejected)."""
    from edgetune.quant import uses_integer_activations

    d, out = Path(artifact_dir), Path(out_dir)
    manifest = load_manifest(d, verify=False)
    if compiled.inference_only or "step" not in manifest.programs:
        raise ConfigError(f"{d} has no step program: a conformance kit replays training steps")
    if uses_integer_activations(compiled.prepared.model):
        raise ConfigError(f"{d} multiplies on integer codes (w8a8/w8a8g8), which match eager PyTorch only in "
                          "distribution; write the kit from its weight-only counterpart (--quant int8)")
    if not 1 <= resume_at < steps:
        raise ConfigError(f"resume_at={resume_at} must lie in [1, steps={steps})")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; choose another directory or pass --overwrite")
    spec = manifest.step
    feeds_of = {t.feeds: t.name for t in spec.outputs if t.feeds}
    encoded = TextEncoder(d / manifest.tokenizer, manifest.seq_len).encode(KIT_TEXTS) if manifest.tokenizer else None
    batches = kit_batches(compiled, encoded, steps)
    state0, _ = resume_or_initial(d, manifest, None)
    tensors: dict[str, np.ndarray] = {f"train/start/{k}": v for k, v in state0.items()}

    def step_entry(case: str, t: int, state: dict[str, np.ndarray], accepted: bool):
        hyper = hyper_feeds(spec, manifest.optimizer, t, KIT_LR, seed)
        feeds = {k: torch.from_numpy(np.array(v)) for k, v in {**state, **batches[t - 1], **hyper}.items()}
        want = compiled.eager_step(feeds)
        new_state = {i: want[o].numpy() for i, o in feeds_of.items()}
        loss = float(want[LOSS])
        finite = np.isfinite(loss) and all(np.isfinite(v).all() for v in new_state.values())
        if finite != accepted:
            raise InternalError(f"conformance case {case}, step {t}: eager PyTorch gave "
                                f"{'a finite' if finite else 'a non-finite'} step where the case needs the opposite")
        pre = f"{case}/{t}/"
        tensors.update({f"{pre}batch/{k}": v for k, v in batches[t - 1].items()})
        tensors.update({f"{pre}hyper/{k}": v for k, v in hyper.items()})
        entry = {"step": t, "lr": KIT_LR, "batch": f"{pre}batch/", "hyper": f"{pre}hyper/", "accepted": accepted}
        if accepted:
            tensors.update({f"{pre}state/{k}": v for k, v in new_state.items()})
            entry.update(loss=loss, state=f"{pre}state/")
        return entry, new_state

    train_steps, state, states = [], state0, {0: state0}
    for t in range(1, steps + 1):
        entry, state = step_entry("train", t, state, True)
        train_steps.append(entry)
        states[t] = state
    resume_steps, state = [], states[resume_at]
    for t in range(resume_at + 1, steps + 1):
        entry, state = step_entry("resume", t, state, True)
        resume_steps.append(entry)
    poisoned = {k: np.full_like(v, POISON) if k.startswith(PARAM_PREFIX) else v for k, v in state0.items()}
    tensors.update({f"nonfinite/start/{k}": v for k, v in poisoned.items()})
    bad_entry, _ = step_entry("nonfinite", 1, poisoned, False)
    total, peak = 20, 1e-3
    kit = {
        "format": KIT_FORMAT, "version": KIT_VERSION, "artifact_id": manifest.artifact_id, "seed": seed,
        "tolerance": dict(TOLERANCE), "program": "step",
        "tokenizer": None, "schedule": {"total": total, "peak": peak,
                                        "linear": [linear_schedule(s, total, peak) for s in range(1, total + 1)]},
        "cases": [{"name": "train", "start": "train/start/", "start_step": 0, "steps": train_steps},
                  {"name": "resume", "start": RESUME_FILE, "start_step": resume_at, "steps": resume_steps},
                  {"name": "nonfinite", "start": "nonfinite/start/", "start_step": 0, "steps": [bad_entry]}],
    }
    if encoded is not None:
        ids, mask = encoded
        tensors.update({"tokenize/input_ids": ids, "tokenize/attention_mask": mask})
        kit["tokenizer"] = {"seq_len": manifest.seq_len, "texts": list(KIT_TEXTS),
                            "input_ids": "tokenize/input_ids", "attention_mask": "tokenize/attention_mask"}
    _write_dir(out, kit, tensors, states[resume_at], manifest, resume_at)
    return kit


def _write_dir(out: Path, kit: dict, tensors: dict, resume_state: dict, manifest: Manifest, resume_at: int) -> None:
    """Build the kit in a temporary sibling and move it into place: never a half kit."""
    from safetensors.numpy import save

    with replacing_directory(out) as tmp:
        # np.require, not np.ascontiguousarray: the latter turns 0-d arrays (hyper inputs) into 1-d ones
        write_atomic(tmp / TENSORS_FILE, save({k: np.require(v, requirements="C") for k, v in tensors.items()}))
        save_state(tmp / RESUME_FILE, resume_state, manifest, resume_at)
        write_atomic(tmp / KIT_FILE, json.dumps(kit, indent=1).encode("utf-8"))


def write_kit_for(artifact_dir: str | Path, out_dir: str | Path, steps: int = 4, overwrite: bool = False) -> dict:
    """The kit of an artifact exported by edgetune's recipes: its eager step is rebuilt from
    the artifact (`edgetune.app.restore.restore_prepared`)."""
    from edgetune.app.restore import restore_prepared
    from edgetune.step.build import compile_step
    from edgetune.step.optimizers import optimizer_from_dict

    prepared, manifest = restore_prepared(artifact_dir)
    compiled = compile_step(prepared, optimizer_from_dict(manifest.optimizer), manifest.batch_size, manifest.seq_len)
    return write_kit(compiled, artifact_dir, out_dir, steps=steps, overwrite=overwrite)
