"""``caselle-ic check --live`` / ``--account``: talk to the biller's Caselle endpoints.

For every configured endpoint (8, 88, 11, 14, 111, 101) it authenticates as a run would
(OAuth 126/127 or HTTP basic), asks for the schema (GraphQL introspection), rebuilds it
with graphql-core's ``build_client_schema`` and validates every document this client
sends to that endpoint against it. A document that does not validate, a field it selects
whose type differs, or an input type whose fields differ (one we send is missing, one we
do not send is required) is a problem naming the endpoint's setting. Other differences
from ``schemas/caselle_connect.graphql`` are listed but do not fail the check.
Mutations are never sent; the only requests are the token, the introspection and, with
``--account``, one ``customer`` query.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    DocumentNode,
    GraphQLInputObjectType,
    GraphQLObjectType,
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    build_client_schema,
    find_breaking_changes,
    find_dangerous_changes,
    get_introspection_query,
    get_named_type,
    parse,
    validate,
    visit,
)
from graphql.language import FieldNode, OperationDefinitionNode
from graphql.utilities import type_from_ast

from caselle_ic.config.model import BillerConfig, Endpoint
from caselle_ic.config.settings import Setting
from caselle_ic.connect import client as cc
from caselle_ic.errors import (
    CaselleAPIError,
    ConfigError,
    CredentialsRejectedError,
    NotFoundError,
    TransportError,
)
from caselle_ic.ops.check import Problem, mask_url
from caselle_ic.tabular.values import mask_account_value

INTROSPECTION = parse(get_introspection_query(descriptions=False))

S = Setting
#: (name, url, username, password) settings of every endpoint a biller may configure.
ENDPOINTS: tuple[tuple[str, Setting, Setting, Setting], ...] = (
    ("rtdr", S.RTDR_URL, S.RTDR_USERNAME, S.RTDR_PASSWORD),
    ("rtdr-secondary", S.RTDR_URL_SECONDARY, S.RTDR_USERNAME, S.RTDR_PASSWORD),
    ("payments", S.PAYMENTS_URL, S.PAYMENTS_USERNAME, S.PAYMENTS_PASSWORD),
    ("paperless", S.PAPERLESS_URL, S.PAPERLESS_USERNAME, S.PAPERLESS_PASSWORD),
    (
        "paperless-secondary",
        S.PAPERLESS_URL_SECONDARY,
        S.PAPERLESS_USERNAME_SECONDARY,
        S.PAPERLESS_PASSWORD_SECONDARY,
    ),
    ("ach-rejects", S.ACH_REJECTS_URL, S.ACH_REJECTS_USERNAME, S.ACH_REJECTS_PASSWORD),
)


def documents_for(endpoint: str) -> dict[str, DocumentNode]:
    """The documents this client sends to an endpoint, by a name the report uses."""
    rtdr = {"customer": cc.CUSTOMER_QUERY.document, "customer (batch)": cc.customers_document(2)}
    voids = {
        "void_receipt": cc.VOID_RECEIPT_MUTATION.document,
        "receipts": cc.RECEIPTS_QUERY.document,
        "receipts (batch)": cc.receipts_document(2),
    }
    by_purpose = {
        "rtdr": rtdr,
        "payments": {
            "create_receipt": cc.CREATE_RECEIPT_MUTATION.document,
            "create_receipt (batch)": cc.create_receipts_document(2),
            **voids,
        },
        "paperless": {
            "customer_send_paper_invoice_update": cc.SEND_PAPER_MUTATION.document,
            "customer_send_paper_invoice_update (batch)": cc.send_paper_document(2),
        },
        "ach-rejects": voids,
    }
    return by_purpose[endpoint.removesuffix("-secondary")]


def _selected_fields(schema: GraphQLSchema, document: DocumentNode) -> set[tuple[str, str]]:
    """(parent type, field) of every field the document selects."""
    info = TypeInfo(schema)
    found: set[tuple[str, str]] = set()

    class Fields(Visitor):
        def enter_field(self, node: FieldNode, *_args: Any) -> None:
            parent = info.get_parent_type()
            if parent is not None:
                found.add((parent.name, node.name.value))

    visit(document, TypeInfoVisitor(info, Fields()))
    return {f for f in found if not f[1].startswith("__")}


def _input_types(schema: GraphQLSchema, document: DocumentNode) -> list[GraphQLInputObjectType]:
    """The input object types of the document's variables (and the ones inside them)."""
    out: dict[str, GraphQLInputObjectType] = {}
    todo = []
    for d in document.definitions:
        if isinstance(d, OperationDefinitionNode):
            for var in d.variable_definitions or ():
                t = type_from_ast(schema, var.type)
                if t is not None:
                    todo.append(get_named_type(t))
    while todo:
        t = todo.pop()
        if isinstance(t, GraphQLInputObjectType) and t.name not in out:
            out[t.name] = t
            todo += [get_named_type(f.type) for f in t.fields.values()]
    return list(out.values())


def document_problems(local: GraphQLSchema, remote: GraphQLSchema, document: DocumentNode) -> list[str]:
    """Why the remote schema would break this document (empty: it would not)."""
    errors = validate(remote, document)
    if errors:
        return list(dict.fromkeys(e.message for e in errors))  # an aliased batch repeats them
    out: list[str] = []
    for type_name, field_name in sorted(_selected_fields(local, document)):
        mine, theirs = local.get_type(type_name), remote.get_type(type_name)
        if not isinstance(mine, GraphQLObjectType) or not isinstance(theirs, GraphQLObjectType):
            continue
        a, b = mine.fields.get(field_name), theirs.fields.get(field_name)
        if a is not None and b is not None and str(a.type) != str(b.type):
            out.append(
                f"{type_name}.{field_name} is {b.type} there, {a.type} here: its answer would be misread"
            )
    for mine in _input_types(local, document):
        theirs = remote.get_type(mine.name)
        if not isinstance(theirs, GraphQLInputObjectType):
            out.append(f"input type {mine.name} is missing there")
            continue
        for name, f in mine.fields.items():
            other = theirs.fields.get(name)
            if other is None:
                out.append(
                    f"{mine.name}.{name} is missing there: the value this client sends would be refused"
                )
            elif str(other.type) != str(f.type):
                out.append(f"{mine.name}.{name} is {other.type} there, {f.type} here")
        for name, other in theirs.fields.items():
            required = str(other.type).endswith("!") and other.default_value is None
            if name not in mine.fields and required:
                out.append(f"{mine.name}.{name} is required there and this client does not send it")
    return out


def _auth_problem(exc: CaselleAPIError, name: str, user: Setting, pw: Setting, oauth: bool) -> Problem:
    if isinstance(exc, CredentialsRejectedError):
        if exc.operation == "oauth-token":
            return Problem(
                f"{int(user)}/127",
                f"the OAuth token URL refused the client id and secret of the {name} endpoint",
            )
        settings = f"{int(user)}/127" if oauth else f"{int(user)}/{int(pw)}"
        return Problem(settings, f"the {name} endpoint refused the credentials ({exc})")
    if exc.operation == "oauth-token":
        return Problem("126", f"the OAuth token URL failed: {exc}")
    return Problem("", str(exc))


def check_endpoints(
    cfg: BillerConfig, client_options: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[Problem], list[str]]:
    """Authenticate, introspect and compare every configured endpoint."""
    endpoints: list[dict[str, Any]] = []
    problems: list[Problem] = []
    notes: list[str] = []
    oauth = bool(cfg.oauth_url)
    for name, url_s, user_s, pw_s in ENDPOINTS:
        url = cfg.get(url_s)
        if not url:
            continue
        setting = str(int(url_s))
        item: dict[str, Any] = {
            "setting": setting,
            "name": name,
            "url": mask_url(url),
            "auth": "not tried",
            "schema": "not checked",
        }
        endpoints.append(item)
        try:
            endpoint = Endpoint(name, url, cfg.get(user_s), cfg.secret(pw_s))
            client = cc.CaselleClient(
                endpoint,
                oauth_url=cfg.oauth_url,
                oauth_secret=cfg.oauth_secret if oauth else None,
                **client_options,
            )
        except ConfigError as exc:
            item["auth"] = f"not configured ({exc.setting})"
            continue  # the offline check reports the missing setting
        with client:
            try:
                if oauth:
                    client.oauth[0].token()
                answer = client.execute(INTROSPECTION, operation="introspection")
            except TransportError as exc:
                if exc.operation == "oauth-token":  # one problem, whichever endpoint met it first
                    found = Problem("126", f"{exc}")
                else:
                    found = Problem(setting, f"cannot reach the {name} endpoint: {exc}")
                if found not in problems:
                    problems.append(found)
                item["auth"] = "unreachable"
                continue
            except CaselleAPIError as exc:
                p = _auth_problem(exc, name, user_s, pw_s, oauth)
                problems.append(p if p.setting else Problem(setting, f"the {name} endpoint failed: {exc}"))
                item["auth"] = "refused" if isinstance(exc, CredentialsRejectedError) else "failed"
                continue
            item["auth"] = "OAuth token (setting 126) accepted" if oauth else "HTTP basic accepted"
            if not answer.data or "__schema" not in answer.data:
                detail = (
                    "; ".join(str(e.get("message")) for e in answer.errors[:2]) or "no schema in the answer"
                )
                item["schema"] = f"not introspectable ({detail})"
                notes.append(
                    f"setting {setting} ({name}): the endpoint does not answer introspection ({detail}); "
                    "the documents could not be compared"
                )
                continue
            try:
                remote = build_client_schema(answer.data)  # type: ignore[arg-type]
            except Exception as exc:  # graphql-core raises TypeError / GraphQLError on a bad answer
                problems.append(
                    Problem(setting, f"the {name} endpoint's introspection is not a schema: {exc}")
                )
                item["schema"] = "unusable"
                continue
            docs = documents_for(name)
            broken = 0
            for doc_name, document in docs.items():
                for why in document_problems(cc.SCHEMA, remote, document):
                    problems.append(
                        Problem(setting, f"the {doc_name} document would break on the {name} endpoint: {why}")
                    )
                    broken += 1
            diffs = [c.description for c in find_breaking_changes(cc.SCHEMA, remote)]
            diffs += [c.description for c in find_dangerous_changes(cc.SCHEMA, remote)]
            item["documents"] = list(docs)
            item["differences"] = diffs
            item["schema"] = (
                f"{len(docs)} document(s) validate"
                if not broken
                else f"{broken} problem(s) in {len(docs)} document(s)"
            ) + (f"; differs from ours: {' '.join(diffs)}" if diffs else "; same as ours")
    return endpoints, problems, notes


def check_account(
    cfg: BillerConfig, account: str, client_options: dict[str, Any]
) -> tuple[dict[str, Any], list[Problem]]:
    """One RTDR ``customer`` lookup (settings 8/88)."""
    masked = mask_account_value(account)
    result: dict[str, Any] = {"account": masked, "setting": str(int(S.RTDR_URL)), "result": "not looked up"}
    if not account.strip().isdigit():
        return result, [
            Problem("--account", f"{masked or repr(account)} is not a Caselle customer number (digits)")
        ]
    try:
        with cc.CaselleClient.for_purpose(cfg, "rtdr", **client_options) as client:
            customer = client.customer(int(account))
    except ConfigError as exc:
        return result, [Problem(exc.setting or "8", str(exc))]
    except NotFoundError:
        result["result"] = "not found"
        return result, [
            Problem("--account", f"Caselle has no customer {masked} (RTDR lookup through setting 8)")
        ]
    except CaselleAPIError as exc:
        result["result"] = "failed"
        return result, [Problem("8", f"the RTDR lookup of {masked} failed: {exc}")]
    balance = None if customer.balance is None else str(customer.balance)
    result.update(result=f"found, balance {balance}", balance=balance)
    return result, []


__all__ = ["ENDPOINTS", "check_account", "check_endpoints", "document_problems", "documents_for"]
