"""Encoded data that batches draw rows from: in memory (`ArrayRows`) or in a temporary file
(`DiskRows`, `DiskWindows`), so a data file of any length trains in bounded memory.

A rows object has ``n`` (rows), ``lengths`` (int32 [n], tokens per row; None for
windows of running text, which are all full) and ``take(idx) -> {input name: array}``.
The temporary files are unlinked as soon as they are created: nothing is left behind,
even by a killed process.
"""
from __future__ import annotations

import itertools
import os
import tempfile
from typing import Iterator, Sequence

import numpy as np

from edgetune.data.records import Example
from edgetune.errors import DataError, shorten

ENCODE_CHUNK = 1024  # examples tokenized per call while a file is encoded
TEXT_CHUNKS_PER_CALL = 8  # pieces of running text (`TEXT_CHUNK_BYTES` each) tokenized per call, in parallel


class ArrayRows:
    """Rows of arrays already in memory (names -> arrays of equal length)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.n = len(next(iter(arrays.values())))
        mask = arrays.get("attention_mask")
        self.lengths = None if mask is None else mask.sum(axis=1).astype(np.int32)

    def take(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {name: a[idx] for name, a in self.arrays.items()}

    def close(self) -> None:
        pass


class _TempInts:
    """int32 records of ``width`` in an unlinked temporary file, read back by row index."""

    def __init__(self, width: int):
        self.width, self.n = width, 0
        self._f = tempfile.TemporaryFile(prefix="edgetune-rows-")

    def append(self, rows: np.ndarray) -> None:
        self._f.write(np.ascontiguousarray(rows, dtype="<i4").tobytes())
        self.n += len(rows)

    def read(self, idx: np.ndarray) -> np.ndarray:
        size = 4 * self.width
        self._f.flush()
        fd = self._f.fileno()
        return np.stack([np.frombuffer(os.pread(fd, size, int(i) * size), dtype="<i4") for i in idx])

    def read_span(self, start: int, count: int) -> np.ndarray:
        """``count`` consecutive int32 values from value ``start`` (a flat stream, width 1)."""
        self._f.flush()
        return np.frombuffer(os.pread(self._f.fileno(), 4 * count, 4 * start), dtype="<i4")

    def close(self) -> None:
        self._f.close()


class DiskRows:
    """Tokenized examples: per row ``seq_len`` ids, the token count and the label index (-1 without)."""

    def __init__(self, seq_len: int, labelled: bool):
        self.seq_len, self.labelled = seq_len, labelled
        self._rows = _TempInts(seq_len + 2)
        self._lengths = _TempInts(1)  # also on disk: read once, and only when batching by length
        self._lengths_read: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self._rows.n

    @property
    def lengths(self) -> np.ndarray:
        """int32 [n]: tokens per row."""
        if self._lengths_read is None:
            self._lengths_read = self._lengths.read_span(0, self._lengths.n)
        return self._lengths_read

    def append(self, ids: np.ndarray, mask: np.ndarray, labels: np.ndarray | None) -> None:
        lengths = mask.sum(axis=1).astype(np.int32)
        extra = np.stack([lengths, labels if labels is not None else np.full(len(ids), -1)], axis=1)
        self._rows.append(np.concatenate([ids, extra], axis=1))
        self._lengths.append(lengths)

    def take(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        rows = self._rows.read(idx).astype(np.int64)
        ids, lengths = rows[:, :self.seq_len], rows[:, self.seq_len]
        out = {"input_ids": ids, "attention_mask": (np.arange(self.seq_len)[None] < lengths[:, None]).astype(np.int64)}
        if self.labelled:
            out["labels"] = rows[:, self.seq_len + 1]
        return out

    def close(self) -> None:
        self._rows.close()
        self._lengths.close()


class DiskWindows:
    """Running text's token ids as one stream, read as consecutive windows of ``seq_len``
    (mask all ones); a text shorter than one window is one window padded with ``pad_id``."""

    lengths = None

    def __init__(self, seq_len: int, pad_id: int):
        self.seq_len, self.pad_id = seq_len, pad_id
        self._ids = _TempInts(1)

    @property
    def n(self) -> int:
        return max(1, self._ids.n // self.seq_len)

    def append(self, ids: list[int]) -> None:
        self._ids.append(np.asarray(ids, dtype=np.int64))

    def take(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        total, s = self._ids.n, self.seq_len
        if total < s:
            ids = np.concatenate([self._ids.read_span(0, total), np.full(s - total, self.pad_id)]).astype(np.int64)
            mask = (np.arange(s) < total).astype(np.int64)
            return {"input_ids": np.stack([ids] * len(idx)), "attention_mask": np.stack([mask] * len(idx))}
        ids = np.stack([self._ids.read_span(int(i) * s, s) for i in idx]).astype(np.int64)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids)}

    def close(self) -> None:
        self._ids.close()


def label_indices(examples: Sequence[Example], labels: Sequence[str], first: int = 1) -> np.ndarray:
    """Map string labels to indices of ``labels``; an unknown label is a DataError naming the
    example (numbered from ``first``)."""
    index = {label: i for i, label in enumerate(labels)}
    out = np.empty(len(examples), dtype=np.int64)
    for i, ex in enumerate(examples):
        if ex.label not in index:
            raise DataError(f"example {first + i} has label {shorten(ex.label)}, which the artifact does not "
                            f"know; known labels: {shorten(list(labels), 200)}")
        out[i] = index[ex.label]
    return out


def encode_examples(encoder, examples: Iterator[Example], labels: list[str] | None) -> DiskRows:
    """Tokenize a stream of examples ``ENCODE_CHUNK`` at a time into a `DiskRows`
    (``labels``: the artifact's label names, or None for unlabelled rows)."""
    rows = DiskRows(encoder.seq_len, labels is not None)
    try:
        chunk: list[Example] = []
        for ex in examples:
            chunk.append(ex)
            if len(chunk) == ENCODE_CHUNK:
                _append(rows, encoder, chunk, labels)
                chunk = []
        if chunk:
            _append(rows, encoder, chunk, labels)
        if rows.n == 0:
            raise DataError("the data file holds no examples")
    except BaseException:
        rows.close()
        raise
    return rows


def _append(rows: DiskRows, encoder, chunk: list[Example], labels: list[str] | None) -> None:
    ids, mask = encoder.encode([e.text for e in chunk])
    rows.append(ids, mask, None if labels is None else label_indices(chunk, labels, first=rows.n + 1))


def encode_windows(encoder, chunks: Iterator[str]) -> DiskWindows:
    """Running text, chunk by chunk, into token windows of the encoder's sequence length."""
    win = DiskWindows(encoder.seq_len, encoder.pad_id)
    chunks = iter(chunks)
    try:
        while group := list(itertools.islice(chunks, TEXT_CHUNKS_PER_CALL)):
            for ids in encoder.tokens_batch(group):  # in order: the windows run on across chunks
                win.append(ids)
    except BaseException:
        win.close()
        raise
    return win
