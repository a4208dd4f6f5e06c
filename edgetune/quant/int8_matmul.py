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
MatMulInteger over the int8 codes (u8 x s8, exact int32 accumulation on every CPU with the
program's session config: `exporters.onnx.INT8_SESSION_CONFIG`); eager
PyTorch runs the reference below in fp32, whose products are exact integers and whose sums
round like any fp32 matmul.

ExecuTorch runs the op on XNNPACK's dynamically quantized linear (`exporters.xnnpack_int8`),
which rounds each row with a zero point over its [min, max] ("asymmetric": 256 codes over
the row's range instead of 255 over twice its largest magnitude; `round_rows_asymmetric`).
Within `activation_rounding("asymmetric")` the eager op computes that instead, to check
ExecuTorch's programs against.
"""
from __future__ import annotations

import contextlib

import torch

INT8_MATMUL_MODES = ("float", "int8_forward", "int8")  # what runs on integers: nothing, forward, forward + backward


ROW_SCALE_FLOOR = 1e-30  # an all-zero row (a padded position's gradient) gets codes 0, not 0/0


def quantize_rows(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """a [M, K] fp32 -> (codes in [-128, 127] as fp32 [M, K], scales [M, 1])."""
    scale = torch.clamp(torch.amax(torch.abs(a), dim=-1, keepdim=True), min=ROW_SCALE_FLOOR) / 127.0
    return torch.clamp(torch.round(a / scale), -128.0, 127.0), scale


def round_rows_asymmetric(a: torch.Tensor) -> torch.Tensor:
    """a [M, K] fp32 -> a rounded as XNNPACK's dynamic quantization does, back in fp32 [M, K].

    Per row, over r = [min(row, 0), max(row, 0)]: m = 255 / (r_max - r_min) (1 for an all-zero
    row), zero point z = the nearer of -128 - r_min m and 127 - r_max m, rounded, in
    [-128, 127]; codes clip(rint(a m) + z, -128, 127); value (codes - z) / m. No floor on the
    range (PyTorch's ``choose_qparams_per_token_asymmetric`` floors the step at fp32's eps,
    which would leave a gradient row of size 1e-6 about ten codes)."""
    lo = torch.clamp(torch.amin(a, dim=-1, keepdim=True), max=0.0)
    hi = torch.clamp(torch.amax(a, dim=-1, keepdim=True), min=0.0)
    m = torch.where(hi == lo, torch.ones_like(lo), 255.0 / (hi - lo))
    lo_m, hi_m = lo * m, hi * m
    z = torch.where((-128.0 + lo_m) + (127.0 + hi_m) > 0, -128.0 - lo_m, 127.0 - hi_m)
    z = torch.round(torch.clamp(z, -128.0, 127.0))
    codes = torch.clamp(torch.round(a * m) + z, -128.0, 127.0)
    return (codes - z) * (1.0 / m)


ACTIVATION_ROUNDINGS = ("symmetric", "asymmetric")  # the eager op's; ONNX's / ExecuTorch's (XNNPACK's)
_rounding = ["symmetric"]


@contextlib.contextmanager
def activation_rounding(kind: str):
    """Within the block the eager op rounds activations ``kind``-wise (one of ACTIVATION_ROUNDINGS)."""
    if kind not in ACTIVATION_ROUNDINGS:
        raise ValueError(f"activation rounding {kind!r}: choose one of {ACTIVATION_ROUNDINGS}")
    before, _rounding[0] = _rounding[0], kind
    try:
        yield
    finally:
        _rounding[0] = before


def int8_matmul_reference(a: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, transpose: bool) -> torch.Tensor:
    """a [M, K] (transpose) or [M, N]; q int8 [N, K]; scale [N, 1] -> [M, N] or [M, K]."""
    s_w = scale.to(torch.float32).reshape(1, -1)
    w = q.to(torch.float32)
    if not transpose:
        a = a * s_w
    if _rounding[0] == "asymmetric":  # XNNPACK's pattern: linear(rounded a, codes * per-channel scale)
        return round_rows_asymmetric(a) @ ((w * s_w.t()).t() if transpose else w)
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
