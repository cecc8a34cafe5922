"""The daily payment run (SPEC §4-§7, §10): ``caselle-ic payments EXPORT --config BILLER.toml --out DIR``.

    read + validate ─▶ resolve codes ─▶ record in the ledger (route) ─▶ settle leftovers
      ─▶ post DataPump payments ─▶ write lockbox files ─▶ void reversals ─▶ reconcile

Every step is a plain function; ``step`` wraps each one (identity by default; the Prefect
flow passes a wrapper that makes each step a task — one task per step, never per row).

Outputs in ``DIR``: the lockbox files (``{DC}_PYMT_{YYYYMMDD}[_n].TXT``),
``<export stem>.reconciliation.csv``, and ``rejects/<export stem>.rejects.csv`` for every
line that did not reach Caselle in this run (with the reason: refused by Caselle, breaks a
lockbox limit, conflicting GUID, reversal for manual handling, or still pending).

Exit status (decided, see docs/payments.md): 0 every line of the export is in Caselle
(posted, filed, voided — by this run or an earlier one), even if faults were retried;
1 some lines were quarantined, need manual handling, or are still pending; 2 Caselle
Connect could not be reached at all (or refused the credentials) while there was Data Pump
work — the payments stay pending in the ledger and the next run posts them. Lockbox files,
which need no network, are still written in that case.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from caselle_ic.config.model import BillerConfig, load_config, resolve_now
from caselle_ic.payments.codes import PaymentCodeConfig, load_payment_codes
from caselle_ic.payments.codes_resolve import resolve_codes
from caselle_ic.payments.export import PaymentExport, read_payment_export
from caselle_ic.payments.posting import PaymentBook, PostingOptions, PostingRun
from caselle_ic.payments.reconcile import (
    DIFFERENCE,
    export_frame,
    read_quarantine_frame,
    reconcile,
    write_reconciliation_csv,
)
from caselle_ic.result import PaymentCount, RunResult
from caselle_ic.schemas.payments import column_names
from caselle_ic.store.ledger import biller_key, ledger_url_for, open_ledger
from caselle_ic.store.payment_rows import ROUTE, TERMINAL, PaymentState
from caselle_ic.tabular.csvin import LINE
from caselle_ic.tabular.memory import use_jemalloc
from caselle_ic.tabular.output import REASON, check_writable_directory, write_rejects
from caselle_ic.tabular.parallel import set_threads
from caselle_ic.tabular.values import cents_to_str

log = logging.getLogger(__name__)

KIND = "daily-payments"
F = TypeVar("F", bound=Callable[..., Any])

#: Ledger state (for a row this run changed) -> reconciliation outcome.
OUTCOME_OF_STATE = {
    PaymentState.POSTED: "posted",
    PaymentState.VOIDED: "voided",
    PaymentState.FILED: "filed",
    PaymentState.REJECTED: "quarantined",
    PaymentState.HELD: "quarantined",
    PaymentState.REPORTED: "quarantined",
    PaymentState.MANUAL: "manual",
}
#: The columns of the carried-over table (rows of earlier exports this run finished).
CARRIED_COLUMNS = [
    "payment_guid",
    "transaction_type",
    "export_name",
    "export_line",
    "account_number",
    "amount",
    "posting_method",
    "state",
    "outcome",
    "receipt_number",
    "lockbox_file",
    "reason",
]
#: Outcomes that go to the rejects file and make the exit status 1.
NOT_DONE = ("quarantined", "manual", "pending")


@dataclass
class PaymentRunResult(RunResult):
    """A RunResult that says whether Caselle could not be reached at all (then ``error`` is
    set: exit 2, with the lockbox files and reconciliation still written)."""

    unreachable: bool = False


def _identity(fn: F) -> F:
    return fn


# -- steps ------------------------------------------------------------------------------------
def read_export(path: Path, cfg: BillerConfig) -> PaymentExport:
    """Read and validate the IC payment export (SPEC §2.2); bad lines are quarantined."""
    return read_payment_export(path, cfg)


def resolve_payment_codes(valid: pd.DataFrame, codes: PaymentCodeConfig) -> pd.DataFrame:
    """Distribution code, payment code, GL activity and posting method per payment (§5)."""
    return resolve_codes(valid, codes)


def record_export(book: PaymentBook, resolved: pd.DataFrame, export_name: str) -> pd.DataFrame:
    """Record the export's payments in the ledger (new GUIDs only); returns the conflicts."""
    return book.intake(resolved, export_name)


def route_payments(book: PaymentBook, codes: PaymentCodeConfig) -> int:
    """Re-resolve the codes of every payment not sent yet (this export's and any left from
    earlier runs) with the current configuration; returns how many changed."""
    unsent = book.unsent_payments()
    if unsent.empty:
        return 0
    fresh = resolve_codes(unsent, codes)
    changed = np.zeros(len(unsent), dtype=bool)
    for c in ROUTE:
        a = fresh[c].astype("string").fillna("")
        b = (
            pd.to_numeric(unsent[c], errors="coerce").astype("Int64")
            if c not in ("posting_method", "code_rule")
            else unsent[c]
        )
        changed |= (a != b.astype("string").fillna("")).to_numpy()
    book.update_routes(fresh.loc[changed, ["payment_guid", *ROUTE]])
    return int(changed.sum())


def settle_leftovers(engine: PostingRun) -> int:
    """Settle posts, voids and lockbox files that earlier or dead runs left open."""
    return engine.settle_leftovers()


def post_payments(engine: PostingRun) -> int:
    """Post the pending DataPump payments (aliased batches, a few workers)."""
    return engine.post_payments()


def file_payments(engine: PostingRun) -> int:
    """Write the pending File payments to lockbox files, each exactly once."""
    return engine.file_payments()


def void_reversals(engine: PostingRun) -> int:
    """Void the originals of REFUND / ACH_REJECT lines, or report them for manual handling."""
    return engine.void_reversals()


def wait_for_other_runs(engine: PostingRun, guids: Sequence[str]) -> None:
    """When another run holds some of this export's payments, wait for it (bounded)."""
    engine.wait_for_other_runs(guids)


# -- the run ------------------------------------------------------------------------------------
def check_outputs(out: Path) -> None:
    """Every place this run writes to — ``out`` (lockbox files, the reconciliation) and
    ``out/rejects`` — must be a writable directory, or creatable as one, BEFORE the first
    request to Caselle: a run must not move money and then fail to say so (issue 13.6).
    Nothing is created here; a file is created and removed to prove writing works."""
    for directory, what in ((out, "the output directory"), (out / "rejects", "the rejects directory")):
        check_writable_directory(directory, what)


def run_daily_payments(
    export: str | Path,
    config: str | Path | BillerConfig,
    out_dir: str | Path,
    now: str | datetime | None = None,
    ledger_url: str | None = None,
    step: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
    *,
    options: PostingOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PaymentRunResult:
    """The daily payment run. ``progress(done, total)`` is called while posting."""
    use_jemalloc()
    wrap = step or _identity
    cfg = config if isinstance(config, BillerConfig) else load_config(config)
    run_date = resolve_now(now, cfg.tz).date()
    set_threads(cfg.performance.threads)
    export_path, out = Path(export), Path(out_dir)
    opts = options or PostingOptions.from_settings(cfg.posting)
    check_outputs(out)

    parsed: PaymentExport = wrap(read_export)(export_path, cfg)
    codes = load_payment_codes(cfg)
    resolved: pd.DataFrame = wrap(resolve_payment_codes)(parsed.valid, codes)

    biller = biller_key(cfg)
    ledger = open_ledger(ledger_url_for(cfg, ledger_url))
    run_id = ledger.start_run(biller, KIND, export_path)
    try:
        engine = PostingRun(
            cfg, ledger, biller, run_id, run_date=run_date, out_dir=out, options=opts, progress=progress
        )
        with engine:
            conflicts: pd.DataFrame = wrap(record_export)(engine.book, resolved, export_path.name)
            wrap(route_payments)(engine.book, codes)
            wrap(settle_leftovers)(engine)
            wrap(post_payments)(engine)
            wrap(file_payments)(engine)
            wrap(void_reversals)(engine)
            wrap(wait_for_other_runs)(engine, resolved["payment_guid"].tolist())
        result = build_result(cfg, parsed, resolved, conflicts, engine, out, codes)
    except BaseException:
        ledger.finish_run(run_id, "failed")
        ledger.close()
        raise
    result.extra.update({"run_id": run_id, "ledger": ledger.url, "run_date": run_date.isoformat()})
    status = "failed" if result.unreachable else "quarantined" if result.n_quarantined else "ok"
    ledger.finish_run(run_id, status, result.counts)
    ledger.close()
    return result


# -- the report ------------------------------------------------------------------------------------
def _outcome_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Ledger rows in reconciliation form: what Caselle answered for posted receipts
    (amount and codes of the receipt), the ledger's values otherwise."""
    if rows.empty:
        return pd.DataFrame(
            columns=[
                "payment_guid",
                "transaction_type",
                "posting_method",
                "distribution_code",
                "payment_code",
                "amount_cents",
            ]
        )
    posted = (rows["state"] == PaymentState.POSTED) & rows["receipt_number"].notna()
    out = pd.DataFrame(
        {
            "payment_guid": rows["payment_guid"].astype("string"),
            "transaction_type": rows["transaction_type"].astype("string"),
            "posting_method": rows["posting_method"].astype("string"),
            "distribution_code": rows["receipt_distribution_code"].where(posted, rows["distribution_code"]),
            "payment_code": rows["receipt_payment_code"].where(posted, rows["payment_code"]),
            "amount_cents": rows["receipt_amount_cents"].where(posted, rows["amount_cents"]),
        }
    )
    for c in ("distribution_code", "payment_code", "amount_cents"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("Int64")
    return out


def classify(rows: pd.DataFrame, run_id: str) -> pd.Series:
    """The reconciliation outcome of each ledger row, from this run's point of view."""
    state = rows["state"].astype("string")
    mine = (rows["last_run_id"].astype("string") == run_id).to_numpy()
    outcome = np.full(len(rows), "pending", dtype=object)
    mapped = state.map(OUTCOME_OF_STATE).to_numpy(dtype=object)
    has = pd.notna(mapped)
    outcome[mine & has] = mapped[mine & has]
    outcome[~mine & state.isin(list(TERMINAL)).to_numpy()] = "earlier"
    return pd.Series(outcome, index=rows.index, dtype="string")


def _reject_lines(valid: pd.DataFrame, reasons: pd.Series) -> pd.DataFrame:
    """Export lines (as text, in the export's columns) with a reason, for the rejects file."""
    cols = column_names()
    out = pd.DataFrame(index=valid.index)
    for c in cols:
        if c == "amount":
            out[c] = cents_to_str(valid["amount_cents"].astype("Int64"))
        elif c == "payment_date":
            out[c] = pd.to_datetime(valid[c]).dt.strftime("%Y-%m-%dT%H:%M:%S").astype("string")
        elif c in valid.columns:
            out[c] = valid[c].astype("string").fillna("")
        else:
            out[c] = ""
    out[LINE] = valid[LINE]
    out[REASON] = reasons.astype("string")
    return out


def _reason_text(outcome: pd.Series, reason: pd.Series) -> pd.Series:
    text = reason.astype("string").fillna("")
    pending = (outcome == "pending") & (text == "")
    text = text.mask(pending, "not posted yet: the next run posts it")
    text = text.mask((outcome == "pending") & ~pending & ~text.str.startswith("pending"), "pending: " + text)
    return text


def build_result(
    cfg: BillerConfig,
    parsed: PaymentExport,
    resolved: pd.DataFrame,
    conflicts: pd.DataFrame,
    engine: PostingRun,
    out: Path,
    codes: PaymentCodeConfig,
) -> PaymentRunResult:
    """Outcomes per export line from the ledger, the reconciliation, rejects, counts."""
    book, run_id, stats = engine.book, engine.run_id, engine.stats
    conflicted = resolved["payment_guid"].isin(conflicts["payment_guid"]).to_numpy()
    ledger_rows = book.rows_for(resolved.loc[~conflicted, "payment_guid"].tolist())
    known = resolved.loc[~conflicted].merge(
        ledger_rows[["payment_guid", "state", "last_run_id", "reason"]], on="payment_guid", how="left"
    )
    known_outcome = classify(known, run_id)
    rows_by_guid = ledger_rows.set_index("payment_guid", drop=False)
    ledger_view = _outcome_rows(rows_by_guid.loc[known["payment_guid"]].reset_index(drop=True))
    ledger_view.index = known.index

    # keyed by outcome, and each outcome is counted under the same name
    outcomes: dict[str, pd.DataFrame] = {}
    for name in (
        PaymentCount.POSTED,
        PaymentCount.VOIDED,
        PaymentCount.FILED,
        PaymentCount.MANUAL,
        PaymentCount.PENDING,
        PaymentCount.EARLIER,
    ):
        outcomes[name] = ledger_view[(known_outcome == name).to_numpy()]
    outcomes[PaymentCount.QUARANTINED] = pd.concat(
        [
            read_quarantine_frame(parsed),
            resolved.loc[conflicted],
            ledger_view[(known_outcome == "quarantined").to_numpy()],
        ],
        ignore_index=True,
    )
    table = reconcile(export_frame(parsed, resolved), outcomes)

    # rejects: read-time quarantine, conflicts, and every line not done in this run
    conflict_reason = resolved.loc[conflicted, ["payment_guid"]].merge(
        conflicts, on="payment_guid", how="left"
    )[REASON]
    not_done = known_outcome.isin(NOT_DONE).to_numpy()
    parts = [
        parsed.quarantined,
        _reject_lines(
            resolved.loc[conflicted], pd.Series(conflict_reason.to_numpy(), index=resolved.index[conflicted])
        ),
        _reject_lines(known[not_done], _reason_text(known_outcome[not_done], known.loc[not_done, REASON])),
    ]

    # rows this run finished that are not in this export (left over by earlier runs)
    touched = book.rows_of_run()
    carried = (
        touched[~touched["payment_guid"].isin(resolved["payment_guid"])] if not touched.empty else touched
    )
    carried_outcome = classify(carried, run_id) if not carried.empty else pd.Series([], dtype="string")
    if not carried.empty:
        bad = carried_outcome.isin(NOT_DONE).to_numpy()
        if bad.any():
            c = carried[bad]
            lines = pd.DataFrame(
                {
                    "payment_guid": c["payment_guid"],
                    "transaction_type": c["transaction_type"],
                    "original_payment_guid": c["original_guid"],
                    "payment_date": c["payment_date"],
                    "account_number": c["account_number"],
                    "customer_name": c["customer_name"],
                    "invoice_number": c["invoice_number"],
                    "invoice_type_id": c["invoice_type_id"].astype("Int64").astype("string").fillna(""),
                    "payment_type_id": c["payment_type_id"].astype("Int64").astype("string").fillna(""),
                    "card_vendor": c["card_vendor"],
                    "obd_vendor": c["obd_vendor"],
                    "amount": cents_to_str(c["amount_cents"].astype("Int64")),
                    LINE: c["export_line"],
                    REASON: "from "
                    + c["export_name"].astype("string").fillna("an earlier export")
                    + ": "
                    + _reason_text(carried_outcome[bad], c["reason"]),
                }
            )
            parts.append(lines)
    rejects = (
        pd.concat([p for p in parts if not p.empty], ignore_index=True)
        if any(not p.empty for p in parts)
        else pd.DataFrame()
    )
    if not rejects.empty:
        rejects = rejects[[*column_names(), LINE, REASON]]

    counts: dict[str, int] = {
        PaymentCount.LINES: parsed.rows,
        PaymentCount.VALID: len(parsed.valid),
        **{name: len(frame) for name, frame in outcomes.items()},
    }
    counts[PaymentCount.CONFLICTS] = int(conflicted.sum())
    counts[PaymentCount.LOCKBOX_FILES] = len(stats.files)
    counts[PaymentCount.SETTLED_FOUND] = stats.settled_found
    for key, n in (
        (PaymentCount.SETTLED_ABSENT, stats.settled_absent),
        (PaymentCount.VOIDS_SETTLED_FOUND, stats.voids_settled_found),
        (PaymentCount.VOIDS_SETTLED_ABSENT, stats.voids_settled_absent),
        (PaymentCount.FILES_RECOVERED, stats.files_recovered),
        (PaymentCount.FILES_ABANDONED, stats.files_abandoned),
    ):
        if n:
            counts[key] = n
    if not carried.empty:
        counts[PaymentCount.CARRIED_OVER] = len(carried)

    def total(frame: pd.DataFrame) -> str:
        cents = (
            pd.to_numeric(frame["amount_cents"], errors="coerce").fillna(0).astype("int64").sum()
            if len(frame)
            else 0
        )
        return str(cents_to_str(pd.Series([int(cents)], dtype="Int64")).iloc[0])

    totals = {"export": total(export_frame(parsed, resolved))}
    totals |= {
        name: total(outcomes[name]) for name in (PaymentCount.POSTED, PaymentCount.FILED, PaymentCount.VOIDED)
    }

    result = PaymentRunResult(
        kind=KIND,
        biller=cfg.name,
        inputs=[parsed.source],
        counts=counts,
        totals=totals,
        quarantined=rejects,
        period=engine.run_date.isoformat(),
    )
    result.outputs.extend(stats.files)
    result.outputs.append(write_reconciliation_csv(table, out, parsed.source.stem))
    if not rejects.empty:
        result.rejects_path = write_rejects(rejects, out, parsed.source.stem)
    result.tables["reconciliation"] = table
    if not carried.empty:  # what this run did for earlier exports (no names: shown in the UI)
        result.tables["carried_over"] = carried.assign(
            outcome=carried_outcome.to_numpy(), amount=cents_to_str(carried["amount_cents"].astype("Int64"))
        )[CARRIED_COLUMNS].reset_index(drop=True)
    result.notes.extend(codes.warnings)
    result.notes.extend(stats.notes)
    if (table["check"] == DIFFERENCE).any():
        note = table.loc[table["check"] == DIFFERENCE, "note"].iloc[-1]
        result.notes.append(f"the reconciliation shows a DIFFERENCE: {note or 'see the table'}")
    nothing_reached = stats.answers == 0 and (stats.unreachable > 0 or engine.fatal is not None)
    if nothing_reached:
        result.unreachable = True
        waiting = counts[PaymentCount.PENDING] + counts.get(PaymentCount.CARRIED_OVER, 0)
        result.error = (
            "Caselle Connect could not be reached ("
            + "; ".join(stats.errors[:2])
            + f"); {waiting} line(s) stay pending in the ledger and the next run posts them"
        )
        result.notes.append(result.error)
    elif stats.errors:
        result.notes.extend(f"Caselle: {e}" for e in stats.errors[:3])
    if counts[PaymentCount.PENDING]:  # lines a rerun of this export would still send (caselle_ic.ops.inbox)
        result.extra["retry_later"] = counts[PaymentCount.PENDING]
        result.keep_for_retry(counts[PaymentCount.PENDING])
    result.extra["engine"] = {
        "answers": stats.answers,
        "resent": stats.resent,
        "settled_found": stats.settled_found,
        "settled_absent": stats.settled_absent,
    }
    return result


__all__ = [
    "KIND",
    "PaymentRunResult",
    "build_result",
    "classify",
    "file_payments",
    "post_payments",
    "read_export",
    "record_export",
    "resolve_payment_codes",
    "route_payments",
    "run_daily_payments",
    "settle_leftovers",
    "void_reversals",
    "wait_for_other_runs",
]
