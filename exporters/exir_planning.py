"""ExecuTorch's memory planning without its per-node rebuild of the program's signature tables.

Memory planning and spec propagation ask, for each node they visit, whether it is a
mutable buffer; each answer rebuilds the signature's table of every buffer (a training
step's frozen tensors: thousands) and of every mutated buffer. On SmolLM2's step that
was about 140 of the export's 1284 s. A buffer is mutable only if an output mutates
one, and the step's programs mutate none (`edgetune.step.lift.mutates`): that is
checked first, over the outputs alone, with the same answer.
"""
from __future__ import annotations

import contextlib
from unittest import mock

import torch
from torch.export.graph_signature import ExportGraphSignature, OutputKind


def _mutates_no_buffer(graph_signature: ExportGraphSignature) -> bool:
    return all(s.kind != OutputKind.BUFFER_MUTATION for s in graph_signature.output_specs)


@contextlib.contextmanager
def mutable_buffer_checks_by_outputs():
    """While lowering to ExecuTorch, answer "is this node a mutable buffer" from the outputs first."""
    from executorch.exir import memory_planning
    from executorch.exir.passes import spec_prop_pass

    def checked_by_outputs(real_check):
        def is_mutable_buffer(node: torch.fx.Node, graph_signature: ExportGraphSignature | None = None) -> bool:
            if graph_signature is None or node.op != "placeholder" or _mutates_no_buffer(graph_signature):
                return False
            return real_check(node, graph_signature)
        return is_mutable_buffer

    with (mock.patch.multiple(memory_planning, _is_mutable_buffer=checked_by_outputs(memory_planning._is_mutable_buffer)),
          mock.patch.multiple(spec_prop_pass, _is_mutable_buffer=checked_by_outputs(spec_prop_pass._is_mutable_buffer))):
        yield
