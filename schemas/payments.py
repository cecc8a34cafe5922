"""The IC payment export (SPEC §2.2) as column rules built from ``payment_export.csv``.

The column rules live in data (``schemas/payment_export.csv``: name, required, kind,
values, meaning) so the contract is one table an analyst can read; this module turns that
table into :class:`~caselle_ic.tabular.rules.FrameRules` (checked in vectorised code; the
same contract as a pandera ``DataFrameSchema``, ``.to_pandera()``) that validate the export *as text*
after normalisation (stripped; transaction type and vendors upper-case; GUIDs
lower-case), lazily, so every failing rule of every row is reported at once.

Every check's ``error`` is the reason an analyst reads in the rejects file, written
``field: rule`` (``amount: must be greater than 0``). :func:`row_reasons` turns pandera's
``failure_cases`` into one ``reason`` per row, the rules in schema order.

``required`` is one of:

* ``yes`` — never blank;
* ``no`` — optional;
* ``reversal`` — required when transaction_type is REFUND or ACH_REJECT;
* ``card`` — required on PAYMENT rows with payment_type_id 1;
* ``obd`` — required on PAYMENT rows with payment_type_id 11.

``kind`` is one of ``guid``, ``choice`` (one of ``values``, ``|``-separated), ``datetime``
(ISO 8601), ``integer``, ``amount`` (> 0, at most two decimals), ``text``.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc

from caselle_ic.tabular.parallel import side_by_side
from caselle_ic.tabular.rules import ColumnRules, FrameRules, Rule, frame_rules
from caselle_ic.tabular.strbytes import (
    byte_lengths,
    fixed_width_rows,
    form_matches,
    may_repeat,
    value_bytes,
)
from caselle_ic.tabular.values import (
    DAYS_IN_MONTH,
    arrow_strings,
    days_from_civil,
    extract_groups,
    parse_cents,
)

SPEC_FILE = Path(__file__).with_name("payment_export.csv")

REQUIRED_RULES = ("yes", "no", "reversal", "card", "obd")
KINDS = ("guid", "choice", "datetime", "integer", "amount", "text")

REVERSALS = ("REFUND", "ACH_REJECT")
CARD, OBD = "1", "11"

_GUID = r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?\Z"
# ASCII digits, at most 9: an IC type id is a GraphQL Int (32-bit); "\d" would also take other
# scripts' digits, and a longer value cannot be converted to a number downstream
MAX_INTEGER_DIGITS = 9
_INTEGER = rf"^[0-9]{{0,{MAX_INTEGER_DIGITS}}}\Z"
# 2026-11-01T14:05:09, with a space instead of T, seconds optional, fraction optional,
# an optional Z or +HH:MM / -HHMM offset.
ISO_DATETIME = (
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<h>\d{2}):(?P<mi>\d{2})"
    r"(?::(?P<s>\d{2})(?:[.,]\d{1,9})?)?"
    r"(?P<tz>Z|(?P<sign>[+-])(?P<oh>\d{2}):?(?P<om>\d{2}))?\Z"
)


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    required: str
    kind: str
    values: tuple[str, ...]
    meaning: str
    #: most characters the ledger column holds (SQLite and PostgreSQL alike); 0 = no limit
    max_length: int = 0


@functools.cache
def export_columns() -> tuple[ColumnSpec, ...]:
    """The columns of the payment export, as ``payment_export.csv`` defines them."""
    with SPEC_FILE.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    specs = []
    for row in rows:
        spec = ColumnSpec(
            name=row["name"].strip(),
            required=row["required"].strip(),
            kind=row["kind"].strip(),
            values=tuple(v.strip() for v in row["values"].split("|") if v.strip()),
            meaning=row["meaning"].strip(),
            max_length=int((row.get("max_length") or "0").strip() or 0),
        )
        if spec.required not in REQUIRED_RULES or spec.kind not in KINDS:
            raise ValueError(f"{SPEC_FILE}: column {spec.name}: bad required/kind {row}")
        if spec.kind == "choice" and not spec.values:
            raise ValueError(f"{SPEC_FILE}: column {spec.name}: a choice needs values")
        specs.append(spec)
    return tuple(specs)


def column_names() -> list[str]:
    return [c.name for c in export_columns()]


def always_required() -> list[str]:
    return [c.name for c in export_columns() if c.required == "yes"]


def split_iso_datetime(s: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """ISO 8601 date-time text -> (naive wall time ``datetime64[s]``, offset minutes
    ``Int64`` (<NA> when the text has none), bad mask). Blank is not bad (NaT).

    The canonical form ``YYYY-MM-DDTHH:MM:SS`` is read straight from the column's bytes
    (:func:`_canonical_datetimes`); only the other forms go through the regular expression.
    """
    s = s.astype("string").fillna("")
    n = len(s)
    arr = arrow_strings(s)
    blank = byte_lengths(arr) == 0
    canonical, parsed, good = _canonical_datetimes(arr)
    wall = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    offset = np.zeros(n, dtype=np.int64)
    has_offset = np.zeros(n, dtype=bool)
    bad = ~blank
    if canonical.any():
        wall[canonical] = parsed
        bad[canonical] = ~good
    rest = ~canonical & ~blank
    if rest.any():
        w, o, h, b = _split_general(s[rest])
        wall[rest], offset[rest], has_offset[rest], bad[rest] = w, o, h, b
    return (
        pd.Series(wall, index=s.index),
        pd.Series(pd.arrays.IntegerArray(offset, ~has_offset), index=s.index),
        pd.Series(bad, index=s.index),
    )


#: Byte classes of the canonical form: ASCII digit -> "9", the separators as themselves.
_DATETIME_CLASSES = bytes(
    ord("9") if chr(b).isdigit() and b < 0x80 else b if chr(b) in "-T:" else ord("?") for b in range(256)
)
_DATETIME_FORM = b"9999-99-99T99:99:99"


def _canonical_datetimes(arr: pyarrow.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The values of the form ``YYYY-MM-DDTHH:MM:SS`` (ASCII digits), read from their
    bytes: (which values have that form, their wall time (NaT where not a real time),
    which of them are a real time). A real time has a year from 1, a day that exists in
    its month, hours to 23, minutes and seconds to 59 -- what strptime accepts without
    rolling a day or a second over."""
    width, form = fixed_width_rows(arr, 19)
    classes = form.tobytes().translate(_DATETIME_CLASSES)
    if classes == _DATETIME_FORM * len(form):  # the usual column: every value canonical
        shape = np.ones(len(form), dtype=bool)
    else:
        pattern = np.frombuffer(_DATETIME_FORM, dtype=np.uint8)
        shape = (np.frombuffer(classes, dtype=np.uint8).reshape(-1, 19) == pattern).all(axis=1)
        form = form[shape]
    canonical = width.copy()
    canonical[width] = shape

    def two(at: int) -> np.ndarray:  # the two digits at ``at`` as a number
        number: np.ndarray = form[:, at].astype(np.int32) * 10 + form[:, at + 1] - 11 * ord("0")
        return number

    y = two(0) * 100 + two(2)
    month, day = two(5), two(8)
    hour, minute, second = two(11), two(14), two(17)
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    month_ok = (month >= 1) & (month <= 12)
    last_day = DAYS_IN_MONTH[np.where(month_ok, month, 0)] + ((month == 2) & leap)
    in_range = (hour <= 23) & (minute <= 59) & (second <= 59)
    good = (y >= 1) & month_ok & (day >= 1) & (day <= last_day) & in_range
    days = days_from_civil(np.where(good, y, 1970), np.where(good, month, 1), np.where(good, day, 1))
    seconds = days.astype(np.int64) * 86400 + (hour * 3600 + minute * 60 + second)
    wall = np.where(good, seconds.astype("datetime64[s]"), np.datetime64("NaT", "s"))
    return canonical, wall, good


def _split_general(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    parts, matched = extract_groups(s, ISO_DATETIME)
    m = matched.to_numpy(dtype=bool)
    seconds = parts["s"].where(parts["s"] != "", "00")
    text = parts["date"] + " " + parts["h"] + ":" + parts["mi"] + ":" + seconds
    wall = pd.to_datetime(text.where(m), format="%Y-%m-%d %H:%M:%S", errors="coerce")
    has_off = (parts["sign"] != "").to_numpy(dtype=bool)
    oh = pd.to_numeric(parts["oh"].where(has_off, "0")).to_numpy(dtype=np.int64)
    om = pd.to_numeric(parts["om"].where(has_off, "0")).to_numpy(dtype=np.int64)
    off = np.where((parts["sign"] == "-").to_numpy(dtype=bool), -(oh * 60 + om), oh * 60 + om)
    has_tz = (parts["tz"] != "").to_numpy(dtype=bool)  # "Z" is offset 0
    off_ok = ~has_off | ((oh <= 14) & (om <= 59))
    bad = ~m | wall.isna().to_numpy() | ~off_ok
    out = np.where(bad, np.datetime64("NaT"), wall.to_numpy(dtype="datetime64[s]"))
    return out.astype("datetime64[s]"), np.where(bad, 0, off), has_tz & ~bad, bad


# -- checks -----------------------------------------------------------------------------


def _nonblank(s: pd.Series) -> pd.Series:
    # byte lengths from the Arrow offsets: no string comparison per value
    return pd.Series(byte_lengths(arrow_strings(s)) > 0, index=s.index)


def _blank_or_in(values: tuple[str, ...]):  # type: ignore[no-untyped-def]
    allowed = [*values, ""]
    return lambda s: s.fillna("").isin(allowed)


def _at_most(limit: int) -> Callable[[pd.Series], pd.Series]:
    def test(s: pd.Series) -> pd.Series:
        # a value has no more characters than bytes: only the longer ones are counted
        text = arrow_strings(s.fillna(""))
        ok = byte_lengths(text) <= limit
        if not ok.all():
            long = pc.filter(text.combine_chunks(), pyarrow.array(~ok))
            ok[~ok] = pc.utf8_length(long).to_numpy() <= limit
        return pd.Series(ok, index=s.index)

    return test


def _bad(n: str) -> str:
    return f"_{n}_bad"


def prepare(norm: pd.DataFrame) -> pd.DataFrame:
    """The normalised text frame plus the helper columns the schema checks: each value
    that needs parsing is parsed once here (``_amount_cents``, ``_amount_bad``,
    ``_payment_date_wall``, ``_payment_date_offset``, ``_payment_date_bad``), and
    payment_guid uniqueness over the whole file (``_dup_identical``, ``_dup_conflict``)."""
    # the parsers are independent column work: they run side by side (Arrow and numpy
    # kernels release the GIL)
    names: list[tuple[str, ...]] = []
    jobs: list[Callable[[], tuple[pd.Series, ...]]] = []
    for spec in export_columns():
        n, values = spec.name, norm[spec.name]
        if spec.kind == "amount":
            names.append((f"_{n}_cents", _bad(n)))
            jobs.append(functools.partial(parse_cents, values))
        elif spec.kind == "datetime":
            names.append((f"_{n}_wall", f"_{n}_offset", _bad(n)))
            jobs.append(functools.partial(split_iso_datetime, values))
    names.append(("_dup_identical", "_dup_conflict"))
    jobs.append(functools.partial(duplicate_flags, norm))
    helpers: dict[str, pd.Series] = {}
    for made, parts in zip(names, side_by_side(*jobs), strict=True):
        helpers.update(zip(made, parts, strict=True))
    return norm.assign(**helpers)


def duplicate_flags(norm: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(a later copy of an identical line, a GUID on lines that disagree), over the file.

    Only the lines whose GUID repeats are compared field by field (usually none)."""
    guid = norm["payment_guid"].fillna("")
    arr = arrow_strings(guid)
    identical_later = np.zeros(len(norm), dtype=bool)
    conflict = np.zeros(len(norm), dtype=bool)
    if not may_repeat(arr):  # the usual export: no GUID repeats, no second pass over them
        return pd.Series(identical_later, index=norm.index), pd.Series(conflict, index=norm.index)
    counts = pc.value_counts(arr)
    twice = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    repeated = pc.is_in(arr, value_set=twice).to_numpy(zero_copy_only=False) & (guid != "").to_numpy(
        dtype=bool
    )
    if repeated.any():
        sub = norm.loc[repeated, column_names()]
        row_hash = pd.util.hash_pandas_object(sub, index=False)
        g = guid[repeated]
        clash = (row_hash.groupby(g.to_numpy()).transform("nunique") > 1).to_numpy()
        same = pd.DataFrame({"g": g.to_numpy(), "h": row_hash.to_numpy()}).duplicated(keep="first").to_numpy()
        conflict[repeated] = clash
        identical_later[repeated] = ~clash & same
    return pd.Series(identical_later, index=norm.index), pd.Series(conflict, index=norm.index)


#: Byte classes of ``_GUID``: lower-case hex -> "x", "-" -> "-", any other byte -> "?".
_GUID_CLASSES = bytes(
    ord("x") if chr(b) in "0123456789abcdef" else ord("-") if b == ord("-") else ord("?") for b in range(256)
)
_GUID_FORM = b"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"


def _guid_or_blank(s: pd.Series) -> np.ndarray:
    """``_GUID`` (blank, or lower-case 8-4-4-4-12 hex) tested on the bytes: a value
    matches when it is empty, or its byte classes spell ``_GUID_FORM`` (pandera checks
    the pattern itself; the rules contract test holds both to the same rows)."""
    arr = arrow_strings(s.fillna(""))
    ok: np.ndarray = (byte_lengths(arr) == 0) | form_matches(arr, _GUID_CLASSES, _GUID_FORM)
    return ok


def _whole_number(s: pd.Series) -> pd.Series | np.ndarray:
    """``_INTEGER``: every value passes when every byte of the column is an ASCII digit and
    none is longer than ``MAX_INTEGER_DIGITS`` (the usual column, decided from the bytes);
    otherwise the pattern decides, as pandera's ``str_matches`` does."""
    arr = arrow_strings(s.fillna(""))
    short = len(arr) == 0 or int(np.max(byte_lengths(arr))) <= MAX_INTEGER_DIGITS
    if short and not any(((raw - np.uint8(ord("0"))) > 9).any() for raw in value_bytes(arr)):
        return np.ones(len(s), dtype=bool)
    return s.str.match(_INTEGER)


def _column_checks(spec: ColumnSpec) -> list[ColumnRules]:
    """The rules of one export column: the text column, then its helpers."""
    n = spec.name
    checks: list[Rule] = []
    helpers: list[ColumnRules] = []
    if spec.required == "yes":
        checks.append(Rule(f"{n}: required", _nonblank, name=f"{n}_required"))
    if spec.kind == "guid":
        error = f"{n}: not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
        checks.append(Rule(error, _guid_or_blank, builtin=("str_matches", _GUID), name=f"{n}_guid"))
    elif spec.kind == "choice":
        checks.append(
            Rule(f"{n}: not one of {', '.join(spec.values)}", _blank_or_in(spec.values), name=f"{n}_choice")
        )
    elif spec.kind == "integer":
        error = f"{n}: not a whole number of at most {MAX_INTEGER_DIGITS} digits"
        checks.append(Rule(error, _whole_number, builtin=("str_matches", _INTEGER), name=f"{n}_integer"))
    elif spec.kind == "datetime":
        error = f"{n}: not an ISO 8601 date-time such as 2026-11-01T14:05:00"
        helpers.append(ColumnRules(_bad(n), bool, rules=(Rule(error, lambda b: ~b, name=f"{n}_datetime"),)))
        helpers.append(ColumnRules(f"_{n}_wall", "datetime64[s]", nullable=True))
        helpers.append(ColumnRules(f"_{n}_offset", "Int64", nullable=True))
    elif spec.kind == "amount":
        error = f"{n}: not an amount with at most two decimals"
        helpers.append(ColumnRules(_bad(n), bool, rules=(Rule(error, lambda b: ~b, name=f"{n}_amount"),)))
        positive = Rule(
            f"{n}: must be greater than 0", lambda c: c.isna() | (c.fillna(1) > 0), name=f"{n}_positive"
        )
        helpers.append(ColumnRules(f"_{n}_cents", "Int64", nullable=True, rules=(positive,)))
    if spec.max_length:  # a longer value would stop a PostgreSQL run (VARCHAR): quarantine its line
        error = f"{n}: longer than {spec.max_length} characters"
        checks.append(Rule(error, _at_most(spec.max_length), name=f"{n}_max_length"))
    return [ColumnRules(n, None, nullable=spec.required != "yes", rules=tuple(checks)), *helpers]


def _required_for_reversals(n: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda d: ~d["transaction_type"].isin(list(REVERSALS)) | _nonblank(d[n])


def _required_for_payment_type(n: str, ptype: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda d: (d["transaction_type"] != "PAYMENT") | (d["payment_type_id"] != ptype) | _nonblank(d[n])


def _conditional_checks() -> list[Rule]:
    checks: list[Rule] = []
    for spec in export_columns():
        n = spec.name
        if spec.required == "reversal":
            checks.append(
                Rule(
                    f"{n}: required for REFUND and ACH_REJECT",
                    _required_for_reversals(n),
                    name=f"{n}_required_reversal",
                )
            )
        elif spec.required in ("card", "obd"):
            ptype = CARD if spec.required == "card" else OBD
            what = "card payments" if spec.required == "card" else "OBD payments"
            checks.append(
                Rule(
                    f"{n}: required for {what} (payment_type_id {ptype})",
                    _required_for_payment_type(n, ptype),
                    name=f"{n}_required_{spec.required}",
                )
            )
    checks.append(
        Rule(
            "original_payment_guid: must not be the row's own payment_guid",
            lambda d: (
                ~_nonblank(d["original_payment_guid"]) | (d["original_payment_guid"] != d["payment_guid"])
            ),
            name="original_not_self",
        )
    )
    checks.append(
        Rule(
            "payment_guid: repeats an identical earlier line (the first is kept)",
            lambda d: ~d["_dup_identical"],
            name="duplicate_identical",
        )
    )
    checks.append(
        Rule(
            "payment_guid: on more than one line with different values (none is used)",
            lambda d: ~d["_dup_conflict"],
            name="duplicate_conflict",
        )
    )
    return checks


@functools.cache
def payment_export_schema() -> FrameRules:
    """The rules of a normalised payment export frame after :func:`prepare` (checked by
    :func:`caselle_ic.tabular.rules.failure_cases`; ``.to_pandera()`` is the same contract
    as a pandera schema)."""
    columns: list[ColumnRules] = []
    for spec in export_columns():
        columns += _column_checks(spec)
    columns.append(ColumnRules("_dup_identical", bool))
    columns.append(ColumnRules("_dup_conflict", bool))
    return frame_rules("IC payment export", columns, _conditional_checks())


@functools.cache
def _rule_order() -> dict[str, int]:
    """Every rule's error text -> its rank: by the export column it names, then by order."""
    schema = payment_export_schema()
    errors: list[str] = []
    for col in schema.columns:
        errors += [r.error for r in col.rules]
    errors += [r.error for r in schema.checks]
    position = {name: i for i, name in enumerate(column_names())}
    ranked = sorted(
        range(len(errors)), key=lambda i: (position.get(errors[i].split(":", 1)[0], len(position)), i)
    )
    return {errors[i]: rank for rank, i in enumerate(ranked)}


def row_reasons(failure_cases: pd.DataFrame) -> pd.Series:
    """pandera ``failure_cases`` -> one ``"field: rule; field: rule"`` string per row index.

    A frame-wide check is reported once per column by pandera; each rule appears once per
    row here, in schema order.
    """
    fc = failure_cases.loc[failure_cases["index"].notna(), ["index", "check"]].drop_duplicates()
    order = _rule_order()
    fc = fc.assign(_order=fc["check"].map(order).fillna(len(order))).sort_values(["index", "_order"])
    return fc.groupby("index", sort=True)["check"].agg("; ".join)
