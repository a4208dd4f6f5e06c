"""Trainable factors attached to a frozen model: one module per method, plus a registry.

Every adapter config has ``method`` (its registry name) and
``apply(model, ctx) -> list[str]`` that swaps in its modules and returns the names it matched.
"""
from edgetune.adapters.calibration import Calibration
from edgetune.adapters.embedding_delta import DeltaEmbedding, EmbeddingDelta
from edgetune.adapters.embedding_rows import EmbeddingRows, TrainableRowsEmbedding
from edgetune.adapters.fastfood import Fastfood, FastfoodLinear, FastfoodTransform
from edgetune.adapters.full import FullyTrainable
from edgetune.adapters.kronecker import Kronecker, KroneckerLinear
from edgetune.adapters.lora import LoRA, LoRALinear
from edgetune.adapters.lora_sb import LoRASB
from edgetune.adapters.lora_sp import LoRASP, LoRASPLinear
from edgetune.adapters.lora_xs import CoreLinear, LoRAXS
from edgetune.adapters.pica import PiCa, PiCaLinear
from edgetune.adapters.registry import ADAPTERS, AdaptedModule, AdapterConfig, ApplyContext, config_from_dict, register

__all__ = ["ADAPTERS", "AdaptedModule", "AdapterConfig", "ApplyContext", "Calibration", "config_from_dict", "register",
           "LoRA", "LoRALinear", "LoRAXS", "CoreLinear", "LoRASB", "PiCa", "PiCaLinear", "LoRASP", "LoRASPLinear",
           "Kronecker", "KroneckerLinear", "Fastfood", "FastfoodLinear", "FastfoodTransform",
           "EmbeddingRows", "TrainableRowsEmbedding", "EmbeddingDelta", "DeltaEmbedding", "FullyTrainable"]
