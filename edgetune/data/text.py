"""Text examples -> fixed-shape integer batches, with numpy and `tokenizers` only.

Torch-free on purpose: the device runner uses exactly this path, and the host
uses it too, so eager references and runtimes see the same token ids.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from edgetune.errors import DataError


@dataclass(frozen=True)
class Example:
    text: str
    label: str | None = None


def read_examples(path: str | Path, need_labels: bool = True) -> list[Example]:
    """Read a CSV (header with ``text`` and ``label`` columns) or JSONL file
    (objects with ``text`` and ``label``) into examples.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file {p} does not exist")
    rows: list[dict] = []
    try:
        if p.suffix.lower() in (".jsonl", ".json"):
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DataError(f"{p}:{i} is not valid JSON ({e.msg}); each line must be an object "
                                        '{"text": ..., "label": ...}') from e
                    if not isinstance(obj, dict):
                        raise DataError(f"{p}:{i} is {type(obj).__name__}, expected an object with 'text'")
                    rows.append(obj)
        elif p.suffix.lower() in (".csv", ".tsv"):
            with p.open(newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f, delimiter="\t" if p.suffix.lower() == ".tsv" else ","))
        else:
            raise DataError(f"data file {p} has suffix {p.suffix!r}; use .csv (text,label header) or .jsonl "
                            "(or .txt running text for a language model)")
    except UnicodeDecodeError as e:
        raise DataError(f"data file {p} is not UTF-8 text ({e})") from e
    out = []
    for i, r in enumerate(rows, 1):
        text = r.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{p}: example {i} has no 'text' field (keys: {sorted(r)}); "
                            "the file needs a 'text' column")
        label = r.get("label")
        if need_labels and (label is None or str(label) == ""):
            raise DataError(f"{p}: example {i} has no 'label'; a classification artifact needs text,label rows")
        out.append(Example(text, None if label is None else str(label)))
    if not out:
        raise DataError(f"data file {p} holds no examples")
    return out


class TextEncoder:
    """A `tokenizers` tokenizer set to a fixed sequence length.

    ``encode(texts) -> (input_ids int64 [n, seq_len], attention_mask int64 [n, seq_len])``
    """

    def __init__(self, tokenizer_json: str | Path, seq_len: int):
        from tokenizers import Tokenizer  # Rust library, no torch

        try:
            self.tok = Tokenizer.from_file(str(tokenizer_json))
        except Exception as e:  # tokenizers raises plain Exception subclasses
            raise DataError(f"cannot read tokenizer {tokenizer_json}: {e}") from e
        self.seq_len = seq_len
        pad_id = self.tok.token_to_id("[PAD]")
        if pad_id is None:
            pad_id = self.tok.token_to_id("<pad>")
        self.tok.enable_truncation(max_length=seq_len)
        self.tok.enable_padding(length=seq_len, pad_id=pad_id or 0)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        encs = self.tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        return ids, mask

    def tokens(self, text: str) -> list[int]:
        """All token ids of ``text`` (no truncation, padding or special tokens)."""
        from tokenizers import Tokenizer

        whole = Tokenizer.from_str(self.tok.to_str())
        whole.no_truncation()
        whole.no_padding()
        return whole.encode(text, add_special_tokens=False).ids

    def windows(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Running text -> consecutive non-overlapping windows of ``seq_len`` tokens
        (ids, mask) [n, seq_len], for next-token training. A text shorter than one
        window becomes one padded window; otherwise the ragged tail is dropped."""
        ids = np.array(self.tokens(text), dtype=np.int64)
        n = len(ids) // self.seq_len
        if n == 0:
            pad = self.tok.padding["pad_id"] if self.tok.padding else 0
            mask = (np.arange(self.seq_len) < len(ids)).astype(np.int64)[None]
            return np.concatenate([ids, np.full(self.seq_len - len(ids), pad, np.int64)])[None], mask
        ids = ids[: n * self.seq_len].reshape(n, self.seq_len)
        return ids, np.ones_like(ids)


def read_text(path: str | Path) -> str:
    """A plain UTF-8 text file (a person's writing) for next-token training."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"text file {p} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"text file {p} is not UTF-8 text ({e})") from e
    if not text.strip():
        raise DataError(f"text file {p} is empty")
    return text


def split_text(text: str, held_out: float = 0.1) -> tuple[str, str]:
    """-> (first 1 - held_out, last held_out) of ``text``, cut at a line break."""
    if not 0 < held_out < 1:
        raise DataError(f"held_out={held_out} must lie in (0, 1)")
    cut = int(len(text) * (1 - held_out))
    nl = text.rfind("\n", 0, cut)
    cut = nl + 1 if nl > 0 else cut
    return text[:cut], text[cut:]


def label_indices(examples: Sequence[Example], labels: Sequence[str]) -> np.ndarray:
    """Map string labels to indices of ``labels``; an unknown label is a DataError."""
    index = {l: i for i, l in enumerate(labels)}
    out = np.empty(len(examples), dtype=np.int64)
    for i, ex in enumerate(examples):
        if ex.label not in index:
            raise DataError(f"example {i + 1} has label {ex.label!r}, which the artifact does not know; "
                            f"known labels: {list(labels)}")
        out[i] = index[ex.label]
    return out


LENGTH_POOL = 50  # batches whose texts are sorted by length together (length bucketing)


def fixed_batches(arrays: dict[str, np.ndarray], batch_size: int, *, seed: int = 0,
                  shuffle: bool = True, start: int = 0, by_length: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """Endless fixed-size batches over equally long arrays.

    Epochs are reshuffled with ``seed + epoch``; a short last batch is filled by
    wrapping around, so every batch has exactly ``batch_size`` rows (the step
    program has a fixed shape). ``start`` skips that many batches, so a resumed
    run continues with the batch it would have seen next.

    ``by_length`` (needs an ``attention_mask``): each run of `LENGTH_POOL` batches of
    the shuffled epoch is sorted by text length, cut into batches, and those batches are
    shuffled, so a batch holds texts of similar length and can run padding-free
    (`Manifest.step_program_for`) while the epoch still visits every text once.
    """
    n = len(next(iter(arrays.values())))
    if n == 0:
        raise DataError("no examples to batch")
    if by_length and "attention_mask" not in arrays:
        raise DataError("batching by length needs an attention_mask")
    per_epoch = -(-n // batch_size)
    k = start
    epoch_order = None
    while True:
        epoch, pos = divmod(k, per_epoch)
        if epoch_order is None or epoch_order[0] != epoch:
            epoch_order = (epoch, _epoch_order(arrays, n, batch_size, seed + epoch, shuffle, by_length))
        idx = epoch_order[1][pos]
        yield {name: a[idx] for name, a in arrays.items()}
        k += 1


def _epoch_order(arrays, n: int, batch_size: int, seed: int, shuffle: bool, by_length: bool) -> list[np.ndarray]:
    """One epoch's batches as index arrays [batch_size] (the last one wraps around)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n) if shuffle else np.arange(n)
    per_epoch = -(-n // batch_size)
    order = np.take(order, np.arange(per_epoch * batch_size), mode="wrap")
    batches = order.reshape(per_epoch, batch_size)
    if not by_length:
        return list(batches)
    lengths = arrays["attention_mask"].sum(axis=1)
    out = []
    for lo in range(0, per_epoch, LENGTH_POOL):
        pool = batches[lo:lo + LENGTH_POOL].reshape(-1)
        pool = pool[np.argsort(lengths[pool], kind="stable")].reshape(-1, batch_size)
        out += [pool[i] for i in rng.permutation(len(pool))]
    return out
