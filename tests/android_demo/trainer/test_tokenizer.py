"""The Kotlin tokenizer gives the ids of Hugging Face `tokenizers` (the reference the contract
names) for MiniLM's WordPiece and SmolLM2's byte-level BPE tokenizer, on a corpus with accents,
CJK, emoji, long words, special-token text, whitespace and control characters, empty strings and
random Unicode."""
import json

import numpy as np
import pytest

from edgetune.data.text import TextEncoder

CORPUS = [
    "", " ", "\n", "a", "Hello, world!", "Remind me to call the dentist tomorrow at 9am.",
    "Café au lait, naïve résumé, Straße, Ångström, São Paulo, Łódź, İstanbul, ΣΊΣΥΦΟΣ σίσυφος",
    "東京で会いましょう。北京欢迎你！서울에서 만나요. 中文字符和English混合",
    "🙂🙃 emoji 👩‍👩‍👧‍👦 family 🇫🇷 flag ✔️ check 1️⃣ keycap",
    "don't won't it's o'clock I'm we've they'll she'd #tag @someone",
    "https://example.org/a?b=1&c=%20x#frag user@example.com C:\\path\\file.txt",
    "UPPER lower MiXeD   spaces\tand\ttabs\nnew line\r\nwindows  \u00a0nbsp \u3000ideographic\u2009thin",
    "pneumonoultramicroscopicsilicovolcanoconiosis " + "x" * 150 + " supercalifragilisticexpialidocious",
    "numbers 3.14159 1,000,000 12345678901234567890 ١٢٣ ४५६ Ⅻ ½",
    "punctuation «quotes» „Anführung“ — dash – en … ellipsis ¿qué? ¡sí! 【brackets】 『』",
    "[CLS] literal special tokens [SEP] [MASK] [PAD] <|im_start|>user\nhi<|im_end|> <|endoftext|>",
    "zero\u200bwidth\u200djoiner soft\u00adhyphen bidi\u202eoverride\u202c control\x07bell\x00nul",
    "combining: e\u0301 a\u0308 n\u0303 precomposed é ä ñ, Hangul jamo \u1100\u1161\u11a8",
    "עברית مرحبا بالعالم Ελληνικά русский текст ไทย हिन्दी",
    "    leading and trailing spaces    ", "tabs\t\t\tonly", "a" * 3000, "word " * 400,
]


def random_texts(n: int, seed: int = 0) -> list[str]:
    """Texts of code points drawn from many scripts, symbols, spaces and controls."""
    rng = np.random.default_rng(seed)
    ranges = [(0x20, 0x7e), (0x00, 0x1f), (0xa0, 0x24f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x6ff),
              (0x900, 0x97f), (0xe00, 0xe7f), (0x1100, 0x11ff), (0x2000, 0x206f), (0x3000, 0x30ff),
              (0x4e00, 0x9fff), (0xac00, 0xd7a3), (0xf900, 0xfaff), (0xfe00, 0xfe0f), (0x1f300, 0x1faff),
              (0x20000, 0x2a6df), (0xe000, 0xe0ff)]
    out = []
    for _ in range(n):
        chars = []
        for _ in range(int(rng.integers(1, 60))):
            lo, hi = ranges[int(rng.integers(len(ranges)))]
            chars.append(chr(int(rng.integers(lo, hi + 1))))
            if rng.random() < 0.25:
                chars.append(" ")
        out.append("".join(chars))
    return out


@pytest.fixture(scope="module")
def smollm2_tokenizer(tmp_path_factory):
    from edgetune.models.llama import gguf_tokenizer_json, smollm2_gguf_path

    return gguf_tokenizer_json(smollm2_gguf_path(), tmp_path_factory.mktemp("smol") / "tokenizer.json")


@pytest.fixture(scope="module")
def minilm_tokenizer():
    from edgetune.models.minilm import minilm_path

    return minilm_path() / "tokenizer.json"


@pytest.mark.parametrize("which", ["minilm_tokenizer", "smollm2_tokenizer"])
@pytest.mark.parametrize("seq_len", [16, 128])
def test_ids_equal_hugging_face_tokenizers(request, kotlin_trainer, tmp_path, which, seq_len):
    path = request.getfixturevalue(which)
    texts = CORPUS + random_texts(300)
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    kotlin_trainer.run("ToolsMain", "tokenize", path, seq_len, tmp_path / "texts.json", tmp_path / "out.json")
    got = json.loads((tmp_path / "out.json").read_text())
    enc = TextEncoder(path, seq_len)
    ids, mask = enc.encode(texts)
    bad = [i for i in range(len(texts)) if got["input_ids"][i] != ids[i].tolist() or got["attention_mask"][i] != mask[i].tolist()]
    assert not bad, [(texts[i][:60], got["input_ids"][i][:12], ids[i][:12].tolist()) for i in bad[:3]]
    whole = enc.tokens_batch(texts)  # every id, no specials, no truncation: language models' running text
    bad = [i for i in range(len(texts)) if got["tokens"][i] != whole[i]]
    assert not bad, [(texts[i][:60], got["tokens"][i][:12], whole[i][:12]) for i in bad[:3]]
