"""Admin operations of the emulator that make what a clerk does by hand in Caselle, so the
audit (SPEC §11) has something to find, and a log of the requests it served.

Receipt operations (``POST /_admin/receipts/<op>``, HTTP basic with the secret, JSON body
``{"receiptNumber": N, ...}``; each one committed transaction, balances moved as Caselle
would):

* ``void``: void a receipt by hand (``date`` optional, default today);
* ``change``: change ``amount``, ``accountNumber``, ``distributionCode``, ``paymentCode``
  or ``receiptDate`` of a receipt;
* ``duplicate``: add a second receipt with the same confirmation number (a new number);
* ``delete``: remove a receipt.

Every admin route (``/_admin/state``, ``faults``, ``reset``, ``expire-tokens``,
``paper-updates``, ``receipts``, ``receipts/<op>``, ``requests``) is answered by
:func:`admin_answer` once the app has checked the credentials.

``GET /_admin/requests``: the GraphQL requests served, oldest first (the last
:data:`LOG_SIZE`), each ``{"seq", "operation": "query"|"mutation", "fields": [...]}`` —
what the tests assert on to prove the audit sends no mutation.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Protocol

from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse, specified_rules, validate
from graphql.language import FieldNode, OperationDefinitionNode

from caselle_ic.emulator.faults import Faults
from caselle_ic.emulator.store import Store, StoreError

LOG_SIZE = 10_000
_COLUMNS = (
    "receipt_date, distribution_code, payment_code, amount_cents, account_number, account_name, "
    "gl_activity_number, allocate_to, confirmation_number, customer_number, created_at"
)


class RequestLog:
    """A bounded, thread-safe log of the GraphQL operations served, with totals."""

    def __init__(self, size: int = LOG_SIZE):
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0
        self.totals = {"query": 0, "mutation": 0, "unparsed": 0}

    def record(self, body: bytes) -> None:
        operation, fields = describe(body)
        with self._lock:
            self._seq += 1
            self.totals[operation] = self.totals.get(operation, 0) + 1
            self._entries.append({"seq": self._seq, "operation": operation, "fields": fields})

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)


# -- parsing and validating once per document text ------------------------------------------
# A client sends the same few documents over and over (one per batch size), and graphql-core
# takes ~1 ms per alias to parse and validate one: the emulator keeps both, keyed by text.
@lru_cache(maxsize=512)
def _parse_text(query: str) -> DocumentNode:
    return parse(query)


def parse_cached(query: Any) -> DocumentNode:
    return _parse_text(query) if isinstance(query, str) else parse(query)


def query_parser(_context: Any, data: dict[str, Any]) -> DocumentNode:
    """ariadne's ``query_parser``."""
    return parse_cached(data["query"])


_validated: dict[int, tuple[DocumentNode, list[GraphQLError]]] = {}
_validated_lock = threading.Lock()


def query_validator(
    schema: GraphQLSchema, document_ast: DocumentNode, *args: Any, **kwargs: Any
) -> list[GraphQLError]:
    """ariadne's ``query_validator``: graphql-core's ``validate``, remembered per document
    (the parse cache hands out the same document for the same text)."""
    if args or kwargs.get("rules") not in (None, specified_rules):
        return validate(schema, document_ast, *args, **kwargs)
    key = id(document_ast)
    with _validated_lock:
        hit = _validated.get(key)
    if hit is not None and hit[0] is document_ast:
        return hit[1]
    errors = validate(schema, document_ast, **kwargs)
    with _validated_lock:
        if len(_validated) > 1024:
            _validated.clear()
        _validated[key] = (document_ast, errors)
    return errors


def describe(body: bytes) -> tuple[str, list[str]]:
    """(``query`` / ``mutation`` / ``unparsed``, the distinct root fields) of a request."""
    try:
        data = json.loads(body)
        operation, fields = _describe_text(data["query"], data.get("operationName"))
    except Exception:
        return "unparsed", []
    return operation, list(fields)


@lru_cache(maxsize=512)
def _describe_text(query: str, name: str | None) -> tuple[str, tuple[str, ...]]:
    document = parse_cached(query)
    for d in document.definitions:
        if isinstance(d, OperationDefinitionNode) and (name is None or (d.name and d.name.value == name)):
            fields = sorted({s.name.value for s in d.selection_set.selections if isinstance(s, FieldNode)})
            return d.operation.value, tuple(fields)
    return "unparsed", ()


# -- receipt operations ------------------------------------------------------------------------
def _row(db: Any, number: int) -> Any:
    row = db.execute("SELECT * FROM receipts WHERE receipt_number = ?", (number,)).fetchone()
    if row is None:
        raise StoreError(f"no receipt {number}", "NOT_FOUND")
    return row


def _move(db: Any, customer: int, cents: int) -> None:
    """Add ``cents`` to a customer's balance (a receipt taken away raises what is owed)."""
    db.execute(
        "UPDATE customers SET balance_cents = balance_cents + ? WHERE customer_number = ?", (cents, customer)
    )


def hand_void(store: Store, number: int, when: date | None = None) -> dict[str, Any]:
    return store.void_receipt(number, when or datetime.now(UTC).date())


def change_receipt(store: Store, number: int, changes: dict[str, Any]) -> dict[str, Any]:
    allowed = {"amount", "accountNumber", "distributionCode", "paymentCode", "receiptDate"}
    unknown = set(changes) - allowed
    if unknown or not changes:
        raise StoreError(f"change takes {sorted(allowed)}; got {sorted(changes)}", "BAD_USER_INPUT")
    with store.transaction() as db:
        row = _row(db, number)
        live = not row["voided"]
        if "amount" in changes:
            try:
                cents = int(Decimal(str(changes["amount"])) * 100)
            except InvalidOperation:
                raise StoreError(f"amount {changes['amount']!r} is not a decimal", "BAD_USER_INPUT") from None
            if live:
                _move(db, row["customer_number"], row["amount_cents"] - cents)
            db.execute("UPDATE receipts SET amount_cents = ? WHERE receipt_number = ?", (cents, number))
            row = _row(db, number)
        if "accountNumber" in changes:
            account = str(changes["accountNumber"])
            customer = int(account) if account.strip().isdigit() else None
            if (
                customer is None
                or not db.execute("SELECT 1 FROM customers WHERE customer_number = ?", (customer,)).fetchone()
            ):
                raise StoreError(f"no customer {account!r}", "NOT_FOUND")
            if live:
                _move(db, row["customer_number"], row["amount_cents"])
                _move(db, customer, -row["amount_cents"])
            db.execute(
                "UPDATE receipts SET account_number = ?, customer_number = ? WHERE receipt_number = ?",
                (account, customer, number),
            )
        for key, column in (("distributionCode", "distribution_code"), ("paymentCode", "payment_code")):
            if key in changes:
                db.execute(
                    f"UPDATE receipts SET {column} = ? WHERE receipt_number = ?", (int(changes[key]), number)
                )
        if "receiptDate" in changes:
            db.execute(
                "UPDATE receipts SET receipt_date = ? WHERE receipt_number = ?",
                (date.fromisoformat(str(changes["receiptDate"])).isoformat(), number),
            )
        return dict(_row(db, number))


def duplicate_receipt(store: Store, number: int) -> dict[str, Any]:
    """A second receipt with the same content and confirmation number (a double import)."""
    with store.transaction() as db:
        row = _row(db, number)
        cur = db.execute(
            f"INSERT INTO receipts({_COLUMNS}) SELECT {_COLUMNS.replace('created_at', '?')} FROM receipts"
            " WHERE receipt_number = ?",
            (datetime.now(UTC).isoformat(timespec="microseconds"), number),
        )
        _move(db, row["customer_number"], -row["amount_cents"])
        return dict(_row(db, int(cur.lastrowid or 0)))


def delete_receipt(store: Store, number: int) -> dict[str, Any]:
    with store.transaction() as db:
        row = _row(db, number)
        if not row["voided"]:
            _move(db, row["customer_number"], row["amount_cents"])
        db.execute("DELETE FROM receipts WHERE receipt_number = ?", (number,))
        return dict(row)


def receipt_operation(store: Store, op: str, body: bytes) -> tuple[int, Any]:
    """``POST /_admin/receipts/<op>``: (HTTP status, JSON answer)."""
    try:
        args = json.loads(body or b"{}")
        if not isinstance(args, dict) or not isinstance(args.get("receiptNumber"), int):
            return 400, {"error": 'send {"receiptNumber": N, ...}'}
        number = int(args.pop("receiptNumber"))
        if op == "void":
            when = date.fromisoformat(args["date"]) if args.get("date") else None
            return 200, hand_void(store, number, when)
        if op == "change":
            return 200, change_receipt(store, number, args)
        if op == "duplicate":
            return 200, duplicate_receipt(store, number)
        if op == "delete":
            return 200, delete_receipt(store, number)
    except StoreError as exc:
        return (404 if exc.code == "NOT_FOUND" else 400), {"error": str(exc), "code": exc.code}
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return 404, {"error": f"no receipt operation {op!r}: void, change, duplicate, delete"}


# -- the admin routes --------------------------------------------------------------------------
class AdminTarget(Protocol):
    """What the admin routes act on: the running emulator (``EmulatorApp``)."""

    store: Store
    faults: Faults
    requests: RequestLog

    def state(self) -> dict[str, Any]: ...

    def reset(self) -> None: ...

    def expire_tokens(self) -> int: ...


def admin_answer(app: AdminTarget, method: str | None, path: str, body: bytes) -> tuple[int, Any]:
    """``/_admin/...`` (already authorized): (HTTP status, JSON answer)."""
    if path == "/_admin/state" and method == "GET":
        return 200, app.state()
    if path == "/_admin/faults" and method == "POST":
        try:
            changes = json.loads(body or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("send a JSON object")
            app.faults.update(changes)
        except ValueError as exc:
            return 400, {"error": str(exc)}
        return 200, app.faults.as_dict()
    if path == "/_admin/reset" and method == "POST":
        app.reset()
        return 200, app.state()
    if path == "/_admin/expire-tokens" and method == "POST":
        return 200, {"expired": app.expire_tokens()}
    if path == "/_admin/paper-updates" and method == "GET":
        return 200, app.store.paper_updates()
    if path == "/_admin/receipts" and method == "GET":
        return 200, app.store.all_receipts()
    if path.startswith("/_admin/receipts/") and method == "POST":  # hand edits (above)
        return receipt_operation(app.store, path.rsplit("/", 1)[1], body)
    if path == "/_admin/requests" and method == "GET":
        return 200, {"totals": dict(app.requests.totals), "requests": app.requests.entries()}
    return 404, {"error": f"no admin route {method} {path}"}


# -- bulk seeding (benchmarks) -----------------------------------------------------------------
def insert_receipts(store: Store, receipts: Iterable[dict[str, Any]]) -> int:
    """Insert receipts straight into the store (``create_receipt``'s columns, cents), for a
    benchmark that needs 100,000 of them without posting each through the API. Balances
    are not moved."""
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    rows = [
        (
            r["receipt_date"],
            r["distribution_code"],
            r["payment_code"],
            r["amount_cents"],
            r["account_number"],
            r.get("account_name"),
            r.get("gl_activity_number", 0),
            r.get("allocate_to"),
            r["confirmation_number"],
            int(r["account_number"]),
            now,
        )
        for r in receipts
    ]
    with store.transaction() as db:
        db.executemany(
            f"INSERT INTO receipts({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


__all__ = [
    "LOG_SIZE",
    "RequestLog",
    "change_receipt",
    "delete_receipt",
    "describe",
    "duplicate_receipt",
    "hand_void",
    "insert_receipts",
    "receipt_operation",
]
