"""Typed reads of untrusted JSON values, with the contract's bounds.

Each reader returns the value or raises ``ValueError`` naming the field and the value
(shortened); `edgetune.contract.manifest` turns that into an `ArtifactError`.
"""
from __future__ import annotations

import math
import re

from edgetune.errors import shorten

MAX_BATCH = 4096                 # rows of a batch
MAX_SEQ_LEN = 65536              # tokens of a sequence
MAX_BATCH_TOKENS = 2**20         # batch_size * seq_len: the batch arrays stay a few MB
MAX_ELEMENTS = 2**31 - 1         # elements of one tensor
MAX_WHOLE = 2**53                # largest whole number every JSON reader represents exactly
MAX_NAME = 1024                  # characters of a tensor, program or file name
FLOAT32_MAX = 3.4028234663852886e38
SHA256 = re.compile(r"[0-9a-f]{64}")


def batch_shape_ok(batch, seq_len) -> bool:
    """Whether a program's batch shape [batch, seq_len] lies within the contract's bounds."""
    return (not isinstance(batch, bool) and isinstance(batch, int) and 1 <= batch <= MAX_BATCH
            and 2 <= seq_len <= MAX_SEQ_LEN and batch * seq_len <= MAX_BATCH_TOKENS)


def whole(x, field: str, lo: int = 0, hi: int = MAX_WHOLE) -> int:
    """``x`` if it is a whole number in [lo, hi] (JSON 4, not 4.7, "4" or true)."""
    if isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi:
        raise ValueError(f"{field} must be a whole number in [{lo}, {hi}], not {shorten(x)}")
    return x


def number(x, field: str, positive: bool = False) -> float:
    """A finite JSON number that fits float32 (and is > 0 with ``positive``)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or abs(x) > FLOAT32_MAX \
            or (positive and x <= 0):
        raise ValueError(f"{field} must be a {'positive ' if positive else ''}finite float32 number, not {shorten(x)}")
    return float(x)


def text(x, field: str, limit: int = MAX_NAME) -> str:
    if not isinstance(x, str) or not x or len(x) > limit:
        raise ValueError(f"{field} must be a non-empty string of at most {limit} characters, not {shorten(x)}")
    return x


def file_name(x, field: str) -> str:
    """A plain file name inside the artifact: no directory part, not hidden."""
    name = text(x, field)
    if "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        raise ValueError(f"{field} must be a plain file name inside the artifact, not {shorten(name)}")
    return name


def mapping(x, field: str) -> dict:
    if not isinstance(x, dict):
        raise ValueError(f"{field} must be a JSON object, not {shorten(x)}")
    return x


def listing(x, field: str, limit: int = 2**20) -> list:
    if not isinstance(x, list) or len(x) > limit:
        raise ValueError(f"{field} must be a JSON list of at most {limit} entries, not {shorten(x)}")
    return x


def sha256_hex(x, field: str) -> str:
    if not isinstance(x, str) or not SHA256.fullmatch(x):
        raise ValueError(f"{field} must be a sha256 in 64 lowercase hex digits, not {shorten(x)}")
    return x
