"""Frozen layers over a `QuantizedWeight`: `QuantLinear` and `QuantEmbedding`.

They subclass nn.Linear / nn.Embedding so that adapters, selectors and the step
compiler treat them as the layers they replace; ``.weight`` is a read-only fp32
dequantization for host-side use (adapter initialisation, calibration), while the
forward dequantizes inside the graph.

The matmul recomputes the dequantized weight in its backward instead of saving
it: saved, every layer's fp32 weight would stay alive from the forward to the
backward, which is the whole fp32 model at the step's peak.

With ``compute="int8_forward"`` / ``"int8"`` an int8 layer multiplies on integers
(`edgetune.quant.int8_matmul`): the forward, and with "int8" the backward's input
gradient too. The activation's rounding is passed straight through in the backward.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgetune.errors import ConfigError
from edgetune.quant.int8_matmul import INT8_MATMUL_MODES, int8_matmul
from edgetune.quant.weight import QuantizedWeight, dequantize

TABLE_BLOCK_ROWS = 8192  # rows of a quantized table an output head dequantizes at a time


class _QuantMatmul(torch.autograd.Function):
    """x [..., K] @ W^T with W dequantized from (q, scale, offset); no gradient to the codes."""

    @staticmethod
    def forward(x, q, scale, offset, bits, group):
        return F.linear(x, dequantize(q, scale, offset, bits, group))

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, q, scale, offset, bits, group = inputs
        ctx.save_for_backward(q, scale, offset)
        ctx.bits, ctx.group = bits, group

    @staticmethod
    def backward(ctx, grad):
        q, scale, offset = ctx.saved_tensors
        return grad @ dequantize(q, scale, offset, ctx.bits, ctx.group), None, None, None, None, None


class _Int8Matmul(torch.autograd.Function):
    """x [..., K] @ W^T on integers for int8 W; the input gradient on integers if ``int8_backward``."""

    @staticmethod
    def forward(x, q, scale, int8_backward):
        y = int8_matmul(x.reshape(-1, x.shape[-1]), q, scale, True)
        return y.reshape(*x.shape[:-1], q.shape[0])

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, q, scale, int8_backward = inputs
        ctx.save_for_backward(q, scale)
        ctx.int8_backward = int8_backward

    @staticmethod
    def backward(ctx, grad):
        q, scale = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        # detached: edgetune's steps take first-order gradients only, and the custom op
        # cannot be differentiated inside functorch's transforms
        dx = int8_matmul(g.detach(), q, scale, False) if ctx.int8_backward else g @ dequantize(q, scale, None, 8, q.shape[1])
        return dx.reshape(*grad.shape[:-1], q.shape[1]), None, None, None


def quantized_matmul(x: torch.Tensor, qw: QuantizedWeight, compute: str = "float") -> torch.Tensor:
    """x [..., K] -> [..., N] for a QuantizedWeight [N, K]; ``compute`` as in `QuantLinear`."""
    if compute != "float":
        return _Int8Matmul.apply(x, qw.q, qw.scale, compute == "int8")
    return _QuantMatmul.apply(x, qw.q, qw.scale, qw.offset, qw.bits, qw.group)


class _QuantBuffers(nn.Module):
    """Registers a QuantizedWeight's tensors as buffers (they travel with .to/state_dict)."""

    def _set_quantized(self, qw: QuantizedWeight) -> None:
        self.bits, self.group, self.kind = qw.bits, qw.group, qw.kind
        self.register_buffer("qweight", qw.q)
        self.register_buffer("qscale", qw.scale)
        self.register_buffer("qoffset", qw.offset)

    @property
    def quantized(self) -> QuantizedWeight:
        return QuantizedWeight(self.qweight, self.qscale, self.qoffset, self.bits, self.group, self.kind)

    @property
    def weight(self) -> torch.Tensor:
        """fp32 dequantization [N, K], recomputed on each access; writing to it changes nothing."""
        return dequantize(self.qweight, self.qscale, self.qoffset, self.bits, self.group)


class QuantLinear(_QuantBuffers, nn.Linear):
    """A frozen linear layer with integer weights; x [..., in] -> [..., out].

    ``compute``: "float" (dequantize, fp32 matmul), "int8_forward" (integer forward,
    fp32 input gradient) or "int8" (both on integers); the last two need 8-bit codes.
    """

    def __init__(self, qw: QuantizedWeight, bias: torch.Tensor | None = None, compute: str = "float"):
        nn.Module.__init__(self)
        if compute not in INT8_MATMUL_MODES:
            raise ConfigError(f"compute={compute!r}; choose one of {INT8_MATMUL_MODES}")
        if compute != "float" and (qw.bits != 8 or qw.offset is not None or qw.group != qw.shape[1]):
            raise ConfigError(f"compute={compute!r} multiplies per-channel int8 codes; {qw.kind} weights "
                              "dequantize instead: use compute='float' or Int8Config")
        self.out_features, self.in_features = qw.shape
        self.compute = compute
        self._set_quantized(qw)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = quantized_matmul(x, self.quantized, self.compute)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        extra = "" if self.compute == "float" else f", compute={self.compute}"
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.kind}{extra}"


class QuantEmbedding(_QuantBuffers, nn.Embedding):
    """A frozen embedding table with integer rows; ids [...] -> [..., d].

    Only the looked-up rows are dequantized. ``as_linear`` reuses the same codes as
    a tied output projection (x [..., d] -> logits [..., vocab]).
    """

    def __init__(self, qw: QuantizedWeight):
        nn.Module.__init__(self)
        if qw.bits != 8:
            raise ConfigError(f"QuantEmbedding keeps 8-bit rows; got {qw.kind} ({qw.bits} bits). "
                              "Quantize the embedding with int8 (GGUF Q8_0 works as is).")
        self.num_embeddings, self.embedding_dim = qw.shape
        self.padding_idx, self.max_norm, self.norm_type = None, None, 2.0
        self.scale_grad_by_freq, self.sparse = False, False
        self._set_quantized(qw)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        pick = lambda t: None if t is None else torch.index_select(t, 0, flat)  # noqa: E731 (ONNX Gather)
        rows = dequantize(pick(self.qweight), pick(self.qscale), pick(self.qoffset), self.bits, self.group)
        return rows.reshape(*ids.shape, self.embedding_dim)

    def as_linear(self, x: torch.Tensor, rows_per_block: int = TABLE_BLOCK_ROWS) -> torch.Tensor:
        """x [..., d] -> [..., vocab]. The table is dequantized ``rows_per_block`` rows at a time
        (forward and backward), never whole: SmolLM2's would be 113 MB of fp32."""
        n = self.num_embeddings
        blocks = [self.rows_linear(x, lo, min(n, lo + rows_per_block)) for lo in range(0, n, rows_per_block)]
        return torch.cat(blocks, dim=-1) if len(blocks) > 1 else blocks[0]

    def rows_linear(self, x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """x [..., d] -> [..., hi - lo]: the products with rows lo..hi-1 only."""
        qw = self.quantized
        if (lo, hi) == (0, qw.shape[0]):
            return quantized_matmul(x, qw)
        return quantized_matmul(x, QuantizedWeight(qw.q[lo:hi], qw.scale[lo:hi],
                                                   None if qw.offset is None else qw.offset[lo:hi],
                                                   qw.bits, qw.group, qw.kind))

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, {self.kind}"


def uses_integer_activations(model: nn.Module) -> bool:
    """Whether any layer rounds its activations (compute "int8_forward" or "int8")."""
    return any(isinstance(m, QuantLinear) and m.compute != "float" for m in model.modules())
