"""GGUF (llama.cpp) Q4_0 / Q4_1 / Q8_0 blocks -> `QuantizedWeight`, without re-quantizing.

Each GGUF block covers 32 consecutive values of a row, so a block is one group:

- Q8_0 (34 bytes): fp16 d, 32 x int8 q;          W = d * q
- Q4_0 (18 bytes): fp16 d, 16 bytes of nibbles;  W = d * (u - 8)      -> offset -8d
- Q4_1 (20 bytes): fp16 d, fp16 m, 16 bytes;     W = d * u + m        -> offset m

GGUF puts a block's first 16 values in the low nibbles and the last 16 in the
high nibbles; they are re-paired into edgetune's (even, odd) packing, a change of
layout only. d and m stay float16 as stored; they widen to fp32 exactly before the
products, which are computed in fp32 as the `gguf` package's reference dequantizer
does, so the result is bit-exact.
Reading uses the `gguf` package's memory-mapped reader (no pickle, no code).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgetune.errors import ConfigError
from edgetune.quant.weight import QuantizedWeight, pack_nibbles

BLOCK = 32
_BLOCK_BYTES = {"Q8_0": 34, "Q4_0": 18, "Q4_1": 20}
SUPPORTED = tuple(_BLOCK_BYTES) + ("F32", "F16")


def _gguf():
    try:
        import gguf
    except ImportError as e:
        raise ConfigError("reading GGUF files needs the gguf package: pip install gguf==0.19.0") from e
    return gguf


def blocks_to_weight(raw: np.ndarray, qtype: str) -> QuantizedWeight:
    """raw uint8 [N, K/32 * block_bytes] of one GGUF tensor -> QuantizedWeight [N, K]."""
    if qtype not in _BLOCK_BYTES:
        raise ConfigError(f"GGUF tensor type {qtype} is not supported as a frozen base; "
                          f"supported: {SUPPORTED} (re-quantize the file to Q4_0, Q4_1 or Q8_0)")
    n = raw.shape[0]
    blocks = np.ascontiguousarray(raw).reshape(n, -1, _BLOCK_BYTES[qtype])
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0]
    if qtype == "Q8_0":
        q = blocks[..., 2:].copy().view(np.int8).reshape(n, -1)
        return QuantizedWeight(torch.from_numpy(q), torch.from_numpy(d), None, bits=8, group=BLOCK, kind="gguf:Q8_0")
    qs = blocks[..., 4:] if qtype == "Q4_1" else blocks[..., 2:]
    u = np.concatenate([qs & 15, qs >> 4], axis=-1).reshape(n, -1)  # natural order within each block
    # -8 d is exact in float16 (a power-of-two multiple; |d| <= 65504 / 8 in any real file)
    offset = blocks[..., 2:4].copy().view(np.float16)[..., 0] if qtype == "Q4_1" else (-8.0 * d).astype(np.float16)
    return QuantizedWeight(pack_nibbles(torch.from_numpy(u)), torch.from_numpy(d), torch.from_numpy(offset),
                           bits=4, group=BLOCK, kind=f"gguf:{qtype}")


class GGUFFile:
    """Metadata and tensors of a GGUF file. ``tensor(name)`` -> QuantizedWeight for
    quantized blocks, a float32 torch tensor for F32/F16 tensors."""

    def __init__(self, path: str | Path):
        gguf = _gguf()
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"GGUF file {self.path} does not exist")
        try:
            self.reader = gguf.GGUFReader(str(self.path))
        except Exception as e:  # the reader raises ValueError/struct errors on a damaged file
            raise ConfigError(f"{self.path} is not a readable GGUF file ({e})") from e
        self._tensors = {t.name: t for t in self.reader.tensors}

    def meta(self, key: str, default=None):
        f = self.reader.fields.get(key)
        return default if f is None else f.contents()

    def names(self) -> list[str]:
        return list(self._tensors)

    def qtype(self, name: str) -> str:
        return self._get(name).tensor_type.name

    def _get(self, name: str):
        if name not in self._tensors:
            raise ConfigError(f"{self.path.name} has no tensor {name!r} (it has e.g. {self.names()[:4]})")
        return self._tensors[name]

    def tensor(self, name: str) -> QuantizedWeight | torch.Tensor:
        t = self._get(name)
        kind = t.tensor_type.name
        if kind in ("F32", "F16"):
            return torch.from_numpy(np.asarray(t.data, dtype=np.float32).copy())
        return blocks_to_weight(np.asarray(t.data), kind)
