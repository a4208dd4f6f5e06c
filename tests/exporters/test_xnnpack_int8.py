"""edgetune::int8_matmul on XNNPACK's integer kernels: the rewritten program, lowered and run by
ExecuTorch, against the eager op with XNNPACK's rounding; every product delegated; the captured
program left as it was."""
import numpy as np
import torch

from device_harness.runtimes import ExecuTorchProgram
from edgetune.contract import ProgramSpec, TensorSpec
from edgetune.quant import quantize_int8
from edgetune.quant.int8_matmul import INT8_MATMUL_OP, activation_rounding
from exporters.executorch import export_executorch
from exporters.xnnpack_int8 import int8_matmuls_to_xnnpack


class _Products(torch.nn.Module):
    """Forward (a @ W^T), the backward's input gradient (dy @ W), and a product whose codes
    are computed in the graph (not a frozen constant: it keeps the fp32 reference)."""

    def __init__(self, qw):
        super().__init__()
        self.register_buffer("q", qw.q)
        self.register_buffer("scale", qw.scale)

    def forward(self, x, dy):
        flipped = -self.q
        return (INT8_MATMUL_OP(x, self.q, self.scale, True), INT8_MATMUL_OP(dy, self.q, self.scale, False),
                INT8_MATMUL_OP(x, flipped, self.scale, True))


def _inputs():
    g = torch.Generator().manual_seed(3)
    qw = quantize_int8(torch.randn(48, 96, generator=g) * 0.05)
    x = torch.randn(12, 96, generator=g) * 2 + 0.3
    x[4] = 0.0  # an all-zero row (a padded position's gradient)
    x[7] = x[7].abs()  # a row without negatives: its zero point sits at the bottom of the range
    dy = torch.randn(12, 48, generator=g) * 1e-3
    return qw, x, dy


def test_rewrite_copies_and_keeps_computed_codes():
    qw, x, dy = _inputs()
    ep = torch.export.export(_Products(qw), (x, dy))
    before = str(ep.graph)
    rewritten, n = int8_matmuls_to_xnnpack(ep)
    assert n == 2
    assert str(ep.graph) == before and len(ep.constants) == 0, "the captured program was edited"
    targets = [n.target for n in rewritten.graph.nodes if n.op == "call_function"]
    assert targets.count(torch.ops.aten.linear.default) == 2 and targets.count(INT8_MATMUL_OP) == 1
    # PyTorch's reference ops for the pattern give the forward product (XNNPACK computes its own rounding)
    with activation_rounding("asymmetric"):
        torch.testing.assert_close(rewritten.module()(x, dy)[0], _Products(qw)(x, dy)[0], rtol=1e-5, atol=1e-5)


def test_executorch_runs_the_products_on_xnnpack_like_the_eager_op(tmp_path):
    qw, x, dy = _inputs()
    module = _Products(qw)
    coverage = export_executorch(torch.export.export(module, (x, dy)), tmp_path / "m.pte")
    assert coverage["delegated_matmuls"] == coverage["matmuls"] == 3, coverage
    spec = ProgramSpec((TensorSpec("x", (12, 96), "float32", "batch"), TensorSpec("dy", (12, 48), "float32", "batch")),
                       tuple(TensorSpec(n, s, "float32", "metric") for n, s in (("y", (12, 48)), ("dx", (12, 96)),
                                                                                ("y_flipped", (12, 48)))))
    got = ExecuTorchProgram(tmp_path / "m.pte", spec).run({"x": x.numpy(), "dy": dy.numpy()})
    with activation_rounding("asymmetric"):
        asymmetric = [t.numpy() for t in module(x, dy)]
    symmetric = [t.numpy() for t in module(x, dy)]
    want = {"y": asymmetric[0], "dx": asymmetric[1], "y_flipped": symmetric[2]}  # computed codes: the reference
    for name, w in want.items():
        np.testing.assert_allclose(got[name], w, rtol=1e-5, atol=1e-5 * np.abs(w).max(), err_msg=name)
    assert not got["y"][4].any() and not got["y_flipped"][4].any()  # the zero row stays zero
    for name, s in (("y", symmetric[0]), ("dx", symmetric[1])):
        rel = np.linalg.norm(got[name] - s) / np.linalg.norm(s)
        assert 0 < rel < 0.02, (name, rel)  # the two roundings differ by rounding noise only


class _SharedAcrossPartitions(torch.nn.Module):
    """Products of one weight in three XNNPACK partitions (cumsum runs on the portable kernels)."""

    def __init__(self, qw):
        super().__init__()
        self.register_buffer("q", qw.q)
        self.register_buffer("scale", qw.scale)

    def forward(self, dy):
        a = torch.cumsum(INT8_MATMUL_OP(dy, self.q, self.scale, False), 1)
        b = torch.cumsum(INT8_MATMUL_OP(a, self.q, self.scale, True), 1)
        return INT8_MATMUL_OP(b, self.q, self.scale, False)


def test_a_weight_shared_by_partitions_lowers_and_loads(tmp_path):
    """One weight's codes (and their transposed copy) read by three partitions."""
    qw, _, dy = _inputs()
    module = _SharedAcrossPartitions(qw)
    coverage = export_executorch(torch.export.export(module, (dy,)), tmp_path / "m.pte")
    assert coverage["delegate_calls"] == 3 and coverage["delegated_matmuls"] == coverage["matmuls"] == 3, coverage
    spec = ProgramSpec((TensorSpec("dy", (12, 48), "float32", "batch"),), (TensorSpec("dx", (12, 96), "float32", "metric"),))
    got = ExecuTorchProgram(tmp_path / "m.pte", spec).run({"dy": dy.numpy()})["dx"]
    with activation_rounding("asymmetric"):
        want = module(dy).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
