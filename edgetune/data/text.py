"""Text examples -> fixed-shape integer batches, with numpy and `tokenizers` only.

Torch-free on purpose: the device runner uses exactly this path, and the host
uses it too, so eager references and runtimes see the same token ids.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from edgetune.data.rows import ArrayRows
from edgetune.errors import DataError, shorten

# A text is cut to CHARS_PER_TOKEN * seq_len characters (before its last lone space) before it
# is tokenized: its first seq_len tokens are the same unless they average more characters than
# that, and a huge text costs no more than that.
CHARS_PER_TOKEN = 64


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
        self.max_chars = CHARS_PER_TOKEN * seq_len
        pad_id = self.tok.token_to_id("[PAD]")
        if pad_id is None:
            pad_id = self.tok.token_to_id("<pad>")
        self.pad_id = pad_id or 0
        self._whole = None  # the same tokenizer without truncation or padding, for running text
        self.tok.enable_truncation(max_length=seq_len)
        self.tok.enable_padding(length=seq_len, pad_id=self.pad_id)

    def cut(self, text: str) -> str:
        """``text`` cut to `max_chars` before tokenizing (see CHARS_PER_TOKEN)."""
        if len(text) <= self.max_chars:
            return text
        space = text.rfind(" ", self.max_chars // 2, self.max_chars)
        return text[:space if space > 0 else self.max_chars]

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """-> (input_ids int64 [n, seq_len], attention_mask int64 [n, seq_len])."""
        try:
            encs = self.tok.encode_batch([self.cut(t) for t in texts])
        except Exception as e:  # tokenizers raises plain Exceptions
            raise DataError(f"the tokenizer refused a text ({shorten(str(e), 120)})") from e
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        return ids, mask

    def tokens(self, text: str) -> list[int]:
        """All token ids of ``text`` (no truncation, padding or special tokens)."""
        return self.tokens_batch([text])[0]

    def tokens_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """`tokens` of each text; the tokenizer spreads the texts over the cores."""
        if self._whole is None:
            from tokenizers import Tokenizer

            self._whole = Tokenizer.from_str(self.tok.to_str())
            self._whole.no_truncation()
            self._whole.no_padding()
        return [e.ids for e in self._whole.encode_batch(list(texts), add_special_tokens=False)]

    def windows(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Running text -> consecutive non-overlapping windows of ``seq_len`` tokens
        (ids, mask) [n, seq_len], for next-token training. A text shorter than one
        window becomes one padded window; otherwise the ragged tail is dropped."""
        ids = np.array(self.tokens(text), dtype=np.int64)
        n = len(ids) // self.seq_len
        if n == 0:
            mask = (np.arange(self.seq_len) < len(ids)).astype(np.int64)[None]
            return np.concatenate([ids, np.full(self.seq_len - len(ids), self.pad_id, np.int64)])[None], mask
        ids = ids[: n * self.seq_len].reshape(n, self.seq_len)
        return ids, np.ones_like(ids)


def read_text(path: str | Path) -> str:
    """A plain UTF-8 text file (a person's writing), whole: for the host's small files (the
    device side streams text with `edgetune.data.records.iter_text_chunks`)."""
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


LENGTH_POOL = 50  # batches whose texts are sorted by length together (length bucketing)


def fixed_batches(rows, batch_size: int, *, seed: int = 0, shuffle: bool = True, start: int = 0,
                  by_length: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """Endless fixed-size batches over ``rows`` (an `edgetune.data.rows` object, or a dict of
    equally long arrays).

    Epochs are reshuffled with ``seed + epoch``; a short last batch is filled by
    wrapping around, so every batch has exactly ``batch_size`` rows (the step
    program has a fixed shape). ``start`` skips that many batches, so a resumed
    run continues with the batch it would have seen next.

    ``by_length`` (needs token lengths): each run of `LENGTH_POOL` batches of the shuffled
    epoch is sorted by text length, cut into batches, and those batches are shuffled, so a
    batch holds texts of similar length and can run padding-free
    (`Manifest.step_program_for`) while the epoch still visits every text once.
    """
    rows = ArrayRows(rows) if isinstance(rows, dict) else rows
    if rows.n == 0:
        raise DataError("no examples to batch")
    if by_length and rows.lengths is None:
        raise DataError("batching by length needs an attention_mask")
    per_epoch = -(-rows.n // batch_size)
    k = start
    epoch_order = None
    while True:
        epoch, pos = divmod(k, per_epoch)
        if epoch_order is None or epoch_order[0] != epoch:
            epoch_order = None  # one epoch's order in memory at a time
            epoch_order = (epoch, _epoch_order(rows, batch_size, seed + epoch, shuffle, by_length))
        yield rows.take(epoch_order[1][pos])
        k += 1


def _epoch_order(rows, batch_size: int, seed: int, shuffle: bool, by_length: bool) -> np.ndarray:
    """One epoch's batches as row indices [batches, batch_size] (the last one wraps around).
    Built in place in one int32 array while every index fits (4 bytes per row): the order
    is ``default_rng(seed).permutation(n)``, which shuffles an arange the same way."""
    rng = np.random.default_rng(seed)
    n = rows.n
    per_epoch = -(-n // batch_size)
    batches = np.empty(per_epoch * batch_size, dtype=np.int32 if n < 2**31 else np.int64)
    order = batches[:n]
    order[:] = np.arange(n, dtype=batches.dtype)
    if shuffle:
        rng.shuffle(order)
    tail = batches[n:]
    tail[:] = np.resize(order[:len(tail)], len(tail))  # wrap round (the tail is shorter than a batch)
    batches = batches.reshape(per_epoch, batch_size)
    if not by_length:
        return batches
    lengths = rows.lengths
    for lo in range(0, per_epoch, LENGTH_POOL):
        pool = batches[lo:lo + LENGTH_POOL].reshape(-1)
        pool = pool[np.argsort(lengths[pool], kind="stable")].reshape(-1, batch_size)  # a copy
        batches[lo:lo + len(pool)] = pool[rng.permutation(len(pool))]
    return batches
