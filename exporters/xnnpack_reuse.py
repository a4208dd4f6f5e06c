"""XNNPACK's delegate compiled once per distinct partition, not once per layer.

A deep decoder's step is the same few partitions over and over: SmolLM2-135M's step has 617
XNNPACK partitions of 55 distinct graphs (each layer's forward and backward cut the same
way), and since every frozen weight reaches them as an input (the matmuls' weights are
dynamic, see `exporters.executorch`), none holds constant data. XNNPACK's preprocess (its
seventeen passes and the serialization) cost 127 s of that export's 380 s of lowering. Here
a partition whose graph equals one already compiled - the same ops, arguments, shapes,
dtypes, strides and other non-provenance metadata, in the same order, with the same compile
specs - takes that one's compiled bytes; so export cost grows with the number of distinct
partitions, not with depth. A partition holding constants is always compiled itself (its
bytes name its data). What differs between equal partitions is provenance only: node
names, partition tags and the debug handles XNNPACK writes into the blob for profiling,
which then point at the first such partition's nodes. ExecuTorch's emitter stores equal
blobs once, so the .pte shrinks too.

Each partition is compiled from a copy of its graph, which XNNPACK's passes would otherwise
edit in place: every lowered module keeps the graph it was partitioned with. ExecuTorch
deep-copies every partition before handing it to the backend for the same reason; that
copy is left out here (a reused partition needs none, a compiled one gets its own).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import types
import weakref
from unittest import mock

import torch

# node metadata that records where a node came from, not what it computes; and the partitioner's
# record of the configs that matched a node, which no compiler pass reads (a partition's input
# carries it from the op that computed it in the partition before)
PROVENANCE = frozenset({"debug_handle", "delegation_tag", "from_node", "seq_nr", "stack_trace", "nn_module_stack",
                        "source_fn_stack", "torch_fn", "custom", "xnn_partitioner_config"})


def _norm(value, index: dict) -> object:
    """A value of a node's arguments or metadata, with nodes as their positions and tensors as
    (shape, dtype, strides): equal for equal computations in different places."""
    if isinstance(value, torch.fx.Node):
        return ("node", index[value])
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), str(value.dtype), tuple(value.stride()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_norm(v, index) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((str(k), _norm(v, index)) for k, v in value.items()))
    return repr(value)


def partition_key(program: torch.export.ExportedProgram, compile_specs) -> str | None:
    """A digest of what XNNPACK compiles from ``program`` (one partition) and ``compile_specs``;
    None when the partition holds constant data (its compiled bytes name that data)."""
    from executorch.backends.xnnpack.utils.utils import is_param_node

    index: dict[torch.fx.Node, int] = {}
    parts = [repr([(s.key, bytes(s.value)) for s in compile_specs]),
             repr([s.kind.name for s in program.graph_signature.input_specs]),
             repr([s.kind.name for s in program.graph_signature.output_specs])]
    for i, n in enumerate(program.graph.nodes):
        if n.op == "get_attr" or (n.op == "placeholder" and is_param_node(program, n)):
            return None
        index[n] = i
        meta = {k: v for k, v in n.meta.items() if k not in PROVENANCE}
        target = "" if n.op == "placeholder" else str(n.target)  # a placeholder's target is its name
        parts.append(repr((n.op, target, _norm((n.args, n.kwargs), index), _norm(meta, index))))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@contextlib.contextmanager
def one_compile_per_distinct_partition():
    """While lowering to XNNPACK, compile each distinct partition once (see the module
    docstring); yields the counts {"compiled": n, "reused": m}."""
    from executorch.backends.xnnpack.xnnpack_preprocess import XnnpackBackend
    from executorch.exir.backend import backend_api

    real, real_partition = XnnpackBackend.preprocess, backend_api.create_exported_program_from_submodule
    compiled: dict[str, object] = {}
    counts = {"compiled": 0, "reused": 0}
    partitions = weakref.WeakSet()  # the partitions' programs, which `preprocess` never edits

    def partition(*args, **kwargs):
        made = real_partition(*args, **kwargs)  # (program, input specs, output specs) to delete
        partitions.add(made[0])
        return made

    def deepcopy(value, memo=None):
        return value if isinstance(value, torch.export.ExportedProgram) and value in partitions else copy.deepcopy(value, memo)

    def preprocess(edge_program, compile_specs):
        key = partition_key(edge_program, compile_specs)
        if key is not None and key in compiled:
            counts["reused"] += 1
            return compiled[key]
        counts["compiled"] += 1
        result = real(copy.deepcopy(edge_program), compile_specs)
        if key is not None:
            compiled[key] = result
        return result

    with mock.patch.object(XnnpackBackend, "preprocess", staticmethod(preprocess)), \
            mock.patch.multiple(backend_api, create_exported_program_from_submodule=partition,
                                copy=types.SimpleNamespace(deepcopy=deepcopy)):
        yield counts
