"""PiCa against docs/methods.md: P_i holds W0's top right singular vectors, one SGD step is
dW = -lr G V_r V_r^T, and sharing gives one M per module name."""
import torch

from edgetune import SGD, prepare
from edgetune.adapters import PiCa
from edgetune.models.tiny import TinyClassifier
from helpers.adapter_steps import base_weight_grad, one_step


def test_pica_projection_and_noop(batch):
    m = TinyClassifier()
    w0 = m.encoder.layers[1].attention.query.weight.detach().clone()
    with torch.no_grad():
        ref = m(batch["input_ids"], batch["attention_mask"])
    p = prepare(m, [PiCa(r=4, share=False)])
    lin = p.model.encoder.layers[1].attention.query
    vh = torch.linalg.svd(w0.double())[2][:4].float()
    torch.testing.assert_close(lin.pica_P.T @ lin.pica_P, vh.T @ vh, atol=1e-5, rtol=0)  # same subspace
    with torch.no_grad():
        assert torch.equal(p.model(batch["input_ids"], batch["attention_mask"]), ref)
    assert p.report.trainable_params == 4 * 32 * 4


def test_one_sgd_step_projects_the_gradient_on_the_top_right_singular_space(batch):
    p = prepare(TinyClassifier(), [PiCa(r=4, share=False)])
    name = "encoder.layers.0.attention.value"
    lin = p.model.get_submodule(name)
    g = base_weight_grad(p, name, batch)
    new = one_step(p, batch, SGD(lr=0.1))
    v = lin.pica_P.T  # [d_in, r]: V_r
    torch.testing.assert_close(new[f"{name}.pica_M"] @ lin.pica_P, -0.1 * g @ v @ v.T, atol=1e-7, rtol=1e-4)


def test_sharing_gives_one_m_per_name(batch):
    p = prepare(TinyClassifier(), [PiCa(r=4)])
    assert set(p.trainable()) == {"pica_shared.query", "pica_shared.value"}
    assert p.report.trainable_params == PiCa(r=4).param_count(TinyClassifier()) == 32 * 4 * 2  # d_out r per name
    with torch.no_grad():
        p.model.pica_shared["query"].fill_(0.1)
    x = torch.randn(2, 32)
    for i in range(2):  # both layers see the one shared M
        lin = p.model.encoder.layers[i].attention.query
        torch.testing.assert_close(lin(x), lin.base(x) + 0.1 * (x @ lin.pica_P.T).sum(-1, keepdim=True).expand(2, 32))
    # The shared M's SGD step is the sum of the per-layer projected steps.
    gs = [base_weight_grad(p, f"encoder.layers.{i}.attention.query", batch) for i in range(2)]
    new = one_step(p, batch, SGD(lr=0.1))
    want = 0.1 - 0.1 * sum(g @ p.model.encoder.layers[i].attention.query.pica_P.T for i, g in enumerate(gs))
    torch.testing.assert_close(new["pica_shared.query"], want, atol=1e-7, rtol=1e-4)
