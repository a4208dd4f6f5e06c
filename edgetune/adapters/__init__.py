"""Trainable factors attached to a frozen model: one module per method, plus a registry.

Every adapter config is a frozen dataclass registered under its ``method`` name
(`edgetune.adapters.registry.AdapterConfig`: validate, select, check, apply, param_count).
A new method is one file here (a `LinearAdapterConfig` needs only ``wrap`` and ``values``;
every module of this package is imported below, so its ``@register`` runs), its test file
and its example in tests/helpers/method_examples.py; the registry-driven tests then check
its count, its initial no-op and its export parity.
The mathematics of each method is in docs/methods.md.
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
from edgetune.adapters.registry import (
    ADAPTERS,
    AdaptedModule,
    AdapterConfig,
    ApplyContext,
    LinearAdapterConfig,
    Selection,
    config_from_dict,
    register,
)

__all__ = ["ADAPTERS", "AdaptedModule", "AdapterConfig", "ApplyContext", "LinearAdapterConfig", "Selection", "Calibration",
           "config_from_dict", "register",
           "LoRA", "LoRALinear", "LoRAXS", "CoreLinear", "LoRASB", "PiCa", "PiCaLinear", "LoRASP", "LoRASPLinear",
           "Kronecker", "KroneckerLinear", "Fastfood", "FastfoodLinear", "FastfoodTransform",
           "EmbeddingRows", "TrainableRowsEmbedding", "EmbeddingDelta", "DeltaEmbedding", "FullyTrainable"]


def _import_every_method() -> None:
    """Import every module of the package, so that each method's ``@register`` has run."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_import_every_method()
