import torch

from edgetune import LoRA, prepare
from edgetune.models.tiny import TinyClassifier


def test_lora_is_a_noop_at_init_and_matches_its_formula(batch):
    torch.manual_seed(0)
    m = TinyClassifier()
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        ref = m(ids, mask)
    p = prepare(m, [LoRA(r=4, alpha=8)])
    with torch.no_grad():
        assert torch.equal(p.model(ids, mask), ref)
    lin = p.model.encoder.layers[0].attention.query
    with torch.no_grad():
        lin.lora_B.normal_()
        x = torch.randn(5, 32)
        want = x @ lin.base.weight.T + lin.base.bias + (8 / 4) * x @ (lin.lora_B @ lin.lora_A).T
        torch.testing.assert_close(lin(x), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(lin.delta_weight(), (8 / 4) * lin.lora_B @ lin.lora_A)
