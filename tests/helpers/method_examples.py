"""One example config per registered adapter method, on disjoint modules of
``TinyClassifier(vocab=128, max_len=16)``, so every method fits into one model and one artifact.

A new method adds its example here; tests/edgetune/adapters/test_every_method.py fails
until it does."""
import numpy as np
import torch

from edgetune.adapters import (
    Calibration,
    EmbeddingDelta,
    EmbeddingRows,
    Fastfood,
    FullyTrainable,
    Kronecker,
    LoRA,
    LoRASB,
    LoRASP,
    LoRAXS,
    PiCa,
)
from edgetune.models.tiny import TinyClassifier


def layer(i: int, name: str) -> str:
    return f"re:encoder\\.layers\\.{i}\\.(attention\\.)?{name}"


EXAMPLES = {
    "lora": LoRA(targets=(layer(1, "query"),), r=4),
    "lora_xs": LoRAXS(targets=(layer(0, "query"),), r=4),
    "lora_sb": LoRASB(targets=(layer(0, "key"),), r=4, init_lr=1e-2, n_samples=8),
    "pica": PiCa(targets=("value",), r=4),
    "lora_sp": LoRASP(targets=(layer(0, "out"),), r=4),
    "kronecker": Kronecker(targets=("up",)),
    "fastfood": Fastfood(targets=(layer(0, "down"),), d_int=64),
    "embedding_delta": EmbeddingDelta(token_ids=tuple(range(1, 40)), kind="fastfood", d_int=16),
    "embedding_rows": EmbeddingRows(token_ids=tuple(range(16)), target="position_embeddings"),
    "full": FullyTrainable(("head",)),
}


def tiny_model() -> TinyClassifier:
    return TinyClassifier(vocab=128, max_len=16)


def calibration() -> Calibration:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 128, (8, 16), generator=g)
    return Calibration.from_arrays({"input_ids": ids.numpy(), "attention_mask": np.ones((8, 16), np.int64),
                                    "labels": torch.randint(0, 3, (8,), generator=g).numpy()}, n_samples=8)
