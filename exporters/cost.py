"""What one training step costs, counted on the captured program: its FLOPs and the bytes it must move.

    step_cost(ep, spec, feeds) -> {"flops", "bytes", "weight_bytes", "state_bytes", "batch_bytes"}

FLOPs are torch's `FlopCounterMode` count of one run of the captured graph (the graph the
runtimes receive, recomputation included): matrix multiplies, convolutions and attention.
Elementwise work is not counted; a transformer step's matmuls are nearly all of its FLOPs.

Bytes are the least a step moves through memory: every frozen weight read once, the state
read and its update written, the batch read. Activations are left out (they may stay in
cache), so ``bytes`` over a memory bandwidth is a floor on the step's time, as ``flops``
over a matmul rate is. The manifest keeps the count as host provenance (``model.step_cost``)
for `device_harness.host.predict`.
"""
from __future__ import annotations

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


def step_cost(ep: torch.export.ExportedProgram, spec: ProgramSpec, feeds: dict[str, torch.Tensor]) -> dict[str, int]:
    """The cost of one run of ``ep`` (a step program with inputs ``spec.inputs``) on ``feeds``."""
    from torch.utils.flop_counter import FlopCounterMode

    module = ep.module()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*[feeds[t.name] for t in spec.inputs])
    nbytes = lambda role: sum(int(np.prod(t.shape)) * np.dtype(t.dtype).itemsize for t in spec.inputs  # noqa: E731
                              if t.role == role)
    weights = _tensor_bytes([*ep.state_dict.values(), *ep.constants.values()])
    state, batch = nbytes("state"), nbytes("batch")
    return {"flops": int(counter.get_total_flops()), "bytes": weights + 2 * state + batch,
            "weight_bytes": weights, "state_bytes": state, "batch_bytes": batch}
