"""The fleet's settings: one list of run-config keys, checked values, the Flower App Flower accepts."""
import tomllib

import pytest
from flwr.common.config import validate_config

from edgetune.errors import ConfigError
from edgetune.fleet.config import RUN_DEFAULTS, client_setup, run_settings
from edgetune.fleet.local import CLIENT_APP, SERVER_APP, write_app


def test_defaults_and_overrides():
    s = run_settings({})
    assert (s.num_rounds, s.strategy, s.local_steps, s.personal_patterns) == (3, "fedavg", 10, ())
    s = run_settings({"num-rounds": 5, "lr": 1, "personal": "head.*, encoder.word_embeddings.*"})
    assert s.num_rounds == 5 and s.lr == 1.0 and s.personal_patterns == ("head.*", "encoder.word_embeddings.*")


@pytest.mark.parametrize("cfg, words", [
    ({"num-round": 3}, "unknown run-config keys ['num-round']"),
    ({"num-rounds": "3"}, "num-rounds='3' must be a int"),
    ({"num-rounds": 0}, "num-rounds=0 must be at least 1"),
    ({"fraction-train": 0.0}, "fraction-train=0.0 must be in (0, 1]"),
    ({"strategy": "fedprox"}, "strategy='fedprox' must be one of"),
    ({"lr": float("nan")}, "lr=nan must be a finite number"),
    ({"round-timeout": -1.0}, "round-timeout=-1.0 must be"),
    ({"schedule": "cosine"}, "schedule='cosine' must be one of"),
])
def test_bad_settings_named(cfg, words):
    with pytest.raises(ConfigError, match=None) as e:
        run_settings(cfg)
    assert words in str(e.value)


def test_client_setup_from_node_or_partitions(tmp_path):
    s = run_settings({})
    c = client_setup({"artifact": "a", "data": "/d/u1.csv", "state": "/s/1.safetensors"}, s)
    assert (str(c.artifact), str(c.data), c.eval_data, str(c.state)) == ("a", "/d/u1.csv", None, "/s/1.safetensors")
    with pytest.raises(ConfigError, match="no state="):
        client_setup({"artifact": "a", "data": "/d/u1.csv"}, s)
    with pytest.raises(ConfigError, match="this client has no data"):
        client_setup({"partition-id": 3, "num-partitions": 10}, s)
    (tmp_path / "3.eval.csv").write_text("text,label\n")
    s = run_settings({"artifact": "art", "partitions": str(tmp_path), "state-dir": str(tmp_path / "st")})
    c = client_setup({"partition-id": 3, "num-partitions": 10}, s)
    assert (c.data, c.eval_data, c.state, str(c.artifact)) == (
        tmp_path / "3.csv", tmp_path / "3.eval.csv", tmp_path / "st" / "3.safetensors", "art")


def test_app_directory_is_a_valid_flower_app(tmp_path):
    d = write_app(tmp_path / "app")
    config = tomllib.loads((d / "pyproject.toml").read_text())
    ok, errors, _ = validate_config(config)
    assert ok, errors
    assert config["tool"]["flwr"]["app"]["components"] == {"serverapp": SERVER_APP, "clientapp": CLIENT_APP}
    assert config["tool"]["flwr"]["app"]["config"] == RUN_DEFAULTS
    run_settings(config["tool"]["flwr"]["app"]["config"])  # the defaults pass their own checks
