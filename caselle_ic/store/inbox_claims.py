"""The inbox claims: the ``inbox_files`` table of the ledger (migration 5), one row per
(biller, content SHA-256) saying who processed which file and how it ended, so a file is
processed once however many pickups race for it (SPEC §10).

It lives in the ledger database, on the ledger's one engine (:func:`open_ledger`: the
SQLite setup with WAL and ``BEGIN IMMEDIATE``, the numbered migrations).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from caselle_ic.config.model import BillerConfig
from caselle_ic.errors import LedgerError
from caselle_ic.store.ledger import Ledger, ledger_url_for, open_ledger, utc_text
from caselle_ic.store.tables import inbox_files

DEFAULT_STALE_AFTER_SECONDS = 3600.0


def default_ledger_url(cfg: BillerConfig) -> str:
    """``sqlite:///<paths.state>/ledger.db`` — the ledger's own default."""
    return ledger_url_for(cfg)


def parse_utc_text(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Claim:
    outcome: Literal["claimed", "duplicate", "busy"]
    row: dict[str, Any] = field(default_factory=dict)


class InboxStore:
    """The ``inbox_files`` table: who processed which content, and how it ended."""

    def __init__(self, url: str, *, stale_after_seconds: float = DEFAULT_STALE_AFTER_SECONDS):
        self.url = url
        self.stale_after_seconds = stale_after_seconds
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        try:
            self.ledger: Ledger = open_ledger(url)
        except LedgerError as exc:
            raise LedgerError(f"cannot open the inbox table in the ledger database: {exc}") from None
        self.engine = self.ledger.engine

    def close(self) -> None:
        self.ledger.close()

    def _key(self, biller: str, sha256: str) -> Any:
        t = inbox_files.c
        return sa.and_(t.biller == biller, t.sha256 == sha256)

    def get(self, biller: str, sha256: str) -> dict[str, Any] | None:
        with self.ledger.begin() as conn:
            row = conn.execute(sa.select(inbox_files).where(self._key(biller, sha256))).mappings().first()
        return dict(row) if row else None

    def claim(self, *, biller: str, biller_name: str, sha256: str, kind: str, name: str, size: int) -> Claim:
        """Claim content for processing. Safe when several runs race for the same file."""
        now = datetime.now(UTC)
        try:
            with self.ledger.begin() as conn:
                conn.execute(
                    inbox_files.insert().values(
                        biller=biller,
                        sha256=sha256,
                        biller_name=biller_name,
                        kind=kind,
                        name=name,
                        size=size,
                        status="processing",
                        attempts=1,
                        claimed_by=self.worker,
                        claimed_at=utc_text(now),
                    )
                )
            return Claim("claimed")
        except sa.exc.IntegrityError:
            pass
        row = self.get(biller, sha256)
        if row is None:  # deleted between our insert and select: try once more
            return self.claim(
                biller=biller, biller_name=biller_name, sha256=sha256, kind=kind, name=name, size=size
            )
        if row["status"] == "done":
            return Claim("duplicate", row)
        age = (now - parse_utc_text(row["claimed_at"])).total_seconds()
        if row["status"] == "processing" and age < self.stale_after_seconds:
            return Claim("busy", row)
        # failed before, or a stale claim of a run that died: take it over (compare-and-set)
        with self.ledger.begin() as conn:
            taken = conn.execute(
                inbox_files.update()
                .where(self._key(biller, sha256))
                .where(inbox_files.c.status == row["status"])
                .where(inbox_files.c.attempts == row["attempts"])
                .values(
                    status="processing",
                    attempts=row["attempts"] + 1,
                    claimed_by=self.worker,
                    claimed_at=utc_text(now),
                    kind=kind,
                    name=name,
                    finished_at=None,
                )
            ).rowcount
        return Claim("claimed", row) if taken == 1 else Claim("busy", row)

    def finish(
        self,
        *,
        biller: str,
        sha256: str,
        ok: bool,
        archived_as: Path | None,
        outputs: list[Path] | None = None,
        detail: str = "",
    ) -> None:
        with self.ledger.begin() as conn:
            conn.execute(
                inbox_files.update()
                .where(self._key(biller, sha256))
                .values(
                    status="done" if ok else "failed",
                    finished_at=utc_text(),
                    archived_as=str(archived_as) if archived_as else None,
                    outputs=json.dumps([str(p) for p in outputs or []]),
                    detail=detail,
                )
            )

    def forget(self, biller: str, sha256: str) -> bool:
        """Drop the record of some content so the same file can be processed again."""
        with self.ledger.begin() as conn:
            return bool(conn.execute(inbox_files.delete().where(self._key(biller, sha256))).rowcount)


__all__ = [
    "DEFAULT_STALE_AFTER_SECONDS",
    "Claim",
    "InboxStore",
    "default_ledger_url",
    "inbox_files",
    "parse_utc_text",
]
