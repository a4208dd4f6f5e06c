"""Ready-made paths from a data file to an artifact, shared by the CLI, benchmarks and tests."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from edgetune.adapters import EmbeddingRows, FullyTrainable, LoRA
from edgetune.data.text import TextEncoder, read_examples
from edgetune.errors import ConfigError
from edgetune.prepared import PreparedModel, prepare
from edgetune.step.compile import CompiledStep, compile_step
from edgetune.step.optimizers import optimizer_from_dict

MODELS = ("minilm", "tiny")


@dataclass
class ClassifierPlan:
    """What to train on a text classifier. Defaults: LoRA r=8 on query/value, the 512 most
    frequent token rows of the user's data, and the head; AdamW."""

    model: str = "minilm"
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("query", "value")
    embedding_rows: int = 512  # 0: no embedding adaptation
    train_head: bool = True
    optimizer: dict = field(default_factory=lambda: {"name": "adamw", "lr": 2e-3, "weight_decay": 0.0})
    batch_size: int = 8
    seq_len: int = 32
    seed: int = 0


def load_classifier(model: str, num_labels: int, seed: int = 0):
    """-> (model, tokenizer.json path). 'tiny' is the built-in test transformer with MiniLM's tokenizer."""
    from edgetune.models.minilm import load_minilm_classifier, minilm_path

    if model == "minilm":
        return load_minilm_classifier(num_labels, seed)
    if model == "tiny":
        from edgetune.models.tiny import TinyClassifier

        return TinyClassifier(vocab=30522, d=32, layers=2, heads=4, max_len=512, num_labels=num_labels,
                              seed=seed), minilm_path() / "tokenizer.json"
    raise ConfigError(f"model {model!r} is unknown; choose one of {MODELS}")


def prepare_classifier(plan: ClassifierPlan, train_csv: str | Path) -> tuple[CompiledStep, list[str], Path]:
    """Labels from the data (sorted), embedding rows from its most frequent tokens
    -> (compiled step, labels, tokenizer path)."""
    examples = read_examples(train_csv)
    labels = sorted({e.label for e in examples})
    if len(labels) < 2:
        raise ConfigError(f"{train_csv} has {len(labels)} distinct label(s); a classifier needs at least 2")
    model, tok = load_classifier(plan.model, len(labels), plan.seed)
    adapters = []
    if plan.lora_r:
        adapters.append(LoRA(targets=tuple(plan.lora_targets), r=plan.lora_r, alpha=plan.lora_alpha))
    if plan.embedding_rows:
        enc = TextEncoder(tok, plan.seq_len)
        ids, _ = enc.encode([e.text for e in examples])
        special = tuple(i for i in (enc.tok.token_to_id(t) for t in ("[PAD]", "[CLS]", "[SEP]")) if i is not None)
        adapters.append(EmbeddingRows(EmbeddingRows.frequent_tokens(ids, plan.embedding_rows, special)))
    if plan.train_head:
        adapters.append(FullyTrainable(("head",)))
    prepared: PreparedModel = prepare(model, adapters)
    return compile_step(prepared, optimizer_from_dict(plan.optimizer), plan.batch_size, plan.seq_len), labels, tok


def export_classifier(plan: ClassifierPlan, train_csv: str | Path, out_dir: str | Path,
                      formats: Sequence[str] = ("onnx", "executorch"), overwrite: bool = False,
                      progress: Callable[[str], None] = lambda m: None):
    """-> (manifest, compiled step)."""
    from exporters.artifact import export_artifact

    compiled, labels, tok = prepare_classifier(plan, train_csv)
    manifest = export_artifact(compiled, out_dir, formats, tokenizer_json=tok, labels=labels,
                               model_info={"name": plan.model, "plan": plan.__dict__ | {"lora_targets": list(plan.lora_targets)}},
                               overwrite=overwrite, progress=progress)
    return manifest, compiled
