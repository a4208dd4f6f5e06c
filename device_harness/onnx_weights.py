"""The initializers of an ONNX file, read straight from its protobuf encoding: the device runner
installs only numpy and a runtime, not the `onnx` package (tests check this reader against it).

Only what weight sharing needs is decoded: ModelProto.graph (field 7) -> GraphProto.initializer
(field 5) -> TensorProto dims (1), data_type (2), name (8), raw_data (9), and for weights kept
in an external file (an artifact's shared `weights.onnx.data`), external_data (13: location,
offset, length) and data_location (14). The files are memory-mapped and read one tensor at a
time: memory does not grow with the file.
"""
from __future__ import annotations

import contextlib
import mmap
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

# TensorProto.DataType codes numpy can hold as they are stored (little-endian)
DTYPES = {1: "<f4", 2: "u1", 3: "i1", 4: "<u2", 5: "<i2", 6: "<i4", 7: "<i8", 9: "?", 10: "<f2", 11: "<f8",
          12: "<u4", 13: "<u8"}
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5
_TENSOR_DIMS, _TENSOR_TYPE, _TENSOR_NAME, _TENSOR_RAW, _TENSOR_EXTERNAL, _TENSOR_LOCATION = 1, 2, 8, 9, 13, 14
_EXTERNAL = 1  # TensorProto.DataLocation


class Initializer(NamedTuple):
    name: str
    data_type: int  # TensorProto.DataType
    dims: tuple[int, ...]
    raw: bytes  # raw_data, or the bytes from the external file (empty when the values are in the typed fields)

    def array(self) -> np.ndarray:
        """The values, shaped ``dims`` (read-only: they share ``raw``'s memory)."""
        return np.frombuffer(self.raw, DTYPES[self.data_type]).reshape(self.dims)


def _varint(buf, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out, i
        shift += 7


def _fields(buf, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value or payload start, payload end) for each field in buf[start:end]."""
    i = start
    while i < end:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, i = _varint(buf, i)
            yield field, wire, value, i
        elif wire == _LEN:
            n, i = _varint(buf, i)
            if i + n > end:
                raise ValueError(f"field {field} runs past its message ({i + n} > {end})")
            yield field, wire, i, i + n
            i += n
        elif wire in (_I64, _I32):
            i += 8 if wire == _I64 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {i}")


def _tensor(buf, start: int, end: int, external) -> Initializer:
    """One TensorProto; ``external(entries) -> bytes`` reads a tensor stored outside the file."""
    name, data_type, dims, raw, entries, location = "", 0, [], b"", {}, 0
    for field, wire, a, b in _fields(buf, start, end):
        if field == _TENSOR_DIMS and wire == _VARINT:
            dims.append(a)
        elif field == _TENSOR_DIMS and wire == _LEN:  # packed
            i = a
            while i < b:
                d, i = _varint(buf, i)
                dims.append(d)
        elif field == _TENSOR_TYPE and wire == _VARINT:
            data_type = a
        elif field == _TENSOR_NAME and wire == _LEN:
            name = buf[a:b].decode("utf-8")  # an mmap slice is bytes
        elif field == _TENSOR_RAW and wire == _LEN:
            raw = buf[a:b]
        elif field == _TENSOR_EXTERNAL and wire == _LEN:  # StringStringEntryProto: key (1), value (2)
            kv = {f: buf[x:y].decode("utf-8") for f, w, x, y in _fields(buf, a, b) if w == _LEN}
            entries[kv.get(1, "")] = kv.get(2, "")
        elif field == _TENSOR_LOCATION and wire == _VARINT:
            location = a
    if location == _EXTERNAL:
        raw = external(name, entries)
    return Initializer(name, data_type, tuple(dims), raw)


def read_initializers(path: str | Path) -> Iterator[Initializer]:
    """The graph's initializers in file order, external ones read from their file next to
    ``path``. A file that is not a well-formed ONNX model, or an external reference outside
    its data file, raises ValueError."""
    path = Path(path)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf, \
            contextlib.ExitStack() as files:
        mapped: dict[str, mmap.mmap] = {}

        def external(name: str, entries: dict[str, str]) -> bytes:
            loc = entries.get("location", "")
            if not loc or "/" in loc or "\\" in loc or loc.startswith("."):
                raise ValueError(f"{path}: initializer {name!r} is stored in {loc!r}, not a file next to the program")
            if loc not in mapped:
                fd = files.enter_context(open(path.parent / loc, "rb"))
                mapped[loc] = files.enter_context(mmap.mmap(fd.fileno(), 0, access=mmap.ACCESS_READ))
            data = mapped[loc]
            try:
                offset, length = int(entries.get("offset", "0")), int(entries["length"])
            except (KeyError, ValueError) as e:
                raise ValueError(f"{path}: initializer {name!r} has no whole offset and length in {loc}") from e
            if offset < 0 or length < 0 or offset + length > len(data):
                raise ValueError(f"{path}: initializer {name!r} lies outside {loc} ({offset} + {length} > {len(data)})")
            return data[offset:offset + length]

        try:
            for field, wire, a, b in _fields(buf, 0, len(buf)):
                if field == _MODEL_GRAPH and wire == _LEN:
                    for gfield, gwire, ga, gb in _fields(buf, a, b):
                        if gfield == _GRAPH_INITIALIZER and gwire == _LEN:
                            yield _tensor(buf, ga, gb, external)
        except IndexError as e:
            raise ValueError(f"{path} ends inside a protobuf field: not a whole ONNX file") from e
