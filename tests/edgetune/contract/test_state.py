import os

import numpy as np
import pytest

from edgetune.contract.state import save_state


def test_save_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    p = tmp_path / "s.safetensors"
    save_state(p, {"a": np.zeros(3, np.float32)}, "id", 1)
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_state(p, {"a": np.ones(3, np.float32)}, "id", 2)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["s.safetensors"]  # no temp file left behind


def test_scalar_state_keeps_its_shape(tmp_path):
    """A 0-d tensor (e.g. a SAID scale) must come back 0-d, or the manifest check rejects it."""
    from safetensors.numpy import load_file

    save_state(tmp_path / "s.safetensors", {"scale": np.ones((), np.float32)}, "id", 0)
    assert load_file(tmp_path / "s.safetensors")["scale"].shape == ()
