"""int8 per-output-channel symmetric quantization: W[n] ~ q[n] * s[n], q in [-127, 127].

s[n] = max|W[n]| / 127 (rounded to its float16 storage), so each output channel (row)
uses its full range and 0 maps to 0; -128 is left unused to keep the code symmetric.
"""
from __future__ import annotations

import torch

from edgetune.quant.weight import FP16_TINY, QuantizedWeight, to_fp16


def quantize_int8(w: torch.Tensor) -> QuantizedWeight:
    """w [N, K] float -> QuantizedWeight (int8 q [N, K], fp16 scale [N, 1], group K)."""
    w = w.detach().to(torch.float32)
    scale = to_fp16((w.abs().amax(dim=1, keepdim=True) / 127.0).clamp(min=FP16_TINY))
    q = torch.round(w / scale.float()).clamp(-127, 127).to(torch.int8)
    return QuantizedWeight(q, scale, None, bits=8, group=w.shape[1], kind="int8")
