"""GraphQL over HTTP, as the spec and its current draft say (issue 12, items 3-4).

Ariadne serves GraphiQL for any GET and answers request errors with ``"data": null``;
these functions put the emulator in line before and after it runs:

* ``GET`` with ``Accept: text/html`` (a browser) -> the GraphiQL page; any other ``GET``
  is a GraphQL request read from the query string: a query is executed, a mutation is
  refused with 405 (``Allow: POST``), a missing ``query`` is 400.
* ``operationName: ""`` means no operation name.
* A request error (nothing executed: parse, validation, an unknown or missing
  operationName among several, a variable of the wrong type) has no ``data`` key at all
  (GraphQL spec §7.1.2); an execution that failed keeps ``"data": null``.
* ``Accept: application/graphql-response+json`` is answered with that media type.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from graphql import OperationType
from graphql.language import OperationDefinitionNode, parse

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
GRAPHQL_RESPONSE = "application/graphql-response+json"


def header(scope: MutableMapping[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def wants_html(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("method") == "GET" and "text/html" in header(scope, b"accept").lower()


def _error(message: str) -> bytes:
    return json.dumps({"errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]}).encode()


def normalize_body(body: bytes) -> bytes:
    """A POST body with ``operationName: ""`` turned into an absent one."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, dict) and data.get("operationName") == "":
        del data["operationName"]
        return json.dumps(data).encode()
    return body


def operation_of(data: dict[str, Any]) -> OperationType | None:
    """The operation the request selects (None: none or ambiguous; execution says why)."""
    try:
        document = parse(data["query"])
    except Exception:
        return None
    name = data.get("operationName")
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [d for d in ops if name is None or (d.name is not None and d.name.value == name)]
    if len(chosen) != 1 or (name is None and len(ops) != 1):
        return None
    return chosen[0].operation


def get_as_post(scope: MutableMapping[str, Any]) -> tuple[dict[str, Any], bytes] | tuple[int, bytes, list]:
    """A GET's query string as the JSON body of the equivalent POST, with the scope to run
    it; or ``(status, body, headers)`` to answer at once (405 for a mutation, 400)."""
    params = {
        k: v[0]
        for k, v in parse_qs(bytes(scope.get("query_string") or b"").decode("utf-8", "replace")).items()
    }
    if not params.get("query"):
        return 400, _error("a GET request needs a query parameter"), []
    data: dict[str, Any] = {"query": params["query"]}
    if params.get("operationName"):
        data["operationName"] = params["operationName"]
    if params.get("variables"):
        try:
            data["variables"] = json.loads(params["variables"])
        except ValueError:
            return 400, _error("variables is not JSON"), []
    if operation_of(data) == OperationType.MUTATION:
        return 405, _error("a mutation must be sent with POST"), [(b"allow", b"POST")]
    headers = [
        (k, v) for k, v in scope.get("headers") or [] if k.lower() not in (b"content-type", b"content-length")
    ]
    body = json.dumps(data).encode()
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    post = dict(scope)
    post["method"] = "POST"
    post["headers"] = headers
    post["query_string"] = b""
    return post, body


def shaped(send: Send, scope: MutableMapping[str, Any]) -> tuple[Send, Callable[[], Awaitable[None]]]:
    """A ``send`` that holds the answer, then (``flush``) sends it shaped: no ``data`` key on
    a request error, the graphql-response media type when the client asked for it."""
    held: list[Message] = []
    media = GRAPHQL_RESPONSE if GRAPHQL_RESPONSE in header(scope, b"accept").lower() else None

    async def hold(message: Message) -> None:
        held.append(message)

    async def flush() -> None:
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        if start is None:
            for m in held:
                await send(m)
            return
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        headers = list(start.get("headers") or [])
        ctype = next((bytes(v).decode("latin-1") for k, v in headers if k.lower() == b"content-type"), "")
        if "json" in ctype:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            if (
                isinstance(payload, dict)
                and "data" in payload
                and payload["data"] is None
                and payload.get("errors")
                and not any(isinstance(e, dict) and e.get("path") for e in payload["errors"])
            ):
                del payload["data"]  # nothing executed: no data entry (GraphQL spec §7.1.2)
                body = json.dumps(payload).encode()
            if media:
                ctype = media
        headers = [(k, v) for k, v in headers if k.lower() not in (b"content-type", b"content-length")]
        headers += [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return hold, flush


__all__ = ["GRAPHQL_RESPONSE", "get_as_post", "normalize_body", "operation_of", "shaped", "wants_html"]
