"""edgetune::int8_matmul on XNNPACK's integer kernels: the ExecuTorch lowering's rewrite.

XNNPACK multiplies a dynamically quantized activation with static int8 weights
("qd8 x qc8w": int8 codes per output channel, int32 accumulation) when the graph spells the
product as PyTorch's quantized reference pattern:

    s, z = choose_qparams_per_token_asymmetric(a)         one (scale, zero point) per row
    a' = dequantize_per_token(quantize_per_token(a, s, z), s, z)
    y  = linear(a', dequantize_per_channel(codes, scale, 0, axis 0))

This pass writes each `edgetune::int8_matmul` whose codes are a frozen constant in that
pattern. XNNPACK rounds the rows itself, with a zero point over [min, max] (it ignores the
graph's ``choose_qparams``; `edgetune.quant.int8_matmul.round_rows_asymmetric` is its
rounding): so ExecuTorch's integer products round activations per row like ONNX's, but
asymmetric where ONNX's are symmetric. The self-check compares ExecuTorch's programs with
eager PyTorch rounding the same way (`exporters.artifact.ACTIVATION_ROUNDING`).

The forward product ``a @ W^T`` takes the codes as they are. The backward's input gradient
``dy @ W`` reduces along W's output channels, where its scales run: they are folded into
``dy`` (as the reference does) and the product takes a transposed copy of the codes, with
unit scales. XNNPACK packs each product's weights once, when the program loads.
"""
from __future__ import annotations

import operator

import torch
from torch._guards import detect_fake_mode
from torch.export.graph_signature import ExportGraphSignature, InputKind

from edgetune.quant.int8_matmul import INT8_MATMUL_OP
from exporters.decompositions import copy_graph_module, outputs_renamed

QMIN, QMAX = -128, 127  # the activation's codes
WMIN, WMAX = -127, 127  # the weights' codes (`edgetune.quant.int8`)


def _first_user_input(graph: torch.fx.Graph, ep: torch.export.ExportedProgram) -> torch.fx.Node:
    """New constants go before the first user input (ExportedProgram's placeholder order)."""
    constants = {s.arg.name for s in ep.graph_signature.input_specs if s.kind != InputKind.USER_INPUT}
    return next(n for n in graph.nodes if n.op == "placeholder" and n.name not in constants)


def int8_matmuls_to_xnnpack(ep: torch.export.ExportedProgram) -> tuple[torch.export.ExportedProgram, int]:
    """A copy of ``ep`` (its graph and signature; the weights shared, not copied) with the int8
    matmuls over constant codes rewritten, and how many were."""
    import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers torch.ops.quantized_decomposed)
    from executorch.backends.transforms.utils import create_constant_placeholder
    from executorch.backends.xnnpack.utils.utils import get_param_tensor, is_param_node

    sig = ep.graph_signature
    ep = ep._update(copy_graph_module(ep.graph_module), ExportGraphSignature(list(sig.input_specs), list(sig.output_specs)),
                    state_dict=dict(ep.state_dict), constants=dict(ep.constants))
    qd = torch.ops.quantized_decomposed
    graph = ep.graph
    calls = [n for n in graph.nodes if n.op == "call_function" and n.target is INT8_MATMUL_OP]
    made: dict[str, torch.fx.Node] = {}
    first_input = _first_user_input(graph, ep)

    def constant(name: str, data: torch.Tensor) -> torch.fx.Node:
        if name not in made:
            with graph.inserting_before(first_input):
                made[name] = create_constant_placeholder(ep, graph, name, InputKind.CONSTANT_TENSOR, data)
        return made[name]

    def frozen(node: torch.fx.Node) -> torch.Tensor | None:  # what XNNPACK's partitioner takes as static
        return get_param_tensor(ep, node) if is_param_node(ep, node) else None

    fake_mode = detect_fake_mode([n.meta.get("val") for n in graph.nodes if n.op == "placeholder"])

    def call(before: torch.fx.Node, target, args: tuple) -> torch.fx.Node:
        """A node before ``before``, with its value on fake tensors (the program's verifier wants one)."""
        with graph.inserting_before(before):
            made = graph.call_function(target, args)
        with fake_mode:
            made.meta["val"] = target(*(x.meta["val"] if isinstance(x, torch.fx.Node) else x for x in args))
        return made

    renamed: dict[str, str] = {}  # a replaced node that was an output -> its replacement
    done = 0
    for node in calls:
        a, q_node, scale_node, transpose = node.args
        q, scale = frozen(q_node), frozen(scale_node)
        if q is None or scale is None:
            continue  # codes computed in the graph: the reference stays
        key = q_node.name
        rows = q.shape[0] if transpose else q.shape[1]
        # scales and zero points: one small constant per product (shared between the products
        # of a classifier's step, they failed ExecuTorch's serialization: "... is not a buffer")
        s_w = scale.reshape(-1).to(torch.float32)
        if transpose:
            codes = q_node
            w_scale = constant(f"_xnn_scale_{done}", s_w)
        else:
            codes = constant(f"_xnn_codes_t_{key}", q.t().contiguous())
            w_scale = constant(f"_xnn_unit_{done}", torch.ones(rows))
            s_row = constant(f"_xnn_scale_row_{done}", s_w.reshape(1, -1))
        zeros = constant(f"_xnn_zeros_{done}", torch.zeros(rows, dtype=torch.int64))
        if not transpose:  # dy @ W = (dy * s_w) @ codes
            a = call(node, torch.ops.aten.mul.Tensor, (a, s_row))
        qparams = call(node, qd.choose_qparams_per_token_asymmetric.default, (a, torch.int8))
        s_a = call(node, operator.getitem, (qparams, 0))
        z_a = call(node, operator.getitem, (qparams, 1))
        codes_a = call(node, qd.quantize_per_token.default, (a, s_a, z_a, QMIN, QMAX, torch.int8))
        a_hat = call(node, qd.dequantize_per_token.default,
                     (codes_a, s_a, z_a, QMIN, QMAX, torch.int8, torch.float32))
        w_hat = call(node, qd.dequantize_per_channel.default, (codes, w_scale, zeros, 0, WMIN, WMAX, torch.int8))
        y = call(node, torch.ops.aten.linear.default, (a_hat, w_hat))
        node.replace_all_uses_with(y)
        renamed[node.name] = y.name
        graph.erase_node(node)
        done += 1
    if done:
        graph.eliminate_dead_code()
        ep.graph_module.recompile()
        ep = ep._update(ep.graph_module, outputs_renamed(ep.graph_signature, renamed))
    return ep, done
