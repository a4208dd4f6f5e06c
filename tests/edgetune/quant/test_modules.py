"""QuantLinear / QuantEmbedding against the same layer on dequantized fp32 weights."""
import pytest
import torch
import torch.nn as nn

from edgetune.adapters import Calibration
from edgetune.errors import ConfigError
from edgetune.models.tiny import TinyClassifier
from edgetune.quant import Int4Config, Int8Config, QuantEmbedding, QuantLinear, quantize, quantize_int4, quantize_int8


@pytest.mark.parametrize("qw_of", [quantize_int8, lambda w: quantize_int4(w, 32)], ids=["int8", "int4"])
def test_linear_forward_and_input_gradient(qw_of):
    torch.manual_seed(0)
    lin = nn.Linear(64, 24)
    q = QuantLinear(qw_of(lin.weight), lin.bias)
    ref = nn.Linear(64, 24)
    with torch.no_grad():
        ref.weight.copy_(q.weight)
        ref.bias.copy_(lin.bias)
    x = torch.randn(3, 5, 64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    g = torch.randn(3, 5, 24)
    (q(x) * g).sum().backward()
    (ref(x2) * g).sum().backward()
    torch.testing.assert_close(q(x), ref(x2))
    torch.testing.assert_close(x.grad, x2.grad)
    assert not any(p.requires_grad for p in q.parameters())


def test_embedding_rows_and_tied_head():
    torch.manual_seed(0)
    table = torch.randn(50, 32)
    e = QuantEmbedding(quantize_int8(table))
    ids = torch.tensor([[3, 7, 3], [0, 49, 1]])
    torch.testing.assert_close(e(ids), e.weight[ids])
    h = torch.randn(2, 3, 32)
    torch.testing.assert_close(e.as_linear(h), h @ e.weight.t())
    with pytest.raises(ConfigError, match="8-bit rows"):
        QuantEmbedding(quantize_int4(table, 32))


def test_quantize_replaces_frozen_linears_but_not_the_head():
    m = TinyClassifier()
    done = quantize(m, Int4Config(group=32))
    assert "head" not in done and len(done) == sum(1 for _ in m.modules() if isinstance(_, QuantLinear))
    assert isinstance(m.head, nn.Linear) and not isinstance(m.head, QuantLinear)
    m2 = TinyClassifier()
    quantize(m2, Int8Config(embeddings=True))
    assert any(isinstance(x, QuantEmbedding) for x in m2.modules())


def test_calibration_gradient_through_quantized_layers():
    """LoRA-SB's calibration gradient dL/dW of a QuantLinear equals autograd's on the
    same model with its dequantized weights as fp32 parameters."""
    torch.manual_seed(0)
    m = TinyClassifier()
    quantize(m, Int8Config())
    ref = TinyClassifier()
    ref.load_state_dict({k: v for k, v in ref.state_dict().items()})
    for name, mod in m.named_modules():
        if isinstance(mod, QuantLinear):
            with torch.no_grad():
                ref.get_submodule(name).weight.copy_(mod.weight)
    ids = torch.randint(1, 128, (4, 10))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 2, 0])}
    names = [n for n, mod in m.named_modules() if isinstance(mod, QuantLinear)][:3]
    got = Calibration([batch]).summed_gradients(m, [m.get_submodule(n) for n in names])
    want = Calibration([batch]).summed_gradients(ref, [ref.get_submodule(n) for n in names])
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    ws = [ref.get_submodule(n).weight for n in names]
    for w in ws:
        w.requires_grad_(True)
    from edgetune.step.losses import task_loss
    auto = torch.autograd.grad(task_loss("sequence_classification", ref(ids, batch["attention_mask"]), batch), ws)
    for g, a in zip(want, auto):
        torch.testing.assert_close(g, a * 4, rtol=1e-4, atol=1e-6)


def test_report_counts_integer_weights_and_merge_refuses_them():
    from edgetune import LoRA, prepare
    from edgetune.adapters.merge import merge
    from edgetune.prepared import count_values

    m = TinyClassifier()
    total = count_values(m)
    quantize(m, Int4Config(group=32))
    assert count_values(m) == total  # the same weights, held as codes
    p = prepare(m, [LoRA(r=2)])
    assert p.report.trainable_params + p.report.frozen_params == total + p.report.trainable_params
    with pytest.raises(ConfigError, match="integer base"):
        merge(p)
