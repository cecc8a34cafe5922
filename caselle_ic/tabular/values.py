"""Vectorized parsing and formatting of the value kinds the inputs carry (SPEC §2).

Money is integer cents (``int64``) from parse to write: exact, never binary float.
An amount with more than two decimals is *invalid*, not rounded: rounding money
silently is how a town's deposit stops balancing.

Every parser returns ``(values, bad)``: ``bad`` is a boolean mask of the non-empty
inputs that could not be parsed, so callers quarantine exactly those rows.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.tabular.strbytes import byte_lengths, edge_bytes, form_matches, value_bytes

# 1234.5 | 1,234.50 | $1,234.50 | -12.00 | -$12.00 | (12.00) | ($12.00) | .50
# One RE2 pattern (Arrow compute, no look-arounds): the groups are checked afterwards.
_AMOUNT = (
    r"^(?:(?P<open>\()\s*)?(?P<neg>-)?\$?(?P<int>\d{1,3}(?:,\d{3})+|\d*)"
    r"(?:\.(?P<frac>\d{1,2}))?(?:\s*(?P<close>\)))?$"
)
_PLAIN_AMOUNT = r"^-?\d{1,13}\.\d{2}$"
_MAX_DIGITS = 15  # 10**15 cents: far beyond any bill, far below int64 overflow
_STRING_TYPES = {pa.large_string(): pd.StringDtype("pyarrow"), pa.string(): pd.StringDtype("pyarrow")}


def extract_groups(s: pd.Series, pattern: str) -> tuple[pd.DataFrame, pd.Series]:
    """Regex named groups of every value, in Arrow's RE2 engine (pandas' ``str.extract``
    runs a Python loop per value: ~20x slower).

    Returns ``(groups, matched)``: one ``string`` column per named group, ``""`` where the
    group did not take part or the value did not match; ``matched`` is a boolean mask.
    ``\\Z`` in the pattern (Python's end of text) is read as RE2's ``$`` (the same without
    the multi-line flag). RE2 has no look-around; ``\\d`` is ASCII digits only.
    """
    text = s.astype("string").fillna("")
    arr = pa.array(text, type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):  # pragma: no cover - pa.array gives an Array
        arr = arr.combine_chunks()
    found = pc.extract_regex(arr, pattern.replace(r"\Z", "$"))
    matched = pd.Series(found.is_valid().to_numpy(zero_copy_only=False), index=s.index)
    groups = {}
    for i in range(found.type.num_fields):
        field = found.field(i)
        col = pc.if_else(found.is_valid(), field, pa.scalar("", pa.large_string()))
        groups[found.type.field(i).name] = (
            col.to_pandas(types_mapper=_STRING_TYPES.get).astype("string").set_axis(s.index)
        )
    return pd.DataFrame(groups, index=s.index), matched


def arrow_strings(s: pd.Series) -> pa.ChunkedArray:
    """The values of a text Series as an Arrow ``large_string`` array (zero-copy when the
    Series is Arrow-backed, as everything csvin reads is)."""
    arr = s.array
    if hasattr(arr, "__arrow_array__") and isinstance(s.dtype, pd.StringDtype | pd.ArrowDtype):
        out = arr.__arrow_array__()
        chunked = out if isinstance(out, pa.ChunkedArray) else pa.chunked_array([out])
    else:
        chunked = pa.chunked_array([pa.array(s.astype(object), type=pa.large_string(), from_pandas=True)])
    if chunked.type != pa.large_string():
        chunked = chunked.cast(pa.large_string())
    return chunked


def string_series(values: pa.Array | pa.ChunkedArray, index: pd.Index | None = None) -> pd.Series:
    """An Arrow string array as a pandas ``string`` Series (zero-copy)."""
    chunked = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    if chunked.type != pa.large_string():
        chunked = chunked.cast(pa.large_string())
    return pd.Series(pd.arrays.ArrowStringArray(chunked), index=index, copy=False)


def empty_strings(n: int) -> pa.Array:
    """``n`` empty strings, without allocating ``n`` Python objects."""
    offsets = pa.py_buffer(np.zeros(n + 1, dtype=np.int64))
    return pa.LargeStringArray.from_buffers(n, offsets, pa.py_buffer(b""))


def _printable(b: np.ndarray) -> bool:
    """Every byte printable ASCII other than space (never whitespace, never part of a
    multi-byte character)."""
    return bool(((b - np.uint8(0x21)) <= np.uint8(0x7E - 0x21)).all())


def trimmed(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Values with surrounding whitespace removed; no copy when every value starts and
    ends with a byte that cannot be whitespace (the usual column: names have inner
    spaces only)."""
    # a column with no byte at or below the space and none outside ASCII (GUIDs, dates,
    # amounts, ids) holds no whitespace at all: one pass over its data, no gather
    if all(_printable(raw) for raw in value_bytes(values)):
        return values
    first, last = edge_bytes(values)
    if _printable(first) and _printable(last):
        return values
    return pc.utf8_trim_whitespace(values)


def ascii_only(values: pa.ChunkedArray) -> bool:
    """Whether every value is ASCII (then the ``ascii_*`` kernels give the ``utf8_*`` result)."""
    return all(raw.max() < 0x80 for raw in value_bytes(values))


def mostly_repeated(arr: pa.Array, *, sample: int = 50_000) -> bool:
    """Whether a big column repeats its values a lot (fewer than 1 in 10 distinct in a
    sample): then work once per distinct value and map back beats working per row."""
    n = len(arr)
    return n > 1000 and pc.count_distinct(arr.slice(0, sample)).as_py() * 10 < min(n, sample)


def map_distinct(values: pa.Array | pa.ChunkedArray, fn: Callable[[pa.Array], pa.Array]) -> pa.ChunkedArray:
    """``fn`` (Arrow strings -> Arrow strings, element-wise) applied once per distinct
    value when the column mostly repeats, else to every value."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if mostly_repeated(arr):
        encoded = pc.dictionary_encode(arr)
        out = pc.take(fn(encoded.dictionary), encoded.indices)
    else:
        out = fn(arr)
    return out if isinstance(out, pa.ChunkedArray) else pa.chunked_array([out])


def _by_distinct(
    s: pd.Series, parse: Callable[[pa.Array], tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``parse`` (Arrow strings -> values, bad) once per distinct value and map the
    results back: a cycle repeats its dates and many of its amounts on every line."""
    arr = trimmed(arrow_strings(s)).combine_chunks()
    n = len(arr)
    if n <= 1000:
        return parse(arr)
    # Hashing millions of distinct values costs more than parsing them: sample first.
    if not mostly_repeated(arr):
        return parse(arr)
    encoded = pc.dictionary_encode(arr)
    null = encoded.is_null().to_numpy(zero_copy_only=False)
    if len(encoded.dictionary) == 0:  # every value null
        return parse(arr)
    dict_values, dict_bad = parse(encoded.dictionary)
    idx = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
    values = dict_values[idx]
    bad = dict_bad[idx] & ~null
    if null.any():
        values[null] = _missing_like(values)
    return values, bad


def _missing_like(values: np.ndarray) -> Any:
    return np.datetime64("NaT") if values.dtype.kind == "M" else _NA_CENTS


def lstr(value: str) -> pa.Scalar:
    """A ``large_string`` scalar (Arrow kernels do not mix string and large_string)."""
    return pa.scalar(value, pa.large_string())


#: Placeholder for a blank amount inside the int64 arrays (never written: masked first).
_NA_CENTS = np.iinfo(np.int64).min


def _parse_cents_arrow(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Arrow strings (trimmed) -> int64 cents (``_NA_CENTS`` when blank or bad), bad mask.

    Blank values cost nothing, the plain form (``1234.50``: what exports write) is read
    from the bytes, ``-12.00`` is one cast, and only the rest goes through the full
    grammar."""
    n = len(arr)
    out = np.full(n, _NA_CENTS, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    filled = byte_lengths(arr) > 0  # a null counts 0 bytes
    if not filled.any():
        return out, bad
    # unsigned plain amounts from the bytes; the regular expression only for the rest
    simple, simple_cents = _unsigned_plain_cents(arr)
    out[simple] = simple_cents[simple]
    rest = filled & ~simple
    plain_np = np.zeros(n, dtype=bool)
    if rest.any():
        plain = pc.and_(pa.array(rest), pc.fill_null(pc.match_substring_regex(arr, _PLAIN_AMOUNT), False))
        plain_np = _bools(plain)
    if plain_np.any():
        digits = pc.replace_substring(pc.filter(arr, pa.array(plain_np)), ".", "")
        out[plain_np] = pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False)
    other = rest & ~plain_np
    if other.any():
        cents, ok = _parse_cents_grammar(pc.filter(arr, pa.array(other)))
        out[other] = np.where(ok, cents, _NA_CENTS)
        bad[other] = ~ok
    return out, bad


#: ``10**k`` for the integer digits of :func:`_unsigned_plain_cents`, split in two int32
#: dot products (7 and 6 digits).
_POW_HIGH = (10 ** np.arange(6, -1, -1)).astype(np.int32)
_POW_LOW = (10 ** np.arange(5, -1, -1)).astype(np.int32)


#: Byte classes of :func:`_unsigned_plain_cents`: ASCII digit -> "9", "." itself.
_CENTS_CLASSES = bytes(
    ord("9") if 0x30 <= b <= 0x39 else b if b == ord(".") else ord("?") for b in range(256)
)
_CENTS_FORM = b"9999999999999.99"


def _unsigned_plain_cents(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    r"""(values of the form ``\d{1,13}\.\d{2}``, their cents; other rows unspecified),
    read from the bytes: padded on the left with ``0`` to 16 bytes (what exports write
    fits), each block of rows is one ``(n, 16)`` byte matrix whose classes spell
    ``_CENTS_FORM`` on those rows, and the number is two small dot products (no regular
    expression, no string copies). In blocks: on the invoice run's 5M-row amount columns a
    whole-column padded copy and its temporaries were 270 MB of its peak memory."""
    n = len(arr)
    if (
        n == 0
        or byte_lengths(arr).max() > len(_CENTS_FORM)
        or not all(raw.max() < 0x80 for raw in value_bytes(arr))
    ):
        return np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64)
    ok = np.empty(n, dtype=bool)
    cents = np.empty(n, dtype=np.int64)
    step = 1 << 16
    for lo in range(0, n, step):
        ok[lo : lo + step], cents[lo : lo + step] = _plain_cents_block(arr.slice(lo, step))
    return ok, cents


def _plain_cents_block(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    n = len(arr)
    size = byte_lengths(arr)
    padded = pc.ascii_lpad(arr.fill_null("") if arr.null_count else arr, len(_CENTS_FORM), "0")
    ok = (size >= 4) & form_matches(padded, _CENTS_CLASSES, _CENTS_FORM)  # >= 1 digit before the point
    offsets, data = padded.buffers()[1:3]
    start = int(np.frombuffer(offsets, dtype=np.int64)[padded.offset])
    rows = np.frombuffer(data, dtype=np.uint8)[start : start + 16 * n].reshape(n, 16)
    d = rows - np.uint8(ord("0"))
    d[~ok] = 0
    high = (d[:, :7].astype(np.int32) @ _POW_HIGH).astype(np.int64)
    low = d[:, 7:13].astype(np.int32) @ _POW_LOW
    return ok, (high * 1_000_000 + low) * 100 + d[:, 14].astype(np.int64) * 10 + d[:, 15]


def _bools(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


def _parse_cents_grammar(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Every accepted amount form (SPEC §2) of non-blank values -> (cents, ok)."""
    parts = pc.extract_regex(arr, _AMOUNT)
    matched = _bools(pc.fill_null(pc.is_valid(parts), False))
    if not matched.any():
        return np.zeros(len(arr), dtype=np.int64), matched

    def field(name: str) -> pa.Array:
        return pc.fill_null(pc.struct_field(parts, name), "")

    int_part = pc.replace_substring(field("int"), ",", "")
    frac = field("frac")
    opened = _bools(pc.not_equal(field("open"), ""))
    closed = _bools(pc.not_equal(field("close"), ""))
    neg = _bools(pc.not_equal(field("neg"), ""))
    int_len = pc.utf8_length(int_part).to_numpy(zero_copy_only=False)
    frac_len = pc.utf8_length(frac).to_numpy(zero_copy_only=False)
    ok = matched & (opened == closed) & ~(opened & neg)
    ok &= ((int_len > 0) | (frac_len > 0)) & (int_len <= _MAX_DIGITS)
    ok_arr = pa.array(ok)
    has_int = pc.and_(ok_arr, pc.greater(pc.utf8_length(int_part), 0))
    whole = pc.cast(pc.if_else(has_int, int_part, "0"), pa.int64())
    fraction = pc.cast(pc.if_else(ok_arr, pc.utf8_rpad(frac, 2, "0"), "0"), pa.int64())
    cents = whole.to_numpy(zero_copy_only=False) * 100 + fraction.to_numpy(zero_copy_only=False)
    return np.where(neg | opened, -cents, cents), ok


def parse_cents(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse amounts to nullable Int64 cents. Blank -> <NA> (not bad)."""
    cents, bad = _by_distinct(s, _parse_cents_arrow)
    out = pd.Series(pd.arrays.IntegerArray(cents, cents == _NA_CENTS), index=s.index, copy=False)
    return out, pd.Series(bad, index=s.index, copy=False)


def cents_to_str(c: pd.Series) -> pd.Series:
    """Int cents -> ``-?\\d+\\.\\d{2}``; <NA> -> empty string."""
    na = c.isna().to_numpy()
    v = c.to_numpy(dtype="int64", na_value=0)
    return string_series(format_cents_array(v, na), c.index)


def format_cents_array(v: np.ndarray, na: np.ndarray | None = None) -> pa.Array:
    """int64 cents -> Arrow strings ``-?\\d+\\.\\d{2}`` (empty where ``na``).

    The cents are handed to Arrow as the unscaled values of a ``decimal128(18, 2)``
    array (a buffer, no arithmetic) and Arrow's decimal-to-string cast writes them;
    a column that repeats a few values (rates, fees) is formatted once per distinct value.
    """
    v = np.asarray(v, dtype=np.int64)
    n = len(v)
    if n > 1000:
        sample = v[:50_000]
        if len(np.unique(sample)) * 10 < len(sample):
            codes, uniques = pd.factorize(v)
            text = pc.take(_decimal_text(np.asarray(uniques, dtype=np.int64)), pa.array(codes))
        else:
            text = _decimal_text(v)
    else:
        text = _decimal_text(v)
    if na is not None and na.any():
        text = pc.if_else(pa.array(na), pa.scalar("", pa.large_string()), text)
    return text


def _decimal_text(v: np.ndarray) -> pa.Array:
    if np.abs(v).max(initial=0) >= 10**17:  # beyond decimal128(18, 2): plain arithmetic
        a = np.abs(v)
        whole = pc.cast(pa.array(a // 100), pa.large_string())
        frac = pc.utf8_lpad(pc.cast(pa.array(a % 100), pa.large_string()), 2, "0")
        text = pc.binary_join_element_wise(whole, frac, lstr("."))
        return pc.if_else(pa.array(v < 0), pc.binary_join_element_wise(lstr("-"), text, lstr("")), text)
    words = np.empty((len(v), 2), dtype=np.int64)  # two's complement 128-bit, little-endian
    words[:, 0] = v
    words[:, 1] = np.where(v < 0, -1, 0)
    dec = pa.Array.from_buffers(pa.decimal128(18, 2), len(v), [None, pa.py_buffer(words)])
    return dec.cast(pa.large_string())


def cents_to_decimal(cents: int) -> Decimal:
    return (Decimal(int(cents)) / 100).quantize(Decimal("0.01"))


def decimal_to_cents(value: Decimal | str) -> int:
    d = Decimal(str(value))
    q = d.quantize(Decimal("0.01"))
    if q != d:
        raise ValueError(f"{value} has more than two decimals")
    return int(q * 100)


def format_cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    a = abs(int(cents))
    return f"{sign}{a // 100}.{a % 100:02d}"


# MM/DD/YYYY, M/D/YYYY | YYYY-MM-DD (RE2: no repeated group names, so two sets)
_DATE = (
    r"^(?:(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})"
    r"|(?P<iy>\d{4})-(?P<im>\d{2})-(?P<id>\d{2}))$"
)
DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of valid proleptic Gregorian dates (Howard Hinnant's algorithm)."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days: np.ndarray = era * 146097 + doe - 719468
    return days


def _parse_dates_arrow(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Arrow strings (trimmed) -> datetime64[s] (NaT when blank or bad), bad mask."""
    n = len(arr)
    blank = pc.fill_null(pc.equal(pc.utf8_length(arr), 0), True).to_numpy(zero_copy_only=False)
    parts = pc.extract_regex(arr, _DATE)
    matched = pc.fill_null(pc.is_valid(parts), False).to_numpy(zero_copy_only=False) & ~blank
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    if not matched.any():
        return out, ~blank

    def num(us: str, iso: str) -> np.ndarray:
        a = pc.fill_null(pc.struct_field(parts, us), "")
        b = pc.fill_null(pc.struct_field(parts, iso), "")
        text = pc.if_else(pc.equal(a, ""), b, a)
        text = pc.if_else(pa.array(matched), text, "0")
        ints: np.ndarray = pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False)
        return ints

    y, m, d = num("y", "iy"), num("m", "im"), num("d", "id")
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    month_ok = (m >= 1) & (m <= 12)
    dim = DAYS_IN_MONTH[np.where(month_ok, m, 0)] + ((m == 2) & leap)
    ok = matched & month_ok & (d >= 1) & (d <= dim) & (y >= 1)
    days = days_from_civil(np.where(ok, y, 1970), np.where(ok, m, 1), np.where(ok, d, 1))
    out[ok] = (days[ok] * 86400).astype("datetime64[s]")
    return out, ~blank & ~ok


def parse_dates(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse dates to ``datetime64[s]`` (NaT for blank). Invalid calendar dates are bad."""
    values, bad = _by_distinct(s, _parse_dates_arrow)
    return pd.Series(values, index=s.index, copy=False), pd.Series(bad, index=s.index, copy=False)


def dates_mdy(d: pd.Series, *, pad: bool = True) -> pd.Series:
    """datetime64 -> ``MM/DD/YYYY`` (pad) or ``M/D/YYYY``; NaT -> empty string."""
    return string_series(format_dates_array(d.to_numpy(dtype="datetime64[s]"), pad=pad), d.index)


def format_dates_array(d: np.ndarray, *, pad: bool = True) -> pa.Array:
    """datetime64 array -> Arrow strings ``MM/DD/YYYY`` (or ``M/D/YYYY``); NaT -> empty.

    Formats each distinct date once (a cycle has a handful) and maps them back."""
    days = d.astype("datetime64[D]")
    na = np.isnat(days)
    # no copies of a million-line column beyond what is needed: they add to the run's peak
    codes, uniq = pd.factorize(np.where(na, np.datetime64("1970-01-01"), days) if na.any() else days)
    del days
    inverse = np.asarray(codes, dtype=np.int64)
    uniq = np.asarray(uniq, dtype="datetime64[D]")
    months = uniq.astype("datetime64[M]")
    years = uniq.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (uniq - months.astype("datetime64[D]")).astype(np.int64) + 1
    fmt = "{m:02d}/{d:02d}/{y:04d}" if pad else "{m}/{d}/{y:04d}"
    texts = [fmt.format(m=m, d=dd, y=y) for y, m, dd in zip(years, month, day, strict=True)]
    table = pa.array(texts, pa.large_string())
    out = pc.take(table, pa.array(inverse.reshape(-1)))
    if na.any():
        out = pc.if_else(pa.array(na), pa.scalar("", pa.large_string()), out)
    return out


def digits_only(s: pd.Series) -> pd.Series:
    return s.astype("string").fillna("").str.replace(r"\D+", "", regex=True)


def alnum_only(s: pd.Series) -> pd.Series:
    return s.astype("string").fillna("").str.replace(r"[^A-Za-z0-9]+", "", regex=True)


def mask_account(s: pd.Series) -> pd.Series:
    """Account numbers masked to their last 4 characters: ``****6789``."""
    s = s.astype("string").fillna("")
    return ("****" + s.str[-4:]).where(s.str.len() > 0, "")


def mask_account_value(value: str | None) -> str:
    v = (value or "").strip()
    return f"****{v[-4:]}" if v else ""


_PLAIN_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"  # [0-9], not \d: stays in Arrow's RE2
#: OWASP's CSV-injection triggers: = + - @, and tab, CR, LF (a spreadsheet may drop a
#: leading tab or line break and then run the formula behind it).
_FORMULA_START = "^[=+\\-@\t\r\n]"


def spreadsheet_safe(s: pd.Series) -> pd.Series:
    """Neutralise CSV injection: a value starting with = + - @, tab, CR or LF that is not a
    plain number gets a leading apostrophe (SPEC §10, OWASP). Arrow RE2 over the column."""
    s = s.astype("string")
    arr = arrow_strings(s.fillna(""))
    starts = pc.match_substring_regex(arr, _FORMULA_START)
    if not pc.any(starts).as_py():
        return s
    risky = pc.and_(starts, pc.invert(pc.match_substring_regex(arr, _PLAIN_NUMBER)))
    mask = pd.Series(risky.to_numpy(zero_copy_only=False), index=s.index)
    return s.where(~mask, "'" + s)


__all__ = [
    "alnum_only",
    "cents_to_decimal",
    "cents_to_str",
    "dates_mdy",
    "decimal_to_cents",
    "digits_only",
    "extract_groups",
    "format_cents",
    "mask_account",
    "mask_account_value",
    "parse_cents",
    "parse_dates",
    "spreadsheet_safe",
]
