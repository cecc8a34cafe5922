"""The emulator pieces the audit relies on, in-process: hand edits move balances as Caselle
would, the request log, and the fast path answering aliased receipts queries with exactly
the JSON ariadne gives."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from graphql import print_ast

from caselle_ic.connect.client import receipts_document
from caselle_ic.emulator import create_app
from caselle_ic.emulator.admin import change_receipt, delete_receipt, duplicate_receipt, hand_void
from caselle_ic.emulator.fastpath import receipts_answer
from caselle_ic.emulator.store import SeedCustomer, StoreError

SECRET = "s3cret"


@pytest.fixture
def app(tmp_path: Path):
    app = create_app(tmp_path / "emu.db", SECRET, seed=None)
    app.store.seed([SeedCustomer(1001, "A", 10_000), SeedCustomer(1002, "B", 0)])
    yield app
    app.store.close()


def receipt(app, guid: str, cents: int = 1234, account: str = "001001") -> int:
    row = app.store.create_receipt(
        receipt_date=date(2026, 11, 2),
        distribution_code=111,
        payment_code=4,
        amount_cents=cents,
        account_number=account,
        account_name="A",
        gl_activity_number=0,
        allocate_to=None,
        confirmation_number=guid,
    )
    return int(row["receipt_number"])


def balance(app, number: int) -> int:
    return int(app.store.customer(customer_number=number)["balance_cents"])


def test_hand_edits_move_balances(app):
    a0, b0 = balance(app, 1001), balance(app, 1002)  # the sample seed may have come first
    n = receipt(app, "g1")
    assert balance(app, 1001) == a0 - 1234
    change_receipt(app.store, n, {"amount": "20.00"})
    assert balance(app, 1001) == a0 - 2000
    change_receipt(app.store, n, {"accountNumber": "1002"})
    assert (balance(app, 1001), balance(app, 1002)) == (a0, b0 - 2000)
    second = duplicate_receipt(app.store, n)
    assert second["confirmation_number"] == "g1" and second["receipt_number"] == n + 1
    assert balance(app, 1002) == b0 - 4000
    hand_void(app.store, n, date(2026, 11, 4))
    delete_receipt(app.store, second["receipt_number"])
    assert balance(app, 1002) == b0
    assert [(r["receipt_number"], r["voided"], r["void_date"]) for r in app.store.receipts("g1")] == [
        (n, 1, "2026-11-04")
    ]
    with pytest.raises(StoreError, match="no customer"):
        change_receipt(app.store, n, {"accountNumber": "9999"})
    with pytest.raises(StoreError):
        change_receipt(app.store, n, {"customerName": "X"})


async def _post(app, body: bytes, path: str = "/tp/api/cr0/graphql"):
    sent: list[dict[str, Any]] = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    auth = b"Basic " + base64.b64encode(f"u:{SECRET}".encode())
    await app(
        {
            "type": "http",
            "method": "POST",
            "path": path,
            "headers": [(b"authorization", auth), (b"content-type", b"application/json")],
        },
        receive,
        send,
    )
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def _ariadne(app, body: bytes):
    sent: list[dict[str, Any]] = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/tp/api/cr0/graphql",
        "headers": [],
        "caselle_flags": {},
    }
    scope["headers"] = [(b"content-type", b"application/json")]
    await app.graphql(scope, receive, send)
    return b"".join(m.get("body", b"") for m in sent[1:])


def test_the_fast_path_answers_exactly_what_ariadne_answers(app):
    a = receipt(app, "g1", 123_456_789)
    receipt(app, "g2", 5)
    duplicate_receipt(app.store, a)
    hand_void(app.store, a, date(2026, 11, 4))
    body = json.dumps(
        {
            "query": print_ast(receipts_document(4)),
            "variables": {"c0": "g1", "c1": "g2", "c2": "none", "c3": "g1"},
        }
    ).encode()
    fast = receipts_answer(app.schema, app.store, body)
    assert fast is not None
    assert json.loads(fast) == json.loads(asyncio.run(_ariadne(app, body)))
    status, served = asyncio.run(_post(app, body))
    assert status == 200 and json.loads(served) == json.loads(fast)
    assert json.loads(fast)["data"]["r0"][0]["amount"] == "1234567.89"
    log = app.requests.entries()
    assert log[-1]["operation"] == "query" and log[-1]["fields"] == ["receipts"]


@pytest.mark.parametrize(
    "query",
    [
        "query Q($c: String!) { r0: receipts(confirmationNumber: $c) { __typename receiptNumber } }",
        'query Q { r0: receipts(confirmationNumber: "g1") { receiptNumber } }',
        "query Q($c: String!) { r0: receipts(confirmationNumber: $c) { receiptNumber } "
        "r1: customer(id: $c) { id } }",
        "query Q($c: String!) { r0: receipts(confirmationNumber: $c) { nope } }",
    ],
)
def test_other_documents_go_through_ariadne(app, query: str):
    body = json.dumps({"query": query, "variables": {"c": "g1"}}).encode()
    assert receipts_answer(app.schema, app.store, body) is None
    status, _ = asyncio.run(_post(app, body))
    assert status in (200, 400)


def test_a_variable_that_is_not_a_string_is_refused_as_before(app):
    body = json.dumps({"query": print_ast(receipts_document(1)), "variables": {"c0": 5}}).encode()
    assert receipts_answer(app.schema, app.store, body) is None
    _, served = asyncio.run(_post(app, body))
    assert json.loads(served)["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
