"""`QuantizedWeight`: a frozen matrix kept as integers, and the one dequantization op.

Every format edgetune keeps (int8 per-channel, int4 group-wise, GGUF Q4_0/Q4_1/Q8_0)
is the same affine form over groups of ``group`` consecutive input columns:

    W[n, g*G + j] = q[n, g*G + j] * scale[n, g] + offset[n, g]

Scales and offsets are stored as float16 (as GGUF stores them; edgetune's quantizers
round theirs to fp16 before choosing the codes) and widened to fp32 before use.

- 8 bits: ``q`` int8 [N, K]; ``offset`` is None (symmetric).
- 4 bits: ``q`` holds unsigned nibbles u in [0, 15] packed two per byte, uint8
  [N, K/2], column 2i in the low nibble of byte i (the order of ONNX's UINT4);
  ``offset`` [N, K/G] is always present (-8*scale for symmetric codes, -zp*scale
  with zero points, GGUF Q4_1's min).

``edgetune::dequantize`` is a custom op so that a captured step keeps it as one
node: the ONNX exporter lowers it to DequantizeLinear over an INT8/UINT4
initializer, the ExecuTorch exporter decomposes it into portable aten ops, and
in eager PyTorch it runs `dequantize_reference`. The integers stay integers in
the artifact and in the runtime's memory; only the transient fp32 tile of the
layer being computed exists at any time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from edgetune.errors import ConfigError


def dequantize_reference(q: torch.Tensor, scale: torch.Tensor, offset: Optional[torch.Tensor], bits: int,
                         group: int) -> torch.Tensor:
    """q [N, K] int8 or [N, K/2] uint8 (bits=4), scale/offset [N, K/group] -> fp32 [N, K].

    Nibbles are unpacked with float arithmetic (exact for 0..255) rather than bit
    shifts, which ExecuTorch's portable kernels do not all provide.
    """
    if bits == 4:
        f = q.to(torch.float32)
        hi = torch.floor(f * 0.0625)
        u = torch.stack([f - 16.0 * hi, hi], dim=-1).reshape(q.shape[0], -1)
    else:
        u = q.to(torch.float32)
    n, k = u.shape
    w = u.reshape(n, k // group, group) * scale.to(torch.float32).unsqueeze(-1)
    if offset is not None:
        w = w + offset.to(torch.float32).unsqueeze(-1)
    return w.reshape(n, k)


@torch.library.custom_op("edgetune::dequantize", mutates_args=())
def dequantize(q: torch.Tensor, scale: torch.Tensor, offset: Optional[torch.Tensor], bits: int,
               group: int) -> torch.Tensor:
    return dequantize_reference(q, scale, offset, bits, group)


@dequantize.register_fake
def _(q, scale, offset, bits, group):
    return q.new_empty((q.shape[0], q.shape[1] * (2 if bits == 4 else 1)), dtype=torch.float32)


DEQUANTIZE_OP = torch.ops.edgetune.dequantize.default  # what exporters find in a captured graph


@dataclass
class QuantizedWeight:
    """A frozen [out_features, in_features] matrix as integer codes + per-group affine."""

    q: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor | None
    bits: int
    group: int
    kind: str  # what produced it: "int8", "int4", "gguf:Q4_1", ...

    def __post_init__(self):
        n = self.q.shape[0]
        k = self.q.shape[1] * (2 if self.bits == 4 else 1)
        want_dtype = torch.uint8 if self.bits == 4 else torch.int8
        if self.bits not in (4, 8) or self.q.dtype != want_dtype:
            raise ConfigError(f"{self.kind}: {self.bits}-bit codes must be {want_dtype}, got {self.q.dtype}")
        if self.group < 1 or k % self.group:
            raise ConfigError(f"{self.kind}: in_features={k} is not a multiple of the group size {self.group}")
        if tuple(self.scale.shape) != (n, k // self.group):
            raise ConfigError(f"{self.kind}: scale has shape {tuple(self.scale.shape)}, expected {(n, k // self.group)}")
        if self.bits == 4 and self.offset is None:
            raise ConfigError(f"{self.kind}: 4-bit codes are unsigned and need an offset")
        for t in (self.scale, self.offset):
            if t is not None and t.dtype not in (torch.float16, torch.float32):
                raise ConfigError(f"{self.kind}: scales and offsets are float16 or float32, got {t.dtype}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.q.shape[0], self.q.shape[1] * (2 if self.bits == 4 else 1)

    def dequantize(self) -> torch.Tensor:
        return dequantize(self.q, self.scale, self.offset, self.bits, self.group)

    def rows(self, idx: torch.Tensor) -> "QuantizedWeight":
        """The rows ``idx`` [n] as a smaller QuantizedWeight (a gather, no dequantization)."""
        return QuantizedWeight(self.q[idx], self.scale[idx], None if self.offset is None else self.offset[idx],
                               self.bits, self.group, self.kind)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.q, self.scale, self.offset) if t is not None)


FP16_TINY = 2.0 ** -24  # smallest positive float16: a scale must not round to 0


def to_fp16(t: torch.Tensor) -> torch.Tensor:
    """Round scales/offsets to the float16 they are stored as (magnitudes clamped to its range)."""
    return t.clamp(-65504.0, 65504.0).to(torch.float16)


def pack_nibbles(u: torch.Tensor) -> torch.Tensor:
    """[N, K] integers in [0, 15] -> uint8 [N, K/2], column 2i in the low nibble."""
    u = u.to(torch.uint8)
    return (u[:, 0::2] | (u[:, 1::2] << 4)).contiguous()


def unpack_nibbles(p: torch.Tensor) -> torch.Tensor:
    """uint8 [N, K/2] -> uint8 [N, K] (inverse of `pack_nibbles`)."""
    return torch.stack([p & 15, p >> 4], dim=-1).reshape(p.shape[0], -1)


def sqnr_db(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio 10 log10(|W|^2 / |W - W_q|^2) in dB (float64)."""
    ref = reference.to(torch.float64)
    noise = (ref - approx.to(torch.float64)).pow(2).sum()
    return float(10 * torch.log10(ref.pow(2).sum() / noise.clamp(min=1e-300)))
