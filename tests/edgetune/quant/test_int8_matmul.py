"""edgetune::int8_matmul against onnxruntime's own DynamicQuantizeLinear + MatMulInteger, and
against the fp32 product it approximates."""
import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgetune.quant import QuantLinear, quantize_int8
from edgetune.quant.int8_matmul import dynamic_quantize, int8_matmul_reference


def _ort_int8_matmul(a: np.ndarray, q: np.ndarray, s: np.ndarray, transpose: bool) -> np.ndarray:
    """The ONNX lowering written by hand with onnx.helper, run by onnxruntime."""
    b = np.ascontiguousarray(q.T if transpose else q)
    nodes = ([] if transpose else [helper.make_node("Mul", ["A0", "S"], ["A"])]) + [
        helper.make_node("DynamicQuantizeLinear", ["A"], ["Aq", "As", "Az"]),
        helper.make_node("MatMulInteger", ["Aq", "B", "Az"], ["I"]),
        helper.make_node("Cast", ["I"], ["F"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["As", "S"] if transpose else ["As", "One"], ["C"]),
        helper.make_node("Mul", ["F", "C"], ["Y"])]
    inits = [numpy_helper.from_array(b, "B"), numpy_helper.from_array(s.reshape(1, -1), "S"),
             numpy_helper.from_array(np.ones((1, 1), np.float32), "One")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("A" if transpose else "A0", TensorProto.FLOAT, a.shape)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: a})[0]


@pytest.mark.parametrize("transpose", [True, False])
def test_matches_onnxruntime(transpose):
    g = torch.Generator().manual_seed(0)
    qw = quantize_int8(torch.randn(48, 96, generator=g) * 0.1)
    a = torch.randn(20, 96 if transpose else 48, generator=g) * 3 + 0.5
    ref = int8_matmul_reference(a, qw.q, qw.scale, transpose)
    got = _ort_int8_matmul(a.numpy(), qw.q.numpy(), qw.scale.float().numpy().ravel(), transpose)
    # Same codes, integer sums: only the rounding of a / s_a (division vs. reciprocal) may differ,
    # by one code in rare ties.
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-3 * float(ref.abs().max()))


def test_dynamic_quantize_is_onnx_semantics():
    a = torch.tensor([[-1.0, 0.0, 2.0, 0.5]])
    codes, scale, zp = dynamic_quantize(a)
    assert float(scale) == pytest.approx(3.0 / 255) and float(zp) == 85.0  # round(1 / (3/255)) = 85
    assert codes.tolist() == [[0.0, 85.0, 255.0, 127.0]]  # 0.5 / s = 42.5 rounds to even (onnxruntime: 127 too)
    codes, scale, zp = dynamic_quantize(torch.tensor([1.0, 3.0]))  # range widened to include 0
    assert float(zp) == 0.0 and float(scale) == pytest.approx(3.0 / 255)


def test_integer_linear_stays_close_to_float():
    """A layer's int8 forward and input gradient track the fp32 ones (about 1% of their size)."""
    g = torch.Generator().manual_seed(1)
    lin = torch.nn.Linear(128, 64)
    qw = quantize_int8(lin.weight)
    x = torch.randn(4, 16, 128, generator=g)
    dy = torch.randn(4, 16, 64, generator=g)
    outs = {}
    for compute in ("float", "int8"):
        layer = QuantLinear(qw, lin.bias, compute=compute)
        xi = x.clone().requires_grad_(True)
        y = layer(xi)
        y.backward(dy)
        outs[compute] = (y.detach(), xi.grad)
    for a, b in zip(outs["float"], outs["int8"]):
        rel = float((a - b).norm() / a.norm())
        assert 0 < rel < 0.02, rel
