"""How a Core ML program's features stand for the manifest's tensors (contract section 2).

Core ML feature names are identifiers, and an ML Program takes neither int64 nor rank-0
inputs, so a Core ML trainer maps each manifest tensor:

* name: every character outside ``[A-Za-z0-9_]`` becomes ``_`` (``param.x.lora_A`` ->
  ``param_x_lora_A``); an exporter refuses a program where two names collide;
* int64 inputs travel as int32 (token ids, masks and labels fit), float32 and int32 as they are;
* a rank-0 input (a hyper input such as ``lr``) is a 1-element array of shape [1].

Outputs keep the manifest's dtype and shape.
"""
from __future__ import annotations

import re
from typing import Iterable

from edgetune.contract.manifest import TensorSpec

_NOT_IDENTIFIER = re.compile("[^A-Za-z0-9_]")
INPUT_DTYPES = {"float32": "float32", "int64": "int32", "int32": "int32"}  # manifest -> Core ML


def feature_name(name: str) -> str:
    return _NOT_IDENTIFIER.sub("_", name)


def feature_names(tensors: Iterable[TensorSpec]) -> list[str]:
    return [feature_name(t.name) for t in tensors]


def input_feature(t: TensorSpec) -> tuple[str, str, tuple[int, ...]]:
    """(Core ML name, dtype, shape) of input ``t``; a bool input has no Core ML form (ValueError)."""
    if t.dtype not in INPUT_DTYPES:
        raise ValueError(f"input {t.name!r} is {t.dtype}, which a Core ML program cannot take")
    return feature_name(t.name), INPUT_DTYPES[t.dtype], t.shape or (1,)
