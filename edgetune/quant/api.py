"""``quantize(model, config, filter_fn)``: replace frozen layers by integer ones, in place.

Configs: `Int8Config()` (per-output-channel symmetric) and `Int4Config(group, zero_point)`.
Embeddings, when included, are kept as int8 rows in both (their rows are looked
up, not multiplied, and a tied output head reuses them).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch.nn as nn

from edgetune.errors import ConfigError
from edgetune.quant.int4 import quantize_int4
from edgetune.quant.int8 import quantize_int8
from edgetune.quant.modules import QuantEmbedding, QuantLinear
from edgetune.quant.weight import QuantizedWeight


@dataclass
class Int8Config:
    """``compute``: "float" (dequantize, fp32 matmuls), "int8_forward" (integer forward
    matmuls) or "int8" (integer forward and input-gradient matmuls); see `QuantLinear`."""

    embeddings: bool = False
    compute: str = "float"
    name = "int8"

    def quantize_weight(self, w) -> QuantizedWeight:
        return quantize_int8(w)

    def to_dict(self) -> dict:
        return {"format": self.name, **asdict(self)}


@dataclass
class Int4Config:
    group: int = 32
    zero_point: bool = True
    embeddings: bool = False
    name = "int4"

    def quantize_weight(self, w) -> QuantizedWeight:
        return quantize_int4(w, self.group, self.zero_point)

    def to_dict(self) -> dict:
        return {"format": self.name, **asdict(self)}


CONFIGS = {"int8": Int8Config, "int4": Int4Config}
# int8 weights with integer matmuls: activations (w8a8), and the backward's gradients too (w8a8g8)
INTEGER_COMPUTE = {"w8a8": "int8_forward", "w8a8g8": "int8"}
# The named modes `config_from` takes, with what each means (CLI help and README are built from it).
WEIGHT_MODES = {"int8": "int8 per output channel", "int4": "int4, group 32, with zero points",
                "int4_g64": "int4, group 64"}
COMPUTE_MODES = {"w8a8": "int8 with integer forward matmuls",
                 "w8a8g8": "int8 with integer forward and input-gradient matmuls"}
QUANT_MODES = {**WEIGHT_MODES, **COMPUTE_MODES}


def config_from(spec: str | dict | None):
    """'int8' | 'w8a8' | 'w8a8g8' | 'int4' | 'int4_g64' | {'format': 'int4', 'group': 64, ...} | None
    -> config (or None)."""
    if spec is None or spec == "none":
        return None
    if spec in INTEGER_COMPUTE:
        return Int8Config(compute=INTEGER_COMPUTE[spec])
    if isinstance(spec, str):
        fmt, _, group = spec.partition("_g")
        if fmt not in CONFIGS or (group and fmt != "int4"):
            raise ConfigError(f"quantization {spec!r}; choose one of "
                              f"{', '.join(f'{k} ({v})' for k, v in QUANT_MODES.items())} or none")
        return Int4Config(group=int(group)) if group else CONFIGS[fmt]()
    d = dict(spec)
    fmt = d.pop("format", None)
    if fmt not in CONFIGS:
        raise ConfigError(f"quantization format {fmt!r}; choose one of {sorted(CONFIGS)}")
    return CONFIGS[fmt](**d)


def default_filter(module: nn.Module, name: str) -> bool:
    """Every frozen Linear except a classifier ``head`` (which is usually trained)."""
    return isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] != "head"


def quantize(model: nn.Module, config, filter_fn: Callable[[nn.Module, str], bool] | None = None) -> list[str]:
    """Quantize the matching Linear layers (and embeddings if ``config.embeddings``) of
    ``model`` in place; -> the names replaced. Run it before `edgetune.prepare`."""
    keep = filter_fn or default_filter
    done = []
    for name, mod in list(model.named_modules()):
        if isinstance(mod, (QuantLinear, QuantEmbedding)):
            continue
        if isinstance(mod, nn.Linear) and keep(mod, name):
            new = QuantLinear(config.quantize_weight(mod.weight), mod.bias, getattr(config, "compute", "float"))
        elif isinstance(mod, nn.Embedding) and config.embeddings and name:
            new = QuantEmbedding(quantize_int8(mod.weight))
        else:
            continue
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, new)
        done.append(name)
    if not done:
        raise ConfigError(f"quantize: no layer matched ({type(model).__name__} has no nn.Linear the filter accepts)")
    return done

