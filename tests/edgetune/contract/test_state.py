import os

import numpy as np
import pytest

from edgetune.contract import Manifest, ProgramSpec, TensorSpec
from edgetune.contract.state import load_state, save_state


def manifest_of(**shapes) -> Manifest:
    """A manifest whose step has float32 state inputs of these shapes."""
    specs = tuple(TensorSpec(n, s, "float32", "state") for n, s in shapes.items())
    return Manifest("0123456789abcdef", "sequence_classification", 1, 2, {"step": ProgramSpec(specs, ())}, {}, {})


def test_save_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    p = tmp_path / "s.safetensors"
    m = manifest_of(a=(3,))
    save_state(p, {"a": np.zeros(3, np.float32)}, m, 1)
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_state(p, {"a": np.ones(3, np.float32)}, m, 2)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["s.safetensors"]  # no temp file left behind


def test_scalar_state_keeps_its_shape(tmp_path):
    """A 0-d tensor (e.g. a SAID scale) must come back 0-d, or the manifest check rejects it."""
    from safetensors.numpy import load_file

    save_state(tmp_path / "s.safetensors", {"scale": np.ones((), np.float32)}, manifest_of(scale=()), 0)
    assert load_file(tmp_path / "s.safetensors")["scale"].shape == ()


def test_a_state_that_would_not_load_is_never_written(tmp_path):
    p = tmp_path / "s.safetensors"
    m = manifest_of(a=(3,))
    save_state(p, {"a": np.zeros(3, np.float32)}, m, 1)
    before = p.read_bytes()
    for bad, message in (({"a": np.zeros(4, np.float32)}, "manifest says"), ({"b": np.zeros(3, np.float32)}, "does not list"),
                         ({"a": np.full(3, np.nan, np.float32)}, "NaN")):
        with pytest.raises(Exception, match=message):
            save_state(p, bad, m, 2)
        assert p.read_bytes() == before


def test_a_changed_tensor_or_step_is_refused_on_load(tmp_path):
    """The checksum covers names, shapes and bytes; two same-shape tensors trading names is caught."""
    import json
    import struct

    from edgetune.errors import StateError

    m = manifest_of(a=(2,), b=(2,))
    p = tmp_path / "s.safetensors"
    save_state(p, {"a": np.zeros(2, np.float32), "b": np.ones(2, np.float32)}, m, 3)
    raw = p.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header["a"], header["b"] = header["b"], header["a"]
    body = json.dumps(header).encode()
    body += b" " * (-len(body) % 8)
    p.write_bytes(struct.pack("<Q", len(body)) + body + raw[8 + n:])
    with pytest.raises(StateError, match="checksum"):
        load_state(p, m)
    header["a"], header["b"] = header["b"], header["a"]
    header["__metadata__"]["step"] = "-1"
    body = json.dumps(header).encode()
    body += b" " * (-len(body) % 8)
    p.write_bytes(struct.pack("<Q", len(body)) + body + raw[8 + n:])
    with pytest.raises(StateError, match="step counter '-1'"):
        load_state(p, m)
