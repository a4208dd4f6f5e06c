"""Gradients of a deep model by segments, recomputing each segment's activations in the
backward pass (activation checkpointing written out as explicit vector-Jacobian products).

A plain traced step keeps every intermediate the backward needs alive from the forward
to the backward: for SmolLM2-135M at 4 x 128 tokens that is ~1.3 GB, more than the
4-bit weights by far. Here the forward keeps only each block's input hidden state
[B, S, d]; the backward re-runs one block at a time under `torch.func.vjp`, and the
output head with its [B, S, vocab] logits runs in chunks of positions. Peak activation
memory becomes (blocks + 1) hidden states + one block's internals + one chunk's logits.

Each chunk reads the whole output table twice (forward and backward; a quantized table is
dequantized each time), so the number of chunks sets that cost and a chunk's logits its
memory: chunks hold about `HEAD_LOGITS_BYTES` of logits each (`head_chunk`). Measured on a
Qwen2.5-0.5B-shaped decoder at 1 x 256: 16 chunks of 16 positions spent 17.5 of the step's
35 s dequantizing its int8 table.

A model opts in by providing ``segments() -> Segments``. Trainable tensors belong to the
segments whose module prefixes own them; a tensor under no prefix (a bank shared by
many layers) is handed to every segment, and its gradients are summed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
from torch.func import functional_call, grad_and_value, vjp

from edgetune.step.losses import next_token_targets


@dataclass
class Block:
    prefixes: tuple[str, ...]
    fn: Callable  # (h [B, S, d], ctx) -> h [B, S, d]


@dataclass
class Segments:
    """``prologue(input_ids, attention_mask) -> (h, ctx)``; ``blocks`` in order;
    ``epilogue(h) -> logits`` applied position-wise (so it may run on chunks of positions)."""

    prologue_prefixes: tuple[str, ...]
    prologue: Callable
    blocks: list[Block]
    epilogue_prefixes: tuple[str, ...]
    epilogue: Callable
    vocab_size: int  # the epilogue's logits per position


HEAD_LOGITS_BYTES = 48 << 20  # fp32 logits per head chunk (log-softmax and its gradient add two more)


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
    default order does -- which keeps all the activations alive again."""
    for d in deps:
        x = x + d.reshape(-1)[:1] * 0.0
    return x


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
    onehot_target, valid = next_token_targets(ids, mask)
    denom = valid.sum().clamp(min=1.0)
    p_epi = part(seg.epilogue_prefixes)
    s = ids.shape[1]
    chunk = chunk or head_chunk(ids.shape[0], s, seg.vocab_size)
    g_h, loss = [], torch.zeros(())
    for lo in range(0, s, chunk):
        hi = min(s, lo + chunk)

        def head_loss(h_c, p, lo=lo, hi=hi):
            logits = call(p, seg.epilogue, h_c)
            picked = (torch.log_softmax(logits, dim=-1) * onehot_target(lo, hi, logits.shape[-1])).sum(-1)
            return -(picked * valid[:, lo:hi]).sum() / denom

        h_c = _after(hs[-1][:, lo:hi], *(g_h[-1:] + [loss]))  # finish the previous chunk, loss included, first
        (g_c, g_p), l_c = grad_and_value(head_loss, argnums=(0, 1))(h_c, p_epi)
        g_h.append(g_c)
        add(g_p)
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
