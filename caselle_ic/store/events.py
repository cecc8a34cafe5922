"""The history of each payment: the ``payment_events`` table (migration 4).

:class:`caselle_ic.store.payments.PaymentBook` appends one event, in the transaction of the
change, for every export line a payment came in (``exported``, or ``conflict`` when the
line differs from what was recorded first) and for every change of its ledger row:
``state`` (claimed, answered, settled, released, taken over: the new state with the
reason, receipt number or lockbox file the change recorded), ``route`` (its codes
re-resolved) and ``lockbox`` (a file and line reserved). ``caselle-ic trace`` reads them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from caselle_ic.store.ledger import Ledger, utc_text
from caselle_ic.store.tables import payment_events

#: Columns of a payment row worth keeping in an event's detail when a change sets them.
DETAIL_KEYS = (
    "reason",
    "receipt_number",
    "receipt_amount_cents",
    "lockbox_file",
    "lockbox_line",
    "attempts",
    "distribution_code",
    "payment_code",
    "gl_activity",
    "posting_method",
    "code_rule",
)


def _plain(value: Any) -> Any:
    """numpy / pandas scalars as plain Python (JSON) values; NA as None."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    try:
        if value != value:  # NaN / NA
            return None
    except (TypeError, ValueError):
        return None
    return value


_PLAIN_TYPES = (str, int)  # bool is an int: all three are written as they are
#: the keys arrive sorted: the same text as ``json.dumps(..., sort_keys=True)``, cheaper
_dumps = json.JSONEncoder(default=str).encode


def event(guid: Any, kind: str, state: str | None = None, **detail: Any) -> dict[str, Any]:
    """One event for :func:`record`; None values are left out of the detail."""
    # three events per payment on the posting path: plain values skip _plain()
    clean = {k: v if type(v) in _PLAIN_TYPES else _plain(v) for k, v in sorted(detail.items())}
    return {
        "payment_guid": str(guid),
        "event": kind,
        "state": state,
        "detail": _dumps({k: v for k, v in clean.items() if v is not None}),
    }


def from_update(update: Mapping[str, Any]) -> dict[str, Any]:
    """The event of one :meth:`PaymentBook.apply` update (``state`` when it sets one)."""
    state = update.get("state")
    kind = "state" if state is not None else ("lockbox" if update.get("lockbox_file") else "change")
    return event(update["guid"], kind, state, **{k: update[k] for k in DETAIL_KEYS if k in update})


def record(conn: Connection, biller: str, run_id: str, events: Iterable[Mapping[str, Any]]) -> None:
    """Append events in the caller's transaction (so history and row never disagree)."""
    now = utc_text()
    rows = [{"biller": biller, "run_id": run_id, "at": now, **e} for e in events]
    for i in range(0, len(rows), 2000):
        conn.execute(payment_events.insert(), rows[i : i + 2000])


def history(ledger: Ledger, biller: str, guid: str) -> list[dict[str, Any]]:
    """Every event of one payment, oldest first, with its detail decoded."""
    with ledger.begin() as conn:
        rows = conn.execute(
            sa.select(payment_events)
            .where(payment_events.c.biller == biller, payment_events.c.payment_guid == guid)
            .order_by(payment_events.c.id)
        ).mappings()
        out = []
        for r in rows:
            item = dict(r)
            item["detail"] = json.loads(item["detail"] or "{}")
            out.append(item)
        return out


__all__ = ["DETAIL_KEYS", "event", "from_update", "history", "record"]
