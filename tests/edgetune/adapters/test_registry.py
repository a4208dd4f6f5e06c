"""prepare(), the module selector and the registry, shared by every method."""
import dataclasses

import pytest

from edgetune import EmbeddingRows, FullyTrainable, LoRA, prepare
from edgetune.adapters import ADAPTERS, AdapterConfig, LoRASB, LoRAXS, PiCa, config_from_dict, register
from edgetune.errors import ConfigError
from edgetune.models.tiny import TinyClassifier


def test_prepare_freezes_base_and_reports_counts():
    m = TinyClassifier()
    total = sum(p.numel() for p in m.parameters())
    p = prepare(m, [LoRA(r=4, targets=("query", "value")), FullyTrainable(("head",))])
    lora, head = p.report.adapters
    # 2 layers x (query, value), each 32x32: r * (d_in + d_out) per matrix.
    assert lora.modules == [f"encoder.layers.{i}.attention.{n}" for i in range(2) for n in ("query", "value")]
    assert lora.trainable_params == LoRA(r=4).param_count(TinyClassifier()) == 4 * 4 * (32 + 32)
    assert head.trainable_params == 32 * 3 + 3
    assert p.report.trainable_params == lora.trainable_params + head.trainable_params
    assert p.report.frozen_params == total - head.trainable_params
    names = set(p.trainable())
    assert all("lora_" in n or n.startswith("head.") for n in names)


def test_selector_that_matches_nothing_is_an_error():
    with pytest.raises(ConfigError, match="matches no Linear"):
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


def test_each_target_must_match_and_the_error_names_close_candidates():
    with pytest.raises(ConfigError, match=r"target 'valeu' matches no Linear.*'value'"):
        prepare(TinyClassifier(), [LoRA(targets=("query", "valeu"))])  # 'query' matching does not hide the typo
    p = prepare(TinyClassifier(), [LoRA(targets=("query", "valeu"))], strict=False)
    assert p.report.unmatched == {"lora": ["valeu"]} and "valeu" in str(p.report)
    assert len(p.report.adapters[0].modules) == 2


def test_a_bad_config_leaves_the_model_untouched():
    m = TinyClassifier()
    before = {n: type(mod) for n, mod in m.named_modules()}
    with pytest.raises(ConfigError, match="r=40 must lie in"):
        prepare(m, [LoRA(targets=("query",)), LoRAXS(targets=("value",), r=40)])  # rank checked before any change
    with pytest.raises(ConfigError, match="calibration"):
        prepare(m, [LoRA(targets=("query",)), LoRASB(targets=("value",))])
    assert {n: type(mod) for n, mod in m.named_modules()} == before
    assert all(p.requires_grad for p in m.parameters())


def test_configs_check_themselves_and_are_frozen():
    with pytest.raises(ConfigError, match="r=0 must be >= 1"):
        LoRA(r=0)
    with pytest.raises(ConfigError, match="no option 'rank'"):
        config_from_dict({"method": "lora", "rank": 4})
    with pytest.raises(dataclasses.FrozenInstanceError):
        LoRA().r = 4


def test_registration_refuses_duplicates_and_malformed_configs():
    @dataclasses.dataclass(frozen=True)
    class Again(LoRA):
        method = "lora"

    class NotADataclass(AdapterConfig):
        method = "plain"

    @dataclasses.dataclass(frozen=True)
    class BadName(AdapterConfig):
        method = "Bad Name"

    for cls, why in ((Again, "taken by LoRA"), (NotADataclass, "frozen"), (BadName, "lower-case")):
        with pytest.raises(TypeError, match=why):
            register(cls)
    assert ADAPTERS["lora"] is LoRA and "plain" not in ADAPTERS
