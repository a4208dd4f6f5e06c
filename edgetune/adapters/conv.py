"""Convolutions as matrices, so the low-rank methods adapt ``nn.Conv1d`` / ``nn.Conv2d`` as
they adapt ``nn.Linear``.

A convolution (groups = 1) with weight [out, in, *k] is a linear map on input patches: its
weight as a matrix is [out, in * prod(k)], and every method's update dW has that shape. A
factor A [r, in * prod(k)] is itself a convolution (r output channels, the base's kernel,
stride, padding and dilation); factors on the output side ([out, r], [r, r]) mix channels at
each position (1 x 1 convolutions). So B A x is conv(x, A) followed by channel mixes, and B A
is never materialised. A linear layer is the special case k = (), where these are matmuls.

    matrix_shape(m) -> (d_out, d_in);  down(m, x, A [r, d_in]);  mix(m, h, M [o, r]);  dense(m, x, W [d_out, d_in])
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from edgetune.errors import ConfigError

CONVS = (nn.Conv1d, nn.Conv2d)
LOW_RANK_MODULES = (nn.Linear, *CONVS)  # what the LoRA family and Kronecker adapt


def matrix_shape(m: nn.Module) -> tuple[int, int]:
    """(d_out, d_in) of the layer's weight as a matrix."""
    if isinstance(m, CONVS):
        return m.out_channels, m.in_channels * math.prod(m.kernel_size)
    return m.out_features, m.in_features


def weight_matrix(m: nn.Module) -> torch.Tensor:
    """The weight as a matrix [d_out, d_in] (a view for convolutions)."""
    return m.weight.reshape(m.weight.shape[0], -1) if isinstance(m, CONVS) else m.weight


def check_layer(method: str, m: nn.Module, name: str) -> None:
    """Grouped (depthwise) convolutions are not one matrix: refused by name."""
    if isinstance(m, CONVS) and m.groups != 1:
        raise ConfigError(f"{method}: {name} is a grouped convolution (groups={m.groups}), which has no single weight "
                          "matrix to adapt; target the pointwise (groups=1) convolutions or linear layers instead")


def down(m: nn.Module, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """x through A [r, d_in]: linear [..., d_in] -> [..., r]; conv [B, C, *L] -> [B, r, *L']."""
    if isinstance(m, CONVS):
        # _conv_forward applies the base's stride, padding (and padding mode) and dilation
        return m._conv_forward(x, a.reshape(a.shape[0], *m.weight.shape[1:]), None)
    return x @ a.t()


def mix(m: nn.Module, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """h's features through w [o, r]: the last axis of a linear's, the channel axis of a conv's."""
    if isinstance(m, CONVS):
        return (h.movedim(1, -1) @ w.t()).movedim(-1, 1)
    return h @ w.t()


def dense(m: nn.Module, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x through a full update W [d_out, d_in] (no bias)."""
    if isinstance(m, CONVS):
        return m._conv_forward(x, w.reshape(m.weight.shape), None)
    return x @ w.t()


def weight_gradient(m: nn.Module, x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """dL/dW as a matrix [d_out, d_in] from the layer's input x and output gradient (batch summed)."""
    if isinstance(m, CONVS):
        w = m.weight.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(m._conv_forward(x, w, None), w, grad_out)
        return g.reshape(g.shape[0], -1)
    return grad_out.reshape(-1, grad_out.shape[-1]).t() @ x.reshape(-1, x.shape[-1])
