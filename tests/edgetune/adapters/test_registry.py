"""prepare(), the module selector and the registry, shared by every method."""
import pytest

from edgetune import EmbeddingRows, FullyTrainable, LoRA, prepare
from edgetune.adapters import ADAPTERS, LoRAXS, PiCa, config_from_dict
from edgetune.errors import ConfigError
from edgetune.models.tiny import TinyClassifier


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


def test_selector_that_matches_nothing_is_an_error():
    with pytest.raises(ConfigError, match="match no Linear"):
        prepare(TinyClassifier(), [LoRA(targets=("q_proj",))])
    with pytest.raises(ConfigError, match="no adapters"):
        prepare(TinyClassifier(), [])
    with pytest.raises(ConfigError, match="token ids must lie"):
        prepare(TinyClassifier(), [EmbeddingRows(token_ids=[1000])])


def test_two_low_rank_methods_on_one_module_are_refused():
    with pytest.raises(ConfigError, match="already adapted by 'lora'"):
        prepare(TinyClassifier(), [LoRA(targets=("query",)), PiCa(targets=("query", "value"))])


def test_methods_combine_on_disjoint_targets():
    p = prepare(TinyClassifier(), [EmbeddingRows([3, 4]), LoRAXS(targets=("query",), r=2), PiCa(targets=("value",), r=2)])
    assert [a.trainable_params for a in p.report.adapters] == [2 * 32, 2 * 2 * 2, 32 * 2]


def test_regex_selector_and_registry_round_trip():
    cfg = config_from_dict({"method": "lora", "targets": ["re:encoder\\.layers\\.1\\.attention\\.query"], "r": 2})
    p = prepare(TinyClassifier(), [cfg])
    assert p.report.adapters[0].modules == ["encoder.layers.1.attention.query"]
    assert config_from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown"):
        config_from_dict({"method": "nope"})
    for method, cls in ADAPTERS.items():  # every registered config survives a dict round trip
        assert config_from_dict(cls().to_dict()) == cls(), method
