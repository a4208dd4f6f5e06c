"""The Kotlin trainer draws a forward-only step's noise bit for bit as numpy does:
default_rng([seed, step]).standard_normal(n, dtype=float32), tail included (about one draw in
3,700 goes through the ziggurat's tail, which uses the C library's log1pf)."""
import ctypes
import ctypes.util

import numpy as np
import pytest


@pytest.mark.parametrize("seed, step", [(0, 1), (7, 123), (2**32, 5), (2**40 + 3, 2**33)])
def test_normal_draws_equal_numpys(kotlin_trainer, tmp_path, seed, step):
    n = 1_000_000
    out = tmp_path / "draws.f32"
    kotlin_trainer.run("ToolsMain", "normal", seed, step, n, out)
    got = np.fromfile(out, dtype="<f4")
    want = np.random.default_rng([seed, step]).standard_normal(n, dtype=np.float32)
    assert np.abs(want).max() > 3.6542, "no draw reached the tail: the test would not check it"
    differ = np.nonzero(got.view(np.uint32) != want.view(np.uint32))[0]
    assert differ.size == 0, f"{differ.size} draws differ, first at {differ[:3]}: {got[differ[:3]]} != {want[differ[:3]]}"


def test_log1pf_equals_the_c_librarys(kotlin_trainer, tmp_path):
    name = ctypes.util.find_library("m")
    if name is None:
        pytest.skip("no C math library to compare with")
    f = ctypes.CDLL(name).log1pf
    f.restype, f.argtypes = ctypes.c_float, [ctypes.c_float]
    out = tmp_path / "log1pf.f32"
    kotlin_trainer.run("ToolsMain", "log1pf", out)
    got = np.fromfile(out, dtype="<f4")  # log1pf(-k / 2^24) for k in [0, 2^24)
    k = np.random.default_rng(0).choice(2**24, 100_000, replace=False)
    x = -(k.astype(np.float32) * np.float32(1 / 16777216))
    want = np.array([f(float(v)) for v in x], dtype=np.float32)
    assert np.array_equal(got[k].view(np.uint32), want.view(np.uint32))
    # a correctly rounded log1p would not do: it differs from the C library's on many of these inputs
    assert (np.float32(np.log1p(x.astype(np.float64))).view(np.uint32) != want.view(np.uint32)).sum() > 100
