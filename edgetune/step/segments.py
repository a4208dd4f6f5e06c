"""Gradients of a deep model by segments, recomputing each segment's activations in the
backward pass (activation checkpointing written out as explicit vector-Jacobian products).

A plain traced step keeps every intermediate the backward needs alive from the forward
to the backward: for SmolLM2-135M at 4 x 128 tokens that is ~1.3 GB, more than the
4-bit weights by far. Here the forward keeps only each block's input hidden state
[B, S, d]; the backward re-runs one block at a time under `torch.func.vjp`, and the
output head runs in chunks of positions. Peak activation memory becomes (blocks + 1)
hidden states + one block's internals + the head's working set.

The head's [B, C, vocab] logits would dominate that working set. A head that can give its
logits a token range at a time (a tied embedding table, read in the blocks a quantized table
is dequantized in: ``Segments.vocab_blocks``) streams the loss over the ranges
(`_streamed_head`): no tensor spans the vocabulary, so one chunk holds all positions. Other
heads run in chunks of about `HEAD_LOGITS_BYTES` of logits (`head_chunk`); each chunk reads
the whole output weight twice. Measured on a Qwen2.5-0.5B-shaped decoder at 1 x 256: 16
chunks of 16 positions spent 17.5 of the step's 35 s dequantizing its int8 table.

A model opts in by providing ``segments() -> Segments``. Trainable tensors belong to the
segments whose module prefixes own them; a tensor under no prefix (a bank shared by
many layers) is handed to every segment, and its gradients are summed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
from torch.func import functional_call, vjp

from edgetune.step.losses import next_token_targets


@dataclass
class Block:
    prefixes: tuple[str, ...]
    fn: Callable  # (h [B, S, d], ctx) -> h [B, S, d]


@dataclass
class Segments:
    """``prologue(input_ids, attention_mask) -> (h, ctx)``; ``blocks`` in order;
    ``epilogue(h) -> logits`` applied position-wise (so it may run on chunks of positions).
    With ``vocab_blocks`` (token ranges lo..hi-1 covering the vocabulary), ``epilogue(h, lo, hi)``
    gives the logits of one range, and the loss streams over them (`_streamed_head`)."""

    prologue_prefixes: tuple[str, ...]
    prologue: Callable
    blocks: list[Block]
    epilogue_prefixes: tuple[str, ...]
    epilogue: Callable
    vocab_size: int  # the epilogue's logits per position
    vocab_blocks: list[tuple[int, int]] | None = None


HEAD_LOGITS_BYTES = 48 << 20  # fp32 logits per head chunk, or per token range of a streamed head


def head_chunk(batch_size: int, seq_len: int, vocab_size: int) -> int:
    """Positions per head chunk: as many as keep a chunk's [B, chunk, vocab] fp32 logits within
    `HEAD_LOGITS_BYTES` (at least one), in chunks of equal size. SmolLM2 (49152 tokens) at
    4 x 128: 2 chunks of 64; Qwen2.5's 151936 at 1 x 256: 4 chunks of 64."""
    fit = max(1, HEAD_LOGITS_BYTES // (4 * vocab_size * batch_size))
    n = -(-seq_len // fit)
    return -(-seq_len // n)


class _Run(nn.Module):
    """Calls an arbitrary function with the model's tensors swapped by `functional_call`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.m = model

    def forward(self, fn, *args):
        return fn(*args)


def _after(x: torch.Tensor, *deps: torch.Tensor) -> torch.Tensor:
    """``x`` plus an exact zero taken from each of ``deps``: a data dependency that makes a
    runtime compute ``deps`` before anything that uses the result. Without it a runtime may
    schedule every segment's recomputation (or every chunk's forward) first -- onnxruntime's
    default order does -- which keeps all the activations alive again. An integer ``x`` gets
    an integer zero that stays zero when a dependency is NaN (it may index a gather)."""
    for d in deps:
        first = d.reshape(-1)[:1]
        x = x + (first * 0.0 if x.is_floating_point() else (first > math.inf).to(x.dtype))
    return x


def _cross_entropy_grad(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted next-token cross-entropy of one head chunk and its gradient, written out:
    logits [B, C, V], target [B, C] int64, weight [B, C] -> (d loss / d logits [B, C, V], loss).

    Autograd through ``log_softmax * onehot`` held a float one-hot of every chunk's targets
    from the start of the step (it depends on the input ids only, so onnxruntime computes it
    first) and several [B, C, V] intermediates per chunk: 4 x 39 MB of one-hots for a
    Qwen2.5-0.5B-shaped step at 1 x 256. Here the target is compared only after the chunk's
    logits exist (`_after`), and the gradient is (softmax - onehot) * weight.
    """
    lse = torch.logsumexp(logits, dim=-1)  # [B, C]
    target = _after(target, lse)
    picked = torch.gather(logits, -1, target.unsqueeze(-1)).squeeze(-1)
    return _logits_grad(logits, 0, lse, target, weight), ((lse - picked) * weight).sum()


def _logits_grad(z: torch.Tensor, lo: int, lse: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(softmax - onehot) * weight for logits z [B, C, n] of tokens lo..lo+n-1, given the
    log-sum-exp over the whole vocabulary lse [B, C] -> d loss / d z [B, C, n]. ``target`` must
    already wait for ``z`` (`_after`)."""
    hit = target.unsqueeze(-1) == torch.arange(lo, lo + z.shape[-1])
    return (torch.exp(z - lse.unsqueeze(-1)) - hit.to(z.dtype)) * weight.unsqueeze(-1)


def _streamed_head(head: Callable, blocks: list[tuple[int, int]], h: torch.Tensor, params: dict,
                   target: torch.Tensor, weight: torch.Tensor, add: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted next-token cross-entropy of one chunk whose logits come a token range at a time:
    ``head(h, params, lo, hi)`` -> [B, C, hi - lo]. -> (d loss / d h [B, C, d], loss); the
    parameters' gradients go to ``add``.

    A first pass keeps only the running log-sum-exp and the target's logit; a second recomputes
    each range's logits and turns (softmax - onehot) * weight straight into gradients. No
    [B, C, vocab] tensor exists, and the positions need no chunks for memory: a quantized
    table is read three times per chunk instead of twice per chunk of a few positions. Measured
    on a Qwen2.5-0.5B-shaped step at 1 x 256 (151936 tokens, 19 ranges): 4 chunks of 64 held
    ~250 MB of logits-sized tensors and spent 2.3 s per step dequantizing the table.
    """
    m = s = picked = None
    with torch.no_grad():
        for a, b in blocks:
            # one range after another: onnxruntime would otherwise put off the target's gather, which
            # keeps every range's logits alive (151 MB at the 0.5B shape)
            z = head(_after(h, *(x for x in (s, picked) if x is not None)), params, a, b)
            top = z.amax(dim=-1)
            m_new = top if m is None else torch.maximum(m, top)
            e = torch.exp(z - m_new.unsqueeze(-1)).sum(-1)
            s = e if s is None else s * torch.exp(m - m_new) + e
            m = m_new
            inside = (target >= a) & (target < b)
            at = torch.gather(z, -1, torch.where(inside, target - a, 0).unsqueeze(-1)).squeeze(-1)
            picked = torch.where(inside, at, 0.0) if picked is None else torch.where(inside, at, picked)
        lse = m + torch.log(s)
    g_h, done = None, [lse]
    for a, b in blocks:
        h_in = _after(h, *done)  # each range's recomputation after the previous one's backward, all of it
        z, back = vjp(lambda x, p, a=a, b=b: head(x, p, a, b), h_in, params)
        g, g_p = back(_logits_grad(z, a, lse, _after(target, z), weight))
        add(g_p)
        g_h = g if g_h is None else g_h + g
        done = [g_h, *g_p.values()]
    return g_h, ((lse - picked) * weight).sum()


def segmented_loss_and_grads(model: nn.Module, params: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                             chunk: int | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Next-token loss of ``model`` (a causal LM with ``segments()``) and its gradient with
    respect to ``params`` (name -> tensor) -> (grads, loss); equal to
    ``grad_and_value(loss)(params)`` up to rounding. ``chunk``: positions per head chunk
    (None: `head_chunk`)."""
    seg: Segments = model.segments()
    run = _Run(model)
    names = list(params)
    prefixed = [seg.prologue_prefixes, *[b.prefixes for b in seg.blocks], seg.epilogue_prefixes]
    owned_anywhere = {n for n in names if any(n.startswith(p + ".") for ps in prefixed for p in ps)}

    def part(prefixes):
        return {n: params[n] for n in names
                if n not in owned_anywhere or any(n.startswith(p + ".") for p in prefixes)}

    def call(sub: dict, fn, *args):
        full = {**params, **sub}
        return functional_call(run, {f"m.{k}": v for k, v in full.items()}, (fn, *args), strict=False)

    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        h, ctx = call({}, seg.prologue, ids, mask)
        hs = [h]
        for b in seg.blocks:
            hs.append(call({}, b.fn, hs[-1], ctx))
    grads = {n: torch.zeros_like(p) for n, p in params.items()}

    def add(g: dict):
        for n, t in g.items():
            grads[n] = grads[n] + t

    # head: loss and d loss / d h by chunks of positions
    target, valid = next_token_targets(ids, mask)
    weight = valid / valid.sum().clamp(min=1.0)  # [B, S]: each counted position's share of the mean
    p_epi = part(seg.epilogue_prefixes)
    s = ids.shape[1]
    width = seg.vocab_size if seg.vocab_blocks is None else max(b - a for a, b in seg.vocab_blocks)
    chunk = chunk or head_chunk(ids.shape[0], s, width)
    g_h, loss = [], torch.zeros(())
    for lo in range(0, s, chunk):
        hi = min(s, lo + chunk)
        h_c = _after(hs[-1][:, lo:hi], *(g_h[-1:] + [loss]))  # finish the previous chunk, loss included, first
        if seg.vocab_blocks is not None:
            g_c, l_c = _streamed_head(lambda h_in, p, a, b: call(p, seg.epilogue, h_in, a, b), seg.vocab_blocks,
                                      h_c, p_epi, target[:, lo:hi], weight[:, lo:hi], add)
        else:
            logits, back = vjp(lambda h_in, p: call(p, seg.epilogue, h_in), h_c, p_epi)
            d_logits, l_c = _cross_entropy_grad(logits, target[:, lo:hi], weight[:, lo:hi])
            g_c, g_p = back(d_logits)
            add(g_p)
        g_h.append(g_c)
        loss = loss + l_c
    g = _after(torch.cat(g_h, dim=1), loss)
    for i in reversed(range(len(seg.blocks))):
        b = seg.blocks[i]
        _, back = vjp(lambda h_in, p, b=b: call(p, b.fn, h_in, ctx), _after(hs[i], g), part(b.prefixes))
        g, g_p = back(g)
        add(g_p)
    _, back = vjp(lambda p: call(p, seg.prologue, ids, mask)[0], part(seg.prologue_prefixes))
    add(back(g)[0])
    return grads, loss
