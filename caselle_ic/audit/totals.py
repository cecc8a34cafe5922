"""The audit's totals table: counts and amounts by posting method, distribution code and
payment code, for the export, the ledger and Caselle side by side, and a TOTAL row."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from caselle_ic.audit.discrepancy import (
    DATAPUMP,
    FILE,
    PAYMENT,
    VOIDING,
    LockboxSide,
    Seen,
    as_text,
    cents_text,
    int_or_none,
)

TOTAL_COLUMNS = (
    "posting_method",
    "distribution_code",
    "payment_code",
    "export_count",
    "export_amount",
    "ledger_count",
    "ledger_amount",
    "caselle_count",
    "caselle_amount",
    "check",
)
OK, DIFFERENCE = "ok", "DIFFERENCE"


def caselle_amounts(
    ledger_rows: Sequence[Mapping[str, Any]],
    receipts: Mapping[str, Sequence[Seen]],
    reversals_of: Mapping[str, Sequence[Mapping[str, Any]]],
    lockbox: LockboxSide,
) -> list[tuple[str, int | None, int | None, int]]:
    """What Caselle holds for the day's payments, as (method, dc, pc, cents) items: every
    live receipt, and a voided one only when a reversal of this integration voided it (a
    refund is not a difference, a hand-void is); every line on disk of a File payment."""
    out: list[tuple[str, int | None, int | None, int]] = []
    file_texts: dict[str, tuple[int | None, int | None, int]] = {}
    for r in ledger_rows:
        if as_text(r.get("transaction_type")) != PAYMENT:
            continue
        guid = as_text(r.get("payment_guid"))
        if as_text(r.get("posting_method")) == FILE:
            text = lockbox.expected.get(guid)
            if text:
                dc, pc = int_or_none(r.get("distribution_code")), int_or_none(r.get("payment_code"))
                file_texts[text] = (dc, pc, int(r.get("amount_cents") or 0))
            continue
        reversed_here = any(as_text(x.get("state")) in VOIDING for x in reversals_of.get(guid, ()))
        for x in receipts.get(guid, ()):
            if not x.voided or reversed_here:
                out.append((DATAPUMP, x.distribution_code, x.payment_code, x.amount_cents))
    for text, (dc, pc, cents) in file_texts.items():
        out += [(FILE, dc, pc, cents)] * len(lockbox.lines.get(text, ()))
    return out


def totals_table(
    export_rows: Sequence[Mapping[str, Any]],
    ledger_rows: Sequence[Mapping[str, Any]],
    caselle: Sequence[tuple[str, int | None, int | None, int]],
) -> list[dict[str, str]]:
    """Counts and amounts by posting method, distribution code and payment code, for the
    export, the ledger and Caselle side by side (payments only), and a TOTAL row."""
    sides: dict[tuple[str, str, str], dict[str, list[int]]] = defaultdict(
        lambda: {"export": [0, 0], "ledger": [0, 0], "caselle": [0, 0]}
    )

    keys: dict[tuple[Any, Any, Any], tuple[str, str, str]] = {}  # raw -> text, once per group

    def add(side: str, method: Any, dc: Any, pc: Any, cents: Any) -> None:
        raw = (method, dc, pc)
        k = keys.get(raw)
        if k is None:
            k = keys[raw] = (as_text(method), as_text(int_or_none(dc)), as_text(int_or_none(pc)))
        cell = sides[k][side]
        cell[0] += 1
        cell[1] += int(cents or 0)

    fields = ("posting_method", "distribution_code", "payment_code", "amount_cents")
    for side, side_rows in (("export", export_rows), ("ledger", ledger_rows)):
        for r in side_rows:
            if as_text(r.get("transaction_type")) == PAYMENT:
                add(side, *(r.get(f) for f in fields))
    for method, dc, pc, cents in caselle:
        add("caselle", method, dc, pc, cents)

    def key(k: tuple[str, str, str]) -> tuple[str, int, int]:
        return (k[0], int(k[1] or -1), int(k[2] or -1))

    rows: list[dict[str, str]] = []
    grand = {"export": [0, 0], "ledger": [0, 0], "caselle": [0, 0]}
    for k in sorted(sides, key=key):
        v = sides[k]
        for s in grand:
            grand[s][0] += v[s][0]
            grand[s][1] += v[s][1]
        rows.append(_total_row(k, v))
    rows.append(_total_row(("TOTAL", "", ""), grand))
    return rows


def _total_row(k: tuple[str, str, str], v: Mapping[str, list[int]]) -> dict[str, str]:
    same = v["export"] == v["ledger"] == v["caselle"]
    return {
        "posting_method": k[0],
        "distribution_code": k[1],
        "payment_code": k[2],
        **{f"{s}_count": str(v[s][0]) for s in ("export", "ledger", "caselle")},
        **{f"{s}_amount": cents_text(v[s][1]) for s in ("export", "ledger", "caselle")},
        "check": OK if same else DIFFERENCE,
    }
