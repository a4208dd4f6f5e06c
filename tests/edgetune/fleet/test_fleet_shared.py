"""What is shared, and the checks a client's reply must pass."""
import numpy as np
import pytest

from edgetune.errors import ConfigError
from edgetune.fleet.shared import expected_specs, nonfinite, reply_problem, shared_names


def test_shared_names_follow_personal_patterns(tiny_artifact):
    _, manifest, _ = tiny_artifact
    params = [t.name for t in manifest.state_specs() if t.name.startswith("param.")]
    assert shared_names(manifest) == params  # optimizer slots never leave the client
    kept = shared_names(manifest, ("head.*", "encoder.word_embeddings.*"))
    assert kept == [n for n in params if not n.startswith(("param.head.", "param.encoder.word_embeddings."))] and kept
    with pytest.raises(ConfigError, match="'heads.*' matches no trainable tensor"):
        shared_names(manifest, ("heads.*",))
    with pytest.raises(ConfigError, match="nothing would be shared"):
        shared_names(manifest, ("*",))


def test_reply_checks_name_each_problem(tiny_artifact):
    _, manifest, _ = tiny_artifact
    names = shared_names(manifest)
    want = expected_specs(manifest, names)
    good = dict(want)
    art = manifest.artifact_id
    assert reply_problem(good, want, art, art, 12) is None
    assert "another artifact" in reply_problem(good, want, "f" * 64, art, 12)
    assert f"missing ['{names[0]}']" in reply_problem({k: v for k, v in good.items() if k != names[0]}, want, art, art, 12)
    assert "unexpected ['param.extra']" in reply_problem({**good, "param.extra": ((1,), "float32")}, want, art, art, 12)
    shape, dtype = want[names[0]]
    bad = {**good, names[0]: ((shape[0] - 1, *shape[1:]), dtype)}
    assert f"{names[0]} is float32[{shape[0] - 1}" in reply_problem(bad, want, art, art, 12)
    assert "int64" in reply_problem({**good, names[0]: (shape, "int64")}, want, art, art, 12)
    for w in (0, -3, float("nan"), True, "12", None):
        assert "num-examples" in reply_problem(good, want, art, art, w)


def test_nonfinite_names_the_tensor():
    assert nonfinite({"a": np.ones(3, np.float32)}) is None
    assert nonfinite({"a": np.ones(3, np.float32), "b": np.array([1, np.inf, np.nan], np.float32)}) == \
        "b holds 2 non-finite values"
