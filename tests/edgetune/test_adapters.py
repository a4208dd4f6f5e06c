import pytest
import torch

from edgetune import EmbeddingRows, FullyTrainable, LoRA, prepare
from edgetune.adapters import config_from_dict
from edgetune.errors import ConfigError
from edgetune.models.tiny import TinyClassifier


def _batch(vocab=128, b=3, s=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (b, s), generator=g)
    mask = torch.ones(b, s, dtype=torch.long)
    mask[0, 6:] = 0
    return ids, mask


def test_prepare_freezes_base_and_reports_counts():
    m = TinyClassifier()
    total = sum(p.numel() for p in m.parameters())
    p = prepare(m, [LoRA(r=4, targets=("query", "value")), FullyTrainable(("head",))])
    lora, head = p.report.adapters
    # 2 layers x (query, value), each 32x32: r * (d_in + d_out) per matrix.
    assert lora.modules == [f"encoder.layers.{i}.attention.{n}" for i in range(2) for n in ("query", "value")]
    assert lora.trainable_params == 4 * LoRA.param_count(32, 32, 4)
    assert head.trainable_params == 32 * 3 + 3
    assert p.report.trainable_params == lora.trainable_params + head.trainable_params
    assert p.report.frozen_params == total - head.trainable_params
    names = set(p.trainable())
    assert all("lora_" in n or n.startswith("head.") for n in names)


def test_lora_is_a_noop_at_init_and_matches_its_formula():
    torch.manual_seed(0)
    m = TinyClassifier()
    ids, mask = _batch()
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


def test_embedding_rows_equal_index_copy():
    m = TinyClassifier()
    emb = m.encoder.word_embeddings
    table = emb.weight.detach().clone()
    p = prepare(m, [EmbeddingRows(token_ids=[5, 3, 3, 9])])
    wrapped = p.model.encoder.word_embeddings
    assert wrapped.rows.shape == (3, 32) and p.report.trainable_params == 3 * 32
    ids, _ = _batch()
    with torch.no_grad():
        assert torch.equal(wrapped(ids), table[ids])  # no-op at init
        wrapped.rows.add_(1.0)
        expect = table.index_copy(0, torch.tensor([3, 5, 9]), table[[3, 5, 9]] + 1.0)[ids]
        assert torch.equal(wrapped(ids), expect)


def test_selector_that_matches_nothing_is_an_error():
    with pytest.raises(ConfigError, match="match no Linear"):
        prepare(TinyClassifier(), [LoRA(targets=("q_proj",))])
    with pytest.raises(ConfigError, match="no adapters"):
        prepare(TinyClassifier(), [])
    with pytest.raises(ConfigError, match="token ids must lie"):
        prepare(TinyClassifier(), [EmbeddingRows(token_ids=[1000])])


def test_regex_selector_and_registry_round_trip():
    cfg = config_from_dict({"method": "lora", "targets": ["re:encoder\\.layers\\.1\\.attention\\.query"], "r": 2})
    p = prepare(TinyClassifier(), [cfg])
    assert p.report.adapters[0].modules == ["encoder.layers.1.attention.query"]
    assert config_from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown"):
        config_from_dict({"method": "nope"})
