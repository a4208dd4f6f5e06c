"""Hugging Face encoders (BERT, RoBERTa, XLM-RoBERTa, ELECTRA, DistilBERT, DeBERTa-v2) as
sequence classifiers: the Hugging Face model itself, pooled, and a linear ``head``.

    ids [B, S] int64, mask [B, S] int64 -> logits [B, num_labels]

Poolings (`POOLINGS`):
- ``mean``: mean of the last hidden states over the mask (sentence-transformers' mean pooling);
- ``cls``: the last hidden state at position 0;
- ``head``: the checkpoint's own classification head (``*ForSequenceClassification``: BERT's
  pooler, RoBERTa's dense + tanh, ...). Its last linear layer becomes ``head``; its rows are
  kept when the checkpoint's labels are the data's, else it is drawn anew.

With ``cls`` and ``head`` only position 0 of the last layer reaches the loss, so that layer is
computed at position 0 alone (`prune_last_layer`): queries, attention output and MLP of one
position instead of S, with keys and values of all positions; the logits are unchanged.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from edgetune.errors import ConfigError
from edgetune.models.common import additive_mask, mean_pool

POOLINGS = ("mean", "cls", "head")
# model_type -> the classification head's last linear layer, inside *ForSequenceClassification
HEAD_LINEAR = {"bert": "classifier", "roberta": "classifier.out_proj", "xlm-roberta": "classifier.out_proj",
               "electra": "classifier.out_proj", "distilbert": "classifier", "deberta-v2": "classifier"}
# model_type -> query and value projections: the default targets of low-rank adapters
ATTENTION_TARGETS = {"bert": ("query", "value"), "roberta": ("query", "value"), "xlm-roberta": ("query", "value"),
                     "electra": ("query", "value"), "distilbert": ("q_lin", "v_lin"),
                     "deberta-v2": ("query_proj", "value_proj")}
# DeBERTa-v2 reads the 0/1 mask itself (and traces with it); the others take the 4-D additive mask,
# because their own mask builders branch on the mask's values and cannot be traced into a fixed graph.
BINARY_MASK = ("deberta-v2",)


def _attend(q, k, v, head_size: int, scale: float, mask_add):
    """q [B, Q, D], k/v [B, S, D], mask_add [B, 1, 1, S] -> [B, Q, D] (multi-head softmax attention)."""
    b = q.shape[0]
    split = lambda t: t.view(b, t.shape[1], -1, head_size).transpose(1, 2)  # noqa: E731
    att = torch.softmax(split(q) @ split(k).transpose(-1, -2) * scale + mask_add, dim=-1)
    return (att @ split(v)).transpose(1, 2).reshape(b, q.shape[1], -1)


class _FirstPositionLayer(nn.Module):
    """A layer of the BERT family (BERT, RoBERTa, XLM-RoBERTa, ELECTRA) at position 0 only:
    hidden [B, S, D] -> [B, 1, D]. Holds the original layer's children under their names."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        for name, child in layer.named_children():
            self.add_module(name, child)

    def forward(self, hidden_states, attention_mask=None, *args, **kwargs):
        sa, x0 = self.attention.self, hidden_states[:, :1]
        ctx = _attend(sa.query(x0), sa.key(hidden_states), sa.value(hidden_states), sa.attention_head_size,
                      sa.scaling, attention_mask)
        a = self.attention.output(ctx, x0)
        return self.output(self.intermediate(a), a)


class _FirstPositionDistilLayer(_FirstPositionLayer):
    """DistilBERT's TransformerBlock at position 0 only."""

    def forward(self, hidden_states, attention_mask=None, *args, **kwargs):
        att, x0 = self.attention, hidden_states[:, :1]
        ctx = _attend(att.q_lin(x0), att.k_lin(hidden_states), att.v_lin(hidden_states), att.attention_head_size,
                      att.scaling, attention_mask)
        a = self.sa_layer_norm(att.out_lin(ctx) + x0)
        return self.output_layer_norm(self.ffn(a) + a)


# model_type -> (path of the layer list in the base model, its position-0 version)
_LAST_LAYER = {"bert": ("encoder.layer", _FirstPositionLayer), "roberta": ("encoder.layer", _FirstPositionLayer),
               "xlm-roberta": ("encoder.layer", _FirstPositionLayer), "electra": ("encoder.layer", _FirstPositionLayer),
               "distilbert": ("transformer.layer", _FirstPositionDistilLayer)}


def prune_last_layer(base: nn.Module, model_type: str) -> bool:
    """Compute ``base``'s last layer at position 0 only (in place; module names unchanged)
    -> whether the architecture allows it (DeBERTa-v2's relative attention does not here)."""
    if model_type not in _LAST_LAYER:
        return False
    path, cls = _LAST_LAYER[model_type]
    layers = base.get_submodule(path)
    layers[len(layers) - 1] = cls(layers[len(layers) - 1])
    return True


class EncoderClassifier(nn.Module):
    """A Hugging Face encoder, pooled, and a linear ``head`` [num_labels, D]."""

    task = "sequence_classification"
    hf_base = "encoder"  # the Hugging Face model inside (PEFT adapters are written for it)

    def __init__(self, encoder: nn.Module, head: nn.Linear, pooling: str, hf_source: str | None = None):
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling {pooling!r}; choose one of {POOLINGS}")
        self.encoder, self.head, self.mode = encoder, head, pooling
        self.hf_source = hf_source  # where from_pretrained loads the encoder from
        kind = encoder.config.model_type
        self.binary_mask = kind in BINARY_MASK
        self.lora_targets = ATTENTION_TARGETS[kind]
        self.pooling = {"mean": "mean of last_hidden_state over attention_mask, then head",
                        "cls": "last_hidden_state at position 0, then head",
                        "head": f"the checkpoint's classification head, its last linear ({HEAD_LINEAR[kind]}) as head"
                        }[pooling] + ": logits = pooled @ weight.T + bias"
        self.pruned = False

    def prune(self) -> bool:
        """Position 0 alone through the last layer (cls and head poolings) -> whether it applied."""
        if self.mode != "mean" and not self.pruned:
            base = self.encoder.base_model if self.mode == "head" else self.encoder
            self.pruned = prune_last_layer(base, self.encoder.config.model_type)
        return self.pruned

    def forward(self, input_ids, attention_mask):
        mask = attention_mask if self.binary_mask else additive_mask(attention_mask)
        out = self.encoder(input_ids=input_ids, attention_mask=mask)
        if self.mode == "head":  # the head's last linear is replaced by Identity: logits are its input
            return self.head(out.logits)
        h = out.last_hidden_state
        return self.head(mean_pool(h, attention_mask) if self.mode == "mean" else h[:, 0])


def new_head(d: int, num_labels: int, seed: int) -> nn.Linear:
    """A fresh head: weights uniform in +-1/sqrt(d) from ``seed``, bias 0."""
    g = torch.Generator().manual_seed(seed)
    head = nn.Linear(d, num_labels)
    with torch.no_grad():
        bound = 1.0 / d ** 0.5
        head.weight.uniform_(-bound, bound, generator=g)
        head.bias.zero_()
    return head


def _has_head(config) -> bool:
    """Whether the checkpoint was saved as a ``*ForSequenceClassification`` model."""
    return any(a.endswith("ForSequenceClassification") for a in config.architectures or ())


def implied_pooling(directory: Path, config) -> str:
    """The pooling a checkpoint implies: its own head (``*ForSequenceClassification``), the
    sentence-transformers Pooling module's mode, else ``cls``."""
    if _has_head(config):
        return "head"
    modules = directory / "modules.json"
    if modules.is_file():
        for m in json.loads(modules.read_text()):
            if m.get("type", "").endswith("Pooling"):
                cfg = json.loads((directory / m["path"] / "config.json").read_text())
                if cfg.get("pooling_mode_mean_tokens"):
                    return "mean"
                if cfg.get("pooling_mode_cls_token"):
                    return "cls"
                raise ConfigError(f"{directory}: the sentence-transformers pooling {cfg} is not supported; "
                                  f"pass a pooling, one of {POOLINGS}")
    return "cls"


def load_encoder_classifier(directory: str | Path, labels: list[str], seed: int = 0, pooling: str | None = None,
                            prune: bool = True) -> EncoderClassifier:
    """The encoder checkpoint in ``directory`` as a classifier of ``labels`` (in eval mode).
    ``pooling``: one of `POOLINGS`, None for the checkpoint's own (`implied_pooling`)."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    from edgetune.models.hf_checkpoint import ENCODERS, quiet_transformers, read_config

    d = Path(directory)
    config = read_config(d)
    if config.model_type not in ENCODERS:
        raise ConfigError(f"{d} holds a {config.model_type!r} decoder; sequence classifiers take the encoders "
                          f"{', '.join(ENCODERS)} (train a decoder on running text instead)")
    pooling = pooling or implied_pooling(d, config)
    if pooling == "head":
        if not _has_head(config):
            raise ConfigError(f"{d} has no classification head (architectures {config.architectures}); "
                              "use pooling 'cls' or 'mean'")
        with quiet_transformers():
            enc = AutoModelForSequenceClassification.from_pretrained(str(d), attn_implementation="eager",
                                                                     local_files_only=True, dtype=torch.float32)
        parent, _, leaf = HEAD_LINEAR[config.model_type].rpartition(".")
        owner = enc.get_submodule(parent) if parent else enc
        old: nn.Linear = getattr(owner, leaf)
        setattr(owner, leaf, nn.Identity())
        ckpt = [config.id2label[i] for i in range(old.out_features)]
        if sorted(ckpt) == sorted(labels):  # the checkpoint's classes: keep its rows, in the data's order
            head = nn.Linear(old.in_features, len(labels))
            rows = torch.tensor([ckpt.index(lab) for lab in labels])
            with torch.no_grad():
                head.weight.copy_(old.weight[rows])
                head.bias.copy_(old.bias[rows])
        else:
            head = new_head(old.in_features, len(labels), seed)
    else:
        with quiet_transformers():
            enc = AutoModel.from_pretrained(str(d), attn_implementation="eager", local_files_only=True,
                                            dtype=torch.float32)
        head = new_head(enc.config.hidden_size, len(labels), seed)
    model = EncoderClassifier(enc, head, pooling, hf_source=str(d))
    if prune:
        model.prune()
    return model.eval()
