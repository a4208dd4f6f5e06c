"""Text classifiers: a plan, and the path from a text,label file to an artifact."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from device_harness.runtimes import RUNNERS
from edgetune.adapters import EmbeddingRows, FullyTrainable
from edgetune.app.common import adapter_config, calibration_sample, model_targets
from edgetune.data.records import read_examples
from edgetune.data.rows import label_indices
from edgetune.data.text import TextEncoder
from edgetune.errors import ConfigError
from edgetune.prepared import PreparedModel, prepare
from edgetune.step.build import compile_step
from edgetune.step.compile import CompiledStep
from edgetune.step.optimizers import optimizer_from_dict

MODELS = ("minilm", "tiny")  # named models; a Hugging Face checkpoint directory is taken too
HEAD_INITS = ("random", "centroids")  # centroids: class means of the user's data (edgetune.models.head_init)


def default_adapter() -> dict:
    """LoRA r=8 on the model's query and value projections (targets left to the model: `model_targets`)."""
    return {"method": "lora", "r": 8, "alpha": 16.0}


@dataclass
class ClassifierPlan:
    """What to train on a text classifier.

    ``model``: 'minilm', 'tiny' or a local Hugging Face encoder checkpoint directory
    (edgetune.models.encoder); ``pooling`` for a directory: 'mean', 'cls', 'head' or None for
    what the checkpoint implies; ``prune``: with 'cls' / 'head', the last layer at position 0 only.
    ``adapter``: one low-rank method as a config dict (``{"method": "lora_sb", "r": 16, ...}``,
    any registered method; None for none). Adapters with a ``seed`` field get ``seed``
    unless the dict sets one. Defaults: LoRA r=8 on query/value, the 512 most frequent
    token rows of the user's data, and the head; AdamW.
    """

    model: str = "minilm"
    pooling: str | None = None
    prune: bool = True
    adapter: dict | None = field(default_factory=default_adapter)
    embedding_rows: int = 512  # 0: no embedding adaptation
    train_head: bool = True
    head_init: str = "random"  # or "centroids": class means of the user's data (edgetune.models.head_init)
    optimizer: dict = field(default_factory=lambda: {"name": "adamw", "lr": 2e-3, "weight_decay": 0.0})
    batch_size: int = 8
    seq_len: int = 32
    seed: int = 0
    quant: str | None = None  # frozen base: None (fp32) or a mode of edgetune.quant.QUANT_MODES
    # shorter step programs for padding-free batches (texts grouped by length), e.g. [16, 24]
    seq_buckets: list[int] = field(default_factory=list)
    eval_batch_size: int | None = None  # rows per call of the inference program (None: batch_size)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_classifier(model: str, labels: list[str], seed: int = 0, quant: str | None = None,
                    pooling: str | None = None, prune: bool = True):
    """-> (model, tokenizer.json path). 'tiny' is the built-in test transformer with MiniLM's tokenizer;
    a directory is a Hugging Face encoder checkpoint. ``quant`` quantizes every frozen linear but
    the head (`edgetune.quant.config_from`)."""
    from edgetune.models.hf_checkpoint import is_checkpoint_dir, tokenizer_path
    from edgetune.models.minilm import load_minilm_classifier, minilm_path
    from edgetune.quant import config_from, quantize

    if pooling is not None and not is_checkpoint_dir(model):
        raise ConfigError(f"pooling={pooling!r} is for checkpoint directories; {model!r} has its own")
    if model == "minilm":
        net, tok = load_minilm_classifier(labels, seed)
    elif model == "tiny":
        from edgetune.models.tiny import TinyClassifier

        net, tok = TinyClassifier(vocab=30522, d=32, layers=2, heads=4, max_len=512, num_labels=len(labels),
                                  seed=seed), minilm_path() / "tokenizer.json"
    elif is_checkpoint_dir(model):
        from edgetune.models.encoder import load_encoder_classifier

        tok = tokenizer_path(model)
        net = load_encoder_classifier(model, labels, seed, pooling, prune)
    else:
        raise ConfigError(f"model {model!r} is unknown; choose one of {MODELS} or a Hugging Face checkpoint "
                          "directory (config.json + *.safetensors + tokenizer.json)")
    cfg = config_from(quant)
    if cfg is not None:
        quantize(net, cfg)
    return net, tok


def prepare_classifier(plan: ClassifierPlan, train_csv: str | Path) -> tuple[CompiledStep, list[str], Path]:
    """Labels from the data (sorted), embedding rows from its most frequent tokens,
    calibration batches from it where the method needs them
    -> (compiled step, labels, tokenizer path)."""
    examples = read_examples(train_csv)
    labels = sorted({e.label for e in examples})
    if len(labels) < 2:
        raise ConfigError(f"{train_csv} has {len(labels)} distinct label(s); a classifier needs at least 2")
    torch.manual_seed(plan.seed)  # adapter initialisations that draw from the global generator (LoRA's A)
    model, tok = load_classifier(plan.model, labels, plan.seed, plan.quant, plan.pooling, plan.prune)
    enc = TextEncoder(tok, plan.seq_len)
    ids, mask = enc.encode([e.text for e in examples])
    arrays = {"input_ids": ids, "attention_mask": mask, "labels": label_indices(examples, labels)}
    if plan.head_init == "centroids":
        from edgetune.models.head_init import centroid_head

        centroid_head(model, arrays)
    elif plan.head_init not in HEAD_INITS:
        raise ConfigError(f"head_init={plan.head_init!r}; choose one of {HEAD_INITS}")
    adapters = []
    if plan.embedding_rows:
        special = tuple(np.unique(np.concatenate(enc.encode([""]))).tolist())  # what template and padding add
        adapters.append(EmbeddingRows(EmbeddingRows.frequent_tokens(ids, plan.embedding_rows, special)))
    calibration = None
    if plan.adapter:
        cfg = adapter_config(model_targets(plan.adapter, model), plan.seed)
        adapters.append(cfg)
        if cfg.needs_calibration:
            calibration = calibration_sample(arrays, cfg.n_samples, plan.seed)
    if plan.train_head:
        adapters.append(FullyTrainable(("head",)))
    prepared: PreparedModel = prepare(model, adapters, calibration=calibration)
    return compile_step(prepared, optimizer_from_dict(plan.optimizer), plan.batch_size, plan.seq_len), labels, tok


def export_classifier(plan: ClassifierPlan, train_csv: str | Path, out_dir: str | Path,
                      formats: Sequence[str] = RUNNERS, overwrite: bool = False,
                      progress: Callable[[str], None] = lambda m: None, cache: bool = False, log=None):
    """-> (manifest, compiled step). With ``cache``, an unchanged plan is copied from the export
    cache (`edgetune.app.export_cache`) and the compiled step is None. ``log``: an
    `exporters.stages.StageLog` for the seconds and memory of each stage."""
    from exporters.artifact import export_artifact
    from exporters.stages import StageLog

    log = log if log is not None else StageLog()

    def export():
        with log.stage("load and prepare"):
            compiled, labels, tok = prepare_classifier(plan, train_csv)
        manifest = export_artifact(compiled, out_dir, formats, tokenizer_json=tok, labels=labels,
                                   model_info={"name": plan.model, "plan": plan.to_dict()},
                                   overwrite=overwrite, seq_buckets=plan.seq_buckets, progress=progress,
                                   infer_batch=plan.eval_batch_size, log=log)
        return manifest, compiled

    if not cache:
        return export()
    from edgetune.app.export_cache import cached_export

    return cached_export("classifier", plan.to_dict(), train_csv, formats, out_dir, overwrite, export, progress)
