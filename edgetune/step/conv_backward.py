"""A convolution's backward written as forward convolutions, for the step graph.

aten.convolution_backward has no ONNX translation; its three results are convolutions too:

    grad_input  = conv_transpose(grad_out, w)        (stride, padding, dilation, groups of the forward)
    grad_weight = conv(x^T, grad_out^T)^T             (batch and channels swapped; stride and dilation
                                                       exchanged; cropped to the kernel)
    grad_bias   = grad_out summed over batch and positions

x [N, C_in, *L], w [C_out, C_in / groups, *k], grad_out [N, C_out, *L_out]. The weight's
gradient is built for groups = 1 (what adapters train); a grouped convolution's input gradient
(a frozen depthwise layer) is built too.
"""
from __future__ import annotations

import torch

aten = torch.ops.aten


def _as_list(v, n: int) -> list[int]:
    return list(v) * n if len(v) == 1 else list(v)


def convolution_backward(grad_out, x, w, bias_sizes, stride, padding, dilation, transposed, output_padding, groups,
                         output_mask):
    if transposed:
        return NotImplemented  # only forward convolutions are decomposed
    n = x.dim() - 2
    stride, padding, dilation = _as_list(stride, n), _as_list(padding, n), _as_list(dilation, n)
    k = list(w.shape[2:])
    grad_input = grad_weight = grad_bias = None
    if output_mask[0]:
        natural = [(lo - 1) * s - 2 * p + d * (kk - 1) + 1
                   for lo, s, p, d, kk in zip(grad_out.shape[2:], stride, padding, dilation, k)]
        extra = [li - nat for li, nat in zip(x.shape[2:], natural)]  # rows the forward's stride skipped
        grad_input = aten.convolution(grad_out, w, None, stride, padding, dilation, True, extra, groups)
    if output_mask[1]:
        if groups != 1:
            return NotImplemented
        full = aten.convolution(x.transpose(0, 1), grad_out.transpose(0, 1), None, dilation, padding, stride, False,
                                [0] * n, 1)  # [C_in, C_out, *K'] with K' >= k
        for axis, kk in enumerate(k):
            if full.shape[2 + axis] != kk:
                full = aten.slice(full, 2 + axis, 0, kk)
        grad_weight = full.transpose(0, 1)
    if output_mask[2]:
        grad_bias = grad_out.sum([0, *range(2, grad_out.dim())])
    return grad_input, grad_weight, grad_bias


DECOMPOSITIONS = {aten.convolution_backward.default: convolution_backward}
