"""edgetune::int8_matmul: its reference against exact integer arithmetic, its ONNX lowering
against onnxruntime, and its distance from the fp32 product it approximates."""
import numpy as np
import pytest
import torch

from edgetune.quant import QuantLinear, quantize_int8
from edgetune.quant.int8_matmul import int8_matmul_reference, quantize_rows


def _exact(a: np.ndarray, q: np.ndarray, s_w: np.ndarray, transpose: bool) -> np.ndarray:
    """The documented math in numpy, with int64 accumulation."""
    if not transpose:
        a = a * s_w[None, :]
    s_a = np.maximum(np.abs(a).max(axis=1, keepdims=True), 1e-30) / np.float32(127)
    codes = np.clip(np.rint(a / s_a), -128, 127).astype(np.int64)  # rint: half to even
    acc = codes @ (q.T if transpose else q).astype(np.int64)
    return acc.astype(np.float32) * s_a * s_w[None, :] if transpose else acc.astype(np.float32) * s_a


@pytest.mark.parametrize("transpose", [True, False])
def test_reference_is_integer_arithmetic(transpose):
    g = torch.Generator().manual_seed(0)
    qw = quantize_int8(torch.randn(48, 1536, generator=g) * 0.1)
    a = torch.randn(20, 1536 if transpose else 48, generator=g) * 3 + 0.5
    a[3] = 0.0  # an all-zero row (a padded position's gradient): codes 0, no 0/0
    a[5, 7] = 40.0  # an outlier coarsens its own row only
    ref = int8_matmul_reference(a, qw.q, qw.scale, transpose)
    want = _exact(a.numpy(), qw.q.numpy(), qw.scale.float().numpy().ravel(), transpose)
    np.testing.assert_allclose(ref.numpy(), want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    assert not ref[3].any()


def test_rows_quantize_independently():
    a = torch.tensor([[-1.0, 0.0, 2.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
    codes, scale = quantize_rows(a)
    assert codes[0].tolist() == [-64.0, 0.0, 127.0, 32.0]  # 0.5 * 127 / 2 = 31.75 -> 32
    assert codes[1].tolist() == [0.0] * 4 and float(scale[1]) > 0
    both, _ = quantize_rows(torch.cat([a[:1], 100 * torch.ones(1, 4)]))
    assert torch.equal(both[0], codes[0])  # another row's range changes nothing


def test_onnx_lowering_matches_onnxruntime(tmp_path):
    """The exporter's translation, run by onnxruntime, against the eager op."""
    import onnxruntime as ort

    from edgetune.contract import ProgramSpec, TensorSpec
    from exporters.onnx import export_onnx

    g = torch.Generator().manual_seed(2)
    qw = quantize_int8(torch.randn(32, 64, generator=g))
    layer = QuantLinear(qw, None, compute="int8_forward")
    x = torch.randn(2, 5, 64, generator=g)
    ep = torch.export.export(layer, (x,))
    spec = ProgramSpec((TensorSpec("x", (2, 5, 64), "float32", "batch"),),
                       (TensorSpec("y", (2, 5, 32), "float32", "metric"),))
    export_onnx(ep, spec, tmp_path / "m.onnx")
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, layer(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_integer_linear_stays_close_to_float():
    """A layer's int8 forward and input gradient track the fp32 ones (about 1% of their size)."""
    g = torch.Generator().manual_seed(1)
    lin = torch.nn.Linear(128, 64)
    qw = quantize_int8(lin.weight)
    x = torch.randn(4, 16, 128, generator=g)
    dy = torch.randn(4, 16, 64, generator=g)
    outs = {}
    for compute in ("float", "int8"):
        xi = x.clone().requires_grad_(True)
        y = QuantLinear(qw, lin.bias, compute=compute)(xi)
        y.backward(dy)
        outs[compute] = (y.detach(), xi.grad)
    for a, b in zip(outs["float"], outs["int8"]):
        rel = float((a - b).norm() / a.norm())
        assert 0 < rel < 0.02, rel
