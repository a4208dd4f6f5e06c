"""ExportedProgram -> ExecuTorch .pte, with the matmuls delegated to XNNPACK.

The step's matmuls take the frozen weight through a transpose, and the backward's
products take two activations, so none of them has a static weight. XNNPACK's
partitioner accepts them as dynamic-weight fully-connected ops only with
``force_non_static_weights_for_f32_linear``; without it every ``mm`` stays on the
portable kernels (naive loops, ~44x slower than eager on MiniLM).

``erf`` (GELU and its gradient) has no XNNPACK kernel and the portable one costs ~9 ms
per MiniLM layer, so it is spelled out in ops XNNPACK runs (`erf_from_exp`).

A convolution whose kernel is not a constant (a factor of a convolution adapter, or the
backward's weight-gradient convolution, whose kernel is the output gradient) stays on the
portable kernels: XNNPACK's convolution packs its kernel once, when the delegate loads,
and such a partition fails to load; so does a convolution of one input channel, which
XNNPACK mistakes for a depthwise one (`_static_kernel_convolution`).

Quantized frozen weights stay int8 / packed uint8 constants in the .pte and are
dequantized inside the graph, layer by layer, in core aten ops (cast, floor, mul, add).
Integer matmuls (`edgetune::int8_matmul`) over frozen codes run on XNNPACK's dynamically
quantized linear (`exporters.xnnpack_int8`; its activations round per row with a zero point).

What the step computes from a frozen weight alone (its transpose, its dequantized values) is
computed again for each use and placed just before it (`exporters.rematerialize`), so the
memory plan does not hold the whole model in fp32 from the forward to the backward.

XNNPACK's configs choose the delegated ops; the partitions are found in linear time
(`exporters.xnnpack_partition`): ExecuTorch's own grouping grows with the square of a
training step's length and ran out of memory on SmolLM2's. XNNPACK's per-partition passes
run only where they find something to act on (`exporters.xnnpack_passes`), each distinct
partition is compiled once (`exporters.xnnpack_reuse`: a decoder's layers repeat the same
few), and memory planning does not rebuild the signature's tables per node nor re-read each
placed tensor per tensor it places (`exporters.exir_planning`).
"""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import torch
from torch._decomp import core_aten_decompositions

from edgetune.quant.int8_matmul import INT8_MATMUL_OP
from exporters.decompositions import call_targets, decompose_locally, quant_references, skip_noop_decompositions
from exporters.fx_bookkeeping import delegate_outputs_from_metadata, oldest_ancestor_only, signature_tables_once
from exporters.rematerialize import one_copy_per_use
from exporters.xnnpack_int8 import int8_matmuls_to_xnnpack

MATMULS = ("aten.mm.default", "aten.addmm.default", "aten.bmm.default", "aten.linear.default")

# Abramowitz & Stegun 7.1.26: |error| <= 1.5e-7 over the real line, below fp32's own
# rounding of erf's values near 1.
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf_from_exp(x: torch.Tensor) -> torch.Tensor:
    """erf from abs/mul/add/div/exp only: [any shape] -> same shape."""
    ax = torch.abs(x)
    t = 1.0 / (1.0 + _AS_P * ax)
    poly = _AS_A[4]
    for a in reversed(_AS_A[:4]):
        poly = poly * t + a
    y = 1.0 - poly * t * torch.exp(-(ax * ax))
    # sign(x) as x / max(|x|, tiny): where |x| is tiny, y itself is ~0.
    return y * (x / torch.clamp(ax, min=1e-30))


def _decompose(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Spell out edgetune's quantized ops (XNNPACK's integer pattern, or aten ops on the integer
    constants) and erf, call by call (`decompose_locally`), or else in the one re-trace of the
    lowering (see `exporters.decompositions`)."""
    targets = call_targets(ep)
    table = {**core_aten_decompositions(), **quant_references(targets)}  # core: what the references use
    if INT8_MATMUL_OP in targets:
        ep, rewritten = int8_matmuls_to_xnnpack(ep)
        if rewritten:
            del table[torch.ops.aten.linear.default]  # the pattern's product, kept whole for XNNPACK
    if torch.ops.aten.erf.default in targets:
        table[torch.ops.aten.erf.default] = erf_from_exp
    local = decompose_locally(ep, table)
    ep = local if local is not None else ep.run_decompositions(table)
    one_copy_per_use(ep)  # a program of our own: decompose_locally's copy or run_decompositions' result
    return ep


def _op_name(target) -> str:
    """'aten.mm.default' for an aten or edge-dialect op ('<EdgeOpOverload: aten.mm.default>: schema = ...')."""
    s = str(target)
    return s[len("<EdgeOpOverload: "):].split(">")[0] if s.startswith("<EdgeOpOverload: ") else s


def _ops(graph: torch.fx.Graph) -> Counter:
    return Counter(_op_name(n.target) for n in graph.nodes
                   if n.op == "call_function" and "getitem" not in str(n.target))


def delegation_coverage(edge_ep: torch.export.ExportedProgram) -> dict:
    """Ops XNNPACK runs vs ops left to portable kernels, after partitioning."""
    left = _ops(edge_ep.graph)
    delegated = Counter()
    for name, mod in edge_ep.graph_module.named_children():
        if name.startswith("lowered_module"):
            delegated += _ops(mod.original_module.graph)
    n_calls = left.pop("executorch_call_delegate", 0)
    total = sum(left.values()) + sum(delegated.values())
    mm = lambda c: sum(v for k, v in c.items() if k in MATMULS)  # noqa: E731
    return {"backend": "XnnpackBackend", "delegate_calls": n_calls,
            "delegated_ops": sum(delegated.values()), "total_ops": total,
            "delegated_matmuls": mm(delegated), "matmuls": mm(delegated) + mm(left),
            "portable_ops": dict(left.most_common())}


def _static_kernel_convolution():
    """XNNPACK's convolution config, for constant kernels only (see the module docstring)."""
    from executorch.backends.xnnpack.partition.config import ConvolutionConfig
    from executorch.backends.xnnpack.utils.utils import get_input_node, is_param_node

    class _StaticKernelConvolution(ConvolutionConfig):
        def check_constraints(self, node, ep) -> bool:
            kernel = get_input_node(node, 1)
            # one input channel and groups 1 is taken for a depthwise convolution by XNNPACK's
            # compiler, which then refuses it (xnn_status_invalid_parameter) when the delegate loads
            single = node.args[8] == 1 and kernel.meta["val"].shape[1] == 1
            return is_param_node(ep, kernel) and not single and super().check_constraints(node, ep)

    return _StaticKernelConvolution


def export_executorch(ep: torch.export.ExportedProgram, path: str | Path) -> dict:
    """Lower ``ep`` and write the .pte; returns the delegation coverage for the manifest."""
    path = Path(path)
    with signature_tables_once(), oldest_ancestor_only():
        ep = _decompose(ep)
        return _lower(ep, path)


def _lower(ep: torch.export.ExportedProgram, path: Path) -> dict:
    """The edge program, XNNPACK's partitions and the .pte of a decomposed ``ep``."""
    from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS, ConvolutionConfig
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    from exporters.edge_passes import only_edge_passes_that_act
    from exporters.exir_planning import mutable_buffer_checks_by_outputs, placements_read_once
    from exporters.xnnpack_partition import (
        LinearTimeXnnpackPartitioner,
        contiguous_partitions_need_no_sort,
        one_scan_per_graph,
        partition_in_place,
    )
    from exporters.xnnpack_passes import only_passes_that_act
    from exporters.xnnpack_reuse import one_compile_per_distinct_partition

    # convolutions first, with their kernels packed as static weights; then the rest, whose
    # matmuls take dynamic weights (force_non_static_weights_for_f32_linear would make the
    # convolutions' kernels dynamic too, which XNNPACK's convolution refuses). Each partitioner
    # costs ExecuTorch a decomposition pass: the first is left out where there is no convolution.
    rest = LinearTimeXnnpackPartitioner([c for c in ALL_PARTITIONER_CONFIGS if c is not ConvolutionConfig],
                                        force_non_static_weights_for_f32_linear=True)
    has_conv = any("convolution" in str(t) for t in call_targets(ep))
    partitioners = [LinearTimeXnnpackPartitioner([_static_kernel_convolution()]), rest] if has_conv else [rest]
    with (warnings.catch_warnings(), skip_noop_decompositions(ep), contiguous_partitions_need_no_sort(),
          only_passes_that_act(), only_edge_passes_that_act(), mutable_buffer_checks_by_outputs(),
          one_scan_per_graph(), partition_in_place(), one_compile_per_distinct_partition(), delegate_outputs_from_metadata(),
          placements_read_once()):
        warnings.simplefilter("ignore")
        # ExecuTorch's IR verifiers re-run the whole graph on fake tensors to check dtypes; the
        # artifact's self-check runs the .pte itself against eager PyTorch
        edge = to_edge_transform_and_lower(ep, partitioner=partitioners,
                                           compile_config=EdgeCompileConfig(_check_ir_validity=False))
        coverage = delegation_coverage(edge.exported_program())
        prog = edge.to_executorch()
    path.write_bytes(prog.buffer)
    return coverage
