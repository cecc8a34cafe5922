"""The IC payment export (SPEC §2.2) as a pandera schema built from ``payment_export.csv``.

The column rules live in data (``schemas/payment_export.csv``: name, required, kind,
values, meaning) so the contract is one table an analyst can read; this module turns that
table into a :class:`pandera.pandas.DataFrameSchema` that validates the export *as text*
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
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from caselle_ic.values import parse_cents

SPEC_FILE = Path(__file__).with_name("payment_export.csv")

REQUIRED_RULES = ("yes", "no", "reversal", "card", "obd")
KINDS = ("guid", "choice", "datetime", "integer", "amount", "text")

REVERSALS = ("REFUND", "ACH_REJECT")
CARD, OBD = "1", "11"

_GUID = r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?\Z"
_INTEGER = r"^\d*\Z"
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
    ``Int64`` (<NA> when the text has none), bad mask). Blank is not bad (NaT)."""
    s = s.astype("string").fillna("")
    blank = s == ""
    parts = s.str.extract(ISO_DATETIME)
    matched = parts["date"].notna()
    text = parts["date"] + " " + parts["h"] + ":" + parts["mi"] + ":" + parts["s"].fillna("00")
    wall = pd.to_datetime(text.where(matched), format="%Y-%m-%d %H:%M:%S", errors="coerce").astype(
        "datetime64[s]"
    )
    has_off = parts["sign"].notna()
    oh = pd.to_numeric(parts["oh"], errors="coerce").fillna(0).astype("int64")
    om = pd.to_numeric(parts["om"], errors="coerce").fillna(0).astype("int64")
    off = (oh * 60 + om).where(parts["sign"] != "-", -(oh * 60 + om))
    off_ok = ~has_off | ((oh <= 14) & (om <= 59))
    offset = off.where(has_off, 0).where(parts["tz"].notna(), pd.NA).astype("Int64")
    bad = ~blank & (wall.isna() | ~off_ok.fillna(False))
    return wall, offset, bad.fillna(True).astype(bool)


# -- checks -----------------------------------------------------------------------------


def _nonblank(s: pd.Series) -> pd.Series:
    return s.fillna("") != ""


def _blank_or_in(values: tuple[str, ...]):  # type: ignore[no-untyped-def]
    allowed = [*values, ""]
    return lambda s: s.fillna("").isin(allowed)


def _datetime_ok(s: pd.Series) -> pd.Series:
    return ~split_iso_datetime(s)[2]


def _amount_parses(s: pd.Series) -> pd.Series:
    return ~parse_cents(s)[1]


def _amount_positive(s: pd.Series) -> pd.Series:
    cents, bad = parse_cents(s)
    return bad | cents.isna() | (cents.fillna(0) > 0)


def _column_checks(spec: ColumnSpec) -> list[pa.Check]:
    n = spec.name
    checks: list[pa.Check] = []
    if spec.required == "yes":
        checks.append(pa.Check(_nonblank, name=f"{n}_required", error=f"{n}: required"))
    if spec.kind == "guid":
        checks.append(
            pa.Check.str_matches(
                _GUID, name=f"{n}_guid", error=f"{n}: not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
            )
        )
    elif spec.kind == "choice":
        checks.append(
            pa.Check(
                _blank_or_in(spec.values),
                name=f"{n}_choice",
                error=f"{n}: not one of {', '.join(spec.values)}",
            )
        )
    elif spec.kind == "datetime":
        checks.append(
            pa.Check(
                _datetime_ok,
                name=f"{n}_datetime",
                error=f"{n}: not an ISO 8601 date-time such as 2026-11-01T14:05:00",
            )
        )
    elif spec.kind == "integer":
        checks.append(pa.Check.str_matches(_INTEGER, name=f"{n}_integer", error=f"{n}: not a whole number"))
    elif spec.kind == "amount":
        checks.append(
            pa.Check(
                _amount_parses,
                name=f"{n}_amount",
                error=f"{n}: not an amount with at most two decimals",
            )
        )
        checks.append(pa.Check(_amount_positive, name=f"{n}_positive", error=f"{n}: must be greater than 0"))
    return checks


def _conditional_checks() -> list[pa.Check]:
    checks: list[pa.Check] = []
    for spec in export_columns():
        n = spec.name
        if spec.required == "reversal":
            checks.append(
                pa.Check(
                    lambda d, n=n: ~d["transaction_type"].isin(list(REVERSALS)) | _nonblank(d[n]),
                    name=f"{n}_required_reversal",
                    error=f"{n}: required for REFUND and ACH_REJECT",
                )
            )
        elif spec.required in ("card", "obd"):
            ptype = CARD if spec.required == "card" else OBD
            what = "card payments" if spec.required == "card" else "OBD payments"
            checks.append(
                pa.Check(
                    lambda d, n=n, ptype=ptype: (
                        (d["transaction_type"] != "PAYMENT")
                        | (d["payment_type_id"] != ptype)
                        | _nonblank(d[n])
                    ),
                    name=f"{n}_required_{spec.required}",
                    error=f"{n}: required for {what} (payment_type_id {ptype})",
                )
            )
    checks.append(
        pa.Check(
            lambda d: (
                ~_nonblank(d["original_payment_guid"]) | (d["original_payment_guid"] != d["payment_guid"])
            ),
            name="original_not_self",
            error="original_payment_guid: must not be the row's own payment_guid",
        )
    )
    checks.append(
        pa.Check(
            lambda d: ~d["_dup_identical"],
            name="duplicate_identical",
            error="payment_guid: repeats an identical earlier line (the first is kept)",
        )
    )
    checks.append(
        pa.Check(
            lambda d: ~d["_dup_conflict"],
            name="duplicate_conflict",
            error="payment_guid: on more than one line with different values (none is used)",
        )
    )
    return checks


@functools.cache
def payment_export_schema() -> pa.DataFrameSchema:
    """The pandera schema of a *normalised* payment export frame.

    The frame must also carry the boolean helper columns ``_dup_identical`` and
    ``_dup_conflict`` (see ``caselle_ic.payments_read``): uniqueness of payment_guid is
    decided over the whole file, which a per-column check cannot express.
    """
    columns = {
        spec.name: pa.Column(checks=_column_checks(spec), nullable=spec.required != "yes")
        for spec in export_columns()
    }
    columns["_dup_identical"] = pa.Column(bool)
    columns["_dup_conflict"] = pa.Column(bool)
    return pa.DataFrameSchema(columns, checks=_conditional_checks(), name="IC payment export")


@functools.cache
def _rule_order() -> dict[str, int]:
    schema = payment_export_schema()
    errors: list[str] = []
    for col in schema.columns.values():
        errors += [c.error for c in col.checks if c.error]
    errors += [c.error for c in schema.checks if c.error]
    return {e: i for i, e in enumerate(errors)}


def row_reasons(failure_cases: pd.DataFrame) -> pd.Series:
    """pandera ``failure_cases`` -> one ``"field: rule; field: rule"`` string per row index.

    A frame-wide check is reported once per column by pandera; each rule appears once per
    row here, in schema order.
    """
    fc = failure_cases.loc[failure_cases["index"].notna(), ["index", "check"]].drop_duplicates()
    order = _rule_order()
    fc = fc.assign(_order=fc["check"].map(order).fillna(len(order))).sort_values(["index", "_order"])
    return fc.groupby("index", sort=True)["check"].agg("; ".join)
