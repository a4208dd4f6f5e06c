"""Fastfood against docs/methods.md: the fast transform is the dense matrix from the same factors,
its columns have norm ~1, and the update is W0 + lambda * reshape(P d)."""
import torch

from edgetune import prepare
from edgetune.adapters import Fastfood, FastfoodTransform
from edgetune.adapters.fastfood import sylvester_hadamard
from edgetune.models.tiny import TinyClassifier


def test_hadamard_chain_equals_the_dense_matrix():
    for n in (2, 8, 32, 512, 2048):  # 1, 3, 5, 9, 11 doublings: blocks of 8 plus a remainder
        t = FastfoodTransform(n, 1, seed=0)
        x = torch.randn(n)
        torch.testing.assert_close(t.hadamard(x), sylvester_hadamard(n) @ x, rtol=1e-5, atol=1e-4)


def test_fast_transform_equals_dense_and_columns_have_unit_norm():
    t = FastfoodTransform(D=1000, d_int=96, seed=4)  # L = 1024: truncated to D
    dense = t.dense()
    d = torch.randn(96)
    torch.testing.assert_close(t(d), dense @ d, rtol=1e-4, atol=1e-5)
    norms = dense.norm(dim=0)
    assert abs(float(norms.pow(2).mean()) - 1.0) < 0.05 and float((norms - 1).abs().max()) < 0.2


def test_fastfood_linear_update_and_counts(batch):
    m = TinyClassifier()
    with torch.no_grad():
        ref = m(batch["input_ids"], batch["attention_mask"])
    p = prepare(m, [Fastfood(d_int=40)])
    with torch.no_grad():
        assert torch.equal(p.model(batch["input_ids"], batch["attention_mask"]), ref)
    # 4 layers x (d_int + one SAID scale)
    assert p.report.trainable_params == Fastfood(d_int=40).param_count(TinyClassifier()) == 4 * 41
    lin = p.model.encoder.layers[0].attention.value
    with torch.no_grad():
        lin.ff_d.normal_()
        lin.said_scale.fill_(0.5)
    x = torch.randn(3, 32)
    want = x @ (lin.base.weight + 0.5 * (lin.transform.dense() @ lin.ff_d).reshape(32, 32)).T + lin.base.bias
    torch.testing.assert_close(lin(x), want, rtol=1e-4, atol=1e-5)


def test_shared_d_is_one_vector_for_all_tensors():
    p = prepare(TinyClassifier(), [Fastfood(d_int=40, share=True, said=False)])
    assert set(p.trainable()) == {"fastfood_shared.d"} and p.report.trainable_params == 40
    with torch.no_grad():
        p.model.fastfood_shared["d"].normal_()
    q, v = p.model.encoder.layers[0].attention.query, p.model.encoder.layers[0].attention.value
    assert not torch.allclose(q.delta_weight(), v.delta_weight())  # own projection per tensor
    torch.testing.assert_close(q.delta_weight(), (q.transform.dense() @ p.model.fastfood_shared["d"]).reshape(32, 32),
                               rtol=1e-4, atol=1e-5)
