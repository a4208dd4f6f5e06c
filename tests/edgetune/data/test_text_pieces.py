"""Running text read and tokenized in pieces gives the token ids of the whole text (the
contract's safe cuts), for WordPiece and byte-level BPE, on text with long lines."""
import random

import pytest

from edgetune.data.records import MAX_TEXT_CHUNK_CHARS, TEXT_CHUNK_BYTES, iter_text_chunks
from edgetune.data.rows import encode_windows
from edgetune.data.text import TextEncoder

PARTS = ["Dear diary,", "café naïve", "東京で会いましょう", "🙂🙂 ok", "https://example.org/a?b=1", "tab\there",
         "  two  spaces", "end."]


def _text(rng: random.Random) -> str:
    lines = []
    for _ in range(400):
        words = [rng.choice(PARTS) for _ in range(rng.randint(0, 30))]
        lines.append(" ".join(words))
    # one line of several pieces with no line break, then blank lines and indented lines
    lines.insert(200, " ".join(rng.choice(PARTS) for _ in range(3 * TEXT_CHUNK_BYTES // 8)))
    lines.insert(50, "\n\n   indented after blank lines")
    return "\n".join(lines) + "\n"


@pytest.fixture(params=["wordpiece", "bpe"])
def encoder(request):
    art = request.getfixturevalue("tiny_artifact")[0] if request.param == "wordpiece" \
        else request.getfixturevalue("tiny_lm")[0] / "art"
    return TextEncoder(art / "tokenizer.json", 16)


def test_pieces_give_the_ids_of_the_whole_text(encoder, tmp_path):
    text = _text(random.Random(0))
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    pieces = list(iter_text_chunks(path))
    assert len(pieces) > 4 and "".join(pieces) == text
    win = encode_windows(encoder, iter(pieces))
    try:
        got = win._ids.read_span(0, win._ids.n).tolist()
    finally:
        win.close()
    assert got == encoder.tokens(text)


def test_a_run_without_a_safe_cut_is_cut_at_the_limit(tmp_path):
    path = tmp_path / "run.txt"
    path.write_text("x" * (2 * MAX_TEXT_CHUNK_CHARS + 5), encoding="utf-8")
    assert [len(p) for p in iter_text_chunks(path)] == [MAX_TEXT_CHUNK_CHARS, MAX_TEXT_CHUNK_CHARS, 5]
