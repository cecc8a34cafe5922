"""pandera schemas for the invoice run, built from the two data files beside this module.

* ``statement_extract.csv`` — the statement extract's columns (SPEC §2.1): name, level
  (``statement`` or ``line``), required (``yes``, ``no``, or ``line`` = required on every
  row that has activity), kind (text, account, phone, date, amount, quantity, line_type,
  message), min (amounts: the smallest allowed, in dollars), default (another column).
* ``invoice_field_map.csv`` — the IC field map (SPEC §3.1): record, pos, filespec_id,
  ic_field, source, required, limit, format.

Nothing here is hand-written per field: change a row in a CSV and the schemas follow.

Validation is lazy (every failure of every row is collected) and
:func:`failure_reasons` turns pandera's ``failure_cases`` into one reason per row,
``"<column>: <rule>"``. A failure that cannot be tied to a row (a missing column, a wrong
dtype) raises :class:`RecordSchemaError`: that is a bug, and nothing is written.

The parsed input frames hold amounts as ``Int64`` cents and dates as ``datetime64[s]``;
a value that did not parse is stored as :data:`BAD_CENTS` / :data:`BAD_DATE` (values no
parse can produce) so that "is not an amount" is a rule of the schema like any other,
with the row it belongs to.

Patterns end in ``\\Z`` and use ``[0-9]``, never ``\\d``/``$``: with those, pandas runs
them in Arrow's RE2 (fast) with Python's semantics (``$`` would accept a trailing newline).
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.errors import RecordSchemaError
from caselle_ic.tabular.rules import ColumnRules, FrameRules, Rule, RulesMismatch, failure_cases, frame_rules
from caselle_ic.tabular.text import CONTROL_CLASS as _TEXT_CONTROL_CLASS
from caselle_ic.tabular.values import arrow_strings, decimal_to_cents

HERE = Path(__file__).resolve().parent
EXTRACT_SPEC = HERE / "statement_extract.csv"
FIELD_MAP = HERE / "invoice_field_map.csv"

#: A value that did not parse (no parse produces these: amounts are at most 15 digits,
#: years at least 1).
BAD_CENTS = int(np.iinfo(np.int64).min) + 1
BAD_DATE = np.datetime64("0000-01-01T00:00:00", "s")

LINE_TYPES = ("INVOICE", "PAYMENT", "ADJUSTMENT")
STRING = pd.StringDtype("pyarrow")

# -- the data files ------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractColumn:
    name: str
    level: str  # statement | line
    required: str  # yes | no | line
    kind: str
    min_cents: int | None
    default: str | None
    meaning: str


@dataclass(frozen=True)
class FieldSpec:
    record: str
    pos: int
    filespec_id: int
    ic_field: str
    source: str
    required: bool
    limit: str
    format: str

    @property
    def const(self) -> str | None:
        return self.source.removeprefix("const:") if self.source.startswith("const:") else None


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(fh)]


@cache
def extract_columns() -> tuple[ExtractColumn, ...]:
    out = []
    for r in _rows(EXTRACT_SPEC):
        out.append(
            ExtractColumn(
                name=r["name"],
                level=r["level"],
                required=r["required"],
                kind=r["kind"],
                min_cents=decimal_to_cents(r["min"]) if r["min"] else None,
                default=r["default"] or None,
                meaning=r["meaning"],
            )
        )
    return tuple(out)


@cache
def field_map() -> tuple[FieldSpec, ...]:
    out = []
    for r in _rows(FIELD_MAP):
        out.append(
            FieldSpec(
                record=r["record"],
                pos=int(r["pos"]),
                filespec_id=int(r["filespec_id"]),
                ic_field=r["ic_field"],
                source=r["source"],
                required=r["required"] == "yes",
                limit=r["limit"],
                format=r["format"],
            )
        )
    return tuple(out)


RECORDS = ("FH", "IH", "CR", "ID")


def record_fields(record: str) -> list[FieldSpec]:
    """The fields of one record type, in file order."""
    return sorted((f for f in field_map() if f.record == record), key=lambda f: f.pos)


def extract_names(level: str | None = None) -> list[str]:
    return [c.name for c in extract_columns() if level is None or c.level == level]


def required_extract_columns() -> list[str]:
    """Columns the extract's header must have (required on statements or on lines)."""
    return [c.name for c in extract_columns() if c.required in ("yes", "line")]


# -- rules ---------------------------------------------------------------------------

AMOUNT_RULE = "is not an amount (write 1234.50, 1,234.50, $1,234.50, -12.00 or (12.00))"
DATE_RULE = "is not a date (write MM/DD/YYYY, M/D/YYYY or YYYY-MM-DD)"
REQUIRED_RULE = "required value is missing"
QUANTITY_PATTERN = r"^(-?[0-9]+(\.[0-9]*)?|-?\.[0-9]+)?\Z"
#: The shared text rule's character class (tabular/text.py: one rule for every file).
CONTROL_CLASS = _TEXT_CONTROL_CLASS
_PY_CONTROL_CLASS = CONTROL_CLASS

_FORMAT_PATTERNS = {
    "guid": (r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\Z", "a GUID"),
    "date": (r"^((0[1-9]|1[0-2])/(0[1-9]|[12][0-9]|3[01])/[0-9]{4})?\Z", "MM/DD/YYYY"),
    "amount": (r"^(-?[0-9]+\.[0-9]{2})?\Z", "an amount like -12.00"),
    "count": (r"^[0-9]+\Z", "a whole number"),
    "alnum": (r"^[A-Za-z0-9]*\Z", "letters and digits only"),
    "digits": (r"^[0-9]*\Z", "digits only"),
    "quantity": (r"^(-?([0-9]+(\.[0-9]*[1-9])?|\.[0-9]*[1-9]))?\Z", "a number without trailing zeros"),
}


def _check(fn: Callable[[pd.Series], pd.Series], rule: str) -> Rule:
    return Rule(rule, fn)


def _matches(pattern: str, rule: str) -> Rule:
    """pandera's ``Check.str_matches`` (the patterns are anchored at both ends), run in RE2."""
    return Rule(rule, _fullmatch(pattern), builtin=("str_matches", pattern))


def _max_length(limit: int, rule: str) -> Rule:
    def fn(s: pd.Series) -> pd.Series:
        lengths = pc.utf8_length(arrow_strings(s))
        return pd.Series(pc.less_equal(lengths, limit).to_numpy(zero_copy_only=False), index=s.index)

    return Rule(rule, fn, builtin=("str_length", limit))


def _equals(value: str, rule: str) -> Rule:
    def fn(s: pd.Series) -> pd.Series:
        same = pc.equal(arrow_strings(s), pa.scalar(value, pa.large_string()))
        return pd.Series(same.to_numpy(zero_copy_only=False), index=s.index)

    return Rule(rule, fn, builtin=("isin", (value,)))


def _fullmatch(pattern: str) -> Callable[[pd.Series], pd.Series]:
    """A vectorised full-match test run by Arrow's RE2, once per distinct value when the
    column repeats (dates, constants), else on every value."""
    re2 = pattern[:-2] + "$" if pattern.endswith("\\Z") else pattern  # RE2's $ is the very end
    re.compile(pattern)  # fail at schema build time on a bad pattern

    def fn(s: pd.Series) -> pd.Series:
        arr = arrow_strings(s).combine_chunks()
        n = len(arr)
        if n > 1000 and pc.count_distinct(arr.slice(0, 50_000)).as_py() * 10 < min(n, 50_000):
            encoded = pc.dictionary_encode(arr)
            ok = pc.take(pc.match_substring_regex(encoded.dictionary, re2), encoded.indices)
        else:
            ok = pc.match_substring_regex(arr, re2)
        return pd.Series(ok.to_numpy(zero_copy_only=False), index=s.index)

    return fn


def _not_bad_cents(s: pd.Series) -> pd.Series:
    return s != BAD_CENTS


def _at_least(low: int) -> Callable[[pd.Series], pd.Series]:
    def fn(s: pd.Series) -> pd.Series:
        return (s >= low) | (s == BAD_CENTS)  # an unparseable amount has its own rule

    return fn


def _not_bad_date(s: pd.Series) -> pd.Series:
    return s != BAD_DATE


def _is_line_type(s: pd.Series) -> pd.Series:
    return s.isin(LINE_TYPES) | (s == "")  # blank has its own rule (required on a line)


def _non_empty(s: pd.Series) -> pd.Series:
    lengths = pc.binary_length(arrow_strings(s))  # bytes: no UTF-8 decoding needed
    return pd.Series(pc.greater(lengths, 0).to_numpy(zero_copy_only=False), index=s.index)


# -- input schemas -------------------------------------------------------------------


def _input_column(col: ExtractColumn, *, on_lines: bool) -> ColumnRules:
    required = col.required == "yes" or (on_lines and col.required == "line")
    checks: list[Rule] = []
    if col.kind == "amount":
        checks.append(_check(_not_bad_cents, AMOUNT_RULE))
        if col.min_cents is not None:
            low = col.min_cents
            rule = "must not be negative" if low == 0 else f"must be at least {low / 100:.2f}"
            checks.append(_check(_at_least(low), rule))
        return ColumnRules(col.name, "Int64", nullable=not required, rules=tuple(checks))
    if col.kind == "date":
        checks.append(_check(_not_bad_date, DATE_RULE))
        return ColumnRules(col.name, "datetime64[s]", nullable=not required, rules=tuple(checks))
    if required:
        checks.append(_check(_non_empty, REQUIRED_RULE))
    if col.kind == "line_type":
        checks.append(_check(_is_line_type, "must be INVOICE, PAYMENT or ADJUSTMENT"))
    elif col.kind == "quantity":
        checks.append(_matches(QUANTITY_PATTERN, "is not a number"))
    return ColumnRules(col.name, STRING, nullable=False, rules=tuple(checks))


#: Derived column of the statement frame: the account number cleaned to letters and digits.
ACCOUNT_CLEAN = "account_clean"


def _unique_non_empty(s: pd.Series) -> pd.Series:
    return ~(s.duplicated(keep=False) & (s != ""))


@cache
def statement_schema() -> FrameRules:
    """The statement-level values, one row per statement (after parsing).

    Validated once per statement: the builder has already checked that every line of
    the statement repeats the same text (SPEC §3.5, conflicting values)."""
    columns = {c.name: _input_column(c, on_lines=False) for c in extract_columns() if c.level == "statement"}
    columns[ACCOUNT_CLEAN] = ColumnRules(
        ACCOUNT_CLEAN,
        STRING,
        rules=(
            _check(_non_empty, "has no letter or digit, so the AccountNumber would be empty"),
            _check(
                _unique_non_empty,
                "cleans to the same AccountNumber as another account number in this extract",
            ),
        ),
    )
    return frame_rules("statement extract: statement-level values", list(columns.values()), strict=True)


@cache
def line_schema() -> FrameRules:
    """The line-level values of the rows that carry activity (after parsing)."""
    columns = [_input_column(c, on_lines=True) for c in extract_columns() if c.level == "line"]
    return frame_rules("statement extract: activity lines", columns, strict=True)


# -- output schemas ------------------------------------------------------------------


def _encodable_class(encoding: str) -> str | None:
    """A regex character class of what a single-byte encoding can write; None = all."""
    name = codecs.lookup(encoding).name
    if name.startswith("utf"):
        return None
    chars = []
    for b in range(256):
        try:
            chars.append(bytes([b]).decode(name))
        except UnicodeDecodeError:
            continue
    if len(chars) < 128:  # not a single-byte code page
        return None
    # literal characters (escaped where special): valid in both Python re and RE2
    return "".join(re.escape(c) if c in "\\]^-[" else c for c in chars if c not in "\x00")


def _python_encodable(encoding: str) -> Callable[[pd.Series], pd.Series]:
    def check(s: pd.Series) -> pd.Series:
        def ok(v: str) -> bool:
            try:
                v.encode(encoding)
            except UnicodeEncodeError:
                return False
            return True

        return s.map(ok, na_action="ignore").astype(bool)

    return check


@cache
def record_schema(
    record: str, message_field_length: int = 255, encoding: str = "utf-8", *, check_clean: bool = False
) -> FrameRules:
    """The schema of one record type's frame, just before it is written.

    ``check_clean`` adds "no control characters, no surrounding spaces" to every text
    field. The builder cleans text at the source and the writer cleans anything not
    marked clean, so the run leaves it off (it would scan every value a second time);
    the tests turn it on to prove the builder's output is clean."""
    columns = []
    encodable = _encodable_class(encoding)
    multi_byte = encodable is None and not codecs.lookup(encoding).name.startswith("utf")
    for f in record_fields(record):
        checks: list[Rule] = []
        if f.required:
            checks.append(_check(_non_empty, "is required"))
        if f.limit:
            limit = message_field_length if f.limit == "message_field_length" else int(f.limit)
            checks.append(_max_length(limit, f"is longer than {limit} characters"))
        if f.const is not None:
            checks.append(_equals(f.const, f"must be {f.const!r}"))
        elif f.format in _FORMAT_PATTERNS:
            pattern, what = _FORMAT_PATTERNS[f.format]
            checks.append(_check(_fullmatch(pattern), f"is not {what}"))
        elif f.format == "text" and check_clean:
            clean = rf"^([^ {CONTROL_CLASS}]([^{CONTROL_CLASS}]*[^ {CONTROL_CLASS}])?)?\Z"
            checks.append(_matches(clean, "has control characters or surrounding spaces"))
        elif f.format != "text":
            raise RecordSchemaError(
                f"{FIELD_MAP.name}: unknown format {f.format!r} for {record}.{f.ic_field}"
            )
        if f.format == "text" and encodable is not None:
            rule = f"has a character that {encoding} cannot write"
            checks.append(_matches(rf"^[{encodable}]*\Z", rule))
        elif f.format == "text" and multi_byte:
            rule = f"has a character that {encoding} cannot write"
            checks.append(_check(_python_encodable(encoding), rule))
        columns.append(ColumnRules(f.ic_field, STRING, rules=tuple(checks)))
    return frame_rules(f"invoice file {record} records", columns, strict=True, ordered=True)


# -- failure cases -> reasons --------------------------------------------------------

_FRIENDLY = {"not_nullable": REQUIRED_RULE}
#: Derived columns are reported under the input column they come from.
_COLUMN_LABELS = {ACCOUNT_CLEAN: "account_number"}


def failure_reasons(fc: pd.DataFrame, *, prefix: str = "") -> pd.Series:
    """One reason string per failing row index: ``"<column>: <rule>"``, joined by ``; ``,
    from pandera's ``failure_cases`` (or :func:`~caselle_ic.tabular.rules.failure_cases`).

    Raises RecordSchemaError when a failure is not tied to a row (missing column, wrong
    dtype, a frame-wide check)."""
    untied = fc[fc["index"].isna()]
    if len(untied):
        what = "; ".join(
            f"{r.column}: {r.check} ({r.failure_case})" for r in untied.head(5).itertuples(index=False)
        )
        raise RecordSchemaError(
            f"{prefix or 'records'} failed a rule that is not tied to one row: {what}. "
            "This is a bug in the invoice builder or the field map; nothing was written."
        )
    checks = fc["check"].astype(str).map(lambda c: _FRIENDLY.get(c, c))
    columns = fc["column"].astype(str).map(lambda c: _COLUMN_LABELS.get(c, c))
    reason = prefix + columns + ": " + checks
    return join_by_id(fc["index"].astype("int64").to_numpy(), reason.to_numpy(dtype=object))


def join_by_id(ids: np.ndarray, texts: np.ndarray) -> pd.Series:
    """``"; "``-joined distinct texts per id, in order of first appearance, ids sorted.

    Arrow's hash aggregation and list join: a file where every row fails gives a
    million groups, which a pandas groupby would join in a Python loop."""
    if not len(ids):
        return pd.Series([], dtype=object, index=pd.Index([], dtype="int64"))
    table = pa.table({"id": pa.array(ids, pa.int64()), "text": pa.array(texts, pa.large_string())})
    # distinct (id, text) pairs; single-threaded hash grouping keeps first-appearance order
    table = table.group_by(["id", "text"], use_threads=False).aggregate([])
    grouped = table.group_by("id", use_threads=False).aggregate([("text", "list")])
    joined = pc.binary_join(grouped["text_list"], pa.scalar("; ", pa.large_string()))
    out = pd.Series(joined.to_numpy(zero_copy_only=False), index=grouped["id"].to_numpy(), dtype=object)
    return out.sort_index()


def validate(schema: FrameRules, frame: pd.DataFrame, *, prefix: str = "") -> pd.Series:
    """Check every rule on every row (no pandera: see :mod:`caselle_ic.tabular.rules`);
    return the reasons of the failing rows (empty when all pass)."""
    try:
        fc = failure_cases(schema, frame)
    except RulesMismatch as exc:
        raise RecordSchemaError(
            f"{prefix or 'records'} do not have the shape the rules declare: {exc}. "
            "This is a bug in the invoice builder or the field map; nothing was written."
        ) from None
    if not len(fc):
        return pd.Series([], dtype=object, index=pd.Index([], dtype="int64"))
    return failure_reasons(fc, prefix=prefix)


def validate_with_pandera(schema: FrameRules, frame: pd.DataFrame, *, prefix: str = "") -> pd.Series:
    """:func:`validate` through the pandera schema the rules declare (for tests that hold
    the two to the same reasons)."""
    from pandera.errors import SchemaErrors

    try:
        schema.to_pandera().validate(frame, lazy=True)
    except SchemaErrors as exc:
        return failure_reasons(exc.failure_cases, prefix=prefix)
    return pd.Series([], dtype=object, index=pd.Index([], dtype="int64"))


_CLEAN_RE = re.compile(f"[{_PY_CONTROL_CLASS}]+")


def clean_value(value: str) -> str:
    """The reference (pure Python) form of the writer's text rule, for tests and docs:
    every run of control characters becomes one space, then surrounding spaces go."""
    return _CLEAN_RE.sub(" ", value).strip(" ")
