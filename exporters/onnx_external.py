"""One file of frozen weights for all of an artifact's ONNX programs (ONNX external data).

Loaded from one .onnx file, onnxruntime parses the whole protobuf and copies every
initializer out of it: a Qwen2.5-0.5B-shaped int4 step (357 MB of weights) held 835 MB
after loading. Weights in a separate file are read (or memory-mapped) straight into place:
467 MB. The step, inference and bucket programs hold the same frozen weights under
different names, so each distinct tensor is written once (matched by dtype and bytes) and
every program points at it: the artifact carries one copy. Offsets are page-aligned, which
lets a runtime map a tensor instead of copying it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgetune.contract.manifest import ONNX_WEIGHTS_SUFFIX

WEIGHTS_FILE = "weights" + ONNX_WEIGHTS_SUFFIX
MIN_TOTAL_BYTES = 64 << 20  # artifacts with less stay single-file: a load copies little
MIN_TENSOR_BYTES = 4096  # smaller tensors (shapes, scalars) stay inline
ALIGN = 4096  # the page size of Linux, Android and iOS on arm64 (16 KiB pages: every 4th offset maps)


def share_onnx_weights(directory: Path, program_files: list[str], min_total: int | None = None) -> str | None:
    """Move the large initializers of ``program_files`` (in ``directory``) into one shared
    `WEIGHTS_FILE`, each distinct tensor once; -> its file name, or None when the distinct
    weights total less than ``min_total`` bytes (default `MIN_TOTAL_BYTES`; the programs are
    then left as they are)."""
    models = {f: onnx.load(str(directory / f)) for f in program_files}
    large: dict[str, dict[str, tuple[bytes, int]]] = {f: {} for f in models}  # file -> name -> (key, bytes)
    for f, m in models.items():
        for t in m.graph.initializer:
            raw = t.raw_data
            if len(raw) >= MIN_TENSOR_BYTES:
                large[f][t.name] = (_key(t.data_type, raw), len(raw))
    distinct = {key: size for names in large.values() for key, size in names.values()}
    if sum(distinct.values()) < (MIN_TOTAL_BYTES if min_total is None else min_total):
        return None
    views = {f: _row_slices_as_views(m, large[f]) for f, m in models.items()}
    placed: dict[bytes, int] = {}  # key -> offset
    with open(directory / WEIGHTS_FILE, "wb") as out:
        for f, m in models.items():
            for t in m.graph.initializer:  # views come last, after what they view
                if t.name in large[f]:
                    key, size = large[f][t.name]
                    if key not in placed:
                        out.write(b"\0" * (-out.tell() % ALIGN))
                        placed[key] = out.tell()
                        out.write(t.raw_data)
                    _point(t, placed[key], size)
                elif t.name in views[f]:
                    key, at, size = views[f][t.name]
                    _point(t, placed[key] + at, size)
    for f, m in models.items():
        onnx.save(m, str(directory / f))
    return WEIGHTS_FILE


def _point(t: TensorProto, offset: int, size: int) -> None:
    """Make ``t`` read its ``size`` bytes at ``offset`` of `WEIGHTS_FILE`."""
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    del t.external_data[:]
    for k, v in (("location", WEIGHTS_FILE), ("offset", str(offset)), ("length", str(size))):
        t.external_data.add(key=k, value=v)


def _row_slices_as_views(model: onnx.ModelProto, large: dict[str, tuple[bytes, int]]) -> dict[str, tuple[bytes, int, int]]:
    """Replace each Slice of rows of a large initializer (``large``: name -> (key, bytes); constant
    bounds, axis 0, step 1) by a new initializer of those rows, recorded as a view: its name ->
    (the sliced tensor's key, byte offset of the rows, bytes). It gets no bytes of its own:
    it points into the sliced tensor's place in the file.

    An output head reads a quantized table in blocks of rows (`QuantEmbedding.as_linear`) while
    the embedding lookup gathers from the whole table. onnxruntime folds each Slice of an
    initializer into a new initializer: a second copy of the table in anonymous memory (132 MB
    for a Qwen2.5-0.5B-shaped int8 table). A view is read from the file instead.
    """
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    outputs = {o.name for o in g.output}
    views, drop, renamed = {}, set(), {}
    for n in g.node:
        t = inits.get(n.input[0]) if n.op_type == "Slice" and n.output[0] not in outputs else None
        if t is None or t.name not in large or not t.dims:
            continue
        starts, ends, axes, steps = (_constant(x, inits, producers) if x else None
                                     for x in (list(n.input) + [""] * 5)[1:5])
        if starts is None or ends is None or starts.size != 1 or (axes is not None and int(axes.reshape(-1)[0]) != 0) \
                or (steps is not None and int(steps.reshape(-1)[0]) != 1):
            continue
        key, size = large[t.name]
        rows = t.dims[0]
        lo, hi = (int(np.clip(v + rows if v < 0 else v, 0, rows)) for v in (int(starts[0]), int(ends[0])))
        row_bytes = size // rows
        if hi <= lo or row_bytes * rows != size:
            continue
        name = f"{t.name}__rows_{lo}_{hi}"
        if name not in views:
            view = g.initializer.add(name=name, data_type=t.data_type, dims=[hi - lo, *t.dims[1:]])
            inits[name] = view
            views[name] = (key, lo * row_bytes, (hi - lo) * row_bytes)
        renamed[n.output[0]] = name
        drop.add(id(n))
    for n in g.node:
        for i, x in enumerate(n.input):
            if x in renamed:
                n.input[i] = renamed[x]
    kept = [n for n in g.node if id(n) not in drop]
    del g.node[:]
    g.node.extend(kept)
    return views


def _constant(name: str, inits: dict, producers: dict, depth: int = 8):
    """The value of ``name`` when small constants give it through Constant, Cast, Reshape,
    Unsqueeze or Squeeze nodes (how torch.onnx writes slice bounds), else None."""
    if name in inits:
        return numpy_helper.to_array(inits[name]) if len(inits[name].raw_data) < MIN_TENSOR_BYTES else None
    n = producers.get(name)
    if n is None or depth == 0:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
    if n.op_type == "Constant":
        if "value" in attrs:
            return numpy_helper.to_array(attrs["value"])
        ints = attrs.get("value_ints", attrs.get("value_int"))
        return None if ints is None else np.asarray(ints, np.int64)
    args = [_constant(x, inits, producers, depth - 1) for x in n.input]
    if any(a is None for a in args):
        return None
    if n.op_type == "Cast":
        return args[0].astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
    if n.op_type == "Reshape" and not attrs.get("allowzero", 0) and 0 not in args[1].tolist():
        return args[0].reshape(args[1].tolist())
    if n.op_type in ("Unsqueeze", "Squeeze") and len(args) == 2:
        axes = tuple(int(a) for a in args[1].reshape(-1))
        return np.expand_dims(args[0], axes) if n.op_type == "Unsqueeze" else np.squeeze(args[0], axes)
    return None


def _key(data_type: int, raw: bytes) -> bytes:
    return data_type.to_bytes(4, "little") + hashlib.blake2b(raw, digest_size=20).digest()
