"""Back from an artifact to the host: the prepared model with trained state, and merged exports."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from device_harness.runtimes import RUNNERS
from edgetune.errors import ConfigError
from edgetune.prepared import PreparedModel


def restore_prepared(artifact_dir: str | Path, state_path: str | Path | None = None) -> tuple[PreparedModel, dict]:
    """Rebuild the prepared model of an artifact exported by `export_classifier` or
    `edgetune.app.lm.export_lm` (fresh base + the artifact's saved adapters), with the trainable
    tensors of ``state_path`` (a state file written by the runner; default: the artifact's
    initial state) -> (prepared model, manifest)."""
    from edgetune.adapters.io import load_adapter
    from edgetune.app.classifier import load_classifier
    from edgetune.contract import load_manifest
    from edgetune.contract.names import param_input
    from edgetune.contract.state import resume_or_initial

    d = Path(artifact_dir)
    manifest = load_manifest(d, verify=False)
    plan = manifest.model.get("plan")
    if manifest.task == "causal_lm" and plan:
        from edgetune.app.lm import LMPlan, load_lm

        model = load_lm(LMPlan(**plan))
    elif manifest.task == "sequence_classification" and plan and manifest.labels:
        if plan.get("head_init", "random") != "random" and not plan["train_head"]:
            raise ConfigError(f"{d}: its frozen head was initialised from the training data and is not stored; "
                              "export with a trained head (the default) to restore or merge it")
        model, _ = load_classifier(plan["model"], manifest.labels, plan["seed"], plan.get("quant"),
                                   plan.get("pooling"), plan.get("prune", True))
    else:
        raise ConfigError(f"{d} was not exported by edgetune's recipes (no plan in its manifest)")
    prepared = load_adapter(model, d)
    state, _ = resume_or_initial(d, manifest, state_path, must_exist=True)
    with torch.no_grad():
        for name, p in prepared.trainable().items():
            p.copy_(torch.from_numpy(state[param_input(name)]))
    return prepared, manifest


def export_merged(artifact_dir: str | Path, out_dir: str | Path, state_path: str | Path | None = None,
                  formats: Sequence[str] = RUNNERS, overwrite: bool = False,
                  progress: Callable[[str], None] = lambda m: None, log=None):
    """An inference-only artifact with the trained adapters folded into the base weights
    -> (manifest, compiled inference program). ``log``: an `exporters.stages.StageLog`."""
    from edgetune.adapters.merge import merge
    from edgetune.step.build import compile_inference
    from exporters.artifact import export_artifact

    prepared, manifest = restore_prepared(artifact_dir, state_path)
    compiled = compile_inference(merge(prepared), manifest.batch_size, manifest.seq_len)
    tok = Path(artifact_dir) / manifest.tokenizer if manifest.tokenizer else None
    out = export_artifact(compiled, out_dir, formats, tokenizer_json=tok, labels=manifest.labels,
                          model_info={**manifest.model, "merged_from": manifest.artifact_id},
                          overwrite=overwrite, progress=progress, log=log)
    return out, compiled
