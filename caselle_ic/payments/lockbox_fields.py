"""The fields of a lockbox line (SPEC §7), formatted over whole columns.

Amounts in ``999,999,999.99`` form (quoted: they hold a comma), names cleaned by the text
rule and cut to 30 characters, quoting only where a value holds a comma or a double
quote; and the facts about account numbers that decide whether a line can be written.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.tabular.strbytes import byte_lengths, edge_bytes, holding_any, value_bytes
from caselle_ic.tabular.text import CONTROL_CLASS, clean_text

NAME_CHARS = 30

STR = pa.large_string()


def join_text(*parts: pa.Array | str, sep: str = "") -> pa.Array:
    """Element-wise concatenation with a separator (string literals broadcast)."""
    args = [pa.scalar(p, STR) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, pa.scalar(sep, STR))


def text_array(values: pd.Series | pa.Array) -> pa.Array:
    """A text column as one Arrow ``large_string`` array (blank for a missing value)."""
    if isinstance(values, pa.Array):
        return values
    arr = pa.array(values.astype("string").fillna(""), type=STR)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


#: An amount's bytes, right-aligned in a 16-byte row: four 4-byte words, each looked up
#: by value: [pad, 999] [",", 999] [",", 999] [".", 99, '"'] (the first word's pad byte
#: takes the opening quote when all nine digits are used).
_WORD_FIRST = np.frombuffer(b"".join(b'"' + b"%03d" % i for i in range(1000)), dtype=np.uint32)
_WORD_GROUP = np.frombuffer(b"".join(b"," + b"%03d" % i for i in range(1000)), dtype=np.uint32)
_WORD_CENTS = np.frombuffer(b"".join(b"." + b"%02d" % i + b'"' for i in range(100)), dtype=np.uint32)
_AMOUNT_WIDTH = 16
_DIGIT_THRESHOLDS = np.array([10**k for k in range(1, 9)], dtype=np.int64)


def quote(arr: pa.Array) -> pa.Array:
    """Quote only the values holding a comma or a double quote; double embedded quotes."""
    holding = holding_any(arr, b',"')
    if not holding.any():
        return arr
    needs = pa.array(holding)
    subset = pc.filter(arr, needs)
    return pc.replace_with_mask(arr, needs, join_text('"', pc.replace_substring(subset, '"', '""'), '"'))


def format_amounts(cents: pd.Series | np.ndarray) -> pa.Array:
    """Integer cents (0 .. 999,999,999.99) -> ``999,999,999.99`` form, quoted when it
    holds a comma.

    Built as bytes: each amount is written right-aligned into a row of a 16-column byte
    matrix by table lookup (three-digit groups, the cents), and the rows' used columns are
    packed into one Arrow string buffer (no per-value formatting, no string joins)."""
    c = np.asarray(cents, dtype=np.int64)
    n = len(c)
    whole, frac = c // 100, c % 100
    words = np.empty((n, 4), dtype=np.uint32)
    words[:, 0] = _WORD_FIRST[whole // 1_000_000]
    words[:, 1] = _WORD_GROUP[(whole // 1000) % 1000]
    words[:, 2] = _WORD_GROUP[whole % 1000]
    words[:, 3] = _WORD_CENTS[frac]
    rows = words.view(np.uint8)  # (n, 16), the bytes as the words were spelled
    digits = 1 + np.searchsorted(_DIGIT_THRESHOLDS, whole, side="right")
    quoted = whole >= 1000
    start = 12 - digits - (digits - 1) // 3 - quoted  # first column used
    rows[np.flatnonzero(quoted), start[quoted]] = ord('"')
    used = np.arange(_AMOUNT_WIDTH) >= start[:, None]
    used[~quoted, 15] = False  # the closing quote
    lengths = 15 - start + quoted
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = rows[used]
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def clean_name(name: pd.Series | pa.Array) -> pa.Array:
    """The invoice file's text rule (tabular/text.py: a run of control characters or
    Unicode line breaks -> one space, trimmed), then cut to 30 characters (and the cut
    value's trailing space dropped)."""
    arr = clean_text(text_array(name)).combine_chunks()
    if byte_lengths(arr).max(initial=0) <= NAME_CHARS:  # no value is longer: nothing to cut
        return arr
    cut = pc.utf8_slice_codeunits(arr, 0, NAME_CHARS)
    return pc.utf8_rtrim(cut, " ") if pc.any(pc.match_like(cut, "% ")).as_py() else cut


def account_facts(acct: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(blank after trimming, characters, holds a control character) per account number.
    Plain printable ASCII (the usual column) is answered from the bytes; the Arrow
    kernels run only when some byte is outside it."""
    size = byte_lengths(acct)
    if not any(raw.min() < 0x20 or raw.max() > 0x7E for raw in value_bytes(acct)):
        first, last = edge_bytes(acct)
        blank = size == 0
        if (first == ord(" ")).any() or (last == ord(" ")).any():
            blank = pc.equal(pc.utf8_trim_whitespace(acct), "").to_numpy(zero_copy_only=False)
        return blank, size, np.zeros(len(acct), dtype=bool)
    return (
        pc.equal(pc.utf8_trim_whitespace(acct), "").to_numpy(zero_copy_only=False),
        pc.utf8_length(acct).to_numpy(zero_copy_only=False),
        pc.match_substring_regex(acct, f"[{CONTROL_CLASS}]").to_numpy(zero_copy_only=False),
    )
