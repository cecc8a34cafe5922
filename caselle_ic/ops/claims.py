"""``caselle-ic inbox-claims``: the inbox claims of a biller, and releasing one.

A claim is a row of the ``inbox_files`` table (:class:`caselle_ic.ops.inbox.InboxStore`):
the content (SHA-256) of an inbox file, who took it and how it ended — ``processing`` (a
run holds it), ``done`` (processed: the same content dropped again is archived as a
duplicate, not processed) or ``failed`` (moved to ``[paths].error``; processed again when
dropped again). Releasing a claim forgets it (``InboxStore.forget``):

* a ``processing`` claim of a run that died is otherwise taken over only after an hour;
  releasing it lets the next run take the file now. A claim whose run is still alive on
  this host, or whose host is another and whose age is under the stale limit, is refused
  without ``--force`` (the run may be working on it);
* a ``done`` claim: the same content dropped again is processed again (payments are still
  posted once: the ledger knows every PaymentGUID; an invoice file is written again).
"""

from __future__ import annotations

import os
import re
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from caselle_ic.config.model import BillerConfig
from caselle_ic.errors import UsageError
from caselle_ic.ops.inbox_scan import sha256_file
from caselle_ic.store.inbox_claims import (
    DEFAULT_STALE_AFTER_SECONDS,
    InboxStore,
    default_ledger_url,
    inbox_files,
)
from caselle_ic.store.ledger import biller_key, mask_url

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}\Z")
_COLUMNS = (
    "sha256",
    "name",
    "kind",
    "status",
    "attempts",
    "claimed_by",
    "claimed_at",
    "finished_at",
    "archived_as",
)


def _holder_alive(claimed_by: str) -> bool | None:
    """Is the process holding a claim alive? None when it runs on another host."""
    host, _, pid = claimed_by.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _view(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    out = {k: row.get(k) for k in _COLUMNS}
    claimed = datetime.strptime(row["claimed_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    age = (now - claimed).total_seconds()
    out["age_seconds"] = int(age)
    if row["status"] == "processing":
        alive = _holder_alive(str(row["claimed_by"]))
        out["holder_alive"] = alive
        out["stale"] = age >= DEFAULT_STALE_AFTER_SECONDS or alive is False
    return out


def _rows(store: InboxStore, biller: str) -> list[dict[str, Any]]:
    # InboxStore has no listing method; this is the one read of its table outside it.
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(inbox_files).where(inbox_files.c.biller == biller).order_by(inbox_files.c.claimed_at)
        ).mappings()
        return [dict(r) for r in rows]


def list_claims(
    cfg: BillerConfig, ledger_url: str | None = None, *, include_done: bool = False
) -> dict[str, Any]:
    url = ledger_url or default_ledger_url(cfg)
    now = datetime.now(UTC)
    store = InboxStore(url)
    try:
        rows = _rows(store, biller_key(cfg))
    finally:
        store.close()
    shown = [_view(r, now) for r in rows if include_done or r["status"] != "done"]
    return {
        "biller": cfg.name,
        "ledger": mask_url(url),
        "claims": shown,
        "done_not_shown": 0 if include_done else sum(1 for r in rows if r["status"] == "done"),
        "released": None,
        "exit_status": 0,
    }


def _target_sha(store: InboxStore, biller: str, target: str) -> str:
    if _SHA256.match(target):
        return target.lower()
    path = Path(target)
    if path.is_file():
        return sha256_file(path)
    named = [r for r in _rows(store, biller) if r["name"] == path.name]
    if len(named) == 1:
        return str(named[0]["sha256"])
    if named:
        raise UsageError(
            f"--release {target}: {len(named)} claims have that file name; give the SHA-256 of the one "
            "to release (listed by `caselle-ic inbox-claims --all`)"
        )
    raise UsageError(
        f"--release {target}: no inbox claim of this biller has that SHA-256 or file name "
        "(list them with `caselle-ic inbox-claims --all`)"
    )


def release_claim(
    cfg: BillerConfig, target: str, ledger_url: str | None = None, *, force: bool = False
) -> dict[str, Any]:
    """Forget one claim; UsageError (exit 2) when there is none or a run may hold it."""
    url = ledger_url or default_ledger_url(cfg)
    biller = biller_key(cfg)
    store = InboxStore(url)
    try:
        sha = _target_sha(store, biller, target.strip())
        row = store.get(biller, sha)
        if row is None:
            raise UsageError(f"--release {target}: no inbox claim of {cfg.name} for content {sha[:12]}…")
        view = _view(row, datetime.now(UTC))
        if row["status"] == "processing" and not view["stale"] and not force:
            who = "is running" if view["holder_alive"] else "may still be running (another host)"
            raise UsageError(
                f"--release {target}: {row['name']} is being processed by {row['claimed_by']}, which {who} "
                f"(claimed {row['claimed_at'][:19]} UTC); wait for it, or add --force if that run is hung"
            )
        store.forget(biller, sha)
    finally:
        store.close()
    return {**list_claims(cfg, ledger_url), "released": view}


def render_text(result: dict[str, Any]) -> str:
    lines = []
    released = result["released"]
    if released:
        lines.append(
            f"released the {released['status']} claim of {released['name']} "
            f"(sha256 {released['sha256'][:12]}…, {released['kind']}): the same content is processed again "
            "when it is next in the inbox"
        )
    lines.append(f"Inbox claims of {result['biller']} (ledger {result['ledger']}):")
    if result["claims"]:
        lines.append(f"  {'status':<11}{'kind':<12}{'claimed (UTC)':<21}{'by':<28}{'sha256':<14}name")
    for c in result["claims"]:
        by = str(c["claimed_by"])
        if c["status"] == "processing":
            by += " (stale)" if c["stale"] else (" (running)" if c["holder_alive"] else "")
        where = f" -> {c['archived_as']}" if c["archived_as"] else ""
        lines.append(
            f"  {c['status']:<11}{c['kind']:<12}{c['claimed_at'][:19].replace('T', ' '):<21}{by:<28}"
            f"{c['sha256'][:12]:<14}{c['name']}{where}"
        )
    if not result["claims"]:
        lines.append("  none")
    if result["done_not_shown"]:
        lines.append(f"  ({result['done_not_shown']} done claim(s) not shown: --all)")
    return "\n".join(lines)


__all__ = ["list_claims", "release_claim", "render_text"]
