"""edgetune::int8_matmul: its reference against exact integer arithmetic, XNNPACK's rounding
against its definition, its ONNX lowering against onnxruntime, and its distance from the fp32
product it approximates."""
import numpy as np
import pytest
import torch

from edgetune.quant import QuantLinear, quantize_int8
from edgetune.quant.int8_matmul import (
    INT8_MATMUL_OP,
    activation_rounding,
    int8_matmul_reference,
    quantize_rows,
    round_rows_asymmetric,
)


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


def test_asymmetric_rounding_is_256_codes_over_each_rows_range():
    """XNNPACK's rounding: at most 256 values per row, spaced (max(row, 0) - min(row, 0)) / 255 from zero."""
    g = torch.Generator().manual_seed(4)
    a = torch.randn(5, 300, generator=g) * 3 - 1
    a[2] = a[2].abs()  # no negatives
    a[3] = 0.0
    r = round_rows_asymmetric(a)
    lo, hi = a.amin(1).clamp(max=0), a.amax(1).clamp(min=0)
    step = ((hi - lo) / 255).clamp(min=torch.finfo(torch.float32).eps)
    assert ((r - a).abs().amax(1) <= 0.5001 * step).all()
    for i in range(5):
        levels = torch.round(r[i] / step[i])
        assert torch.allclose(levels * step[i], r[i], atol=1e-3 * step[i]) and levels.unique().numel() <= 256
    assert not r[3].any() and (r[2] >= 0).all()
    both = round_rows_asymmetric(torch.cat([a[:1], 100 * torch.ones(1, 300)]))
    assert torch.equal(both[0], r[0])  # another row's range changes nothing


def test_activation_rounding_switches_the_eager_op_only_within_the_block():
    g = torch.Generator().manual_seed(5)
    qw = quantize_int8(torch.randn(16, 40, generator=g))
    a = torch.randn(6, 40, generator=g)
    sym = INT8_MATMUL_OP(a, qw.q, qw.scale, True)
    with activation_rounding("asymmetric"):
        asym = INT8_MATMUL_OP(a, qw.q, qw.scale, True)
    torch.testing.assert_close(asym, round_rows_asymmetric(a) @ qw.dequantize().t(), rtol=1e-5, atol=1e-5)
    assert not torch.equal(asym, sym) and torch.equal(INT8_MATMUL_OP(a, qw.q, qw.scale, True), sym)
    with pytest.raises(ValueError, match="choose one of"):
        with activation_rounding("stochastic"):
            pass


def test_onnx_lowering_matches_onnxruntime(tmp_path):
    """The exporter's translation, opened by the runner on this CPU, against the eager op; the
    session widens the int8 weights exactly where this CPU's u8 x s8 kernels saturate."""
    from device_harness.runtimes import INT8_PRODUCTS_KEY, OnnxProgram, int8_products_saturate
    from edgetune.contract import ProgramSpec, TensorSpec
    from exporters.onnx import export_onnx, session_config

    g = torch.Generator().manual_seed(2)
    qw = quantize_int8(torch.randn(32, 64, generator=g))
    layer = QuantLinear(qw, None, compute="int8_forward")
    x = torch.randn(2, 5, 64, generator=g)
    ep = torch.export.export(layer, (x,))
    spec = ProgramSpec((TensorSpec("x", (2, 5, 64), "float32", "batch"),),
                       (TensorSpec("y", (2, 5, 32), "float32", "metric"),),
                       lowering={"onnx": {"session_config": session_config(ep)}})
    export_onnx(ep, spec, tmp_path / "m.onnx")
    program = OnnxProgram(tmp_path / "m.onnx", spec)
    opts = program.session.get_session_options()
    try:
        widened = opts.get_session_config_entry(INT8_PRODUCTS_KEY) == "1"
    except RuntimeError:  # onnxruntime's answer for an entry that was not set
        widened = False
    assert widened == int8_products_saturate()
    got = program.run({"x": x.numpy()})["y"]
    np.testing.assert_allclose(got, layer(x).detach().numpy(), rtol=1e-5, atol=1e-6)


class _BothProducts(torch.nn.Module):
    """The forward product (a @ W^T) and the backward's input-gradient product (dy @ W)."""

    def __init__(self, qw):
        super().__init__()
        self.register_buffer("q", qw.q)
        self.register_buffer("scale", qw.scale)

    def forward(self, x, dy):
        return INT8_MATMUL_OP(x, self.q, self.scale, True), INT8_MATMUL_OP(dy, self.q, self.scale, False)


EMULATED_CPU = "Haswell"  # AVX2 without VNNI: onnxruntime's u8 x s8 kernels saturate int16 pair sums there

# Runs under the emulated CPU: the exported program as onnxruntime opens it with and without
# the program's session config, and as the runner opens it with the bucket programs' shared
# weights (constant folding off unless the CPU saturates).
_EMULATED_RUN = """
import json, sys
from pathlib import Path
import numpy as np, onnxruntime as ort
from device_harness.runtimes import OnnxProgram, SharedWeights, int8_products_saturate
from edgetune.contract import ProgramSpec, TensorSpec
work = Path(sys.argv[1]); d = dict(np.load(work / "in.npz")); config = json.loads((work / "config.json").read_text())
outs = {}
for name, entries in (("bare", {}), ("config", config)):
    opts = ort.SessionOptions()
    for k, v in entries.items():
        opts.add_session_config_entry(k, v)
    outs[name + "_y"], outs[name + "_dx"] = ort.InferenceSession(str(work / "m.onnx"), opts).run(None, d)
t = lambda n, s, r: TensorSpec(n, tuple(s), "float32", r)
spec = ProgramSpec((t("x", d["x"].shape, "batch"), t("dy", d["dy"].shape, "batch")),
                   (t("y", outs["bare_y"].shape, "metric"), t("dx", outs["bare_dx"].shape, "metric")),
                   lowering={"onnx": {"session_config": config}})
got = OnnxProgram(work / "m.onnx", spec, shared=SharedWeights()).run(d)
outs["shared_y"], outs["shared_dx"] = got["y"], got["dx"]
np.savez(work / "out.npz", saturates=int8_products_saturate(), **outs)
"""


def test_onnx_lowering_is_exact_on_a_cpu_without_vnni(tmp_path):
    """onnxruntime picks its integer kernels by CPU. On x86 without VNNI (here an emulated
    Haswell) its u8 x s8 MatMulInteger saturates; the program's session config has onnxruntime
    widen the int8 weights there, so the exported program gives the eager numbers, also in the
    runner's shared-weights sessions. Runs onnxruntime under qemu-x86_64."""
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from edgetune.contract import ProgramSpec, TensorSpec
    from exporters.onnx import INT8_SESSION_CONFIG, export_onnx, session_config

    if shutil.which("qemu-x86_64") is None:
        pytest.skip("qemu-x86_64 is not installed (Debian: apt-get install qemu-user); .ci/run installs it")
    g = torch.Generator().manual_seed(2)
    qw = quantize_int8(torch.randn(256, 320, generator=g))  # 80 KB: pooled by SharedWeights; codes near +-127
    x, dy = torch.randn(10, 320, generator=g), torch.randn(10, 256, generator=g)
    module = _BothProducts(qw)
    spec = ProgramSpec((TensorSpec("x", (10, 320), "float32", "batch"), TensorSpec("dy", (10, 256), "float32", "batch")),
                       (TensorSpec("y", (10, 256), "float32", "metric"), TensorSpec("dx", (10, 320), "float32", "metric")))
    ep = torch.export.export(module, (x, dy))
    assert session_config(ep) == INT8_SESSION_CONFIG
    export_onnx(ep, spec, tmp_path / "m.onnx")
    np.savez(tmp_path / "in.npz", x=x.numpy(), dy=dy.numpy())
    (tmp_path / "config.json").write_text(json.dumps(session_config(ep)))
    root = str(Path(__file__).resolve().parents[3])
    p = subprocess.run(["qemu-x86_64", "-cpu", EMULATED_CPU, sys.executable, "-c", _EMULATED_RUN, str(tmp_path)],
                       capture_output=True, text=True, timeout=600, cwd=root)
    assert p.returncode == 0, p.stderr[-3000:]
    got = np.load(tmp_path / "out.npz")
    assert got["saturates"]  # the runner sees the emulated CPU, not the host's
    want_y, want_dx = (t.numpy() for t in module(x, dy))
    for way in ("config", "shared"):
        np.testing.assert_allclose(got[way + "_y"], want_y, rtol=1e-5, atol=1e-6, err_msg=way)
        np.testing.assert_allclose(got[way + "_dx"], want_dx, rtol=1e-5, atol=1e-6, err_msg=way)
    # without the entry the kernels saturate: what the entry is for
    assert np.abs(got["bare_y"] - want_y).max() > 1e-2 * np.abs(want_y).max()


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
