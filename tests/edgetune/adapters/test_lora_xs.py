import torch

from edgetune import prepare
from edgetune.adapters import LoRAXS
from edgetune.adapters.lora_xs import R_INIT_STD
from edgetune.models.tiny import TinyClassifier


def test_lora_xs_factors_come_from_the_svd_of_w0(batch):
    m = TinyClassifier()
    w0 = m.encoder.layers[0].attention.query.weight.detach().clone()
    with torch.no_grad():
        ref = m(batch["input_ids"], batch["attention_mask"])
    p = prepare(m, [LoRAXS(r=4, alpha=8)])
    lin = p.model.encoder.layers[0].attention.query
    u, s, vh = torch.linalg.svd(w0.double())
    torch.testing.assert_close(lin.core_B.double().abs(), u[:, :4].abs(), atol=1e-5, rtol=0)  # up to sign
    torch.testing.assert_close(lin.core_B @ lin.core_A, (u[:, :4] * s[:4] @ vh[:4]).float(), atol=1e-5, rtol=0)
    assert lin.scale == 8 / 4 and lin.core_R.std() < 3 * R_INIT_STD
    assert p.report.trainable_params == 4 * 4 * 4  # 2 layers x (query, value), r^2 each
    with torch.no_grad():  # near no-op at init: R is ~1e-5
        torch.testing.assert_close(p.model(batch["input_ids"], batch["attention_mask"]), ref, atol=1e-4, rtol=0)
        lin.core_R.normal_()
        x = torch.randn(5, 32)
        want = lin.base(x) + 2.0 * x @ (lin.core_B @ lin.core_R @ lin.core_A).T
        torch.testing.assert_close(lin(x), want, rtol=1e-5, atol=1e-5)
