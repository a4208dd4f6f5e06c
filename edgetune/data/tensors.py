"""Batches of a tensors artifact from a file of arrays: ``.npz`` (as ``np.savez`` writes it,
uncompressed) or ``.safetensors``, one array per batch input, rows along the first axis.

Memory-mapped, never loaded whole: memory does not grow with the file. Headers are parsed
and checked before any row is read (names, dtypes, shapes, offsets inside the file), so a
truncated or hostile file is one `DataError` naming the value and the fix. Pickled object
arrays are refused (``allow_pickle`` stays off).
"""
from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np

from edgetune.contract.state import MAX_HEADER_BYTES
from edgetune.data.rows import ArrayRows
from edgetune.errors import DataError, shorten

_ST_DTYPES = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "BOOL": "|b1", "F16": "<f2", "U8": "|u1",
              "I8": "|i1", "I16": "<i2"}


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """Each stored member of an .npz as a read-only memmap (compressed members are refused)."""
    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    raise DataError(f"{path}: member {shorten(info.filename)} is not an .npy array")
                name = info.filename[:-4]
                if info.compress_type != zipfile.ZIP_STORED:
                    raise DataError(f"{path}: array {shorten(name)} is compressed; write the file with np.savez (not "
                                    "savez_compressed) or as .safetensors, so rows are read in place")
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, fortran, dtype = read(f)
                    header_len = f.tell()
                if dtype.hasobject or fortran:
                    raise DataError(f"{path}: array {shorten(name)} holds Python objects or is Fortran-ordered; "
                                    "save plain C-ordered numeric arrays")
                with open(path, "rb") as raw:  # the member's data starts after its local file header
                    raw.seek(info.header_offset)
                    local = raw.read(30)
                    if len(local) < 30 or local[:4] != b"PK\x03\x04":
                        raise DataError(f"{path}: the zip entry of {shorten(name)} is damaged")
                    name_len, extra_len = struct.unpack("<HH", local[26:30])
                offset = info.header_offset + 30 + name_len + extra_len + header_len
                out[name] = _map(path, dtype, shape, offset, name)
    except zipfile.BadZipFile as e:
        raise DataError(f"{path} is not a readable .npz ({e}); write it with np.savez") from e
    except ValueError as e:  # a malformed .npy header
        raise DataError(f"{path}: an array header is malformed ({shorten(str(e), 120)})") from e
    return out


def _safetensors_arrays(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise DataError(f"{path} is too short to be safetensors")
        (n,) = struct.unpack("<Q", head)
        if not 2 <= n <= MAX_HEADER_BYTES:
            raise DataError(f"{path}: safetensors header of {n} bytes is out of bounds; the file is damaged")
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: the safetensors header is not JSON ({shorten(str(e), 80)})") from e
    if not isinstance(header, dict):
        raise DataError(f"{path}: the safetensors header is not an object")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (lo, hi) = np.dtype(_ST_DTYPES[info["dtype"]]), tuple(info["shape"]), info["data_offsets"]
            if not all(isinstance(d, int) and d >= 0 for d in shape) or not 0 <= lo <= hi:
                raise ValueError
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{path}: tensor {shorten(name)} has an unreadable dtype, shape or offsets "
                            f"({shorten(info)})") from e
        if hi - lo != dtype.itemsize * int(np.prod(shape)):
            raise DataError(f"{path}: tensor {shorten(name)} spans {hi - lo} bytes, its shape needs "
                            f"{dtype.itemsize * int(np.prod(shape))}")
        out[name] = _map(path, dtype, shape, 8 + n + lo, name)
    return out


def _map(path: Path, dtype: np.dtype, shape: tuple, offset: int, name: str) -> np.ndarray:
    size = dtype.itemsize * int(np.prod(shape))
    if offset + size > path.stat().st_size:
        raise DataError(f"{path}: array {shorten(name)} runs past the end of the file; the file is truncated")
    if size == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def open_tensor_rows(path: str | Path, specs: dict[str, tuple[tuple[int, ...], str]]) -> ArrayRows:
    """The file's arrays named by ``specs`` (name -> (row shape, dtype name)), checked, as rows."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".npz", ".safetensors"):
        raise DataError(f"data file {p} has suffix {shorten(p.suffix)}; a tensors artifact trains from .npz "
                        "(np.savez) or .safetensors with one array per batch input")
    if not p.is_file():
        raise DataError(f"data file {p} does not exist")
    arrays = _npz_arrays(p) if suffix == ".npz" else _safetensors_arrays(p)
    missing = sorted(set(specs) - set(arrays))
    if missing:
        raise DataError(f"{p} lacks the arrays {missing}; it has {shorten(sorted(arrays))}. Save one array per batch "
                        f"input: {sorted(specs)}")
    picked, n = {}, None
    for name, (row_shape, dtype) in specs.items():
        a = arrays[name]
        if a.dtype != np.dtype(dtype) or tuple(a.shape[1:]) != tuple(row_shape) or a.ndim == 0:
            raise DataError(f"{p}: array {name!r} is {a.dtype}{list(a.shape)}; the artifact takes {dtype}"
                            f"[N, {', '.join(map(str, row_shape))}]")
        if n is not None and len(a) != n:
            raise DataError(f"{p}: array {name!r} has {len(a)} rows, the others {n}; every array needs one row per "
                            "example")
        n = len(a)
        picked[name] = a
    if not n:
        raise DataError(f"{p} has no rows")
    return ArrayRows(picked)
