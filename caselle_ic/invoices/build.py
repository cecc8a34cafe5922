"""Statement extract -> IC invoice records (SPEC §2.1, §3).

Two steps, each a plain function the pipeline (and the Prefect flow) calls:

:func:`check_extract` groups the extract's rows into statements and applies every
quarantine rule of SPEC §3.5:

* statements are keyed by the account number exactly as written, in the order of their
  first row; rows of one statement need not be adjacent;
* every statement-level column must repeat the same text on every line of the statement
  (compared on adjacent rows of the grouped order: zero-copy slices, no hashing);
* statement-level values are then parsed and validated once per statement, activity
  lines once per line, both against pandera schemas built from
  ``schemas/statement_extract.csv``; account numbers are cleaned to letters and digits,
  and two accounts that clean to the same AccountNumber are both quarantined;
* lines are ordered by line_date (ties in extract order), the running balance (§3.4) is
  a cumulative sum per statement, and a statement whose last running balance is not its
  customer_balance is quarantined.

:func:`build_records` maps the statements that passed onto the IC field map (§3.1):
InvoiceNumber (§3.2), the general message spread over Custom8-12 (§3.3), the running
balance, blank invoice types on PAYMENT lines; then validates every record type against
the schemas built from ``schemas/invoice_field_map.csv`` (a record that fails quarantines
its statement) and collects the quarantined input rows with their reasons.

Money is int64 cents throughout. Everything is column-at-a-time (Arrow compute, numpy);
the only Python loops run once per *distinct overflowing message* or per quarantined
statement, never per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.config.model import BillerConfig
from caselle_ic.errors import RecordSchemaError
from caselle_ic.invoices.writer import RecordSet
from caselle_ic.result import InvoiceCount
from caselle_ic.schemas.invoices import (
    ACCOUNT_CLEAN,
    BAD_CENTS,
    BAD_DATE,
    ExtractColumn,
    FieldSpec,
    extract_columns,
    extract_names,
    join_by_id,
    line_schema,
    record_fields,
    record_schema,
    required_extract_columns,
    statement_schema,
    validate,
)
from caselle_ic.tabular.csvin import LINE, TextTable, read_text_table
from caselle_ic.tabular.output import REASON
from caselle_ic.tabular.parallel import column_map
from caselle_ic.tabular.text import clean_text
from caselle_ic.tabular.values import (
    arrow_strings,
    format_cents,
    format_cents_array,
    format_dates_array,
    lstr,
    map_distinct,
    mask_account_value,
    parse_cents,
    parse_dates,
    string_series,
)

SPEC: dict[str, ExtractColumn] = {c.name: c for c in extract_columns()}
STATEMENT_COLUMNS = extract_names("statement")
LINE_COLUMNS = extract_names("line")
MESSAGE_FIELDS = 5
#: How many statements a note names before it says "and N more".
NOTE_NAMES = 20


def read_extract(path: str | Path, cfg: BillerConfig) -> TextTable:
    """Read the statement extract as text (SPEC §2): header aliases, encoding, required
    columns. InputError (exit 2) when the file cannot be used at all."""
    return read_text_table(
        path,
        encoding=cfg.extract.encoding,
        column_map=cfg.extract.columns,
        required=required_extract_columns(),
        known=extract_names(),
        what="statement extract",
    )


# -- small column helpers ------------------------------------------------------------


def constant_strings(value: str, n: int) -> pa.ChunkedArray:
    """``n`` copies of one string, built from buffers (no per-row objects)."""
    raw = value.encode("utf-8")
    offsets = np.arange(n + 1, dtype=np.int64) * len(raw)
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(raw * n))
    return pa.chunked_array([arr])


def _np(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False))


def _take(values: pa.ChunkedArray | pa.Array, idx: np.ndarray) -> pa.ChunkedArray:
    """``values[idx]``. A column of many chunks (the CSV reader's blocks) is combined
    first: Arrow's take over many chunks costs several times the copy."""
    if isinstance(values, pa.ChunkedArray) and values.num_chunks > 1:
        values = values.combine_chunks()
    out = pc.take(values, pa.array(idx, type=pa.int64()))
    return out if isinstance(out, pa.ChunkedArray) else pa.chunked_array([out])


def _cents_series(cents: np.ndarray, na: np.ndarray, bad: np.ndarray, index: pd.Index) -> pd.Series:
    """Int64 cents with <NA> for blank and BAD_CENTS for unparseable."""
    values = np.where(bad, BAD_CENTS, np.where(na, 0, cents)).astype(np.int64)
    return pd.Series(pd.arrays.IntegerArray(values, na & ~bad), index=index, copy=False)


def _parsed_amount(raw: pa.ChunkedArray, index: pd.Index) -> pd.Series:
    values, bad = parse_cents(string_series(raw))
    na = values.isna().to_numpy()
    cents = values.to_numpy(dtype="int64", na_value=0)
    return _cents_series(cents, na & ~bad.to_numpy(), bad.to_numpy(), index)


def _parsed_date(raw: pa.ChunkedArray, index: pd.Index) -> pd.Series:
    values, bad = parse_dates(string_series(raw))
    out = values.to_numpy(dtype="datetime64[s]").copy()
    out[bad.to_numpy()] = BAD_DATE
    return pd.Series(out, index=index, copy=False)


def _usable_cents(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(cents with blank/bad as 0, mask of values that parsed or are blank)."""
    v = s.to_numpy(dtype="int64", na_value=0)
    ok = v != BAD_CENTS
    return np.where(ok, v, 0), ok


class Reasons:
    """Quarantine reasons collected along the way, per statement and per input row."""

    def __init__(self) -> None:
        self._stmt: list[pd.Series] = []
        self._row: list[pd.Series] = []

    def statements(self, ids: np.ndarray | pd.Index, reason: str | np.ndarray | pd.Series) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids):
            values = (
                np.full(len(ids), reason, dtype=object) if isinstance(reason, str) else np.asarray(reason)
            )
            self._stmt.append(pd.Series(values, index=ids, dtype=object))

    def statement_series(self, s: pd.Series) -> None:
        if len(s):
            self.statements(s.index.to_numpy(), s.to_numpy(dtype=object))

    def rows(self, s: pd.Series) -> None:
        if len(s):
            self._row.append(pd.Series(s.to_numpy(dtype=object), index=s.index.to_numpy(dtype=np.int64)))

    @staticmethod
    def _joined(parts: list[pd.Series]) -> pd.Series:
        if not parts:
            return pd.Series([], dtype=object, index=pd.Index([], dtype="int64"))
        allr = pd.concat(parts)
        return join_by_id(allr.index.to_numpy(dtype=np.int64), allr.to_numpy(dtype=object))

    def by_statement(self) -> pd.Series:
        return self._joined(self._stmt)

    def by_row(self) -> pd.Series:
        return self._joined(self._row)


# -- step 1: check the extract -------------------------------------------------------


@dataclass
class CheckedExtract:
    """The extract grouped into statements, parsed, validated and reconciled."""

    path: Path
    n_rows: int
    codes: np.ndarray  # statement id of each input row (0.. in order of first appearance)
    lines: np.ndarray  # physical line of each input row
    raw_statements: pa.Table  # statement-level text as read, one row per statement
    statements: pd.DataFrame  # parsed statement-level values, index = statement id
    line_raw: pa.Table  # line-level text as read, every input row
    line_rows: np.ndarray  # input rows that carry activity, in file order of records
    line_frame: pd.DataFrame  # parsed activity lines, index = input row, same order
    line_start: np.ndarray  # per statement: first position in line_rows
    line_count: np.ndarray  # per statement: number of activity lines
    running: np.ndarray  # running balance (cents) of each activity line
    reasons: Reasons
    conflict_rows: pd.DataFrame  # raw rows of statements whose lines disagree
    first_line: np.ndarray  # physical line of each statement's first row
    notes: list[str] = field(default_factory=list)

    @property
    def n_statements(self) -> int:
        return len(self.statements)


def _group(accounts: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """codes per row, grouping order (None = rows already grouped), sorted codes, first rows."""
    encoded = pc.dictionary_encode(accounts.combine_chunks())
    codes = _np(encoded.indices).astype(np.int64)
    n = len(codes)
    grouped = n < 2 or bool(np.all(codes[1:] >= codes[:-1]))
    order = None if grouped else np.argsort(codes, kind="stable")
    sorted_codes = codes if order is None else codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]) if n else np.zeros(0, int)
    first_row = starts if order is None else order[starts]
    return codes, order, sorted_codes, first_row


def _parsed(values: pa.ChunkedArray, kind: str, index: pd.Index) -> pd.Series:
    """One extract column as the schema wants it: amounts as Int64 cents, dates as
    datetime64[s] (unparseable values as the BAD sentinels), text cleaned."""
    if kind == "amount":
        return _parsed_amount(values, index)
    if kind == "date":
        return _parsed_date(values, index)
    text = clean_text(values)
    if kind == "line_type":
        text = map_distinct(text, pc.utf8_upper)
    return string_series(text, index)


def _statement_frame(raw: pa.Table, index: pd.Index) -> pd.DataFrame:
    parsed = column_map(lambda name: _parsed(raw.column(name), SPEC[name].kind, index), STATEMENT_COLUMNS)
    cols: dict[str, pd.Series] = dict(zip(STATEMENT_COLUMNS, parsed, strict=True))
    for name in STATEMENT_COLUMNS:  # defaults: balance_due <- customer_balance
        spec = SPEC[name]
        if spec.default:
            s = cols[name]
            cols[name] = s.where(s.notna(), cols[spec.default])
    account = arrow_strings(cols["account_number"])
    clean = pc.replace_substring_regex(account, "[^A-Za-z0-9]+", "")
    cols[ACCOUNT_CLEAN] = string_series(clean, index)
    return pd.DataFrame(cols, index=index)


def _line_frame(raw: pa.Table, index: pd.Index) -> pd.DataFrame:
    parsed = column_map(lambda name: _parsed(raw.column(name), SPEC[name].kind, index), LINE_COLUMNS)
    return pd.DataFrame(dict(zip(LINE_COLUMNS, parsed, strict=True)), index=index)


def _has_activity(lines: pd.DataFrame) -> np.ndarray:
    """Rows with any line-level column filled (after trimming; an unparseable value counts)."""
    has = np.zeros(len(lines), dtype=bool)
    for name in LINE_COLUMNS:
        col = lines[name]
        if SPEC[name].kind in ("amount", "date"):
            has |= col.notna().to_numpy()
        else:
            has |= _np(pc.greater(pc.binary_length(arrow_strings(col)), 0))
    return has


def check_extract(extract: TextTable, cfg: BillerConfig) -> CheckedExtract:
    """Group, parse, validate and reconcile the statements of an extract.

    Consumes the statement-level columns of ``extract`` (they are dropped once reduced to
    one row per statement) so a million-statement file is held once, not twice."""
    table = extract.table
    n = table.num_rows
    reasons = Reasons()
    codes, order, sorted_codes, first_row = _group(table.column("account_number"))
    k = len(first_row)
    stmt_index = pd.Index(np.arange(k, dtype=np.int64))

    # Statement-level values must repeat on every line of the statement (SPEC §3.5).
    same_as_previous = sorted_codes[1:] == sorted_codes[:-1]

    def compare(name: str, source: pa.Table = table) -> tuple[np.ndarray | None, pa.ChunkedArray]:
        col = source.column(name).combine_chunks()  # aligned slices compare fastest
        grouped = col if order is None else pc.take(col, pa.array(order))
        ids = None
        if n > 1 and same_as_previous.any():
            differs = _np(pc.not_equal(grouped.slice(1), grouped.slice(0, n - 1))) & same_as_previous
            if differs.any():
                ids = np.unique(sorted_codes[1:][differs])
        return ids, _take(col, first_row)

    compared = column_map(compare, STATEMENT_COLUMNS)
    conflict_parts = [
        (ids, f"{name}: differs between the lines of this statement")
        for name, (ids, _) in zip(STATEMENT_COLUMNS, compared, strict=True)
        if ids is not None
    ]
    firsts = {name: first for name, (_, first) in zip(STATEMENT_COLUMNS, compared, strict=True)}
    conflict_ids = np.unique(np.concatenate([ids for ids, _ in conflict_parts])) if conflict_parts else None
    for ids, reason in conflict_parts:
        reasons.statements(ids, reason)
    if conflict_ids is not None:
        rows = np.flatnonzero(np.isin(codes, conflict_ids))
        conflict_rows = table.take(pa.array(rows)).to_pandas(types_mapper=pd.ArrowDtype)
        conflict_rows = conflict_rows.astype("string").set_axis(pd.Index(rows), axis=0)
        conflict_rows[LINE] = extract.lines[rows]
    else:
        conflict_rows = pd.DataFrame()
    raw_statements = pa.table([firsts[c] for c in STATEMENT_COLUMNS], names=STATEMENT_COLUMNS)
    extract.drop(STATEMENT_COLUMNS)  # release the 5-rows-per-statement copies
    del table, firsts, compared, compare

    # Statement-level values: parse and validate once per statement.
    statements = _statement_frame(raw_statements, stmt_index)
    reasons.statement_series(validate(statement_schema(), statements))

    # Activity lines: parse and validate the rows that carry any line column.
    line_raw = extract.table.select(LINE_COLUMNS)
    lines = _line_frame(line_raw, pd.Index(np.arange(n, dtype=np.int64)))
    has = _has_activity(lines)
    all_rows = bool(has.all())
    line_rows = np.arange(n, dtype=np.int64) if all_rows else np.flatnonzero(has)
    if not all_rows:
        lines = lines.iloc[line_rows]
    reasons.rows(validate(line_schema(), lines))

    # Order lines by statement, then line_date, ties in extract order (stable).
    lc = codes[line_rows]
    ld = lines["line_date"].to_numpy(dtype="datetime64[s]").view(np.int64)
    in_order = len(lc) < 2 or bool(np.all((lc[1:] > lc[:-1]) | ((lc[1:] == lc[:-1]) & (ld[1:] >= ld[:-1]))))
    if not in_order:
        perm = np.lexsort((ld, lc))
        line_rows, lc = line_rows[perm], lc[perm]
        lines = lines.iloc[perm]
    line_start = np.searchsorted(lc, np.arange(k))
    line_count = np.diff(np.r_[line_start, len(lc)]).astype(np.int64)

    # Running balance (SPEC §3.4): balance forward + charges - credits, cumulative.
    charge, charge_ok = _usable_cents(lines["charge_amount"])
    credit, credit_ok = _usable_cents(lines["credit_amount"])
    cum = np.cumsum(charge - credit)
    base = np.r_[0, cum][line_start]
    bfwd, bfwd_ok = _usable_cents(statements["last_statement_balance"])
    running = bfwd[lc] + cum - base[lc] if len(lc) else np.zeros(0, dtype=np.int64)
    last = bfwd + np.r_[0, cum][line_start + line_count] - base
    balance, balance_ok = _usable_cents(statements["customer_balance"])
    usable = (
        bfwd_ok
        & balance_ok
        & statements["last_statement_balance"].notna().to_numpy()
        & statements["customer_balance"].notna().to_numpy()
    )
    bad_line_stmts = np.unique(lc[~(charge_ok & credit_ok)])
    usable[bad_line_stmts] = False
    off = np.flatnonzero(usable & (last != balance))
    if len(off):
        texts = [
            f"customer_balance: running balance {format_cents(a)} does not reconcile to "
            f"customer balance {format_cents(b)}"
            for a, b in zip(last[off], balance[off], strict=True)
        ]
        reasons.statements(off, np.asarray(texts, dtype=object))

    notes = []
    orphan = (~has) & np.isin(codes, lc) if not all_rows else np.zeros(0, dtype=bool)
    if orphan.any():
        notes.append(
            f"{int(orphan.sum())} row(s) without activity belong to statements that have activity "
            "lines; they add no ID record (their statement-level values were checked)"
        )
    return CheckedExtract(
        path=extract.path,
        n_rows=n,
        codes=codes,
        lines=extract.lines,
        raw_statements=raw_statements,
        statements=statements,
        line_raw=line_raw,
        line_rows=line_rows,
        line_frame=lines,
        line_start=line_start,
        line_count=line_count,
        running=running,
        reasons=reasons,
        conflict_rows=conflict_rows,
        first_line=extract.lines[first_row],
        notes=notes,
    )


# -- step 2: build the records -------------------------------------------------------


def split_message(text: str, width: int, fields: int = MESSAGE_FIELDS) -> tuple[list[str], bool]:
    """SPEC §3.3: fill up to ``fields`` parts of at most ``width`` characters, splitting at
    the last space that fits (the space is dropped); a word longer than a field is cut at
    the limit. Returns the parts (always ``fields`` of them) and whether text was lost."""
    parts: list[str] = []
    rest = text.strip(" ")
    while rest and len(parts) < fields:
        if len(rest) <= width:
            parts.append(rest)
            rest = ""
            break
        cut = rest.rfind(" ", 0, width + 1)
        if cut > 0:
            parts.append(rest[:cut].rstrip(" "))
            rest = rest[cut + 1 :].lstrip(" ")
        else:
            parts.append(rest[:width])
            rest = rest[width:].lstrip(" ")
    return parts + [""] * (fields - len(parts)), bool(rest)


def _scatter(base: pa.ChunkedArray | pa.Array, idx: np.ndarray, values: pa.Array) -> pa.ChunkedArray:
    """``base`` with positions ``idx`` replaced by ``values`` (one take, no Python objects)."""
    n = len(base)
    where = np.arange(n, dtype=np.int64)
    where[idx] = n + np.arange(len(idx), dtype=np.int64)
    both = pa.chunked_array([*_chunked_large(base).chunks, values.cast(pa.large_string())])
    return _take(both, where)


def _chunked_large(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    out = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    return out if out.type == pa.large_string() else out.cast(pa.large_string())


def _message_parts(messages: pa.ChunkedArray, width: int) -> tuple[list[pa.ChunkedArray], np.ndarray]:
    """The five message fields of every statement, and which were truncated.

    Messages that fit in one field go to Custom8 as they are (one vectorised length test);
    the rest are split once per distinct message, as a cycle repeats a few notices."""
    n = len(messages)
    long = _np(pc.greater(pc.utf8_length(messages), width)) if n else np.zeros(0, bool)
    empty = constant_strings("", n)
    parts = [_chunked_large(messages)] + [empty] * (MESSAGE_FIELDS - 1)
    truncated = np.zeros(n, dtype=bool)
    if long.any():
        idx = np.flatnonzero(long)
        encoded = pc.dictionary_encode(_take(messages, idx).combine_chunks())
        split = [split_message(m, width) for m in encoded.dictionary.to_pylist()]
        codes = pa.array(_np(encoded.indices).astype(np.int64))
        truncated[idx] = np.array([s[1] for s in split], dtype=bool)[codes.to_numpy()]
        for i in range(MESSAGE_FIELDS):
            distinct = pa.array([s[0][i] for s in split], pa.large_string())
            parts[i] = _scatter(parts[i], idx, pc.take(distinct, codes))
    return [p if isinstance(p, pa.ChunkedArray) else pa.chunked_array([p]) for p in parts], truncated


@dataclass
class InvoiceBuild:
    """Everything the writer and the run report need."""

    records: RecordSet
    rejects: pd.DataFrame  # quarantined input rows, extract columns + _line + reason
    counts: dict[str, int]
    total_cents: int
    notes: list[str]
    now: datetime


def _format(values: pd.Series, kind: str) -> pa.ChunkedArray:
    if kind == "amount":
        na = values.isna().to_numpy()
        return pa.chunked_array([format_cents_array(values.to_numpy(dtype="int64", na_value=0), na)])
    if kind == "date":  # an unparseable date (its statement is quarantined) is left blank
        days = values.to_numpy(dtype="datetime64[s]").copy()
        days[days == BAD_DATE] = np.datetime64("NaT")
        return pa.chunked_array([format_dates_array(days)])
    return arrow_strings(values)


def _digits(values: pa.ChunkedArray) -> pa.ChunkedArray:
    if not len(values) or not pc.any(pc.match_substring_regex(values, "[^0-9]")).as_py():
        return values
    out = pc.replace_substring_regex(values, "[^0-9]+", "")
    return out if isinstance(out, pa.ChunkedArray) else pa.chunked_array([out])


def normalize_quantity(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Quantity as given, without trailing zeros after the decimal point (1.50 -> 1.5,
    2.00 -> 2, 10 stays 10). Once per distinct quantity: a cycle has a handful."""

    def strip(arr: pa.Array) -> pa.Array:
        if not len(arr) or not pc.any(pc.match_substring_regex(arr, "\\.[0-9]*0$|\\.$")).as_py():
            return arr
        out = pc.replace_substring_regex(arr, "^(-?[0-9]*\\.[0-9]*?)0+$", "\\1")
        out = pc.replace_substring_regex(out, "^(-?[0-9]*)\\.$", "\\1")
        emptied = pc.and_(pc.or_(pc.equal(out, ""), pc.equal(out, "-")), pc.not_equal(arr, ""))
        return pc.if_else(emptied, lstr("0"), out)

    return _chunked_large(map_distinct(values, strip))


def _frame(fields: list[FieldSpec], values: dict[str, pa.ChunkedArray], index: pd.Index) -> pd.DataFrame:
    return pd.DataFrame({f.ic_field: string_series(values[f.ic_field], index) for f in fields}, index=index)


def build_records(checked: CheckedExtract, cfg: BillerConfig, now: datetime) -> InvoiceBuild:
    """Map every statement onto the IC records, validate them, collect the rejects.

    Records are built for all statements (no per-column subsetting of a million rows);
    the quarantined ones are left out when the file is written (``RecordSet.keep``)."""
    st = checked.statements
    k = checked.n_statements
    width = cfg.invoice_file.message_field_length
    encoding = cfg.invoice_file.encoding
    notes = list(checked.notes)

    stmt_reasons = checked.reasons.by_statement()
    row_reasons = checked.reasons.by_row()
    bad = np.zeros(k, dtype=bool)
    bad[stmt_reasons.index.to_numpy(dtype=np.int64)] = True
    bad[checked.codes[row_reasons.index.to_numpy(dtype=np.int64)]] = True

    lines = checked.line_frame
    lrows = checked.line_rows
    line_type = arrow_strings(lines["line_type"])
    ref_no = arrow_strings(lines["ref_no"])
    category = arrow_strings(lines["invoice_category_code"])
    is_payment = _np(pc.equal(line_type, "PAYMENT")) if len(lrows) else np.zeros(0, bool)

    # InvoiceNumber (SPEC §3.2) and InvoiceTypeID.
    start, count = checked.line_start, checked.line_count
    invoice_pos = np.flatnonzero(_np(pc.equal(line_type, "INVOICE"))) if len(lrows) else np.zeros(0, int)
    j = np.searchsorted(invoice_pos, start)
    first_invoice = invoice_pos[np.minimum(j, len(invoice_pos) - 1)] if len(invoice_pos) else start
    has_invoice = (j < len(invoice_pos)) & (count > 0) & (first_invoice < start + count)
    has_lines = count > 0
    chosen = np.where(has_invoice, first_invoice, np.where(has_lines, start, 0))
    if len(lrows):
        ref_chosen = _take(ref_no, chosen)
        date_chosen = format_dates_array(
            lines["line_date"].to_numpy(dtype="datetime64[s]")[chosen], pad=False
        )
        code_chosen = _take(category, chosen)
        payment_chosen = is_payment[chosen]
    else:
        ref_chosen = date_chosen = code_chosen = constant_strings("", k)
        payment_chosen = np.zeros(k, dtype=bool)
    account_clean = arrow_strings(st[ACCOUNT_CLEAN])
    stmt_date = format_dates_array(st["statement_date"].to_numpy(dtype="datetime64[s]"), pad=False)
    dash = lstr("-")
    invoice_number = _chunked_large(
        pc.if_else(
            pa.array(has_invoice),
            ref_chosen,
            pc.if_else(
                pa.array(has_lines),
                pc.binary_join_element_wise(ref_chosen, date_chosen, dash),
                pc.binary_join_element_wise(account_clean, stmt_date, dash),
            ),
        )
    )
    invoice_type = _chunked_large(pc.if_else(pa.array(has_lines & ~payment_chosen), code_chosen, lstr("")))

    # General message (SPEC §3.3).
    messages, truncated = _message_parts(arrow_strings(st["general_message"]), width)

    # IH and CR: one row per statement; ID: every activity line, in line order.
    n_id = len(lines)

    def field_values(f: FieldSpec) -> pa.ChunkedArray:
        src = f.source
        n = n_id if f.record == "ID" else k
        if f.const is not None:
            return constant_strings(f.const, n)
        if src == "config:invoice_format_guid":
            return constant_strings(cfg.invoice_format_guid, n)
        if src == "rule:invoice_number":
            return invoice_number
        if src == "rule:invoice_type":
            return invoice_type
        if src.startswith("message:"):
            return messages[int(src.split(":")[1]) - 1]
        if src == "account_number":
            return account_clean
        if src == "rule:running_balance":
            return pa.chunked_array([format_cents_array(checked.running)])
        if src == "rule:line_category":
            if not is_payment.any():
                return category
            return _chunked_large(pc.if_else(pa.array(is_payment), lstr(""), category))
        if src in SPEC:
            values = _format((lines if f.record == "ID" else st)[src], SPEC[src].kind)
            if f.format == "digits":
                return _digits(values)
            if f.format == "quantity":
                return normalize_quantity(values)
            return values
        raise RecordSchemaError(f"field map: unknown source {src!r} for {f.record}.{f.ic_field}")

    fields = record_fields("IH") + record_fields("CR") + record_fields("ID")
    computed = dict(
        zip(((f.record, f.ic_field) for f in fields), column_map(field_values, fields), strict=True)
    )
    index = pd.Index(np.arange(k, dtype=np.int64))
    ih, cr, id_frame = (
        _frame(record_fields(rec), {f.ic_field: computed[(rec, f.ic_field)] for f in record_fields(rec)}, idx)
        for rec, idx in (("IH", index), ("CR", index), ("ID", pd.Index(lrows)))
    )
    del computed

    # Validate every record against the field map (the three record types side by side);
    # a failing record quarantines its statement (failures of statements already
    # quarantined add nothing).
    failed_ih, failed_cr, failed_id = column_map(
        lambda item: validate(record_schema(item[0], width, encoding), item[1], prefix=f"{item[0]}."),
        [("IH", ih), ("CR", cr), ("ID", id_frame)],
    )
    late = Reasons()
    for failed in (failed_ih, failed_cr):
        late.statement_series(failed[~bad[failed.index.to_numpy(dtype=np.int64)]])
    late.rows(failed_id[~bad[checked.codes[failed_id.index.to_numpy(dtype=np.int64)]]])
    late_stmt, late_rows = late.by_statement(), late.by_row()
    if len(late_stmt) or len(late_rows):
        checked.reasons.statement_series(late_stmt)
        checked.reasons.rows(late_rows)
        bad[late_stmt.index.to_numpy(dtype=np.int64)] = True
        bad[checked.codes[late_rows.index.to_numpy(dtype=np.int64)]] = True
    keep = ~bad
    n_keep = int(keep.sum())

    # FH: the file header over what is written.
    total = int(st["customer_balance"].to_numpy(dtype="int64", na_value=0)[keep].sum())
    fh_values = {
        "RowType": "FH",
        "BillerGuid": cfg.biller_guid,
        "FileCreationDate": f"{now:%m/%d/%Y}",
        "InvoiceCount": str(n_keep),
        "TotalInvoiceAmount": format_cents(total),
    }
    fh_fields = record_fields("FH")
    missing = [f.ic_field for f in fh_fields if f.ic_field not in fh_values]
    if missing:
        raise RecordSchemaError(f"field map: the FH fields {missing} have no source")
    fh = pd.DataFrame({f.ic_field: pd.Series([fh_values[f.ic_field]], dtype="string") for f in fh_fields})
    fh_fail = validate(record_schema("FH", width, encoding), fh, prefix="FH.")
    if len(fh_fail):
        raise RecordSchemaError(f"the file header is invalid: {'; '.join(fh_fail.tolist())}")

    notes += _notes(invoice_number, account_clean, checked.first_line, truncated & keep, keep, width)
    rejects = _rejects(checked, np.flatnonzero(bad))
    records = RecordSet(
        fh=fh, ih=ih, cr=cr, id=id_frame, lines_per_statement=checked.line_count, keep=keep, clean=True
    )
    counts: dict[str, int] = {
        InvoiceCount.ROWS_IN: checked.n_rows,
        InvoiceCount.STATEMENTS_IN: k,
        InvoiceCount.STATEMENTS_WRITTEN: n_keep,
        InvoiceCount.STATEMENTS_QUARANTINED: k - n_keep,
        InvoiceCount.ROWS_QUARANTINED: len(rejects),
        InvoiceCount.RECORDS_WRITTEN: records.n_records,
    }
    return InvoiceBuild(
        records=records, rejects=rejects, counts=counts, total_cents=total, notes=notes, now=now
    )


def _named(first_line: np.ndarray, account: pa.ChunkedArray, which: np.ndarray) -> str:
    """Statements named for a note (shown in the Prefect UI): extract line + masked account."""
    idx = np.flatnonzero(which)
    accounts = _take(account, idx[:NOTE_NAMES]).to_pylist()
    names = [
        f"line {line} (account {mask_account_value(acc)})"
        for line, acc in zip(first_line[idx[:NOTE_NAMES]], accounts, strict=True)
    ]
    more = len(idx) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _notes(
    invoice_number: pa.ChunkedArray,
    account: pa.ChunkedArray,
    first_line: np.ndarray,
    truncated: np.ndarray,
    keep: np.ndarray,
    width: int,
) -> list[str]:
    notes = []
    if truncated.any():
        notes.append(
            f"general message truncated to {MESSAGE_FIELDS} x {width} characters on the statement(s) "
            f"starting at {_named(first_line, account, truncated)}"
        )
    if keep.any():
        codes, _uniques = pd.factorize(string_series(invoice_number).to_numpy(dtype=object)[keep])
        counts = np.bincount(codes)
        shared = keep.copy()
        shared[keep] = counts[codes] > 1
        if shared.any():
            notes.append(
                f"{int((counts > 1).sum())} InvoiceNumber(s) appear on more than one statement "
                f"(written as they are): statements starting at {_named(first_line, account, shared)}"
            )
    return notes


def _rejects(checked: CheckedExtract, bad_statements: np.ndarray) -> pd.DataFrame:
    """The input rows of the quarantined statements, as read, with a reason each."""
    columns = extract_names()
    if not len(bad_statements):
        return pd.DataFrame({c: pd.Series([], dtype="string") for c in [*columns, LINE, REASON]})
    rows = np.flatnonzero(np.isin(checked.codes, bad_statements))
    codes = checked.codes[rows]
    stmt_cols = {c: string_series(_take(checked.raw_statements.column(c), codes)) for c in STATEMENT_COLUMNS}
    line_cols = {c: string_series(_take(checked.line_raw.column(c), rows)) for c in LINE_COLUMNS}
    frame = pd.DataFrame({c: (stmt_cols | line_cols)[c] for c in columns})
    frame.index = pd.Index(rows)
    if len(checked.conflict_rows):
        conflict = checked.conflict_rows[[c for c in columns if c in checked.conflict_rows.columns]]
        frame.loc[conflict.index, conflict.columns] = conflict
    frame[LINE] = checked.lines[rows]

    stmt_reasons = checked.reasons.by_statement()
    row_reasons = checked.reasons.by_row()
    own = pd.Series(row_reasons.reindex(rows).to_numpy(dtype=object), index=rows)
    shared = pd.Series(stmt_reasons.reindex(codes).to_numpy(dtype=object), index=rows)
    sep = np.where(shared.notna() & own.notna(), "; ", "")
    reason = shared.fillna("").astype(str) + sep + own.fillna("").astype(str)
    # Rows that are fine themselves: name the lines that sank their statement.
    silent = reason == ""
    if silent.any():
        with_reason = pd.Series(checked.lines[rows], index=rows)[own.notna()]
        by_stmt = with_reason.groupby(checked.codes[with_reason.index.to_numpy()]).agg(
            lambda s: ", ".join(str(x) for x in s)
        )
        named = pd.Series(codes, index=rows)[silent].map(by_stmt)
        reason[silent] = "statement quarantined because of line(s) " + named.astype(str)
    frame[REASON] = reason.astype("string")
    return frame.reset_index(drop=True)
