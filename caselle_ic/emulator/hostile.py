"""Hostile answers (issue 13): the emulator answering wrongly on purpose.

Armed through :class:`~caselle_ic.emulator.faults.Faults` (``hostile``, ``hostile_next``,
``hostile_on`` and the mode's parameter), for the next N requests to the GraphQL endpoint
or the token endpoint. Modes:

========================  =====================================================================
``body``                  the request runs (a mutation commits); ``hostile_body`` is answered
                          instead, as is (``null``, ``42``, ``{"data": []}`` ...)
``fields``                the request runs; every receipt/customer in the answer gets
                          ``hostile_fields`` (``{"receiptNumber": true}`` ...)
``wrong_receipt``         the request runs; each receipt answered is another payment's
                          (``create_receipt``), or another payment's receipt is added to the
                          list (``receipts``)
``huge_error``            nothing runs; every field answers BAD_USER_INPUT with a message of
                          ``hostile_size`` characters
``slow``                  the request runs; its answer is sent one byte every ``slow_body_s``
``endless``               nothing runs; headers, then a body that never ends (stopped at
                          64 MiB so a broken client cannot take the machine down)
========================  =====================================================================
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from graphql import parse
from graphql.language import FieldNode, OperationDefinitionNode

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

MODES = ("body", "fields", "wrong_receipt", "huge_error", "slow", "endless")
_ENDLESS_CAP = 64 * 1024 * 1024


def _aliases(body: bytes) -> list[str]:
    """The response keys of the request's top-level fields."""
    try:
        document = parse(json.loads(body)["query"])
    except Exception:
        return ["data"]
    op = next((d for d in document.definitions if isinstance(d, OperationDefinitionNode)), None)
    if op is None:
        return ["data"]
    return [(s.alias or s.name).value for s in op.selection_set.selections if isinstance(s, FieldNode)] or [
        "data"
    ]


def _objects(data: Any) -> list[dict[str, Any]]:
    """The receipt / customer objects of an answer's data (alias values and list items)."""
    out: list[dict[str, Any]] = []
    for value in (data or {}).values() if isinstance(data, dict) else []:
        items = value if isinstance(value, list) else [value]
        out += [v for v in items if isinstance(v, dict)]
    return out


def _stranger(mine: dict[str, Any] | None, others: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Another payment's receipt: a real one when the store has one, else a made-up one."""
    number = (mine or {}).get("confirmationNumber")
    for o in others:
        if o["confirmation_number"] != number:
            return {
                "receiptNumber": o["receipt_number"],
                "receiptDate": o["receipt_date"],
                "distributionCode": o["distribution_code"],
                "paymentCode": o["payment_code"],
                "amount": f"{o['amount_cents'] // 100}.{o['amount_cents'] % 100:02d}",
                "accountNumber": o["account_number"],
                "confirmationNumber": o["confirmation_number"],
                "voided": bool(o["voided"]),
                "voidDate": o["void_date"],
            }
    if mine is None:
        return None
    return {**mine, "receiptNumber": 999_999, "confirmationNumber": f"not-{number}"}


def _rewrite(payload: bytes, faults: Any, receipts: list[dict[str, Any]]) -> bytes:
    if faults.hostile == "body":
        return str(faults.hostile_body).encode()
    try:
        answer = json.loads(payload)
    except ValueError:
        return payload
    data = answer.get("data") if isinstance(answer, dict) else None
    if faults.hostile == "fields":
        for obj in _objects(data):
            obj.update(faults.hostile_fields)
    elif faults.hostile == "wrong_receipt" and isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, list):
                stranger = _stranger(value[0] if value else None, receipts)
                value.extend([stranger] if stranger else [])
            elif isinstance(value, dict) and "receiptNumber" in value:
                data[key] = _stranger(value, receipts)
    return json.dumps(answer).encode()


async def answer(
    faults: Any,
    body: bytes,
    send: Send,
    run: Callable[[Send], Awaitable[None]],
    receipts: Callable[[], list[dict[str, Any]]],
) -> None:
    """Answer one request the hostile way ``faults.hostile`` says."""
    mode = faults.hostile
    if mode == "huge_error":
        text = "x" * faults.hostile_size
        errors = [
            {"message": text, "path": [a], "extensions": {"code": "BAD_USER_INPUT"}} for a in _aliases(body)
        ]
        await _send(send, 200, json.dumps({"data": None, "errors": errors}).encode())
        return
    if mode == "endless":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"data": {"r0": "', "more_body": True})
        chunk, sent = b"x" * 65536, 0
        while sent < _ENDLESS_CAP:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
        return  # unfinished: the server drops the connection
    captured: list[Message] = []

    async def capture(message: Message) -> None:
        captured.append(message)

    await run(capture)
    start = next(m for m in captured if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
    if mode == "slow":
        await send({**start, "headers": [(k, v) for k, v in start["headers"]]})
        for i in range(len(payload)):
            await send({"type": "http.response.body", "body": payload[i : i + 1], "more_body": True})
            await asyncio.sleep(faults.slow_body_s)
        await send({"type": "http.response.body", "body": b""})
        return
    out = _rewrite(payload, faults, receipts() if mode == "wrong_receipt" else [])
    await _send(send, int(start["status"]), out)


async def _send(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


__all__ = ["MODES", "answer"]
