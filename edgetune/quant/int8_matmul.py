"""Integer matmul over frozen int8 weights: ``edgetune::int8_matmul``.

The activation is quantized per tensor on the fly, exactly as ONNX's
DynamicQuantizeLinear does (uint8, asymmetric, range widened to include 0):

    s_a = (max(a, 0) - min(a, 0)) / 255,  z_a = round(-min(a, 0) / s_a),
    a_q = clip(round(a / s_a) + z_a, 0, 255)          (round half to even)

and multiplied with the int8 codes q [N, K] (per-row scale s_w [N]) with integer
accumulation:

    transpose=True   y = a [M, K] @ W^T:  (a_q - z_a) @ q^T * s_a * s_w[None, :]
    transpose=False  y = a [M, N] @ W:    with a' = a * s_w[None, :],  (a'_q - z_a') @ q * s_a'

The second form is the backward's input gradient (dy @ W): W's scale runs along the
reduction there, so it is folded into the activation before quantizing.

ONNX lowers the op to DynamicQuantizeLinear + MatMulInteger (int32 accumulation on
VNNI/AMX); eager PyTorch and ExecuTorch run the reference below in fp32, whose
integer-valued products are exact and whose sums round like any fp32 matmul.
"""
from __future__ import annotations

import torch

INT8_MATMUL_MODES = ("float", "int8_forward", "int8")  # what runs on integers: nothing, forward, forward + backward


def dynamic_quantize(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """a fp32 -> (codes in [0, 255] as fp32, scale [], zero point [] as fp32): DynamicQuantizeLinear."""
    lo = torch.clamp(torch.amin(a), max=0.0)
    hi = torch.clamp(torch.amax(a), min=0.0)
    scale = (hi - lo) / 255.0
    zp = torch.clamp(torch.round(-lo / scale), 0.0, 255.0)
    codes = torch.clamp(torch.round(a / scale) + zp, 0.0, 255.0)
    return codes, scale, zp


def int8_matmul_reference(a: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, transpose: bool) -> torch.Tensor:
    """a [M, K] (transpose) or [M, N]; q int8 [N, K]; scale [N, 1] -> [M, N] or [M, K]."""
    s_w = scale.to(torch.float32).reshape(1, -1)
    w = q.to(torch.float32)
    if not transpose:
        a = a * s_w
    codes, s_a, zp = dynamic_quantize(a)
    acc = (codes - zp) @ (w.t() if transpose else w)
    return acc * (s_a * s_w) if transpose else acc * s_a


@torch.library.custom_op("edgetune::int8_matmul", mutates_args=())
def int8_matmul(a: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, transpose: bool) -> torch.Tensor:
    return int8_matmul_reference(a, q, scale, transpose)


@int8_matmul.register_fake
def _(a, q, scale, transpose):
    return a.new_empty((a.shape[0], q.shape[0] if transpose else q.shape[1]))


INT8_MATMUL_OP = torch.ops.edgetune.int8_matmul.default
