"""Data Pump payments and reversals against Caselle's receipts (SPEC §11): missing,
differing and duplicate receipts, voids without a reversal, reversals not voided."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from caselle_ic.audit.discrepancy import (
    DUPLICATE_RECEIPT,
    MISSING_RECEIPT,
    RECEIPT_DIFFERS,
    REVERSAL_NOT_VOIDED,
    VOIDED_WITHOUT_REVERSAL,
    VOIDING,
    Discrepancy,
    Seen,
    as_text,
    cents_text,
    int_or_none,
    row_discrepancy,
)


def _not_there_detail(row: Mapping[str, Any]) -> str:
    state = as_text(row.get("state"))
    reason = as_text(row.get("reason"))
    if state == "posted":
        return (
            f"the ledger recorded receipt {as_text(row.get('receipt_number'))} and Caselle holds none: "
            "deleted in Caselle? Re-key it by hand (confirmation number = the payment GUID)"
        )
    if state == "rejected":
        return (
            f"Caselle refused it ({reason or 'see the run rejects'}): "
            "fix the account or codes and post by hand"
        )
    if state == "voided":
        return "the ledger says voided; Caselle holds no receipt at all"
    return f"not posted yet (ledger state {state}): the next payments run posts or settles it" + (
        f"; {reason}" if reason else ""
    )


def compare_receipt(
    row: Mapping[str, Any], seen: Sequence[Seen], reversals: Sequence[Mapping[str, Any]]
) -> list[Discrepancy]:
    """A Data Pump PAYMENT of the day (its ledger row) against Caselle's receipts for its
    GUID; ``reversals`` are the ledger's reversal rows of that payment, any day."""
    if len(seen) == 1:  # the common case, checked without building anything (100,000 a day)
        x = seen[0]
        if (
            not x.voided
            and x.receipt_number == row.get("receipt_number")
            and x.amount_cents == row.get("amount_cents")
            and x.account_number == row.get("account_number")
            and x.distribution_code == row.get("distribution_code")
            and x.payment_code == row.get("payment_code")
            and x.receipt_date == str(row.get("payment_date"))[:10]
        ):
            return []
    out: list[Discrepancy] = []
    if not seen:
        number = as_text(row.get("receipt_number"))
        return [
            row_discrepancy(
                MISSING_RECEIPT,
                row,
                field="receipt",
                expected=number or "one receipt",
                found="none",
                receipt_number=number,
                detail=_not_there_detail(row),
            )
        ]
    recorded = int_or_none(row.get("receipt_number"))
    live = [x for x in seen if not x.voided]
    ours = next((x for x in seen if x.receipt_number == recorded), None)
    if ours is None:
        ours = live[0] if live else seen[0]
        state = as_text(row.get("state"))
        out.append(
            row_discrepancy(
                RECEIPT_DIFFERS,
                row,
                field="receipt_number",
                expected=as_text(recorded),
                found=", ".join(str(x.receipt_number) for x in seen),
                receipt_number=str(ours.receipt_number),
                detail=(
                    f"the ledger recorded receipt {recorded}; "
                    "Caselle holds another under this confirmation number"
                    if recorded is not None
                    else f"Caselle holds a receipt the ledger has not recorded (state {state}): "
                    "the next payments run settles it"
                ),
            )
        )
    if len(live) > 1:
        out.append(
            row_discrepancy(
                DUPLICATE_RECEIPT,
                row,
                field="receipt_number",
                expected=str(ours.receipt_number),
                found=", ".join(str(x.receipt_number) for x in live),
                receipt_number=str(ours.receipt_number),
                detail=f"{len(live)} live receipts carry this confirmation number: "
                "void all but one in Caselle",
            )
        )
    if ours.voided and not any(as_text(r.get("state")) in VOIDING for r in reversals):
        others = ", ".join(f"{as_text(r.get('payment_guid'))} ({as_text(r.get('state'))})" for r in reversals)
        out.append(
            row_discrepancy(
                VOIDED_WITHOUT_REVERSAL,
                row,
                field="voided",
                expected="false",
                found=f"true ({ours.void_date})" if ours.void_date else "true",
                receipt_number=str(ours.receipt_number),
                detail="voided in Caselle with no refund or ACH reject from IC"
                + (f" (reversals on record, not voided by this integration: {others})" if others else "")
                + ": ask who voided it; if the payment stands, re-key it",
            )
        )
    expected = {
        "amount": (cents_text(row.get("amount_cents")), cents_text(ours.amount_cents)),
        "account_number": (as_text(row.get("account_number")), ours.account_number),
        "distribution_code": (
            as_text(int_or_none(row.get("distribution_code"))),
            str(ours.distribution_code),
        ),
        "payment_code": (as_text(int_or_none(row.get("payment_code"))), str(ours.payment_code)),
        "receipt_date": (as_text(row.get("payment_date"))[:10], ours.receipt_date),
    }
    for name, (want, got) in expected.items():
        if want != got:
            out.append(
                row_discrepancy(
                    RECEIPT_DIFFERS,
                    row,
                    field=name,
                    expected=want,
                    found=got,
                    receipt_number=str(ours.receipt_number),
                    detail=f"receipt {ours.receipt_number} has {name} {got}, the payment {want}: "
                    "correct the receipt in Caselle",
                )
            )
    return out


def compare_reversal(row: Mapping[str, Any], seen: Sequence[Seen]) -> list[Discrepancy]:
    """A REFUND / ACH_REJECT of the day against the receipts of its original."""
    state = as_text(row.get("state"))
    if state == "manual":  # the original went by lockbox file: reversed by hand, not visible here
        return []
    live = [x for x in seen if not x.voided]
    original = as_text(row.get("original_guid"))
    if live:
        what = {
            "voided": "the ledger says this integration voided it",
            "reported": f"nothing was sent ({as_text(row.get('reason'))})",
        }.get(state, f"ledger state {state}: the next payments run voids it")
        return [
            row_discrepancy(
                REVERSAL_NOT_VOIDED,
                row,
                field="voided",
                expected="true",
                found="false",
                receipt_number=", ".join(str(x.receipt_number) for x in live),
                detail=f"the receipt of original {original} is live in Caselle; {what}",
            )
        ]
    if not seen and state in VOIDING:
        return [
            row_discrepancy(
                REVERSAL_NOT_VOIDED,
                row,
                field="receipt",
                expected=as_text(row.get("receipt_number")),
                found="none",
                receipt_number=as_text(row.get("receipt_number")),
                detail=f"Caselle holds no receipt for original {original} (deleted?), "
                "though the ledger voided one",
            )
        ]
    return []
