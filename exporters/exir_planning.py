"""ExecuTorch's memory planning without its per-node rebuild of the program's signature tables,
and without re-reading each placed tensor for every tensor placed after it.

Memory planning and spec propagation ask, for each node they visit, whether it is a
mutable buffer; each answer rebuilds the signature's table of every buffer (a training
step's frozen tensors: thousands) and of every mutated buffer. On SmolLM2's step that
was about 140 of the export's 1284 s. A buffer is mutable only if an output mutates
one, and the step's programs mutate none (`edgetune.step.lift.mutates`): that is
checked first, over the outputs alone, with the same answer.

The greedy planner places tensors largest first; for each, it walks every tensor already
placed in each shared buffer, reading its lifetime and, where the lifetimes overlap, its
size, a property computed from shape, dtype and alignment on every access (about 6 s of
SmolLM2's step). `placements_read_once` lists each placed tensor's lifetime and end once;
the picks are the planner's own, and the tests check the .pte byte for byte.
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


@contextlib.contextmanager
def placements_read_once():
    """While planning memory, each placed tensor's lifetime and end offset are read once."""
    from executorch.exir import memory_planning

    # id of a shared object -> (the object, held so its id is not reused; [(first use, last use,
    # end offset)] of its allocations, in order): the planner only ever appends allocations,
    # and a placed tensor's lifetime, offset, shape and alignment no longer change
    rows: dict[int, tuple[object, list[tuple[int, int, int]]]] = {}

    def placed(sobj) -> list[tuple[int, int, int]]:
        listed = rows.setdefault(id(sobj), (sobj, []))[1]
        for alloc in sobj.allocations[len(listed):]:
            first, last = alloc.spec.lifetime
            listed.append((first, last, alloc.offset + alloc.spec.allocated_memory))
        return listed

    def does_not_overlap(sobj, spec) -> bool:
        """Whether no allocation in ``sobj`` is live while ``spec`` is."""
        first, last = spec.lifetime
        return all(last < f or first > la for f, la, _ in placed(sobj))

    def max_overlapping_offset(sobj, spec) -> int:
        """The end of the highest allocation in ``sobj`` whose lifetime overlaps ``spec``'s (0: none)."""
        first, last = spec.lifetime
        return max((end for f, la, end in placed(sobj) if not (last < f or first > la)), default=0)

    with mock.patch.multiple(memory_planning, _does_not_overlap=does_not_overlap,
                             _find_max_overlapping_allocations_offset=max_overlapping_offset):
        yield
