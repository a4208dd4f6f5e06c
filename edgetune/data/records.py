"""Data files read as streams with bounded buffers: examples from CSV/TSV/JSONL, chunks of running text.

Memory does not grow with the file: one record (or one chunk of text) is held at a time,
and a record longer than `MAX_RECORD_BYTES` is refused with its line number instead of
being read whole. Every refusal is a `DataError` naming the file, the line and the fix.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from edgetune.errors import DataError, shorten

MAX_RECORD_BYTES = 1 << 20      # one example's line(s); a longer one is not a training example
# running text is read and tokenized this much at a time: the tokenizer's working memory
# grows with the piece (about 0.5 GB for one 1 MiB piece), so pieces stay small
TEXT_CHUNK_BYTES = 1 << 14
MAX_TEXT_CHUNK_CHARS = 1 << 16  # a piece with no safe cut point (no line break, no space) is cut here
SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")


@dataclass(frozen=True)
class Example:
    text: str
    label: str | None = None


def _open(path: str | Path, what: str = "data file") -> tuple[Path, BinaryIO]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} {p} does not exist")
    try:
        return p, p.open("rb")
    except OSError as e:
        raise DataError(f"cannot read {what} {p}: {e.strerror}") from e


def _physical_lines(f: BinaryIO, p: Path) -> Iterator[tuple[int, str]]:
    """(line number, decoded line without its line break), each at most MAX_RECORD_BYTES."""
    n = 0
    while True:
        raw = f.readline(MAX_RECORD_BYTES + 1)
        if not raw:
            return
        n += 1
        if len(raw) > MAX_RECORD_BYTES:
            raise DataError(f"{p}:{n} is longer than {MAX_RECORD_BYTES} bytes; one example must be shorter "
                            "(the model reads only its first tokens): split or shorten that line")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{p}:{n} is not UTF-8 text ({e.reason} at byte {e.start}); save the file as UTF-8") from e
        if n == 1:
            line = line.removeprefix("\ufeff")  # a byte-order mark some editors write
        if "\0" in line:
            raise DataError(f"{p}:{n} holds a NUL character; it is not a text file (or it is damaged)")
        yield n, line.rstrip("\r\n")


def _example(p: Path, where: int, text, label, need_labels: bool) -> Example:
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{p}:{where} has no text (found {shorten(text, 40)}); every example needs a non-empty 'text'")
    if label is not None and (isinstance(label, bool) or not isinstance(label, (str, int))):
        raise DataError(f"{p}:{where} has label {shorten(label, 40)}; a label is a string or a whole number")
    label = None if label is None else str(label)
    if need_labels and not label:
        raise DataError(f"{p}:{where} has no 'label'; a classification artifact needs text,label rows")
    try:
        (text + (label or "")).encode("utf-8")
    except UnicodeEncodeError as e:
        raise DataError(f"{p}:{where} holds a lone surrogate ({shorten(e.object[e.start:e.end])}), which is not "
                        "text; fix the escape sequence in that line") from e
    return Example(text, label)


def _jsonl(p: Path, f: BinaryIO, need_labels: bool) -> Iterator[Example]:
    for n, line in _physical_lines(f, p):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, a 5,000-digit number, deep nesting
            msg = e.msg if isinstance(e, json.JSONDecodeError) else shorten(str(e), 80)
            raise DataError(f"{p}:{n} is not valid JSON ({msg}); each line must be an object "
                            '{"text": ..., "label": ...}') from e
        if not isinstance(obj, dict):
            raise DataError(f"{p}:{n} is {type(obj).__name__}, expected an object with 'text'")
        yield _example(p, n, obj.get("text"), obj.get("label"), need_labels)


def _csv(p: Path, f: BinaryIO, need_labels: bool, delimiter: str) -> Iterator[Example]:
    lines = _physical_lines(f, p)
    header: list[str] | None = None
    for n, line in lines:
        record = line
        while record.count('"') % 2:  # inside a quoted field: the record goes on (RFC 4180 doubles inner quotes)
            nxt = next(lines, None)
            if nxt is None or len(record) + len(nxt[1]) > MAX_RECORD_BYTES:
                raise DataError(f"{p}:{n} opens a quoted field that does not close within {MAX_RECORD_BYTES} "
                                "bytes; check the quotes of that row")
            record += "\n" + nxt[1]
        if not record.strip():
            continue
        try:
            fields = next(csv.reader(io.StringIO(record), delimiter=delimiter, strict=True))
        except csv.Error as e:
            raise DataError(f"{p}:{n} is not a valid CSV row ({e}); check its quotes") from e
        if header is None:
            header = [h.strip() for h in fields]
            dup = sorted({h for h in header if header.count(h) > 1})
            if dup:
                raise DataError(f"{p}: the header repeats column(s) {shorten(dup)}; each column name must be unique")
            if "text" not in header:
                raise DataError(f"{p}: the header {shorten(header)} has no 'text' column; the file needs a "
                                "'text' column (and 'label' for classification)")
            if need_labels and "label" not in header:
                raise DataError(f"{p}: the header {shorten(header)} has no 'label' column; a classification "
                                "artifact needs text,label rows")
            continue
        if len(fields) != len(header):
            raise DataError(f"{p}:{n} has {len(fields)} fields, the header has {len(header)}; quote texts that "
                            "hold the delimiter")
        row = dict(zip(header, fields))
        yield _example(p, n, row["text"], row.get("label"), need_labels)


def iter_examples(path: str | Path, need_labels: bool = True) -> Iterator[Example]:
    """Examples of a CSV/TSV file (a header with ``text`` and ``label`` columns) or a JSONL file
    (objects with ``text`` and ``label``), one at a time."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"data file {p} has suffix {shorten(p.suffix)}; use .csv (text,label header) or .jsonl "
                        "(or .txt running text for a language model)")
    p, f = _open(p)
    with f:
        if suffix in (".jsonl", ".json"):
            yield from _jsonl(p, f, need_labels)
        else:
            yield from _csv(p, f, need_labels, "\t" if suffix == ".tsv" else ",")


def read_examples(path: str | Path, need_labels: bool = True) -> list[Example]:
    """Every example of a data file (for small files: demo data, benchmarks' splits)."""
    out = list(iter_examples(path, need_labels))
    if not out:
        raise DataError(f"data file {path} holds no examples")
    return out


# a lone space between two words: byte-level BPE's pre-tokenizers join it to the next word, so
# the cut goes before it
_LONE_SPACE = re.compile(r"(?<=\S) (?=\S)")


def _safe_cut(text: str) -> int:
    """A position where running text can be cut without changing its tokens: after the last line
    break that a non-space character follows (BERT's and byte-level BPE's pre-tokenizers split
    there), else before the last lone space between two words, else 0 (no safe cut)."""
    i = len(text)
    while (i := text.rfind("\n", 0, i)) >= 0:
        if i + 1 < len(text) and not text[i + 1].isspace():
            return i + 1
    for window in (1 << 16, len(text)):  # the last one is nearly always near the end
        lo = max(0, len(text) - window)
        starts = [m.start() for m in _LONE_SPACE.finditer(text, lo)]
        if starts:
            return starts[-1]
    return 0


def iter_text_chunks(path: str | Path) -> Iterator[str]:
    """Running UTF-8 text in consecutive chunks of about `TEXT_CHUNK_BYTES`, each cut where
    tokenizing the chunks one by one gives the tokens of the whole text (`_safe_cut`; a run
    of `MAX_TEXT_CHUNK_CHARS` characters without a space is cut where it stands)."""
    p, f = _open(path, "text file")
    decoder = codecs.getincrementaldecoder("utf-8")()
    buf, offset, seen = "", 0, False
    with f:
        while True:
            block = f.read(TEXT_CHUNK_BYTES)
            try:
                buf += decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:
                raise DataError(f"text file {p} is not UTF-8 text ({e.reason} near byte {offset + e.start}); "
                                "save it as UTF-8") from e
            offset += len(block)
            if "\0" in buf:
                raise DataError(f"text file {p} holds a NUL character near byte {offset}; it is not a text file")
            if not block:
                break
            if len(buf) < TEXT_CHUNK_BYTES:
                continue
            cut = _safe_cut(buf) or (len(buf) if len(buf) >= MAX_TEXT_CHUNK_CHARS else 0)
            if cut:
                seen = seen or bool(buf[:cut].strip())
                yield buf[:cut]
                buf = buf[cut:]
    if buf:
        seen = seen or bool(buf.strip())
        yield buf
    if not seen:
        raise DataError(f"text file {p} is empty")
