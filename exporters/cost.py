"""What one training step costs, counted on the captured program: its FLOPs and the bytes it must move.

    step_cost(ep, spec) -> {"flops", "bytes", "weight_bytes", "state_bytes", "batch_bytes"}

FLOPs are torch's `FlopCounterMode` formulas applied to each call of the captured graph (the
graph the runtimes receive, recomputation included) at its recorded shapes, without running
it: matrix multiplies, convolutions and attention.
Elementwise work is not counted; a transformer step's matmuls are nearly all of its FLOPs.

Bytes are the least a step moves through memory: every frozen weight read once, the state
read and its update written, the batch read. Activations are left out (they may stay in
cache), so ``bytes`` over a memory bandwidth is a floor on the step's time, as ``flops``
over a matmul rate is. The manifest keeps the count as host provenance (``model.step_cost``)
for `device_harness.host.predict`.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from edgetune.contract import ProgramSpec


def _tensor_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in seen:
            seen.add(t.untyped_storage().data_ptr())
            total += t.untyped_storage().nbytes()
    return total


def _call_flops(node: torch.fx.Node) -> int:
    """FlopCounterMode's count of one call, from its recorded (fake) values instead of a run; a
    composite op (``aten.linear`` of an undecomposed program) is run alone on them."""
    from torch._guards import detect_fake_mode
    from torch.utils.flop_counter import FlopCounterMode, flop_registry

    op = node.target
    if not isinstance(op, torch._ops.OpOverload):
        return 0
    args, kwargs = torch.fx.node.map_arg((node.args, node.kwargs), lambda a: a.meta["val"])
    if op.overloadpacket in flop_registry:
        return flop_registry[op.overloadpacket](*args, **kwargs, out_val=node.meta["val"])
    if not torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), "CompositeImplicitAutograd"):
        return 0
    with detect_fake_mode([*args, *kwargs.values()]) or contextlib.nullcontext(), \
            FlopCounterMode(display=False) as counter:
        op(*args, **kwargs)
    return counter.get_total_flops()


def step_cost(ep: torch.export.ExportedProgram, spec: ProgramSpec) -> dict[str, int]:
    """The cost of one run of ``ep`` (a step program with inputs ``spec.inputs``)."""
    flops = sum(_call_flops(n) for n in ep.graph.nodes if n.op == "call_function")
    nbytes = lambda role: sum(int(np.prod(t.shape)) * np.dtype(t.dtype).itemsize for t in spec.inputs  # noqa: E731
                              if t.role == role)
    weights = _tensor_bytes([*ep.state_dict.values(), *ep.constants.values()])
    state, batch = nbytes("state"), nbytes("batch")
    return {"flops": int(flops), "bytes": weights + 2 * state + batch,
            "weight_bytes": weights, "state_bytes": state, "batch_bytes": batch}
