"""int4 group-wise quantization over ``group`` consecutive input columns (32 or 64).

- ``zero_point=True`` (asymmetric): u = round((W - min) / s), s = (max - min) / 15,
  stored with offset = min, so W ~ u * s + min (s and min rounded to float16 first). The zero point is kept in float
  (the min-offset form of GGUF Q4_1 and HQQ), which loses nothing to rounding it.
- ``zero_point=False`` (symmetric): s = max|W| / 7, codes -7..7 stored as u = code + 8,
  offset = -8 s; zero is represented exactly.
"""
from __future__ import annotations

import torch

from edgetune.errors import ConfigError
from edgetune.quant.weight import FP16_TINY, QuantizedWeight, pack_nibbles, to_fp16

GROUPS = (32, 64, 128)


def quantize_int4(w: torch.Tensor, group: int = 32, zero_point: bool = True) -> QuantizedWeight:
    """w [N, K] float -> QuantizedWeight (uint8 q [N, K/2], fp16 scale/offset [N, K/group]).
    Codes are chosen for the fp16-rounded scale and offset they will be decoded with."""
    n, k = w.shape
    if group not in GROUPS:
        raise ConfigError(f"int4: group={group}; choose one of {GROUPS}")
    if k % group:
        raise ConfigError(f"int4: in_features={k} is not a multiple of group={group}; "
                          "leave this layer out with the quantize filter or pick a group that divides it")
    g = w.detach().to(torch.float32).reshape(n, k // group, group)
    if zero_point:
        lo, hi = g.amin(-1), g.amax(-1)
        scale = to_fp16(((hi - lo) / 15.0).clamp(min=FP16_TINY))
        offset = to_fp16(lo)
        u = torch.round((g - offset.float().unsqueeze(-1)) / scale.float().unsqueeze(-1)).clamp(0, 15)
    else:
        scale = to_fp16((g.abs().amax(-1) / 7.0).clamp(min=FP16_TINY))
        u = torch.round(g / scale.float().unsqueeze(-1)).clamp(-7, 7) + 8
        offset = to_fp16(-8.0 * scale.float())  # exact: a power-of-two multiple
    kind = f"int4_g{group}" + ("_zp" if zero_point else "")
    return QuantizedWeight(pack_nibbles(u.reshape(n, k)), scale, offset, bits=4, group=group, kind=kind)
