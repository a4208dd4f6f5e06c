"""Integer matmul over frozen int8 weights: ``edgetune::int8_matmul``.

The activation is quantized on the fly, per row (one token's features), symmetric:

    s_a[m] = max(max_k |a[m, k]|, tiny) / 127,   a_q = clip(round(a / s_a), -128, 127)

(round half to even), and multiplied with the int8 codes q [N, K] (per-row weight
scale s_w [N]) with integer accumulation:

    transpose=True   y = a [M, K] @ W^T:  (a_q @ q^T) * s_a[:, None] * s_w[None, :]
    transpose=False  y = a [M, N] @ W:    with a' = a * s_w[None, :],  (a'_q @ q) * s_a'[:, None]

The second form is the backward's input gradient (dy @ W): W's scale runs along the
reduction there, so it is folded into the activation before quantizing.

Per row rather than per tensor (ONNX's DynamicQuantizeLinear): a token's codes then do
not depend on the other texts in the batch or on padding, and one outlier feature only
coarsens its own row.

ONNX lowers the op to QuantizeLinear (per-axis scales; codes + 128 as uint8) +
MatMulInteger (u8 x u8 with zero points 128, exact int32 accumulation on every CPU); eager
PyTorch and ExecuTorch run the reference below in fp32, whose products are exact integers
and whose sums round like any fp32 matmul.
"""
from __future__ import annotations

import torch

INT8_MATMUL_MODES = ("float", "int8_forward", "int8")  # what runs on integers: nothing, forward, forward + backward


ROW_SCALE_FLOOR = 1e-30  # an all-zero row (a padded position's gradient) gets codes 0, not 0/0


def quantize_rows(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """a [M, K] fp32 -> (codes in [-128, 127] as fp32 [M, K], scales [M, 1])."""
    scale = torch.clamp(torch.amax(torch.abs(a), dim=-1, keepdim=True), min=ROW_SCALE_FLOOR) / 127.0
    return torch.clamp(torch.round(a / scale), -128.0, 127.0), scale


def int8_matmul_reference(a: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, transpose: bool) -> torch.Tensor:
    """a [M, K] (transpose) or [M, N]; q int8 [N, K]; scale [N, 1] -> [M, N] or [M, K]."""
    s_w = scale.to(torch.float32).reshape(1, -1)
    w = q.to(torch.float32)
    if not transpose:
        a = a * s_w
    codes, s_a = quantize_rows(a)
    acc = codes @ (w.t() if transpose else w)
    return acc * s_a * s_w if transpose else acc * s_a


@torch.library.custom_op("edgetune::int8_matmul", mutates_args=())
def int8_matmul(a: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, transpose: bool) -> torch.Tensor:
    return int8_matmul_reference(a, q, scale, transpose)


@int8_matmul.register_fake
def _(a, q, scale, transpose):
    return a.new_empty((a.shape[0], q.shape[0] if transpose else q.shape[1]))


INT8_MATMUL_OP = torch.ops.edgetune.int8_matmul.default
