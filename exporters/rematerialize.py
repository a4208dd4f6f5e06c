"""Tensors computed from the frozen weights alone, recomputed for each use instead of kept.

A training step reads each frozen weight in the forward and again in the backward, through
what it computes from the weight alone: its transpose (the forward's ``x @ W^T`` and the
backward's ``dy @ W``), or its dequantized values. The traced step computes those once, in
the forward, and keeps them for the backward: the whole model's weights, in fp32, alive at
once at the turn of the step. ExecuTorch plans that memory ahead (MiniLM's fp32 step: 79 MB
of its 94 MB plan; SmolLM2's int4 step: most of 2,679 MB, 113 MB after). Here each use gets
its own copy of the computation (a value read twice within it, the int4 codes' cast, is
computed once per copy), and ExecuTorch's partitioner places a copy just before its user
(`exporters.xnnpack_partition.run_partitions`), inside the same XNNPACK call: the fp32
weight lives for one product. The price is one more transpose or dequantization of each
weight per step, measured by `benchmarks/step_latency.py`.
"""
from __future__ import annotations

import torch

MIN_BYTES = 64 * 1024  # smaller tensors (a scale, a rotary table) stay shared: not worth a recomputation


def user_input_placeholders(ep: torch.export.ExportedProgram) -> set[torch.fx.Node]:
    """The placeholders of ``ep`` that are the user's inputs (not weights, buffers or constants)."""
    names = set(ep.graph_signature.user_inputs)
    return {n for n in ep.graph.nodes if n.op == "placeholder" and n.name in names}


def depends_on(graph: torch.fx.Graph, sources: set[torch.fx.Node]) -> set[torch.fx.Node]:
    """The nodes that read any of ``sources``, directly or not (``sources`` included), and the output."""
    reached = set(sources)
    for n in graph.nodes:  # fx graphs are in a topological order
        if n.op == "output" or any(a in reached for a in n.all_input_nodes):
            reached.add(n)
    return reached


def nbytes(node: torch.fx.Node) -> int:
    """Bytes of the tensor ``node`` computes (its fake value); 0 for anything else."""
    val = node.meta.get("val")
    return val.numel() * val.element_size() if isinstance(val, torch.Tensor) else 0


def one_copy_per_use(ep: torch.export.ExportedProgram) -> int:
    """Give each read of a weight-only tensor of at least MIN_BYTES by a varying node its own
    copy of the weight-only nodes computing it, in ``ep``'s graph (edited in place: a program
    of the caller's own). Within one copy, a value read twice (the int4 codes' cast, read by
    both nibbles) is computed once. The outputs and signature are unchanged. -> the number of
    nodes copied."""
    graph = ep.graph
    varying = depends_on(graph, user_input_placeholders(ep))

    def fixed(n) -> bool:
        return n.op == "call_function" and n not in varying and nbytes(n) >= MIN_BYTES

    claimed: set[torch.fx.Node] = set()  # weight-only nodes serving a read already
    copied = 0
    for user in list(graph.nodes):
        if user not in varying or user.op == "output":
            continue
        for n in dict.fromkeys(a for a in user.all_input_nodes if fixed(a)):
            cone, stack = {}, [n]  # n and the large weight-only nodes it is computed from
            while stack:
                m = stack.pop()
                if m not in cone:
                    cone[m] = None
                    stack.extend(a for a in m.all_input_nodes if fixed(a))
            copy: dict[torch.fx.Node, torch.fx.Node] = {}
            order = sorted(cone, key=lambda m: m._sort_key)  # inputs before their users
            for m in order:
                if m in claimed or any(a in copy for a in m.all_input_nodes):
                    with graph.inserting_before(user):
                        copy[m] = graph.node_copy(m, lambda a: copy.get(a, a))
                    copied += 1
                else:
                    claimed.add(m)
            if n in copy:
                user.replace_input_with(n, copy[n])
            for m in reversed(order):  # an unclaimed node copied for its claimed input, now unread
                if m in copy and m not in claimed and not m.users:
                    graph.erase_node(m)
                    copied -= 1
    if copied:
        ep.graph_module.recompile()
    return copied
