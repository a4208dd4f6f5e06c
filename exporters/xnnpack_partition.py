"""XNNPACK's partitions found in linear time, for steps of tens of thousands of nodes.

ExecuTorch's XNNPACK partitioner matches nodes with its configs (kept here as they are) and
then groups them with `GroupBasedPartitioner`, which precomputes every node's full set of
ancestors and descendants and tries to merge every pair of partitions: time and memory grow
with the square of the graph. A training step is one long chain (the forward, then the
backward through it), so SmolLM2-135M's step (about 40k edge nodes) ran this machine's
24 GB out of memory inside the partitioner.

Here the matched groups are the units; the graph of units is ordered topologically (Kahn),
always taking a unit of the same kind (delegated or not) as the last one while one is ready,
and each run of delegated units becomes one partition, cut where it would have more
external values than XNNPACK's runtime loads. What is computed from the frozen weights
alone is placed where it is used (`run_partitions`' inputs). A run of consecutive units in a
topological order is convex (no path leaves it and comes back), so no partition forms a
cycle. Should a matched group not be convex itself, the graph of units has a cycle, and
ExecuTorch's own partitioner is used instead.

More costs of the same kind are removed while a step is lowered: XNNPACK's configs
repeated two whole-graph lookups per node they matched (`_graph_lookups_once`), and
ExecuTorch copied, re-sorted and recompiled the whole graph after fusing each partition
(`contiguous_partitions_need_no_sort`), scanned it four more times per partition
(`one_scan_per_graph`) and deep-copied the whole program for each partitioner to tag
(`partition_in_place`).
"""
from __future__ import annotations

import copy
import operator
from collections import deque
from contextlib import contextmanager
from unittest import mock

import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from torch.fx.passes.infra.partitioner import Partition

from exporters.rematerialize import depends_on, nbytes, user_input_placeholders

# XNNPACK's runtime refuses to load a delegate with more external values (inputs and
# outputs): "num_externs (6962) exceeds maximum (4096)", one of SmolLM2's step partitions
MAX_EXTERNALS = 4096
# A weight-only unit smaller than this (a scalar, a short range) is placed as early as it can
# run: placed late, a portable one would split the run of delegated units it lands in.
LATE_BYTES = 4096


class _Externals:
    """The external values of a growing partition: the values it reads from outside and those
    of its values read outside it. A frozen constant read from outside counts: unless tagged
    into the partition, XNNPACK takes it as an input too."""

    def __init__(self):
        self.inside, self.inputs, self.read_outside, self.outputs = set(), set(), {}, 0

    def admit(self, unit, limit: int) -> bool:
        """Add ``unit`` unless the partition holds something already and would then have more
        than ``limit`` external values; -> whether it was added."""
        nodes = set(unit)
        read = {a for n in unit for a in n.all_input_nodes}
        inside = read & self.inside
        inputs = read - self.inside - nodes - self.inputs
        read_outside = {n: {u for u in n.users if u not in nodes} for n in unit}
        closed = sum(1 for a in inside if self.read_outside[a] and self.read_outside[a] <= nodes)  # no longer outputs
        outputs = self.outputs - closed + sum(1 for r in read_outside.values() if r)
        if self.inside and len(self.inputs) + len(inputs) + outputs > limit:
            return False
        for a in inside:
            self.read_outside[a] -= nodes
        self.inputs |= inputs
        self.inside |= nodes
        self.read_outside.update(read_outside)
        self.outputs = outputs
        return True


def run_partitions(graph: torch.fx.Graph, groups: list[list[torch.fx.Node]], max_externals: int | None = None,
                   inputs: set[torch.fx.Node] | None = None
                   ) -> tuple[list[torch.fx.Node], list[list[torch.fx.Node]]] | None:
    """``groups``: disjoint lists of nodes a backend takes, each kept whole -> (every node of
    ``graph`` in the order found, the delegated partitions as lists of nodes), or None when the
    groups cannot be ordered (one is not convex). With ``max_externals``, a run of delegated
    units is cut where the next unit would give its partition more external values (`_Externals`).

    ``inputs``: the placeholders that change between calls (the user's inputs). A unit that
    depends on none of them (a frozen weight's transpose or dequantization, of LATE_BYTES or
    more) is placed just before its first user, not as soon as it could run: placed early,
    every layer's dequantized weight was one partition's output, all of them alive at once
    through the backward (the whole fp32 model in the step's memory plan). Such a unit that is
    portable goes before the delegated run that needs it, rather than splitting it."""
    parent: dict[torch.fx.Node, torch.fx.Node] = {}

    def find(n):
        while parent[n] is not n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for g in groups:
        for n in g:
            parent[n] = n
        for n in g[1:]:
            parent[find(n)] = find(g[0])
    for n in graph.nodes:  # a delegated getitem goes with its delegated tuple's producer
        if n in parent and n.target is operator.getitem and n.args[0] in parent:
            parent[find(n)] = find(n.args[0])
    delegated = set(parent)
    root = {n: find(n) if n in delegated else n for n in graph.nodes}
    members: dict[torch.fx.Node, list[torch.fx.Node]] = {}
    for n in graph.nodes:
        members.setdefault(root[n], []).append(n)
    varying = depends_on(graph, inputs) if inputs is not None else set(graph.nodes)
    fixed = {u for u, ns in members.items() if u.op != "placeholder" and not any(n in varying for n in ns)}
    lazy = {u for u in fixed if any(nbytes(n) >= LATE_BYTES for n in members[u])}
    indegree = dict.fromkeys(members, 0)
    for n in graph.nodes:
        for user in n.users:
            if root[user] is not root[n] and root[n] not in lazy:
                indegree[root[user]] += 1
    ready = {True: deque(), False: deque()}
    for u, d in indegree.items():
        if d == 0 and u not in lazy:
            ready[u in delegated].append(u)
    runs, before, run_of, partitions, placed = [[]], [[]], {}, [], set()  # runs alternate in kind, from portable
    kind_now, externals = False, None  # the current run's kind; its partition's external values

    def place(u) -> bool:
        """Append unit ``u`` (after the weight-only units it reads) to the order and to the
        current run. -> False if those units form a cycle (a group that is not convex)."""
        nonlocal kind_now, externals
        stack, visiting = [(u, False)], set()
        while stack:  # the weight-only units ``u`` reads and has not placed, depth first, each before its users
            v, expanded = stack.pop()
            if v in placed:
                continue
            if not expanded:
                if v in visiting:
                    return False
                visiting.add(v)
                stack.append((v, True))
                stack.extend((root[a], False) for n in reversed(members[v]) for a in n.all_input_nodes
                             if root[a] in fixed and root[a] not in placed and root[a] is not v)
                continue
            placed.add(v)
            kind, here = v in delegated, len(runs) - 1
            if (v in fixed and not kind and kind_now
                    and all(run_of.get(root[a], -1) < here for n in members[v] for a in n.all_input_nodes)):
                # a portable op on weights alone (the cast of int4 codes to fp32) goes before the
                # delegated run that needs it, which it would otherwise split
                before[here].extend(members[v])
                run_of[v] = here - 0.5
            else:
                if kind != kind_now:
                    kind_now = kind
                    runs.append([])
                    before.append([])
                    if kind:
                        partitions.append([])
                        externals = _Externals()
                runs[-1].extend(members[v])
                run_of[v] = len(runs) - 1
                if kind:
                    if max_externals and not externals.admit(members[v], max_externals):
                        partitions.append([])
                        externals = _Externals()
                        externals.admit(members[v], max_externals)  # an empty partition takes any unit
                    partitions[-1].extend(members[v])
            if v in lazy:
                continue
            for n in members[v]:
                for user in n.users:
                    w = root[user]
                    if w is not v and w not in lazy:
                        indegree[w] -= 1
                        if indegree[w] == 0:
                            ready[w in delegated].append(w)
        return True

    while ready[True] or ready[False]:
        u = ready[kind_now].popleft() if ready[kind_now] else ready[not kind_now].popleft()
        if u not in placed and not place(u):  # placed already: before a lazy unit that reads it
            return None
    for u in members:  # lazy units nothing varying reads (an output that is a constant)
        if u in lazy and not place(u):
            return None
    if len(placed) != len(members):
        return None
    return [n for b, r in zip(before, runs) for n in (*b, *r)], partitions


class LinearTimeXnnpackPartitioner(XnnpackPartitioner):
    """`XnnpackPartitioner` with its configs and tags, partitioned by `run_partitions`."""

    def generate_partitions(self, ep: torch.export.ExportedProgram) -> list[Partition]:
        if self.per_op_mode:
            return super().generate_partitions(ep)
        with _graph_lookups_once():
            groups = self.get_matched_nodes_from_configs(ep)
        found = run_partitions(ep.graph_module.graph, groups, MAX_EXTERNALS, user_input_placeholders(ep))
        if found is None:
            return super().generate_partitions(ep)
        return [Partition(id=i, nodes=nodes) for i, nodes in enumerate(found[1])]


@contextmanager
def _graph_lookups_once():
    """While XNNPACK's configs match, the graph and its signature do not change, but two
    lookups were repeated per node: the addmm config scanned the whole graph's source
    partitions for each addmm, and whether a node is a constant rebuilt the signature's
    input tables (one entry per weight) for each node matched. Each is made once here."""
    from executorch.backends.xnnpack.partition.config import gemm_configs
    from executorch.exir.backend.canonical_partitioners import config_partitioner

    real_sources = gemm_configs.get_source_partitions
    source_partitions, constant_names = {}, {}

    def sources(graph, wanted_sources, filter_fn=None):
        key = (id(graph), tuple(wanted_sources), filter_fn)
        if key not in source_partitions:
            source_partitions[key] = real_sources(graph, wanted_sources, filter_fn)
        return source_partitions[key]

    def constant(ep, node):
        if id(ep) not in constant_names:
            sig = ep.graph_signature
            constant_names[id(ep)] = {*sig.inputs_to_parameters, *sig.inputs_to_buffers,
                                      *sig.inputs_to_lifted_tensor_constants}
        return node.name in constant_names[id(ep)]

    with (mock.patch.multiple(gemm_configs, get_source_partitions=sources),
          mock.patch.multiple(config_partitioner, is_constant_data=constant)):
        yield


def _nodes_by_tag(graph: torch.fx.Graph) -> dict[str, list[torch.fx.Node]]:
    """Delegation tag -> the nodes carrying it, in graph order."""
    tags: dict[str, list[torch.fx.Node]] = {}
    for n in graph.nodes:
        if "delegation_tag" in n.meta:
            tags.setdefault(n.meta["delegation_tag"], []).append(n)
    return tags


def _reorder(gm: torch.fx.GraphModule, order: list[torch.fx.Node]) -> None:
    """Put ``gm``'s nodes in ``order`` (a topological one), placeholders kept first, as the
    program's signature lists them: each partition's computing nodes are then contiguous."""
    anchor = gm.graph._root
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            anchor = n
    for n in order:
        if n.op not in ("placeholder", "output"):
            anchor.append(n)
            anchor = n
    gm.recompile()


@contextmanager
def contiguous_partitions_need_no_sort():
    """While ExecuTorch lowers the partitions: ``create_submodule_from_nodes`` re-sorts the
    whole graph (a copy and a recompile) after fusing each partition, which makes lowering
    grow with partitions x nodes. Here the tagged graph is first put in an order in which each
    partition's nodes are contiguous (`run_partitions` with the partitions as units); a
    partition then fuses into a call that already comes after its inputs and before its
    outputs' users, and the graph is sorted only where a fused call is found out of order."""
    from executorch.exir.backend import backend_api
    from torch.fx.passes.tools_common import legalize_graph

    real_fuse, real_create = backend_api.create_submodule_from_nodes, backend_api._create_partitions_in_graph_module

    def fuse(gm, node_list, tag, skip_legalize_graph=False):
        sub, call = real_fuse(gm, node_list, tag, skip_legalize_graph=True)
        late = [u for n in [call, *call.users] for u in n.users if u._sort_key < call._sort_key]
        if skip_legalize_graph or (all(a._sort_key < call._sort_key for a in call.all_input_nodes) and not late):
            return sub, call
        legalize_graph(gm)
        return sub, next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == call.target)

    def create(tagged_graph_module, partition_result, owning_program, *args, **kwargs):
        tags = _nodes_by_tag(tagged_graph_module.graph)
        found = run_partitions(tagged_graph_module.graph,
                               [ns for tag, ns in tags.items() if tag in partition_result.partition_tags],
                               inputs=user_input_placeholders(owning_program))
        if found is not None:
            _reorder(tagged_graph_module, found[0])
        return real_create(tagged_graph_module, partition_result, owning_program, *args, **kwargs)

    with mock.patch.multiple(backend_api, create_submodule_from_nodes=fuse, _create_partitions_in_graph_module=create):
        yield


def _contiguous(nodes: list[torch.fx.Node]) -> bool:
    """Whether ``nodes`` are one unbroken run of their graph's order (then no path leaves the
    run and comes back: the partition forms no cycle)."""
    run = sorted(nodes, key=lambda n: n._sort_key)
    return all(a.next is b for a, b in zip(run, run[1:]))


@contextmanager
def one_scan_per_graph():
    """While ExecuTorch fuses the partitions, four whole-graph scans per partition are made
    once or not at all: listing a tag's nodes (here every tag's, in one scan when fusing
    starts), looking for the tag's constants to duplicate (only the graph's placeholders can
    be: a tag none of them carries has nothing to duplicate), checking a partition forms no
    cycle (a contiguous one cannot: see `contiguous_partitions_need_no_sort`; any other is
    checked as before) and finding where the fused call goes (after the partition's last
    output, found among its outputs). Fusing a partition removes only its own nodes, so the
    others' lists stay as listed."""
    from executorch.exir import lowered_backend_module
    from executorch.exir.backend import backend_api
    from torch.fx.passes.utils import fuser_utils

    real_create, real_tagged = backend_api._create_partitions_in_graph_module, backend_api._get_node_list_with_same_tag
    real_duplicate = backend_api._maybe_duplicate_constant_nodes
    real_validate, real_insert = fuser_utils.validate_partition, lowered_backend_module.insert_subgm
    listed: dict[torch.fx.Graph, dict[str, list[torch.fx.Node]]] = {}  # per graph being fused: tag -> its nodes

    def create(tagged_graph_module, *args, **kwargs):
        try:
            return real_create(tagged_graph_module, *args, **kwargs)
        finally:
            listed.pop(tagged_graph_module.graph, None)

    def tagged(tagged_graph_module, tag, owning_program):
        graph = tagged_graph_module.graph
        if graph not in listed:  # the first listing of this graph: its order is final (no partition fused yet)
            listed[graph] = _nodes_by_tag(graph)
        nodes = listed[graph].get(tag, [])
        if any(n.op == "placeholder" for n in nodes):  # a constant taken into a partition: ExecuTorch checks it
            return real_tagged(tagged_graph_module, tag, owning_program)
        return list(nodes)

    def duplicate(tagged_exported_program, tag):
        if any(n.meta.get("delegation_tag") == tag for n in tagged_exported_program.graph.find_nodes(op="placeholder")):
            real_duplicate(tagged_exported_program, tag)

    def validate(partition):
        return _contiguous(partition) or real_validate(partition)

    def insert(gm, sub_gm, orig_inputs, orig_outputs, insertion_point=None):
        if insertion_point is None and orig_outputs:
            insertion_point = max(orig_outputs, key=lambda n: n._sort_key)
        return real_insert(gm, sub_gm, orig_inputs, orig_outputs, insertion_point)

    with mock.patch.multiple(backend_api, _create_partitions_in_graph_module=create, _get_node_list_with_same_tag=tagged,
                             _maybe_duplicate_constant_nodes=duplicate), \
            mock.patch.multiple(fuser_utils, validate_partition=validate), \
            mock.patch.multiple(lowered_backend_module, insert_subgm=insert):
        yield


@contextmanager
def partition_in_place():
    """While lowering, the partitioner tags the edge program's own graph. ExecuTorch first
    deep-copies the whole program (about 3 s per copy of SmolLM2's step graph, one copy per
    partitioner) so that partitioning cannot change the caller's program. Within
    `to_edge_transform_and_lower` the edge graph is its own, made from the captured program by
    the edge passes and dropped once lowered. What partitioning edits besides the graph (the
    signature, the state dict's entries) is copied as ExecuTorch copies it: the state dict's
    mapping may be the captured program's. A copied graph lists each node's users in graph
    order, which the partitions' inputs follow; the edge passes leave them in the order they
    were made, so they are put in graph order here (the .pte is byte for byte the same)."""
    from executorch.exir.backend import backend_api

    def same_graph(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
        for n in program.graph.nodes:
            n.users = dict.fromkeys(sorted(n.users, key=lambda u: u._sort_key))
        # a shallow copy (as ExecuTorch's pass manager makes): a new ExportedProgram would
        # regenerate the whole graph's code
        tagged = copy.copy(program)
        tagged._graph_signature = copy.deepcopy(program.graph_signature)
        tagged._state_dict = dict(program.state_dict)
        tagged._range_constraints = copy.deepcopy(program.range_constraints)
        tagged._module_call_graph = copy.deepcopy(program.module_call_graph)
        return tagged

    with mock.patch.multiple(backend_api, get_fake_program=same_graph):
        yield
