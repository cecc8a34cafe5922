"""The audit's decisions, as pure functions over plain values (no I/O): the three sides of
a day in, :class:`Discrepancy` rows and a totals table out. See docs/payments.md,
"Auditing a day", for what each kind means to an analyst.

Inputs (gathered by :mod:`caselle_ic.audit.sources`):

* export rows: dicts with ``payment_guid``, ``transaction_type``, ``account_number``,
  ``amount_cents``, ``export_name``, ``export_line`` and, for payments, the resolved
  ``posting_method``, ``distribution_code``, ``payment_code``;
* ledger rows: the ``payments`` table rows of the day (every column);
* receipts: ``{confirmation number: [Seen, ...]}`` as Caselle answered — for each Data Pump
  payment of the day (its GUID) and for each reversal's original;
* the lockbox side: :class:`LockboxSide` (files checked against their recorded SHA-256, and
  every line on disk indexed by its exact text).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from caselle_ic.result import AuditCount

# The kinds, in the order the CSV lists them (SPEC §11); each is also a count name of the run.
MISSING_RECEIPT = AuditCount.MISSING_RECEIPT
RECEIPT_DIFFERS = AuditCount.RECEIPT_DIFFERS
DUPLICATE_RECEIPT = AuditCount.DUPLICATE_RECEIPT
VOIDED_WITHOUT_REVERSAL = AuditCount.VOIDED_WITHOUT_REVERSAL
REVERSAL_NOT_VOIDED = AuditCount.REVERSAL_NOT_VOIDED
NOT_IN_ANY_FILE = AuditCount.NOT_IN_ANY_FILE
IN_TWO_FILES = AuditCount.IN_TWO_FILES
FILE_CHANGED = AuditCount.FILE_CHANGED
NEVER_PROCESSED = AuditCount.NEVER_PROCESSED
KINDS: tuple[str, ...] = (
    MISSING_RECEIPT,
    RECEIPT_DIFFERS,
    DUPLICATE_RECEIPT,
    VOIDED_WITHOUT_REVERSAL,
    REVERSAL_NOT_VOIDED,
    NOT_IN_ANY_FILE,
    IN_TWO_FILES,
    FILE_CHANGED,
    NEVER_PROCESSED,
)

PAYMENT = "PAYMENT"
DATAPUMP, FILE = "DataPump", "File"
#: Reversal states in which this integration voided (or is voiding) the original's receipt.
VOIDING = frozenset({"voided", "void_sending", "void_unknown"})


@dataclass(frozen=True)
class Seen:
    """One receipt as Caselle holds it (money in integer cents)."""

    receipt_number: int
    receipt_date: str  # YYYY-MM-DD
    distribution_code: int
    payment_code: int
    amount_cents: int
    account_number: str
    voided: bool
    void_date: str = ""


@dataclass(frozen=True)
class Discrepancy:
    """One row of ``audit-YYYY-MM-DD.csv``: what differs, where, and how to find it."""

    kind: str
    payment_guid: str = ""
    transaction_type: str = ""
    posting_method: str = ""
    account_number: str = ""
    amount: str = ""  # the payment's amount, exact decimal text
    field: str = ""  # what differs: amount, account_number, distribution_code, ...
    expected: str = ""  # what the ledger / export says
    found: str = ""  # what Caselle or the disk holds
    receipt_number: str = ""
    lockbox_file: str = ""
    export_file: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


COLUMNS = tuple(Discrepancy.__dataclass_fields__)


@dataclass(frozen=True)
class FileCheck:
    """A lockbox file the ledger recorded as written, against its bytes on disk now."""

    name: str
    directory: str
    recorded_sha256: str
    actual_sha256: str | None  # None: not on disk


@dataclass
class LockboxSide:
    files: list[FileCheck] = field(default_factory=list)
    #: exact line text (no CRLF) -> [(file name, 1-based line), ...] over every file scanned
    lines: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    #: payment_guid -> the line its ledger row makes (SPEC §7), for the day's File payments
    expected: dict[str, str] = field(default_factory=dict)


def cents_text(cents: Any) -> str:
    if cents is None or cents == "":
        return ""
    c = int(cents)
    sign = "-" if c < 0 else ""
    return f"{sign}{abs(c) // 100}.{abs(c) % 100:02d}"


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _base(kind: str, row: Mapping[str, Any], **kw: Any) -> Discrepancy:
    return Discrepancy(
        kind=kind,
        payment_guid=_s(row.get("payment_guid")),
        transaction_type=_s(row.get("transaction_type")),
        posting_method=_s(row.get("posting_method")),
        account_number=_s(row.get("account_number")),
        amount=cents_text(row.get("amount_cents")),
        export_file=_s(row.get("export_name")),
        **kw,
    )


# -- Data Pump payments ---------------------------------------------------------------------
def _not_there_detail(row: Mapping[str, Any]) -> str:
    state = _s(row.get("state"))
    reason = _s(row.get("reason"))
    if state == "posted":
        return (
            f"the ledger recorded receipt {_s(row.get('receipt_number'))} and Caselle holds none: "
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
        number = _s(row.get("receipt_number"))
        return [
            _base(
                MISSING_RECEIPT,
                row,
                field="receipt",
                expected=number or "one receipt",
                found="none",
                receipt_number=number,
                detail=_not_there_detail(row),
            )
        ]
    recorded = _int_or_none(row.get("receipt_number"))
    live = [x for x in seen if not x.voided]
    ours = next((x for x in seen if x.receipt_number == recorded), None)
    if ours is None:
        ours = live[0] if live else seen[0]
        state = _s(row.get("state"))
        out.append(
            _base(
                RECEIPT_DIFFERS,
                row,
                field="receipt_number",
                expected=_s(recorded),
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
            _base(
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
    if ours.voided and not any(_s(r.get("state")) in VOIDING for r in reversals):
        others = ", ".join(f"{_s(r.get('payment_guid'))} ({_s(r.get('state'))})" for r in reversals)
        out.append(
            _base(
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
        "account_number": (_s(row.get("account_number")), ours.account_number),
        "distribution_code": (_s(_int_or_none(row.get("distribution_code"))), str(ours.distribution_code)),
        "payment_code": (_s(_int_or_none(row.get("payment_code"))), str(ours.payment_code)),
        "receipt_date": (_s(row.get("payment_date"))[:10], ours.receipt_date),
    }
    for name, (want, got) in expected.items():
        if want != got:
            out.append(
                _base(
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


# -- reversals ------------------------------------------------------------------------------
def compare_reversal(row: Mapping[str, Any], seen: Sequence[Seen]) -> list[Discrepancy]:
    """A REFUND / ACH_REJECT of the day against the receipts of its original."""
    state = _s(row.get("state"))
    if state == "manual":  # the original went by lockbox file: reversed by hand, not visible here
        return []
    live = [x for x in seen if not x.voided]
    original = _s(row.get("original_guid"))
    if live:
        what = {
            "voided": "the ledger says this integration voided it",
            "reported": f"nothing was sent ({_s(row.get('reason'))})",
        }.get(state, f"ledger state {state}: the next payments run voids it")
        return [
            _base(
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
            _base(
                REVERSAL_NOT_VOIDED,
                row,
                field="receipt",
                expected=_s(row.get("receipt_number")),
                found="none",
                receipt_number=_s(row.get("receipt_number")),
                detail=f"Caselle holds no receipt for original {original} (deleted?), "
                "though the ledger voided one",
            )
        ]
    return []


# -- lockbox files --------------------------------------------------------------------------
def compare_files(rows: Sequence[Mapping[str, Any]], side: LockboxSide) -> list[Discrepancy]:
    """File payments of the day: each on exactly one line of one file; files unchanged."""
    out: list[Discrepancy] = []
    names = {_s(r.get("lockbox_file")) for r in rows}
    for f in side.files:
        if f.name not in names or f.actual_sha256 == f.recorded_sha256:
            continue
        out.append(
            Discrepancy(
                kind=FILE_CHANGED,
                posting_method=FILE,
                field="sha256",
                expected=f.recorded_sha256,
                found=f.actual_sha256 or "missing",
                lockbox_file=f.name,
                detail=(
                    f"{f.name} is no longer in {f.directory}"
                    if f.actual_sha256 is None
                    else f"{f.name} in {f.directory} was edited after it was written: compare it with the "
                    "payments listed for it, and re-deliver a corrected file only for what "
                    "Caselle has not imported"
                ),
            )
        )
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[side.expected.get(_s(r.get("payment_guid")), "")].append(r)
    for text, members in groups.items():
        remaining = list(side.lines.get(text, [])) if text else []
        unplaced: list[Mapping[str, Any]] = []
        placed: dict[str, tuple[str, int]] = {}
        for r in members:  # first the line the ledger recorded for it
            pos = (_s(r.get("lockbox_file")), _int_or_none(r.get("lockbox_line")) or 0)
            if _s(r.get("state")) == "filed" and pos in remaining:
                remaining.remove(pos)
                placed[_s(r.get("payment_guid"))] = pos
            else:
                unplaced.append(r)
        for r in unplaced:  # then any other line with the same text (a file re-ordered by hand)
            if remaining:
                placed[_s(r.get("payment_guid"))] = remaining.pop(0)
                continue
            state = _s(r.get("state"))
            recorded = _s(r.get("lockbox_file"))
            out.append(
                _base(
                    NOT_IN_ANY_FILE,
                    r,
                    field="lockbox_file",
                    expected=f"{recorded} line {_s(r.get('lockbox_line'))}" if recorded else "one line",
                    found="none",
                    lockbox_file=recorded,
                    detail=(
                        f"the ledger says {state} in {recorded}, but no lockbox file on disk holds its line"
                        if state == "filed"
                        else f"not filed (ledger state {state})"
                        + (
                            f": {_s(r.get('reason'))}"
                            if r.get("reason")
                            else ": the next payments run files it"
                        )
                    ),
                )
            )
        for extra in remaining:  # more lines than payments: some payment is in two files
            owner = members[0]
            first = placed.get(_s(owner.get("payment_guid")))
            out.append(
                _base(
                    IN_TWO_FILES,
                    owner,
                    field="lockbox_file",
                    expected=f"{first[0]} line {first[1]}" if first else "",
                    found=f"{extra[0]} line {extra[1]}",
                    lockbox_file=extra[0],
                    detail="the same payment line is in more than one place: make sure Caselle imported it "
                    "once, and reverse the extra receipt if not",
                )
            )
    return out


# -- export against ledger -----------------------------------------------------------------
def compare_export(export_rows: Iterable[Mapping[str, Any]], known_guids: set[str]) -> list[Discrepancy]:
    """Export rows of the day whose GUID the ledger never recorded."""
    return [
        _base(
            NEVER_PROCESSED,
            r,
            field="payment_guid",
            expected="recorded in the ledger",
            found="absent",
            detail=f"{_s(r.get('export_name'))} line {_s(r.get('export_line'))} "
            "never reached the payments run: "
            "run `caselle-ic payments` on that export (what was already sent is skipped)",
        )
        for r in export_rows
        if _s(r.get("payment_guid")) not in known_guids
    ]


# -- the day --------------------------------------------------------------------------------
def audit_day(
    export_rows: Sequence[Mapping[str, Any]],
    ledger_rows: Sequence[Mapping[str, Any]],
    receipts: Mapping[str, Sequence[Seen]],
    reversals_of: Mapping[str, Sequence[Mapping[str, Any]]],
    lockbox: LockboxSide,
    known_guids: set[str] | None = None,
) -> list[Discrepancy]:
    """Every discrepancy of the day, in KINDS order then by GUID.

    ``known_guids``: every GUID the ledger holds among the export's (any date; default:
    the day's ledger rows); ``reversals_of``: original GUID -> its reversal rows (any day).
    """
    out: list[Discrepancy] = []
    files: list[Mapping[str, Any]] = []
    for r in ledger_rows:
        guid = _s(r.get("payment_guid"))
        if _s(r.get("transaction_type")) == PAYMENT:
            if _s(r.get("posting_method")) == FILE:
                files.append(r)
            else:
                out += compare_receipt(r, receipts.get(guid, ()), reversals_of.get(guid, ()))
        else:
            out += compare_reversal(r, receipts.get(_s(r.get("original_guid")), ()))
    out += compare_files(files, lockbox)
    known = known_guids if known_guids is not None else {_s(r.get("payment_guid")) for r in ledger_rows}
    out += compare_export(export_rows, known)
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(out, key=lambda d: (order[d.kind], d.payment_guid, d.field, d.lockbox_file, d.found))


# -- totals ---------------------------------------------------------------------------------
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
        if _s(r.get("transaction_type")) != PAYMENT:
            continue
        guid = _s(r.get("payment_guid"))
        if _s(r.get("posting_method")) == FILE:
            text = lockbox.expected.get(guid)
            if text:
                dc, pc = _int_or_none(r.get("distribution_code")), _int_or_none(r.get("payment_code"))
                file_texts[text] = (dc, pc, int(r.get("amount_cents") or 0))
            continue
        reversed_here = any(_s(x.get("state")) in VOIDING for x in reversals_of.get(guid, ()))
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
            k = keys[raw] = (_s(method), _s(_int_or_none(dc)), _s(_int_or_none(pc)))
        cell = sides[k][side]
        cell[0] += 1
        cell[1] += int(cents or 0)

    for r in export_rows:
        if _s(r.get("transaction_type")) == PAYMENT:
            add(
                "export",
                r.get("posting_method"),
                r.get("distribution_code"),
                r.get("payment_code"),
                r.get("amount_cents"),
            )
    for r in ledger_rows:
        if _s(r.get("transaction_type")) == PAYMENT:
            add(
                "ledger",
                r.get("posting_method"),
                r.get("distribution_code"),
                r.get("payment_code"),
                r.get("amount_cents"),
            )
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


def count_by_kind(found: Iterable[Discrepancy]) -> dict[str, int]:
    counts = dict.fromkeys(KINDS, 0)
    for d in found:
        counts[d.kind] += 1
    return counts


__all__ = [
    "COLUMNS",
    "KINDS",
    "TOTAL_COLUMNS",
    "Discrepancy",
    "FileCheck",
    "LockboxSide",
    "Seen",
    "audit_day",
    "caselle_amounts",
    "compare_export",
    "compare_files",
    "compare_receipt",
    "compare_reversal",
    "count_by_kind",
    "totals_table",
]
