"""Reversals (SPEC §4, §6): a REFUND / ACH_REJECT voids its original's receipt once —
only a full reversal, only a receipt that exists — or goes to a person (``manual``) or is
``reported``. A void whose answer was lost is settled by the original's receipt showing
``voided``; one that settles as "not voided" is sent again in the same run."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from caselle_ic.errors import (
    AlreadyVoidedError,
    CaselleAPIError,
    ConfigError,
    NotFoundError,
    OutcomeUnknownError,
)
from caselle_ic.failpoints import failpoint
from caselle_ic.payments.posting.base import (
    RunBase,
    _by_purpose,
    _in_doubt,
    _purpose,
    _set,
    _unsettled,
    server_finished,
)
from caselle_ic.store.payment_rows import (
    FILE,
    FILED,
    FILING,
    HELD,
    MANUAL,
    PAYMENT,
    PENDING,
    POSTED,
    REJECTED,
    REPORTED,
    VOID_SENDING,
    VOID_UNKNOWN,
    VOIDED,
    PaymentState,
    ReversalDecision,
    RowUpdate,
)
from caselle_ic.tabular.values import cents_to_decimal


class Voids(RunBase):
    """Void reversals' originals."""

    def void_reversals(self) -> int:
        """REFUND / ACH_REJECT: void the original's receipt once, or say why not. A void
        whose answer was lost and that settled as "not voided" is sent again in this run
        (like a post), at most ``max_sends_per_run`` times."""
        voided = 0
        for _ in range(self.options.max_sends_per_run):
            absent = self.stats.voids_settled_absent
            voided += self._void_round()
            if self.stats.voids_settled_absent == absent or self._no_more_posts.is_set():
                break
        return voided

    def _void_round(self) -> int:
        pending = self.book.pending_reversals()
        if not pending:
            return 0
        originals = self.book.rows_by_guid(r["original_guid"] for r in pending)
        voiding = self.book.voids_of(r["original_guid"] for r in pending)
        taken: dict[str, str] = {}  # original -> the reversal voiding it
        for orig, rows in voiding.items():
            taken[orig] = str(rows[0]["payment_guid"])
        decisions: list[ReversalDecision] = []
        lookups: list[dict[str, Any]] = []
        for r in pending:
            guid, orig_guid = str(r["payment_guid"]), str(r["original_guid"])
            if orig_guid in taken:
                decisions.append(
                    _decision(
                        guid,
                        REPORTED,
                        f"the original payment is already reversed by {taken[orig_guid]}; nothing sent",
                    )
                )
            elif orig_guid not in originals:
                lookups.append(r)
            else:
                decision = self._decide(r, originals[orig_guid])
                if decision.state == VOID_SENDING:
                    taken[orig_guid] = guid
                decisions.append(decision)
        decisions += self._look_up_originals(lookups, taken)
        doubt = self._doubt_until()
        held = self.book.decide_reversals([dataclasses.replace(d, in_doubt_until=doubt) for d in decisions])
        if not held:
            return 0
        failpoint("void.claimed")
        return sum(self._void(row) for row in held)

    def _decide(self, reversal: Mapping[str, Any], orig: Mapping[str, Any]) -> ReversalDecision:
        guid, state = str(reversal["payment_guid"]), orig["state"]
        if orig["transaction_type"] != PAYMENT:
            return _decision(
                guid,
                REPORTED,
                f"the original {orig['payment_guid']} is itself a {orig['transaction_type']}; nothing sent",
            )
        if orig["posting_method"] == FILE or state in (FILING, FILED, HELD):
            where = f"lockbox file {orig['lockbox_file']}" if orig["lockbox_file"] else "the lockbox file"
            return _decision(
                guid, MANUAL, f"manual: the original went by {where}; reverse it in Caselle by hand"
            )
        if state == REJECTED:
            return _decision(
                guid,
                REPORTED,
                "the original payment was refused by Caselle and never posted; nothing to void",
            )
        partial = _partial(reversal, int(orig["amount_cents"]))
        if partial is not None:
            return partial
        if state == POSTED and orig["receipt_number"] is not None:
            return _decision(guid, VOID_SENDING, None, int(orig["receipt_number"]))
        return _decision(guid, PENDING, f"waiting: the original payment is {state}; it is voided once posted")

    def _look_up_originals(
        self, rows: Sequence[Mapping[str, Any]], taken: dict[str, str]
    ) -> list[ReversalDecision]:
        """Originals this ledger never saw: void their receipt when Caselle holds one."""
        out: list[ReversalDecision] = []
        for purpose, items in _by_purpose(rows).items():
            guids = [str(r["payment_guid"]) for r in items]
            try:
                outcomes = self._client(purpose).receipts_many([str(r["original_guid"]) for r in items])
            except ConfigError as exc:
                out += [
                    _decision(
                        g,
                        REPORTED,
                        f"the original payment is not in the ledger and Caselle cannot be asked: {exc}",
                    )
                    for g in guids
                ]
                continue
            except CaselleAPIError as exc:
                self._note_failure(exc)
                out += [
                    _decision(g, PENDING, f"waiting: could not look up the original ({exc})") for g in guids
                ]
                continue
            self._note_answer()
            for guid, r, outcome in zip(guids, items, outcomes, strict=True):
                orig_guid = str(r["original_guid"])
                live = sorted(x.receipt_number for x in (outcome.value or []) if not x.voided)
                if outcome.error is not None:
                    out.append(
                        _decision(guid, PENDING, f"waiting: could not look up the original ({outcome.error})")
                    )
                elif orig_guid in taken:
                    out.append(
                        _decision(
                            guid,
                            REPORTED,
                            f"the original payment is already reversed by {taken[orig_guid]}; nothing sent",
                        )
                    )
                elif live:
                    receipt = next(x for x in outcome.value or [] if x.receipt_number == live[0])
                    partial = _partial(r, int(receipt.amount.scaleb(2)))
                    if partial is not None:
                        out.append(partial)
                        continue
                    taken[orig_guid] = guid
                    out.append(_decision(guid, VOID_SENDING, None, live[0]))
                elif outcome.value:
                    number = outcome.value[0].receipt_number
                    out.append(
                        _decision(
                            guid,
                            REPORTED,
                            f"the original's receipt {number} is already voided in Caselle; nothing sent",
                        )
                    )
                else:
                    out.append(
                        _decision(
                            guid,
                            REPORTED,
                            "the original payment is unknown (not in the ledger, no receipt in Caselle); "
                            "nothing sent",
                        )
                    )
        return out

    def _void(self, row: Mapping[str, Any]) -> int:
        """Send one void (intent already recorded) and record its answer."""
        number, guid = int(row["receipt_number"]), str(row["payment_guid"])
        with self._lock:
            if self._sends[guid] >= self.options.max_sends_per_run:
                sent = self._sends[guid]
                self.book.apply(
                    [_set(row, PENDING, f"Caselle failed {sent} times in this run; the next run voids it")]
                )
                return 0
            self._sends[guid] += 1
        try:
            receipt = self._client(_purpose(row)).void_receipt(number, self.run_date)
        except OutcomeUnknownError as exc:
            updates = self._settle_voids([{**row, "in_doubt_until": None} if server_finished(exc) else row])
            self.book.apply(updates)
            return int(bool(updates) and updates[0].state == VOIDED)
        except AlreadyVoidedError as exc:
            self._note_answer()
            self.book.apply(
                [
                    _set(
                        row,
                        REPORTED,
                        f"receipt {number} was already voided in Caselle (by hand?); nothing sent: {exc}",
                        done=True,
                    )
                ]
            )
            return 0
        except NotFoundError as exc:
            self._note_answer()
            self.book.apply(
                [_set(row, REPORTED, f"Caselle has no receipt {number} to void: {exc}", done=True)]
            )
            return 0
        except (CaselleAPIError, ConfigError) as exc:  # not processed: unreachable, credentials
            self._note_failure(exc)
            self.book.apply([_set(row, PENDING, f"void not sent: {exc}; the next run sends it")])
            return 0
        failpoint("void.sent")
        self._note_answer()
        self.book.apply([_set(row, VOIDED, None, done=True, receipt_number=receipt.receipt_number)])
        with self._lock:
            self.stats.voided += 1
        return 1

    def _settle_voids(self, rows: Sequence[Mapping[str, Any]]) -> list[RowUpdate]:
        """A void whose answer was lost (or whose run died) is settled by the original's
        receipt: ``voided`` (done) or not (``pending``: the void is sent again)."""
        updates: list[RowUpdate] = []
        for purpose, items in _by_purpose(rows).items():
            try:
                outcomes = self._client(purpose).receipts_many([str(r["original_guid"]) for r in items])
            except (CaselleAPIError, ConfigError) as exc:
                self._note_failure(exc)
                updates += _unsettled(items, VOID_UNKNOWN, "void outcome", exc)
                continue
            self._note_answer()
            for r, outcome in zip(items, outcomes, strict=True):
                match = [x for x in (outcome.value or []) if x.receipt_number == r["receipt_number"]]
                if outcome.error is not None:
                    updates += _unsettled([r], VOID_UNKNOWN, "void outcome", outcome.error)
                elif match and match[0].voided:
                    updates.append(
                        _set(
                            r,
                            VOIDED,
                            "settled: the receipt shows voided after the answer was lost",
                            done=True,
                        )
                    )
                    with self._lock:
                        self.stats.voided += 1
                        self.stats.voids_settled_found += 1
                elif _in_doubt(r):
                    with self._lock:
                        self._recheck[str(r["payment_guid"])] = dict(r)  # held; asked again later
                else:
                    updates.append(
                        _set(
                            r,
                            PENDING,
                            "a void whose answer was lost had not happened; sent again",
                            in_doubt_until=None,
                        )
                    )
                    with self._lock:
                        self.stats.voids_settled_absent += 1
        return updates


def _decision(
    guid: str, state: PaymentState, reason: str | None, receipt_number: int | None = None
) -> ReversalDecision:
    return ReversalDecision(guid, state, reason, receipt_number)


def _partial(reversal: Mapping[str, Any], original_cents: int) -> ReversalDecision | None:
    """SPEC §6: a void reverses the whole receipt, so only a full reversal (the original's
    amount) is voided; any other amount goes to a person (``manual``), nothing is sent."""
    cents = int(reversal["amount_cents"])
    if cents == original_cents:
        return None
    return _decision(
        str(reversal["payment_guid"]),
        MANUAL,
        f"manual: a partial reversal ({cents_to_decimal(cents)} of the original's "
        f"{cents_to_decimal(original_cents)}) is not voided; adjust the receipt in Caselle by hand",
    )
