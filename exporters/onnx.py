"""ExportedProgram -> .onnx for stock onnxruntime.

No graph rewrites are applied here (``optimize=False``). onnxscript 0.7.2's
optimizer, which torch.onnx runs by default, folds ``x + c`` to ``x`` when the
constant is within 1e-8 of zero, so AdamW's ``sqrt(v_hat) + 1e-8`` loses its
epsilon and step 1 computes 0/0 wherever a gradient is exactly zero (LoRA's A at
initialisation). A step graph must not be rewritten by tolerance-based rules;
onnxruntime still runs its own exact fusions when it loads the model, and every
export is checked against the eager step (exporters.artifact.self_check).

Quantized frozen weights (`edgetune::dequantize` nodes) become DequantizeLinear
(opset 21, blocked scales, stored float16 and widened) followed by the group offset,
over INT8 or UINT4 initializers: the integers stay integers in the file and in onnxruntime's memory
(its constant folding leaves DequantizeLinear alone).

The captured graph is already core aten (`edgetune.step.compile`), so torch.onnx's own
decomposition pass, a full re-trace of the graph, is skipped when it would rewrite nothing
(`_already_decomposed`): it cost 40% of a lowering.

Integer matmuls (`edgetune::int8_matmul`) become per-row QuantizeLinear (uint8 codes) +
MatMulInteger over the int8 weight codes (u8 x s8; exact on every CPU with
`INT8_SESSION_CONFIG`), with int32 accumulation; the int32 -> float cast is
then folded into onnxruntime's MatMulIntegerToFloat (a com.microsoft op: such programs
need onnxruntime, which is what edgetune's ONNX artifacts target).
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from device_harness.runtimes import INT8_PRODUCTS_KEY
from edgetune.contract import ProgramSpec
from edgetune.quant.int8_matmul import INT8_MATMUL_OP
from edgetune.quant.weight import DEQUANTIZE_OP
from exporters.decompositions import copy_graph_module, nothing_to_decompose

QUANT_OPSET = 21  # blocked DequantizeLinear and UINT4


def _dequantize_onnx(q, scale, offset, bits: int, group: int):
    """Translation of edgetune::dequantize. A 4-bit ``q`` arrives as packed uint8 and is
    retyped to UINT4 (or unpacked in-graph) by `_int4_initializers` after export."""
    from onnxscript import opset21 as op

    w = op.DequantizeLinear(q, op.Cast(scale, to=1), axis=1, block_size=group)  # fp16 scales widen to FLOAT
    if offset is None:
        return w
    rows = op.Shape(scale, start=0, end=1)
    grouped = op.Reshape(w, op.Concat(rows, op.Constant(value_ints=[-1, group]), axis=0))
    shifted = op.Add(grouped, op.Unsqueeze(op.Cast(offset, to=1), op.Constant(value_ints=[-1])))
    return op.Reshape(shifted, op.Concat(rows, op.Constant(value_ints=[-1]), axis=0))


def _int8_matmul_onnx(a, q, scale, transpose: bool):
    """Translation of edgetune::int8_matmul (see edgetune.quant.int8_matmul for the math)."""
    from onnxscript import opset21 as op

    from edgetune.quant.int8_matmul import ROW_SCALE_FLOOR

    s_w = op.Reshape(op.Cast(scale, to=1), op.Constant(value_ints=[1, -1]))  # [1, N] float
    if not transpose:
        a = op.Mul(a, s_w)
    axis = op.Constant(value_ints=[-1])  # max |a| per row [M, 1], without writing |a| out
    amax = op.Max(op.ReduceMax(a, axis, keepdims=1), op.Neg(op.ReduceMin(a, axis, keepdims=1)))
    s_a = op.Div(op.Max(amax, op.Constant(value_float=ROW_SCALE_FLOOR)), op.Constant(value_float=127.0))
    # The activation codes travel as uint8 + 128 (zero point 128), the weight codes as they are
    # (int8, zero point 0): u8 x s8 is the product x86 VNNI runs natively (2.5x onnxruntime's
    # u8 x u8 on an AVX-512 VNNI EPYC). Without VNNI (AVX2, AVX-512BW) onnxruntime's u8 x s8
    # kernels sum products in pairs with int16 saturation (seen under `qemu-x86_64 -cpu
    # Haswell`); the program's `INT8_SESSION_CONFIG` has onnxruntime shift the constant weights
    # to uint8 at load there (u8 x u8: exact). ARM and WebAssembly kernels widen: exact.
    s_rows = op.Reshape(s_a, op.Constant(value_ints=[-1]))
    z_rows = op.Expand(op.Constant(value=onnx.helper.make_tensor("z", TensorProto.UINT8, [], [128])), op.Shape(s_rows))
    a_q = op.QuantizeLinear(a, s_rows, z_rows, axis=0)
    z_a = op.Constant(value=onnx.helper.make_tensor("z128", TensorProto.UINT8, [], [128]))
    z_w = op.Constant(value=onnx.helper.make_tensor("z0", TensorProto.INT8, [], [0]))
    acc = op.Cast(op.MatMulInteger(a_q, op.Transpose(q, perm=[1, 0]) if transpose else q, z_a, z_w), to=1)
    return op.Mul(op.Mul(acc, s_a), s_w) if transpose else op.Mul(acc, s_a)  # eager's order of roundings


_QUANT_OPS = {DEQUANTIZE_OP: _dequantize_onnx, INT8_MATMUL_OP: _int8_matmul_onnx}


# onnxruntime may fuse DequantizeLinear -> MatMul into MatMulNBits, whose default accuracy
# level 4 rounds the activations to int8. edgetune's blocked form fuses nowhere today (0 of the
# tiny int8/int4 classifiers' DequantizeLinear nodes); the per-axis form of per-row int8 codes
# did, and moved the tiny int8 classifier's logits by 7.4e-4 from eager PyTorch's, which the
# self-check rejects. Level 1 multiplies in fp32, so quantized programs pin it.
QDQ_SESSION_CONFIG = {"session.qdq_matmulnbits_accuracy_level": "1"}


# With this entry onnxruntime converts the constant int8 weights of MatMulInteger(ToFloat) to
# uint8 + 128 at load on x86 (its Avx2WeightS8ToU8Transformer): exact on CPUs whose u8 x s8
# kernels saturate. The Python runner drops it where the CPU has VNNI
# (device_harness.runtimes.INT8_PRODUCTS_KEY); ARM and WebAssembly builds ignore it.
INT8_SESSION_CONFIG = {INT8_PRODUCTS_KEY: "1"}


def session_config(ep: torch.export.ExportedProgram) -> dict[str, str]:
    """The onnxruntime session config entries the lowering of ``ep`` needs (the manifest's
    ``lowering.onnx.session_config``)."""
    config = dict(QDQ_SESSION_CONFIG) if _calls(ep, (DEQUANTIZE_OP,)) else {}
    return config | (INT8_SESSION_CONFIG if _calls(ep, (INT8_MATMUL_OP,)) else {})


def _calls(ep: torch.export.ExportedProgram, ops) -> bool:
    """Whether ``ep`` calls any of ``ops``."""
    return any(n.op == "call_function" and n.target in ops for n in ep.graph.nodes)


def _int4_initializers(model: onnx.ModelProto) -> int:
    """Make every DequantizeLinear over packed uint8 read real 4-bit values.

    Over an initializer (a frozen weight) the bytes are re-labelled UINT4 [N, 2*K/2]: ONNX
    packs UINT4 two per byte, low nibble first, which is exactly edgetune's packing.
    Over a computed tensor (rows gathered from a packed table) the nibbles are split
    in-graph. -> how many DequantizeLinear nodes were fixed.
    """
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    new_nodes, fixed, retyped = [], 0, set()
    for node in g.node:
        x = node.input[0] if node.op_type == "DequantizeLinear" else None
        if x is not None and types.get(x) == TensorProto.UINT8:
            fixed += 1
            if x in retyped:
                pass
            elif x in inits:
                retyped.add(x)  # forward and backward read the same codes
                t = inits[x]
                packed = numpy_helper.to_array(t)
                t.CopyFrom(helper.make_tensor(t.name, TensorProto.UINT4, [packed.shape[0], 2 * packed.shape[1]],
                                              packed.tobytes(), raw=True))
            else:
                c = lambda name, v: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(v, name))  # noqa: E731
                p = f"{x}__nibbles"
                new_nodes += [
                    c(p + "_15", np.array(15, np.uint8)), c(p + "_4", np.array(4, np.uint8)),
                    c(p + "_ax", np.array([-1], np.int64)), c(p + "_shape", np.array([0, -1], np.int64)),
                    helper.make_node("BitwiseAnd", [x, p + "_15"], [p + "_lo"]),
                    helper.make_node("BitShift", [x, p + "_4"], [p + "_hi"], direction="RIGHT"),
                    helper.make_node("Unsqueeze", [p + "_lo", p + "_ax"], [p + "_lo1"]),
                    helper.make_node("Unsqueeze", [p + "_hi", p + "_ax"], [p + "_hi1"]),
                    helper.make_node("Concat", [p + "_lo1", p + "_hi1"], [p + "_pairs"], axis=-1),
                    helper.make_node("Reshape", [p + "_pairs", p + "_shape"], [p]),
                ]
                node.input[0] = p
        new_nodes.append(node)
    del g.node[:]
    g.node.extend(new_nodes)
    return fixed


def _fuse_integer_matmuls(model: onnx.ModelProto) -> int:
    """MatMulInteger -> Cast(float) becomes onnxruntime's MatMulIntegerToFloat (scales 1, the same
    numbers): the int32 product is never written out. Measured: the MiniLM w8a8g8 step 15% faster.
    -> how many were fused."""
    g = model.graph
    consumers: dict[str, list] = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    one = "edgetune_one"
    fused, drop = {}, set()
    for node in g.node:
        users = consumers.get(node.output[0], []) if node.op_type == "MatMulInteger" else []
        to = {a.name: a.i for a in users[0].attribute}.get("to") if len(users) == 1 else None
        if users and users[0].op_type == "Cast" and to == TensorProto.FLOAT:
            a, b, a_zero, b_zero = (list(node.input) + ["", ""])[:4]
            fused[id(node)] = helper.make_node("MatMulIntegerToFloat", [a, b, one, one, a_zero, b_zero],
                                               [users[0].output[0]],
                                               name=f"{node.name}_to_float", domain="com.microsoft")
            drop.add(id(users[0]))
    if fused:
        g.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), one))
        nodes = [fused.get(id(n), n) for n in g.node if id(n) not in drop]
        del g.node[:]
        g.node.extend(nodes)
        if not any(o.domain == "com.microsoft" for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return len(fused)


def _squeeze_one_dim_at_a_time(gm: torch.fx.GraphModule) -> int:
    """``aten.squeeze.dims(x, dims)`` -> ``aten.squeeze.dim`` per dim, highest first (the same
    tensor: each drops its dim when it is 1, and the lower dims keep their places). torch.onnx
    translates squeeze.dim but not squeeze.dims, which alone would cost a re-trace of the whole
    program (a minute of SmolLM2's step: `unbind` in rotary embeddings becomes slices and
    squeeze.dims). -> how many were rewritten."""
    dims_op, dim_op = torch.ops.aten.squeeze.dims, torch.ops.aten.squeeze.dim
    rewritten = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not dims_op:
            continue
        x, dims = node.args
        rank = x.meta["val"].dim()
        if not (rank and dims):  # the identity: left to torch.onnx's own decomposition
            continue
        y = x
        meta = {k: v for k, v in node.meta.items() if k != "tensor_meta"}  # the last one's shape: not every step's
        with gm.graph.inserting_before(node):
            for d in sorted({d % rank for d in dims}, reverse=True):
                y = gm.graph.call_function(dim_op, (y, d))
                y.meta = {**meta, "val": dim_op(y.args[0].meta["val"], d)}
        node.replace_all_uses_with(y)
        gm.graph.erase_node(node)
        rewritten += 1
    if rewritten:
        gm.recompile()
    return rewritten


@contextlib.contextmanager
def _already_decomposed():
    """While torch.onnx exports, its decomposition pass hands the program on without a re-trace
    when there is nothing to decompose for ONNX (`nothing_to_decompose` with torch.onnx's own
    table); otherwise it runs as usual. What it hands on is a copy of the graph: torch.onnx's
    later passes edit it in place, and the captured program is shared with the other lowerings."""
    from torch.onnx._internal.exporter import _decomp, _fx_passes

    real = _fx_passes.decompose_with_registry

    def decompose(program, registry):
        implemented = set(_decomp.get_onnx_implemented_overloads(registry))
        gm = copy_graph_module(program.graph_module)
        _squeeze_one_dim_at_a_time(gm)
        copy = program._update(gm, program.graph_signature)
        if nothing_to_decompose(copy, _decomp.create_onnx_friendly_decomposition_table(implemented)):
            return copy
        return real(program, registry)

    with mock.patch.multiple(_fx_passes, decompose_with_registry=decompose):
        yield


def export_onnx(ep: torch.export.ExportedProgram, spec: ProgramSpec, path: str | Path, optimize: bool = False) -> Path:
    """Write ``ep`` to ``path`` with inputs/outputs named as in ``spec``. ``optimize`` exists to
    reproduce the onnxscript rewrite hazard in tests; artifacts never use it."""
    path = Path(path)
    quant = _calls(ep, _QUANT_OPS)
    extra = {"opset_version": QUANT_OPSET,
             "custom_translation_table": dict(_QUANT_OPS)} if quant else {}
    with warnings.catch_warnings(), _already_decomposed():
        warnings.simplefilter("ignore")
        onx = torch.onnx.export(ep, (), dynamo=True, optimize=optimize, verbose=False,
                                input_names=[t.name for t in spec.inputs],
                                output_names=[t.name for t in spec.outputs], **extra)
    model = onx.model_proto
    for node in model.graph.node:  # per-node source locations and stack traces: a third of a small file
        del node.metadata_props[:]
    if quant and _int4_initializers(model):
        # Shapes recorded while the codes were still [N, K/2] bytes are stale; onnxruntime re-infers.
        del model.graph.value_info[:]
    if quant:
        _fuse_integer_matmuls(model)
    onnx.save(model, str(path))
    return path
