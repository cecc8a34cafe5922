"""An in-process transport for fast tests of the client's decisions (retry, never sent,
outcome unknown, settle, answer checks) — next to, not instead of, the emulator-process
tests that need real HTTP.

``FakeTransport`` answers from a script first (a :class:`Response`, an exception to raise,
or a callable), then from :class:`FakeCaselle`, a tiny in-memory Caselle that knows the
documents this package sends (it reads their variables; it does not execute GraphQL).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from caselle_ic.connect.transport import Response


@dataclass
class FakeRequest:
    url: str
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def query(self) -> str:
        return str(self.json.get("query", ""))

    @property
    def is_mutation(self) -> bool:
        return "mutation" in self.query.split("{", 1)[0]


def answer(payload: Any, status: int = 200) -> Response:
    """A response whose body is ``payload`` as JSON (bytes and str are sent as they are)."""
    if isinstance(payload, bytes):
        return Response(status, payload)
    if isinstance(payload, str):
        return Response(status, payload.encode())
    return Response(status, json.dumps(payload, default=str).encode())


@dataclass
class FakeCaselle:
    """Receipts and customers in memory; answers what the client's documents ask."""

    receipts: list[dict[str, Any]] = field(default_factory=list)
    next_number: int = 555001
    token_ttl: int = 3600
    tokens_issued: int = 0

    def __call__(self, req: FakeRequest) -> Response:
        if req.url.endswith("/oauth/token"):
            self.tokens_issued += 1
            return answer(
                {
                    "access_token": f"tok-{self.tokens_issued}",
                    "token_type": "Bearer",
                    "expires_in": self.token_ttl,
                }
            )
        q, v = req.query, req.json.get("variables") or {}
        n = sorted((k for k in v if re.fullmatch(r"[cr]\d+", k)), key=lambda k: int(k[1:]))
        data: dict[str, Any] = {}
        if "create_receipt(" in q:
            data = {k: self.create(v[k]) for k in n} or {"create_receipt": self.create(v["receipt"])}
        elif "void_receipt(" in q:
            data["void_receipt"] = self.void(int(v["receiptNumber"]), str(v["date"]))
        elif "receipts(" in q:
            asked = {"r" + k[1:]: v[k] for k in n} or {"receipts": v["confirmationNumber"]}
            data = {
                k: [dict(r) for r in self.receipts if r["confirmationNumber"] == c] for k, c in asked.items()
            }
        elif "customer_send_paper_invoice_update(" in q:
            data = {"r" + k[1:]: self.customer(v[k], v["p" + k[1:]]) for k in n} or {
                "customer_send_paper_invoice_update": self.customer(
                    v["customerNumber"], v["sendPaperStatement"]
                )
            }
        elif "customer(" in q:
            data = {"r" + k[1:]: self.customer(v[k]) for k in n} or {
                "customer": self.customer(v["customerNumber"])
            }
        return answer({"data": data})

    def create(self, r: Mapping[str, Any]) -> dict[str, Any]:
        receipt = {
            "receiptNumber": self.next_number,
            "receiptDate": r["receiptDate"],
            "distributionCode": r["distributionCode"],
            "paymentCode": r["paymentCode"],
            "amount": str(Decimal(str(r["amount"])).quantize(Decimal("0.01"))),
            "accountNumber": r["accountNumber"],
            "confirmationNumber": r["confirmationNumber"],
            "voided": False,
            "voidDate": None,
        }
        self.next_number += 1
        self.receipts.append(receipt)
        return dict(receipt)

    def void(self, number: int, day: str) -> dict[str, Any]:
        for r in self.receipts:
            if r["receiptNumber"] == number:
                r.update(voided=True, voidDate=day)
                return dict(r)
        raise KeyError(number)

    @staticmethod
    def customer(number: int, paper: bool = True) -> dict[str, Any]:
        return {
            "id": f"C{number}",
            "customerNumber": number,
            "name": {"fullName": "Ada Lovelace"},
            "balance": "12.50",
            "sendPaperStatement": paper,
        }


Step = Response | BaseException | Callable[[FakeRequest, FakeCaselle], Response]


class FakeTransport:
    """Scripted steps first, then the in-memory Caselle. Every request is kept."""

    def __init__(self, server: FakeCaselle | None = None):
        self.server = server or FakeCaselle()
        self.script: deque[Step] = deque()
        self.requests: list[FakeRequest] = []
        self.closed = False

    def then(self, *steps: Step, times: int = 1) -> FakeTransport:
        for _ in range(times):
            self.script.extend(steps)
        return self

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Response:
        req = FakeRequest(url, body, dict(headers))
        self.requests.append(req)
        if req.url.endswith("/oauth/token") or not self.script:
            return self.server(req)
        step = self.script.popleft()
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, Response):
            return step
        return step(req, self.server)

    def close(self) -> None:
        self.closed = True

    @property
    def graphql(self) -> list[FakeRequest]:
        return [r for r in self.requests if not r.url.endswith("/oauth/token")]


def commit_then(exc: BaseException) -> Callable[[FakeRequest, FakeCaselle], Response]:
    """A step: the server processes the request (it commits), then ``exc`` is raised."""

    def step(req: FakeRequest, server: FakeCaselle) -> Response:
        server(req)
        raise exc

    return step


def rewrite(change: Callable[[dict[str, Any]], Any]) -> Callable[[FakeRequest, FakeCaselle], Response]:
    """A step: the server processes the request, and its answer's JSON is rewritten."""

    def step(req: FakeRequest, server: FakeCaselle) -> Response:
        body = json.loads(server(req).body)
        out = change(body)
        return answer(body if out is None else out)  # bytes or str are answered as they are

    return step


__all__ = ["FakeCaselle", "FakeRequest", "FakeTransport", "Step", "answer", "commit_then", "rewrite"]
