"""Trainable factors attached to a frozen model: one module per method, plus a registry.

Every adapter config has ``method`` (its registry name) and
``apply(model) -> list[str]`` that swaps in its modules and returns the names it matched.
"""
from edgetune.adapters.registry import ADAPTERS, AdapterConfig, config_from_dict, register
from edgetune.adapters.lora import LoRA, LoRALinear
from edgetune.adapters.embedding_rows import EmbeddingRows, TrainableRowsEmbedding
from edgetune.adapters.full import FullyTrainable

__all__ = ["ADAPTERS", "AdapterConfig", "config_from_dict", "register", "LoRA", "LoRALinear",
           "EmbeddingRows", "TrainableRowsEmbedding", "FullyTrainable"]
