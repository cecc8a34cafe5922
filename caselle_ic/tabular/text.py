"""The one text-cleaning rule of every file this project writes for IC or Caselle.

Both the invoice file (SPEC §3) and the lockbox file (SPEC §7) are read by line-based
tools, so a value must never carry a character that any of them reads as a line break:

* every control character — C0 (``\\x00``-``\\x1f``: CR, LF, TAB, VT, FF, FS/GS/RS...),
  DEL, C1 (``\\x80``-``\\x9f``, NEL ``\\x85`` among them) — and the Unicode line and
  paragraph separators U+2028/U+2029 are replaced;
* a RUN of them becomes ONE space (so a CR LF pair, a lone LF and ``\\r\\n\\t`` read the
  same whatever the extract's line endings were);
* then surrounding spaces are trimmed.

That set is exactly what ``str.splitlines`` splits on, plus the other controls.
Vectorised (Arrow RE2 over whole columns); the input comes back as is, without a copy,
when no value needs cleaning (the usual case).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Control characters (C0, DEL, C1) and the Unicode line/paragraph separators, as a
#: character-class body valid in both Python ``re`` and RE2 (the separators literally).
CONTROL_CLASS = "\\x00-\\x1f\\x7f-\\x9f\u2028\u2029"

_CONTROL_RUN = f"[{CONTROL_CLASS}]+"
_NEEDS_CLEANING = f"[{CONTROL_CLASS}]|^ | $"
_PY_CONTROL_RUN = re.compile(_CONTROL_RUN)


def _chunked(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    out = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    return out if out.type == pa.large_string() else out.cast(pa.large_string())


def needs_cleaning(arr: pa.ChunkedArray) -> bool:
    """Whether any value has a control character or a surrounding space.

    Cheap tests first: LIKE prefix/suffix for the spaces, then the smallest and largest
    byte of the data buffers (SIMD min/max): all bytes in 0x20..0x7E is plain printable
    ASCII. Only a buffer with other bytes (control characters, or any non-ASCII text,
    which is where C1 controls and U+2028/2029 live) pays for the exact regex."""
    if pc.any(pc.match_like(arr, " %")).as_py() or pc.any(pc.match_like(arr, "% ")).as_py():
        return True
    for chunk in arr.chunks:
        data = chunk.buffers()[2] if len(chunk) else None
        if data is None or not data.size:
            continue
        raw = np.frombuffer(data, dtype=np.uint8)
        if raw.min() < 0x20 or raw.max() > 0x7E:
            return bool(pc.any(pc.match_substring_regex(arr, _NEEDS_CLEANING)).as_py())
    return False


def clean_text(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """Runs of control characters -> one space; surrounding spaces trimmed."""
    arr = _chunked(values)
    if len(arr) == 0 or not needs_cleaning(arr):
        return arr
    spaced = pc.replace_substring_regex(arr, _CONTROL_RUN, " ")
    return _chunked(pc.utf8_trim(spaced, " "))


def clean_value(value: str) -> str:
    """The same rule on one Python string (reference for tests and one-off values)."""
    return _PY_CONTROL_RUN.sub(" ", value).strip(" ")


__all__ = ["CONTROL_CLASS", "clean_text", "clean_value", "needs_cleaning"]
