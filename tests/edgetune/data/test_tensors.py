"""Array files for tensors artifacts: read in place, checked before use, hostile files refused."""
import re
import zipfile

import numpy as np
import pytest
from safetensors.numpy import save_file

from edgetune.data.tensors import open_tensor_rows
from edgetune.errors import DataError

SPECS = {"windows": ((6, 64), "float32"), "labels": ((), "int64")}


def _arrays(n=10):
    rng = np.random.default_rng(0)
    return {"windows": rng.standard_normal((n, 6, 64)).astype(np.float32), "labels": rng.integers(0, 5, n)}


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_rows_are_the_arrays_memory_mapped(tmp_path, suffix):
    a, p = _arrays(), tmp_path / f"d{suffix}"
    np.savez(p, **a) if suffix == ".npz" else save_file(a, str(p))
    rows = open_tensor_rows(p, SPECS)
    assert rows.n == 10 and all(isinstance(v, np.memmap) for v in rows.arrays.values())
    got = rows.take(np.array([3, 1, 3]))
    np.testing.assert_array_equal(got["windows"], a["windows"][[3, 1, 3]])
    np.testing.assert_array_equal(got["labels"], a["labels"][[3, 1, 3]])


def test_bad_files_are_one_clear_error(tmp_path):
    a = _arrays()
    cases = {}
    np.savez_compressed(tmp_path / "c.npz", **a)
    cases["c.npz"] = "compressed"
    np.savez(tmp_path / "m.npz", windows=a["windows"])
    cases["m.npz"] = "lacks the arrays ['labels']"
    np.savez(tmp_path / "t.npz", windows=a["windows"].astype(np.float64), labels=a["labels"])
    cases["t.npz"] = "float64"
    np.savez(tmp_path / "n.npz", windows=a["windows"], labels=a["labels"][:4])
    cases["n.npz"] = "has 4 rows"
    np.savez(tmp_path / "o.npz", windows=a["windows"], labels=np.array([object()] * 10))
    cases["o.npz"] = "Python objects"
    save_file(a, str(tmp_path / "cut.safetensors"))
    raw = (tmp_path / "cut.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[:-100])
    cases["cut.safetensors"] = "truncated"
    (tmp_path / "h.safetensors").write_bytes((10**12).to_bytes(8, "little") + b"{}")
    cases["h.safetensors"] = "out of bounds"
    (tmp_path / "z.npz").write_bytes(b"PK\x03\x04 not a zip")
    cases["z.npz"] = "not a readable .npz"
    (tmp_path / "d.csv").write_text("x\n")
    cases["d.csv"] = "trains from .npz"
    for name, words in cases.items():
        with pytest.raises(DataError, match=re.escape(words)):
            open_tensor_rows(tmp_path / name, SPECS)


def test_member_that_is_not_an_array_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as z:
        z.writestr("windows.txt", "hello")
    with pytest.raises(DataError, match="not an .npy array"):
        open_tensor_rows(tmp_path / "x.npz", SPECS)
