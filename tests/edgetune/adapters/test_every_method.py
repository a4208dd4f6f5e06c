"""Checks every registered method passes, driven by the registry: an example for each, its
parameter count from the config alone, a no-op (or near no-op) at initialisation, the
dict round trip, and the restoring path that `load_adapter` takes."""
import pytest
import torch

from edgetune import prepare
from edgetune.adapters import ADAPTERS, config_from_dict
from helpers.method_examples import EXAMPLES, calibration, tiny_model

# How far from a no-op each method starts (max |logit change|), where the paper says so.
NEAR_NOOP = {"lora_xs": 1e-3}  # R ~ N(0, 1e-5^2)
NOT_NOOP = {"lora_sb": "starts from the truncated sign update of the calibration gradient (docs/methods.md)"}


def test_every_registered_method_has_an_example():
    missing = set(ADAPTERS) - set(EXAMPLES)
    assert set(EXAMPLES) == set(ADAPTERS), f"add an example to tests/helpers/method_examples.py for {missing}"


@pytest.mark.parametrize("method", sorted(ADAPTERS))
def test_param_count_is_what_prepare_trains(method):
    cfg = EXAMPLES[method]
    want = cfg.param_count(tiny_model())
    p = prepare(tiny_model(), [cfg], calibration=calibration())
    assert p.report.trainable_params == p.report.adapters[0].trainable_params == want > 0


@pytest.mark.parametrize("method", sorted(ADAPTERS))
def test_initial_model_computes_what_the_base_did(method):
    if method in NOT_NOOP:
        pytest.skip(f"{method} {NOT_NOOP[method]}")
    g = torch.Generator().manual_seed(1)
    ids, mask = torch.randint(1, 128, (3, 16), generator=g), torch.ones(3, 16, dtype=torch.long)
    base = tiny_model()
    with torch.no_grad():
        ref = base(ids, mask)
        got = prepare(tiny_model(), [EXAMPLES[method]], calibration=calibration()).model(ids, mask)
    torch.testing.assert_close(got, ref, rtol=0, atol=NEAR_NOOP.get(method, 0.0))


@pytest.mark.parametrize("method", sorted(ADAPTERS))
def test_config_round_trips_and_restoring_builds_the_same_tensors(method):
    cfg = EXAMPLES[method]
    assert config_from_dict(cfg.to_dict()) == cfg
    fresh = prepare(tiny_model(), [cfg], calibration=calibration()).trainable()
    restored = prepare(tiny_model(), [cfg], restoring=True).trainable()
    assert {n: p.shape for n, p in restored.items()} == {n: p.shape for n, p in fresh.items()}
