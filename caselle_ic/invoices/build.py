"""Checked statements -> IC invoice records (SPEC §3.1): the second step of the invoice
file, after :func:`caselle_ic.invoices.checks.check_extract`.

:func:`build_records` maps the statements that passed onto the IC field map (§3.1):
InvoiceNumber (§3.2), the general message spread over Custom8-12 (§3.3,
:mod:`caselle_ic.invoices.messages`), the running balance, blank invoice types on PAYMENT
lines; then validates every record type against the schemas built from
``schemas/invoice_field_map.csv`` (a record that fails quarantines its statement) and
collects the quarantined input rows with their reasons. It is a sequence of named steps,
each a function of its own.

Money is int64 cents throughout. Everything is column-at-a-time (Arrow compute, numpy);
the only Python loops run once per *distinct overflowing message* or per quarantined
statement, never per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.config.model import BillerConfig
from caselle_ic.errors import RecordSchemaError
from caselle_ic.invoices.checks import CheckedExtract, Reasons, quarantined_rows
from caselle_ic.invoices.columns import SPEC, as_numpy, constant_strings, large_strings, take
from caselle_ic.invoices.messages import MESSAGE_FIELDS, message_parts
from caselle_ic.invoices.writer import RecordSet
from caselle_ic.result import InvoiceCount
from caselle_ic.schemas.invoices import (
    ACCOUNT_CLEAN,
    BAD_DATE,
    STRING,
    FieldSpec,
    record_fields,
    record_schema,
    validate,
)
from caselle_ic.tabular.memory import release_freed
from caselle_ic.tabular.parallel import column_map
from caselle_ic.tabular.rules import FrameRules
from caselle_ic.tabular.values import (
    arrow_strings,
    format_cents,
    format_cents_array,
    format_dates_array,
    lstr,
    map_distinct,
    mask_account_value,
    string_series,
)

#: The statement column TotalInvoiceAmount adds up (SPEC §3.1, FH).
TOTAL_SOURCE = "customer_balance"
#: How many statements a note names before it says "and N more".
NOTE_NAMES = 20


@dataclass
class InvoiceBuild:
    """Everything the writer and the run report need."""

    records: RecordSet
    rejects: pd.DataFrame  # quarantined input rows, extract columns + _line + reason
    counts: dict[str, int]
    total_cents: int
    notes: list[str]
    now: datetime


@dataclass
class RuleColumns:
    """The columns the rules compute rather than copy from the extract."""

    invoice_number: pa.ChunkedArray  # per statement (SPEC §3.2)
    invoice_type: pa.ChunkedArray  # per statement: InvoiceTypeID
    messages: list[pa.ChunkedArray]  # per statement: Custom8-12 (SPEC §3.3)
    truncated: np.ndarray  # per statement: the message did not fit
    account_clean: pa.ChunkedArray  # per statement: AccountNumber, letters and digits
    category: pa.ChunkedArray  # per line: invoice_category_code
    is_payment: np.ndarray  # per line: a PAYMENT line


# -- the field formats -------------------------------------------------------------------


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

    return large_strings(map_distinct(values, strip))


def _frame(fields: list[FieldSpec], values: dict[str, pa.ChunkedArray], index: pd.Index) -> pd.DataFrame:
    return pd.DataFrame({f.ic_field: string_series(values[f.ic_field], index) for f in fields}, index=index)


# -- build_records and its steps -----------------------------------------------------------


def build_records(checked: CheckedExtract, cfg: BillerConfig, now: datetime) -> InvoiceBuild:
    """Map every statement onto the IC records, validate them, collect the rejects.

    Records are built for all statements (no per-column subsetting of a million rows);
    the quarantined ones are left out when the file is written (``RecordSet.keep``).
    Consumes the parsed lines and statements of ``checked`` as the records replace them
    (:func:`_record_frames`): ``checked`` is for the rejects and counts afterwards."""
    width = cfg.invoice_file.message_field_length
    bad = _already_quarantined(checked)
    rules = _rule_columns(checked, width)
    ih, cr, id_frame = _record_frames(checked, cfg, rules)
    _quarantine_failed_records(checked, cfg, (ih, cr, id_frame), bad)
    keep = ~bad
    n_keep = int(keep.sum())
    total = int(checked.statements[TOTAL_SOURCE].to_numpy(dtype="int64", na_value=0)[keep].sum())
    fh = _file_header(cfg, now, n_keep, total)
    notes = list(checked.notes)
    notes += _notes(
        rules.invoice_number, rules.account_clean, checked.first_line, rules.truncated & keep, keep, width
    )
    rejects = quarantined_rows(checked, np.flatnonzero(bad))
    records = RecordSet(
        fh=fh, ih=ih, cr=cr, id=id_frame, lines_per_statement=checked.line_count, keep=keep, clean=True
    )
    counts = _counts(checked, records, rejects, n_keep)
    return InvoiceBuild(
        records=records, rejects=rejects, counts=counts, total_cents=total, notes=notes, now=now
    )


def _already_quarantined(checked: CheckedExtract) -> np.ndarray:
    """Per statement, whether the checks quarantined it: its failing records add no reason."""
    stmt_reasons = checked.reasons.by_statement()
    row_reasons = checked.reasons.by_row()
    bad = np.zeros(checked.n_statements, dtype=bool)
    bad[stmt_reasons.index.to_numpy(dtype=np.int64)] = True
    bad[checked.codes[row_reasons.index.to_numpy(dtype=np.int64)]] = True
    return bad


def _rule_columns(checked: CheckedExtract, width: int) -> RuleColumns:
    """Computes, once, every column a rule derives, so the field map only picks them up."""
    st = checked.statements
    lines = checked.line_frame
    line_type = arrow_strings(lines["line_type"])
    category = arrow_strings(lines["invoice_category_code"])
    is_payment = as_numpy(pc.equal(line_type, "PAYMENT")) if len(checked.line_rows) else np.zeros(0, bool)
    account_clean = arrow_strings(st[ACCOUNT_CLEAN])
    invoice_number, invoice_type = _invoice_number_and_type(
        checked, line_type, category, is_payment, account_clean
    )
    messages, truncated = message_parts(arrow_strings(st["general_message"]), width)
    return RuleColumns(
        invoice_number=invoice_number,
        invoice_type=invoice_type,
        messages=messages,
        truncated=truncated,
        account_clean=account_clean,
        category=category,
        is_payment=is_payment,
    )


def _chosen_line(
    checked: CheckedExtract, line_type: pa.ChunkedArray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per statement, the line SPEC §3.2 names the invoice after (its first INVOICE line,
    else its first line): (has an INVOICE line, has any line, position of the chosen line)."""
    start, count = checked.line_start, checked.line_count
    has_rows = len(checked.line_rows) > 0
    invoice_pos = np.flatnonzero(as_numpy(pc.equal(line_type, "INVOICE"))) if has_rows else np.zeros(0, int)
    j = np.searchsorted(invoice_pos, start)
    first_invoice = invoice_pos[np.minimum(j, len(invoice_pos) - 1)] if len(invoice_pos) else start
    has_invoice = (j < len(invoice_pos)) & (count > 0) & (first_invoice < start + count)
    has_lines = count > 0
    chosen = np.where(has_invoice, first_invoice, np.where(has_lines, start, 0))
    return has_invoice, has_lines, chosen


def _invoice_number_and_type(
    checked: CheckedExtract,
    line_type: pa.ChunkedArray,
    category: pa.ChunkedArray,
    is_payment: np.ndarray,
    account_clean: pa.ChunkedArray,
) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """InvoiceNumber (SPEC §3.2) and InvoiceTypeID of every statement, from its chosen line:
    ref_no; ref_no-date without an INVOICE line; account-statement date without lines."""
    k = checked.n_statements
    lines = checked.line_frame
    has_invoice, has_lines, chosen = _chosen_line(checked, line_type)
    if len(checked.line_rows):
        ref_chosen = take(arrow_strings(lines["ref_no"]), chosen)
        date_chosen = format_dates_array(
            lines["line_date"].to_numpy(dtype="datetime64[s]")[chosen], pad=False
        )
        code_chosen = take(category, chosen)
        payment_chosen = is_payment[chosen]
    else:
        ref_chosen = date_chosen = code_chosen = constant_strings("", k)
        payment_chosen = np.zeros(k, dtype=bool)
    stmt_date = format_dates_array(
        checked.statements["statement_date"].to_numpy(dtype="datetime64[s]"), pad=False
    )
    dash = lstr("-")
    invoice_number = large_strings(
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
    invoice_type = large_strings(pc.if_else(pa.array(has_lines & ~payment_chosen), code_chosen, lstr("")))
    return invoice_number, invoice_type


def _field_column(
    f: FieldSpec, checked: CheckedExtract, cfg: BillerConfig, rules: RuleColumns
) -> pa.ChunkedArray:
    """One field of the field map for every record of its type, from the source it names."""
    src = f.source
    n = len(checked.line_frame) if f.record == "ID" else checked.n_statements
    if f.const is not None:
        return constant_strings(f.const, n)
    if src == "config:invoice_format_guid":
        return constant_strings(cfg.invoice_format_guid, n)
    derived = _rule_column(src, checked, rules)
    if derived is not None:
        return derived
    if src in SPEC:
        return _extract_column(f, checked)
    raise RecordSchemaError(f"field map: unknown source {src!r} for {f.record}.{f.ic_field}")


def _rule_column(src: str, checked: CheckedExtract, rules: RuleColumns) -> pa.ChunkedArray | None:
    """The column a rule computes for ``src`` (SPEC §3.2-3.4); None when no rule names it."""
    if src == "rule:invoice_number":
        return rules.invoice_number
    if src == "rule:invoice_type":
        return rules.invoice_type
    if src.startswith("message:"):
        return rules.messages[int(src.split(":")[1]) - 1]
    if src == "account_number":
        return rules.account_clean
    if src == "rule:running_balance":
        return pa.chunked_array([format_cents_array(checked.running)])
    if src == "rule:line_category":
        if not rules.is_payment.any():
            return rules.category
        return large_strings(pc.if_else(pa.array(rules.is_payment), lstr(""), rules.category))
    return None


def _extract_column(f: FieldSpec, checked: CheckedExtract) -> pa.ChunkedArray:
    """An extract column as the field's text: formatted by its kind, then by the map's format."""
    src = f.source
    values = _format((checked.line_frame if f.record == "ID" else checked.statements)[src], SPEC[src].kind)
    if f.format == "digits":
        return _digits(values)
    if f.format == "quantity":
        return normalize_quantity(values)
    return values


def _record_frames(
    checked: CheckedExtract, cfg: BillerConfig, rules: RuleColumns
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """IH and CR (one row per statement) and ID (every activity line, in line order); the
    fields of a record type are independent columns, computed side by side on threads.

    ID first: its fields are the last use of the parsed lines, which are released before
    IH and CR are built (on a big extract this is where a run peaks), so this consumes
    ``checked.line_frame`` (left empty, with its columns) and leaves ``checked.statements``
    with the one column the file header still needs."""
    # of the parsed lines the ID records read their sources only (line_type is in ``rules``)
    sources = {f.source for f in record_fields("ID")}
    checked.line_frame = checked.line_frame[[c for c in checked.line_frame.columns if c in sources]]
    release_freed()
    id_frame = _frames(checked, cfg, rules, ["ID"])[0]
    checked.running = checked.running[:0].copy()
    # new empty columns: an empty slice (even copied) keeps the Arrow arrays it came from
    lines = checked.line_frame
    checked.line_frame = pd.DataFrame({c: pd.Series([], dtype=lines[c].dtype) for c in lines.columns})
    del lines
    release_freed()
    ih, cr = _frames(checked, cfg, rules, ["IH", "CR"])
    # the records are validated next: of the parsed statements only the balance is still used
    checked.statements = checked.statements[[TOTAL_SOURCE]].copy()
    return ih, cr, id_frame


def _rules(kind: str, cfg: BillerConfig, columns: list[str] | None = None) -> FrameRules:
    """The rules of a record type's frame; of ``columns`` only, when given (in field order)."""
    rules = record_schema(kind, cfg.invoice_file.message_field_length, cfg.invoice_file.encoding)
    if columns is None:
        return rules
    kept = tuple(c for c in rules.columns if c.name in set(columns))
    return FrameRules(rules.name, kept, rules.checks, strict=rules.strict, ordered=rules.ordered)


def _written_fields(kind: str, cfg: BillerConfig) -> list[FieldSpec]:
    """The fields of a record type its frame holds. A ``const:`` field whose value passes
    its rules is left out: the writer writes ``f.const`` as it is, and a column of a
    million copies of "ID" would be checked and never read (on a million statements,
    150 MB of the build's peak). A constant that fails would fail on every row, so then
    it is built and checked like any other field (the same reasons, in the same order)."""
    fields = record_fields(kind)
    consts = [f for f in fields if f.const is not None]
    one = pd.DataFrame({f.ic_field: pd.Series([f.const], dtype=STRING) for f in consts})
    if not consts or len(validate(_rules(kind, cfg, list(one.columns)), one)):
        return fields
    return [f for f in fields if f.const is None]


def _frames(
    checked: CheckedExtract, cfg: BillerConfig, rules: RuleColumns, kinds: list[str]
) -> list[pd.DataFrame]:
    written = {kind: _written_fields(kind, cfg) for kind in kinds}
    fields = [f for kind in kinds for f in written[kind]]
    columns = column_map(lambda f: _field_column(f, checked, cfg, rules), fields)
    computed = dict(zip(((f.record, f.ic_field) for f in fields), columns, strict=True))
    del columns
    statements = pd.Index(np.arange(checked.n_statements, dtype=np.int64), copy=False)
    return [
        _frame(
            written[kind],
            {f.ic_field: computed[(kind, f.ic_field)] for f in written[kind]},
            pd.Index(checked.line_rows, copy=False) if kind == "ID" else statements,
        )
        for kind in kinds
    ]


def _quarantine_failed_records(
    checked: CheckedExtract,
    cfg: BillerConfig,
    frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    bad: np.ndarray,
) -> None:
    """Validates every record against the field map (the three record types side by side),
    so a failing record quarantines its statement: adds the reasons to ``checked`` and
    marks ``bad`` in place (failures of statements already quarantined add nothing)."""
    ih, cr, id_frame = frames
    failed_ih, failed_cr, failed_id = column_map(
        lambda item: validate(_rules(item[0], cfg, list(item[1].columns)), item[1], prefix=f"{item[0]}."),
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


def _file_header(cfg: BillerConfig, now: datetime, n_keep: int, total: int) -> pd.DataFrame:
    """The FH record over what is written; an invalid one is an error, not a quarantine."""
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
    schema = record_schema("FH", cfg.invoice_file.message_field_length, cfg.invoice_file.encoding)
    fh_fail = validate(schema, fh, prefix="FH.")
    if len(fh_fail):
        raise RecordSchemaError(f"the file header is invalid: {'; '.join(fh_fail.tolist())}")
    return fh


def _counts(
    checked: CheckedExtract, records: RecordSet, rejects: pd.DataFrame, n_keep: int
) -> dict[str, int]:
    """The run's counts, as the run report and the Prefect artifacts show them."""
    k = checked.n_statements
    return {
        InvoiceCount.ROWS_IN: checked.n_rows,
        InvoiceCount.STATEMENTS_IN: k,
        InvoiceCount.STATEMENTS_WRITTEN: n_keep,
        InvoiceCount.STATEMENTS_QUARANTINED: k - n_keep,
        InvoiceCount.ROWS_QUARANTINED: len(rejects),
        InvoiceCount.RECORDS_WRITTEN: records.n_records,
    }


# -- notes ----------------------------------------------------------------------------------


def _named(first_line: np.ndarray, account: pa.ChunkedArray, which: np.ndarray) -> str:
    """Statements named for a note (shown in the Prefect UI): extract line + masked account."""
    idx = np.flatnonzero(which)
    accounts = take(account, idx[:NOTE_NAMES]).to_pylist()
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
    """Notes on what was written as it is: truncated messages, shared InvoiceNumbers."""
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
