"""Graph rewrites shared by the lowerings: edgetune's own ops spelled out in aten ops, and
re-traces that would change nothing skipped.

Every `ExportedProgram.run_decompositions` call re-traces the whole graph, however few ops
it rewrites: for SmolLM2's step (30 layers, forward, recomputation and backward) one costs
about a minute and gigabytes of host memory. The captured graph is already core aten
(`edgetune.step.compile`), and once it has been decomposed for a lowering, the lowerings' own
decomposition passes (ExecuTorch runs 3 to 5 per program, torch.onnx one) have nothing left to rewrite:
`skip_noop_decompositions` returns such a program as it is. The rewrites a lowering does need
(edgetune's quantized ops, erf for XNNPACK) touch a few hundred calls: `decompose_locally`
traces each alone and splices it in, instead of re-tracing the program.
"""
from __future__ import annotations

import contextlib
import operator
from unittest import mock

import torch
from torch._decomp import core_aten_decompositions
from torch.export.graph_signature import ExportGraphSignature, OutputSpec, TensorArgument
from torch.utils import _pytree as pytree


def quant_references(targets: set) -> dict:
    """Decomposition table turning edgetune's quantized ops among ``targets`` (the graph's
    call targets) into aten ops over the integer constants; empty when there are none."""
    from edgetune.quant.int8_matmul import INT8_MATMUL_OP, int8_matmul_reference
    from edgetune.quant.weight import DEQUANTIZE_OP, dequantize_reference

    if not targets & {DEQUANTIZE_OP, INT8_MATMUL_OP}:
        return {}
    # The references are written in composite ops; the core set lowers what they use.
    return {**core_aten_decompositions(), DEQUANTIZE_OP: dequantize_reference,
            INT8_MATMUL_OP: int8_matmul_reference}


def call_targets(ep: torch.export.ExportedProgram) -> set:
    return {n.target for n in ep.graph.nodes if n.op == "call_function"}


def nothing_to_decompose(ep: torch.export.ExportedProgram, table: dict) -> bool:
    """True when decomposing ``ep`` with ``table`` would rewrite no node: every call is a
    functional op not in the table (or a tuple getitem), and the program mutates no buffer or
    input. A composite op outside the table is kept too (`aten.linear`, which XNNPACK's
    integer pattern needs whole; the tests check torch still does so)."""
    sig = ep.graph_signature
    if sig.buffers_to_mutate or sig.user_inputs_to_mutate:
        return False
    for t in call_targets(ep):
        if t is operator.getitem:
            continue
        if not isinstance(t, torch._ops.OpOverload) or t in table or t._schema.is_mutable:
            return False
    return True


def outputs_renamed(sig: ExportGraphSignature, renamed: dict[str, str]) -> ExportGraphSignature:
    """``sig`` with the outputs named in ``renamed`` (old node name -> new) pointing at the new
    nodes: a new signature with new specs for those, the others shared."""
    def spec(s: OutputSpec) -> OutputSpec:
        if isinstance(s.arg, TensorArgument) and s.arg.name in renamed:
            return OutputSpec(s.kind, TensorArgument(renamed[s.arg.name]), s.target)
        return s
    return ExportGraphSignature(list(sig.input_specs), [spec(s) for s in sig.output_specs])


def copy_graph_module(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A new GraphModule over a copy of ``gm``'s graph (node metadata shared, not copied): passes
    that edit it leave ``gm`` as it was. No re-trace; the weights are not copied."""
    graph = torch.fx.Graph()
    out = graph.graph_copy(gm.graph, {})
    graph.output(out)
    return torch.fx.GraphModule(gm, graph)


@contextlib.contextmanager
def skip_noop_decompositions(ep: torch.export.ExportedProgram):
    """Within the block, ``ep.run_decompositions(table)`` returns ``ep`` itself when
    `nothing_to_decompose`; any other call runs as usual. ``ep`` must be functional core aten,
    as the skipped call would have made it (a run_decompositions' or `decompose_locally`'s result)."""
    real = torch.export.ExportedProgram.run_decompositions

    def run_decompositions(self, decomp_table=None, *args, **kwargs):
        if self is ep and decomp_table is not None and nothing_to_decompose(self, decomp_table):
            return self
        return real(self, decomp_table, *args, **kwargs)

    with mock.patch.multiple(torch.export.ExportedProgram, run_decompositions=run_decompositions):
        yield


def decompose_locally(ep: torch.export.ExportedProgram, table: dict) -> torch.export.ExportedProgram | None:
    """``ep.run_decompositions(table)`` without re-tracing the whole program: each call to an op
    in ``table`` is traced alone, on its own inputs' fake values, and its graph takes the call's
    place in a copy of the program (the weights shared, not copied). -> None when that cannot
    stand for the full pass: the program mutates its inputs, a call's decomposition makes a
    constant or returns other than one tensor, or an op of the table is left. The cost grows
    with the number of calls rewritten, not with the program (SmolLM2's step: a dequantize per
    frozen matrix, among 29,000 nodes); calls of the same op on the same arguments and input
    shapes share one trace (a decoder's layers: a few shapes)."""
    from torch._guards import detect_fake_mode
    from torch.fx.experimental.proxy_tensor import make_fx

    sig = ep.graph_signature
    fake_mode = detect_fake_mode([n.meta.get("val") for n in ep.graph.nodes if n.op == "placeholder"])
    if sig.buffers_to_mutate or sig.user_inputs_to_mutate or fake_mode is None:
        return None
    gm = copy_graph_module(ep.graph_module)
    graph = gm.graph
    calls = [n for n in graph.nodes if n.op == "call_function" and n.target in table]
    renamed: dict[str, str] = {}
    traced: dict[tuple, torch.fx.GraphModule] = {}  # one trace per op, arguments and input shapes
    for node in calls:
        flat, structure = pytree.tree_flatten((node.args, node.kwargs))
        tensors = [a for a in flat if isinstance(a, torch.fx.Node)]

        def call(*values, node=node, flat=flat, structure=structure):
            it = iter(values)
            args, kwargs = pytree.tree_unflatten([next(it) if isinstance(a, torch.fx.Node) else a for a in flat],
                                                 structure)
            return table[node.target](*args, **kwargs)

        vals = [a.meta["val"] for a in tensors]
        key = (node.target, structure, repr([None if isinstance(a, torch.fx.Node) else a for a in flat]),
               tuple((v.shape, v.dtype, v.stride()) for v in vals))
        if key not in traced:
            with fake_mode:
                traced[key] = make_fx(call, decomposition_table=table)(*vals)
        sub = traced[key]
        if any(n.op == "get_attr" for n in sub.graph.nodes):
            return None
        env = dict(zip((n for n in sub.graph.nodes if n.op == "placeholder"), tensors))
        meta = {k: v for k, v in node.meta.items() if k not in ("val", "tensor_meta")}  # where it came from
        with graph.inserting_before(node), fake_mode:
            for n in sub.graph.nodes:
                if n.op == "call_function":
                    env[n] = graph.node_copy(n, lambda x: env[x])
                    v = n.meta["val"]  # each copy its own value, as its own trace would give
                    env[n].meta = {**meta, "val": torch.empty_strided(v.shape, v.stride(), dtype=v.dtype, device=v.device)
                                   if isinstance(v, torch.Tensor) else v}
                elif n.op == "output":
                    out = n.args[0]
        if not isinstance(out, torch.fx.Node):
            return None
        node.replace_all_uses_with(env[out])
        renamed[node.name] = env[out].name
        graph.erase_node(node)
    gm.recompile()
    local = ep._update(gm, outputs_renamed(sig, renamed))
    return local if nothing_to_decompose(local, table) else None
