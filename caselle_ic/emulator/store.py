"""The emulator's state: customers, receipts and paperless updates in one SQLite file.

Every mutation is its own committed transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), so
what a client was told is exactly what survives a restart, and a "commit then drop the
connection" fault really did commit.

Money is integer cents here; the GraphQL layer converts to and from Decimal.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

#: First receipt number handed out by a fresh database (numbers only ever increase).
FIRST_RECEIPT_NUMBER = 100001

_DDL = """
CREATE TABLE IF NOT EXISTS customers (
    customer_number INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    name            TEXT,
    customer_type   TEXT,
    balance_cents   INTEGER NOT NULL DEFAULT 0,
    send_paper      INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS receipts (
    receipt_number      INTEGER PRIMARY KEY AUTOINCREMENT,
    receipt_date        TEXT NOT NULL,
    distribution_code   INTEGER NOT NULL,
    payment_code        INTEGER NOT NULL,
    amount_cents        INTEGER NOT NULL,
    account_number      TEXT NOT NULL,
    account_name        TEXT,
    gl_activity_number  INTEGER NOT NULL,
    allocate_to         TEXT,
    confirmation_number TEXT NOT NULL,
    customer_number     INTEGER NOT NULL REFERENCES customers(customer_number),
    voided              INTEGER NOT NULL DEFAULT 0,
    void_date           TEXT,
    created_at          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS receipts_confirmation ON receipts(confirmation_number);
CREATE TABLE IF NOT EXISTS paper_updates (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_number INTEGER NOT NULL,
    send_paper      INTEGER NOT NULL,
    at              TEXT NOT NULL
);
"""


class StoreError(Exception):
    """A rule of the emulated API was broken; ``code`` is the GraphQL extensions.code."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SeedCustomer:
    customer_number: int
    name: str
    balance_cents: int


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Store:
    """SQLite-backed customers and receipts. Thread-safe (one lock, one connection)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives the process being killed (what the emulator's
        # restart and drop-after-commit faults need), not a power cut.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_DDL)
        with self.transaction() as db:
            seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'receipts'").fetchone()
            if seq is None:
                db.execute(
                    "INSERT INTO sqlite_sequence(name, seq) VALUES ('receipts', ?)",
                    (FIRST_RECEIPT_NUMBER - 1,),
                )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- seeding ---------------------------------------------------------------------
    def customer_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM customers").fetchone()[0])

    def seed(self, customers: list[SeedCustomer]) -> int:
        """Insert customers that do not exist yet (existing balances are never reset)."""
        with self.transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO customers(customer_number, id, name, customer_type, balance_cents,"
                " send_paper) VALUES (?, ?, ?, 'UTILITY', ?, 1)",
                [
                    (c.customer_number, f"cust-{c.customer_number}", c.name, c.balance_cents)
                    for c in customers
                ],
            )
            return db.total_changes - before

    def reset(self, customers: list[SeedCustomer]) -> None:
        """Back to a new database seeded with ``customers``: no receipts, no paper updates,
        receipt numbers from the first again (``POST /_admin/reset``)."""
        with self.transaction() as db:
            for table in ("receipts", "paper_updates", "customers"):
                db.execute(f"DELETE FROM {table}")
            db.execute("DELETE FROM sqlite_sequence WHERE name = 'paper_updates'")
            db.execute(
                "UPDATE sqlite_sequence SET seq = ? WHERE name = 'receipts'", (FIRST_RECEIPT_NUMBER - 1,)
            )
        self.seed(customers)

    # -- queries ---------------------------------------------------------------------
    def customer(
        self,
        *,
        customer_number: int | None = None,
        id: str | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            if customer_number is not None:
                rows = self._db.execute(
                    "SELECT * FROM customers WHERE customer_number = ?", (customer_number,)
                ).fetchall()
            elif id is not None:
                rows = self._db.execute("SELECT * FROM customers WHERE id = ?", (id,)).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM customers WHERE lower(name) = lower(?) ORDER BY customer_number",
                    (name,),
                ).fetchall()
        if not rows:
            raise StoreError("no such customer", "NOT_FOUND")
        if len(rows) > 1:
            raise StoreError(
                f"{len(rows)} customers have this name; look up by customerNumber", "BAD_USER_INPUT"
            )
        return dict(rows[0])

    def receipts(self, confirmation_number: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM receipts WHERE confirmation_number = ? ORDER BY receipt_number",
                (confirmation_number,),
            ).fetchall()
        return [dict(r) for r in rows]

    # -- mutations -------------------------------------------------------------------
    def create_receipt(
        self,
        *,
        receipt_date: date,
        distribution_code: int,
        payment_code: int,
        amount_cents: int,
        account_number: str,
        account_name: str | None,
        gl_activity_number: int,
        allocate_to: str | None,
        confirmation_number: str,
    ) -> dict[str, Any]:
        text = account_number.strip()
        if not text.isdigit():
            raise StoreError("accountNumber is not a customer number (digits only)", "BAD_USER_INPUT")
        number = int(text)
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM customers WHERE customer_number = ?", (number,)).fetchone() is None:
                raise StoreError("no such customer", "NOT_FOUND")
            cur = db.execute(
                "INSERT INTO receipts(receipt_date, distribution_code, payment_code, amount_cents,"
                " account_number, account_name, gl_activity_number, allocate_to, confirmation_number,"
                " customer_number, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    receipt_date.isoformat(),
                    distribution_code,
                    payment_code,
                    amount_cents,
                    account_number,
                    account_name,
                    gl_activity_number,
                    allocate_to,
                    confirmation_number,
                    number,
                    _now(),
                ),
            )
            db.execute(
                "UPDATE customers SET balance_cents = balance_cents - ? WHERE customer_number = ?",
                (amount_cents, number),
            )
            row = db.execute("SELECT * FROM receipts WHERE receipt_number = ?", (cur.lastrowid,)).fetchone()
        return dict(row)

    def void_receipt(self, receipt_number: int, void_date: date) -> dict[str, Any]:
        with self.transaction() as db:
            row = db.execute("SELECT * FROM receipts WHERE receipt_number = ?", (receipt_number,)).fetchone()
            if row is None:
                raise StoreError(f"no receipt {receipt_number}", "NOT_FOUND")
            if row["voided"]:
                raise StoreError(f"receipt {receipt_number} is already voided", "ALREADY_VOIDED")
            db.execute(
                "UPDATE receipts SET voided = 1, void_date = ? WHERE receipt_number = ?",
                (void_date.isoformat(), receipt_number),
            )
            db.execute(
                "UPDATE customers SET balance_cents = balance_cents + ? WHERE customer_number = ?",
                (row["amount_cents"], row["customer_number"]),
            )
            out = db.execute("SELECT * FROM receipts WHERE receipt_number = ?", (receipt_number,)).fetchone()
        return dict(out)

    def set_send_paper(self, customer_number: int, send_paper: bool) -> dict[str, Any]:
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE customers SET send_paper = ? WHERE customer_number = ?",
                (int(send_paper), customer_number),
            )
            if cur.rowcount == 0:
                raise StoreError("no such customer", "NOT_FOUND")
            db.execute(
                "INSERT INTO paper_updates(customer_number, send_paper, at) VALUES (?, ?, ?)",
                (customer_number, int(send_paper), _now()),
            )
            row = db.execute(
                "SELECT * FROM customers WHERE customer_number = ?", (customer_number,)
            ).fetchone()
        return dict(row)

    # -- admin -----------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "customers": int(self._db.execute("SELECT count(*) FROM customers").fetchone()[0]),
                "receipts": int(self._db.execute("SELECT count(*) FROM receipts").fetchone()[0]),
                "voided_receipts": int(
                    self._db.execute("SELECT count(*) FROM receipts WHERE voided = 1").fetchone()[0]
                ),
                "paper_updates": int(self._db.execute("SELECT count(*) FROM paper_updates").fetchone()[0]),
            }

    def paper_updates(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT customer_number, send_paper, at FROM paper_updates ORDER BY seq"
            ).fetchall()
        return [
            {
                "customerNumber": r["customer_number"],
                "sendPaperStatement": bool(r["send_paper"]),
                "at": r["at"],
            }
            for r in rows
        ]

    def all_receipts(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM receipts ORDER BY receipt_number").fetchall()
        return [dict(r) for r in rows]


def read_seed_extract(path: str | Path) -> list[SeedCustomer]:
    """Customers from a statement extract (SPEC §2.1): one per account, first row wins.

    customerNumber = the integer of the account's digits; balance = customer_balance.
    Rows whose account has no digits or whose balance does not parse are skipped.
    """
    from caselle_ic.tabular.csvin import read_text_csv
    from caselle_ic.tabular.values import digits_only, parse_cents

    frame = read_text_csv(
        path,
        column_map={"Acct No": "account_number", "Customer Name": "customer_name"},
        required=("account_number", "customer_name", "customer_balance"),
        known=("account_number", "customer_name", "customer_balance"),
        what="seed extract",
    )
    digits = digits_only(frame["account_number"])
    cents, bad = parse_cents(frame["customer_balance"])
    ok = (digits != "") & ~bad & cents.notna()
    frame = frame.assign(_digits=digits, _cents=cents)[ok]
    frame = frame.assign(_number=frame["_digits"].astype("int64"))
    first = frame.drop_duplicates("_number", keep="first")
    return [
        SeedCustomer(int(n), str(name).strip(), int(c))
        for n, name, c in zip(first["_number"], first["customer_name"], first["_cents"], strict=True)
    ]
