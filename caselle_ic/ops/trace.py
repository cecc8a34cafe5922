"""``caselle-ic trace PAYMENT_GUID`` (SPEC §11): the life of one payment, from the ledger.

What it reads: the payment's row in ``payments`` (as first recorded, its codes, where it
went), its history in ``payment_events`` (every export line it came in, every state
change with its time, run and the reason / receipt / file the change recorded — see
:mod:`caselle_ic.store.events`), the runs (``runs``) and where their export was archived
(``inbox_files``), its lockbox file (``lockbox_files``), the reversals that name it (or its
original, when it is one), and ``codes explain`` of its payment key under today's
configuration. Nothing is sent to Caselle and nothing is written.

Account numbers are masked (``****1234``) in the text and in the JSON, and reasons that
quote one are masked the same way; customer names are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from caselle_ic.config.model import BillerConfig, load_config
from caselle_ic.errors import ConfigError, LedgerError, UsageError
from caselle_ic.logsafe import mask_accounts
from caselle_ic.store import events as history
from caselle_ic.store.ledger import Ledger, biller_key, ledger_url_for, open_ledger
from caselle_ic.store.tables import lockbox_files, payments
from caselle_ic.tabular.values import cents_to_decimal, mask_account_value

PAYMENT_TYPES = {1: "CC", 2: "ACH", 11: "OBD", 15: "PayPal", 16: "PayPal Credit", 17: "Venmo"}


def _money(cents: Any) -> str | None:
    return None if cents is None else str(cents_to_decimal(int(cents)))


def _open(cfg: BillerConfig, ledger_url: str | None) -> Ledger:
    url = ledger_url_for(cfg, ledger_url)
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).is_file():
        where = "--ledger" if ledger_url else "[paths].state"
        raise UsageError(f"no ledger at {parsed.database}: check {where} (no payment run has used it yet)")
    return open_ledger(url)


def _row(ledger: Ledger, biller: str, guid: str) -> dict[str, Any] | None:
    with ledger.begin() as conn:
        q = sa.select(payments).where(payments.c.biller == biller)
        row = conn.execute(q.where(payments.c.payment_guid == guid)).mappings().first()
        if row is None:  # IC writes GUIDs in either case
            row = (
                conn.execute(q.where(sa.func.lower(payments.c.payment_guid) == guid.lower()))
                .mappings()
                .first()
            )
    return dict(row) if row else None


def _related(
    ledger: Ledger, biller: str, row: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(the reversals naming this payment, the original this reversal names)."""
    with ledger.begin() as conn:
        rev = conn.execute(
            sa.select(payments)
            .where(payments.c.biller == biller, payments.c.original_guid == row["payment_guid"])
            .order_by(payments.c.created_at)
        ).mappings()
        reversals = [dict(r) for r in rev]
        original = None
        if row["original_guid"]:
            found = conn.execute(
                sa.select(payments).where(
                    payments.c.biller == biller, payments.c.payment_guid == row["original_guid"]
                )
            ).mappings()
            first = found.first()
            original = dict(first) if first else None
    return reversals, original


def _lockbox(ledger: Ledger, biller: str, name: str | None) -> dict[str, Any] | None:
    if not name:
        return None
    with ledger.begin() as conn:
        found = conn.execute(
            sa.select(lockbox_files).where(
                lockbox_files.c.biller == biller, lockbox_files.c.file_name == name
            )
        ).mappings()
        first = found.first()
    return dict(first) if first else None


def _runs(ledger: Ledger, run_ids: list[str], url: str, biller: str) -> dict[str, dict[str, Any]]:
    from caselle_ic.store.inbox_claims import InboxStore

    out: dict[str, dict[str, Any]] = {}
    store = None
    try:
        for run_id in dict.fromkeys(run_ids):
            run = ledger.run(run_id)
            if run is None:
                continue
            info = {
                k: run[k]
                for k in ("kind", "input_name", "input_sha256", "started_at", "finished_at", "status")
            }
            if run["input_sha256"]:
                store = store or InboxStore(url)
                claim = store.get(biller, run["input_sha256"])
                info["archived_as"] = claim.get("archived_as") if claim else None
            out[run_id] = info
    finally:
        if store is not None:
            store.close()
    return out


def _quarantined(cfg: BillerConfig, guid: str) -> str | None:
    """Where an export line with this GUID was quarantined (never reaches the ledger), from
    the rejects files of the inbox runs (``[paths].outbox/rejects``), newest first."""
    import csv

    files = sorted(Path(cfg.paths.outbox, "rejects").glob("*.rejects.csv"), key=lambda f: -f.stat().st_mtime)
    for f in files:
        try:
            with f.open(encoding="utf-8", newline="") as fh:
                for rec in csv.DictReader(fh):
                    if (rec.get("payment_guid") or "").strip().lower() == guid.lower():
                        return (
                            f"; its export line {rec.get('line') or '?'} was quarantined ({f}): "
                            f"{mask_accounts(rec.get('reason') or '')}"
                        )
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
    return None


def _codes_explain(cfg: BillerConfig, row: dict[str, Any]) -> str:
    from caselle_ic.payments.codes_explain import explain_text

    try:
        text = explain_text(
            cfg,
            payment_type=int(row["payment_type_id"]),
            card_vendor=row["card_vendor"] or None,
            obd_vendor=row["obd_vendor"] or None,
            invoice_type=row["invoice_type_id"],
        )
    except ConfigError as exc:
        return f"(today's configuration cannot resolve it: {exc})"
    return text.split("\nOther entries:")[0]


def _payment(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "payment_guid": row["payment_guid"],
        "transaction_type": row["transaction_type"],
        "original_guid": row["original_guid"] or None,
        "payment_date": row["payment_date"],
        "account": mask_account_value(row["account_number"]),
        "invoice_number": row["invoice_number"],
        "invoice_type_id": row["invoice_type_id"],
        "payment_type_id": row["payment_type_id"],
        "payment_type": PAYMENT_TYPES.get(int(row["payment_type_id"]), "?"),
        "card_vendor": row["card_vendor"] or None,
        "obd_vendor": row["obd_vendor"] or None,
        "amount": _money(row["amount_cents"]),
    }


def _outcome(row: dict[str, Any], lockbox: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "state": row["state"],
        "reason": mask_accounts(row["reason"]) if row["reason"] else None,
        "attempts": row["attempts"],
        "done_at": row["done_at"],
        "first_run_id": row["first_run_id"],
        "last_run_id": row["last_run_id"],
    }
    if row["receipt_number"] is not None:
        out["receipt"] = {
            "receipt_number": int(row["receipt_number"]),
            "amount": _money(row["receipt_amount_cents"]),
            "distribution_code": row["receipt_distribution_code"],
            "payment_code": row["receipt_payment_code"],
        }
    if row["lockbox_file"]:
        out["lockbox"] = {"file": row["lockbox_file"], "line": row["lockbox_line"]}
        if lockbox is not None:
            out["lockbox"].update(
                directory=lockbox["directory"],
                file_state=lockbox["state"],
                written_at=lockbox["written_at"],
                sha256=lockbox["sha256"],
            )
    return out


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "payment_guid": row["payment_guid"],
        "transaction_type": row["transaction_type"],
        "state": row["state"],
        "receipt_number": None if row["receipt_number"] is None else int(row["receipt_number"]),
        "lockbox_file": row["lockbox_file"],
        "done_at": row["done_at"],
        "reason": mask_accounts(row["reason"]) if row["reason"] else None,
    }


def trace_payment(
    guid: str, config: BillerConfig | str | Path, *, ledger_url: str | None = None
) -> dict[str, Any]:
    """Everything the ledger knows about one payment, as one JSON-able object.

    UsageError (exit 2) when the GUID is not in this biller's ledger."""
    guid = guid.strip()
    if not guid:
        raise UsageError("PAYMENT_GUID is empty: give the IC PaymentGUID of the payment")
    cfg = config if isinstance(config, BillerConfig) else load_config(config)
    biller = biller_key(cfg)
    ledger = _open(cfg, ledger_url)
    try:
        row = _row(ledger, biller, guid)
        if row is None:
            raise UsageError(
                f"payment {guid} is not in the ledger {ledger.url} of {cfg.name}"
                + (
                    _quarantined(cfg, guid)
                    or ": check the PaymentGUID (IC's payment_guid column), --config and --ledger"
                )
            )
        events = history.history(ledger, biller, row["payment_guid"])
        reversals, original = _related(ledger, biller, row)
        lockbox = _lockbox(ledger, biller, row["lockbox_file"])
        run_ids = [row["first_run_id"], *(e["run_id"] for e in events), row["last_run_id"]]
        runs = _runs(ledger, run_ids, ledger_url_for(cfg, ledger_url), biller)
    except sa.exc.SQLAlchemyError as exc:
        raise LedgerError(f"the ledger {ledger.url} could not be read: {type(exc).__name__}") from None
    finally:
        ledger.close()

    came_in = [
        {
            "export": e["detail"].get("export"),
            "line": e["detail"].get("line"),
            "run_id": e["run_id"],
            "at": e["at"],
            "archived_as": runs.get(e["run_id"], {}).get("archived_as"),
            "conflict": e["event"] == "conflict",
        }
        for e in events
        if e["event"] in ("exported", "conflict")
    ]
    if not came_in:  # recorded before payment_events existed: the first line only
        came_in = [
            {
                "export": row["export_name"],
                "line": row["export_line"],
                "run_id": row["first_run_id"],
                "at": row["created_at"],
                "archived_as": runs.get(row["first_run_id"], {}).get("archived_as"),
                "conflict": False,
            }
        ]
    notes = []
    if not events:
        notes.append(
            "this payment was recorded before the ledger kept a history (migration 4): only its "
            f"first and last run are known (created {row['created_at']}, last changed {row['updated_at']})"
        )
    for e in events:
        if "reason" in e["detail"] and e["detail"]["reason"]:
            e["detail"]["reason"] = mask_accounts(str(e["detail"]["reason"]))
        e["run_kind"] = runs.get(e["run_id"], {}).get("kind")
    return {
        "payment_guid": row["payment_guid"],
        "biller": cfg.name,
        "ledger": ledger.url,
        "payment": _payment(row),
        "came_in": came_in,
        "codes": {
            "code_rule": row["code_rule"],
            "distribution_code": row["distribution_code"],
            "payment_code": row["payment_code"],
            "gl_activity": row["gl_activity"],
            "posting_method": row["posting_method"],
            "explain": _codes_explain(cfg, row) if row["transaction_type"] == "PAYMENT" else None,
        },
        "outcome": _outcome(row, lockbox),
        "reversals": [_brief(r) for r in reversals],
        "original": _brief(original) if original else None,
        "events": [
            {k: e[k] for k in ("at", "run_id", "run_kind", "event", "state", "detail")} for e in events
        ],
        "runs": {k: {f: v for f, v in r.items() if f != "input_sha256"} for k, r in runs.items()},
        "notes": notes,
        "exit_status": 0,
    }


# -- text ------------------------------------------------------------------------------------
def _short(run_id: str | None) -> str:
    return (run_id or "?")[:8]


def _event_text(e: dict[str, Any]) -> str:
    d = e["detail"]
    if e["event"] in ("exported", "conflict"):
        text = f"{d.get('export')} line {d.get('line')}"
        return text + (f": {d['reason']}" if e["event"] == "conflict" else "")
    parts = [e["state"] or ""]
    if "attempts" in d and e["state"] in ("sending", "void_sending", "filing"):
        parts.append(f"(attempt {d['attempts']})")
    if d.get("receipt_number") is not None:
        parts.append(f"receipt {d['receipt_number']}")
    if d.get("lockbox_file"):
        parts.append(f"{d['lockbox_file']} line {d.get('lockbox_line')}")
    if e["event"] == "route":
        parts.append(
            f"{d.get('code_rule')}: distribution {d.get('distribution_code')}, "
            f"payment {d.get('payment_code')}, {d.get('posting_method')}"
        )
    if d.get("reason"):
        parts.append(f"- {d['reason']}")
    return " ".join(p for p in parts if p)


def render_text(t: dict[str, Any]) -> str:
    p, c, o = t["payment"], t["codes"], t["outcome"]
    vendor = p["card_vendor"] or p["obd_vendor"]
    lines = [
        f"Payment {t['payment_guid']} of {t['biller']} (ledger {t['ledger']})",
        f"  {p['transaction_type']} {p['amount']} on {p['payment_date']}, account {p['account']}, "
        f"invoice {p['invoice_number'] or '-'}",
        f"  payment type {p['payment_type_id']} ({p['payment_type']}){', ' + vendor if vendor else ''}, "
        f"invoice type {p['invoice_type_id'] if p['invoice_type_id'] is not None else '-'}",
    ]
    if p["original_guid"]:
        lines.append(f"  reverses {p['original_guid']}")
    lines.append("Came in:")
    for ci in t["came_in"]:
        run = t["runs"].get(ci["run_id"], {})
        where = f"; archived as {ci['archived_as']}" if ci.get("archived_as") else ""
        flag = "  CONFLICT: differs from the first line, not posted" if ci["conflict"] else ""
        lines.append(
            f"  {ci['export']} line {ci['line']}  (run {_short(ci['run_id'])}, {run.get('kind', '?')}, "
            f"{ci['at']}{where}){flag}"
        )
    if p["transaction_type"] != "PAYMENT":
        lines.append("Codes: none (a reversal voids the receipt of its original)")
    else:
        lines.append(
            f"Codes: {c['code_rule'] or '-'} -> distribution {c['distribution_code']}, "
            f"payment {c['payment_code']}, GL activity {c['gl_activity']}, {c['posting_method'] or '-'}"
        )
        lines += ["  codes explain (today's configuration):"]
        lines += [f"    {x}" for x in c["explain"].splitlines()[1:]]
    outcome = f"Outcome: {o['state']}"
    if "receipt" in o:
        r = o["receipt"]
        verb = "voided receipt" if p["transaction_type"] != "PAYMENT" else "receipt"
        outcome += f", {verb} {r['receipt_number']}"
        if r["amount"] is not None:
            outcome += (
                f" (Caselle: amount {r['amount']}, distribution {r['distribution_code']}, "
                f"payment {r['payment_code']})"
            )
    if "lockbox" in o:
        lb = o["lockbox"]
        outcome += f", lockbox file {lb['file']} line {lb['line']}"
        if lb.get("directory"):
            outcome += f" in {lb['directory']} ({lb['file_state']}, written {lb['written_at'] or '-'})"
    if o["done_at"]:
        outcome += f", done {o['done_at']}"
    lines.append(outcome)
    if o["reason"]:
        lines.append(f"  reason: {o['reason']}")
    for r in t["reversals"]:
        what = f"receipt {r['receipt_number']}" if r["receipt_number"] is not None else "no receipt"
        lines.append(
            f"Reversed by: {r['transaction_type']} {r['payment_guid']}: {r['state']} ({what}"
            f"{', done ' + r['done_at'] if r['done_at'] else ''}){' - ' + r['reason'] if r['reason'] else ''}"
        )
    if not t["reversals"] and p["transaction_type"] == "PAYMENT":
        lines.append("Reversed by: nothing (no refund or ACH reject names it)")
    if t["original"]:
        r = t["original"]
        lines.append(
            f"Original: {r['transaction_type']} {r['payment_guid']}: {r['state']}, "
            f"receipt {r['receipt_number']}"
        )
    lines.append("History:")
    for e in t["events"]:
        lines.append(
            f"  {e['at']}  run {_short(e['run_id'])} ({e['run_kind'] or '?'})  "
            f"{e['event']:<9} {_event_text(e)}"
        )
    lines += [f"note: {n}" for n in t["notes"]]
    return "\n".join(lines)


def render_json(t: dict[str, Any]) -> str:
    return json.dumps(t, indent=2, default=str)


__all__ = ["render_json", "render_text", "trace_payment"]
