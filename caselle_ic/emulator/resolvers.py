"""The GraphQL side of the emulator: the schema it serves (the project's, or a variant for
``caselle-ic check --live`` to find), its scalars, the resolvers over the SQLite store,
and the error format (every error carries one of the schema's codes)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ariadne import MutationType, QueryType, ScalarType, make_executable_schema
from graphql import GraphQLError
from graphql import build_schema as parse_sdl

from caselle_ic.emulator.store import Store, StoreError
from caselle_ic.schemas import schema_sdl

#: ``--schema-variant NAME``: serve a schema that differs from ``schemas/caselle_connect.graphql``
#: in one way a real Caselle might (text replaced once), so ``caselle-ic check --live`` has a
#: difference to find. Any other value is the path of a whole .graphql file to serve.
SCHEMA_VARIANTS: dict[str, tuple[str, str]] = {
    # Customer.balance gone: breaks the RTDR lookup (settings 8/88), nothing else.
    "missing-field": (
        '  "The customer\'s current balance. Causes extra database reads when used in a query."\n'
        "  balance: Decimal\n",
        "",
    ),
    # void_receipt(date:) renamed: breaks voids (settings 11 and 101), nothing else.
    "renamed-arg": (
        "void_receipt(receiptNumber: Int!, date: Date!)",
        "void_receipt(receiptNumber: Int!, voidDate: Date!)",
    ),
}


def variant_sdl(variant: str | None = None) -> str:
    """The SDL to serve: the project's schema, a built-in variant, or a .graphql file."""
    sdl = schema_sdl()
    if not variant:
        return sdl
    if variant in SCHEMA_VARIANTS:
        old, new = SCHEMA_VARIANTS[variant]
        if old not in sdl:
            raise ValueError(f"schema variant {variant!r} no longer applies to caselle_connect.graphql")
        return sdl.replace(old, new, 1)
    try:
        return Path(variant).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        names = ", ".join(SCHEMA_VARIANTS)
        raise ValueError(
            f"--schema-variant {variant!r} is neither a variant ({names}) nor a readable .graphql "
            f"file ({exc})"
        ) from None


log = logging.getLogger("caselle_ic.emulator")
_MAX_AMOUNT_CENTS = 99_999_999_999  # 999,999,999.99


# -- scalars ------------------------------------------------------------------------
decimal_scalar = ScalarType("Decimal")
date_scalar = ScalarType("Date")


@decimal_scalar.serializer
def _serialize_decimal(value: Any) -> str:
    return str(Decimal(value).quantize(Decimal("0.01")))


@decimal_scalar.value_parser
def _parse_decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError('Decimal must be a string such as "1234.56" or a number')
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal amount") from None
    if not d.is_finite():
        raise ValueError(f"{value!r} is not a decimal amount")
    return d


@decimal_scalar.literal_parser
def _parse_decimal_literal(ast: Any, _variables: Any = None) -> Decimal:
    value: Decimal = _parse_decimal(getattr(ast, "value", None))
    return value


@date_scalar.serializer
def _serialize_date(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else date.fromisoformat(str(value)).isoformat()


@date_scalar.value_parser
def _parse_date(value: Any) -> date:
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError("Date must be a string YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date YYYY-MM-DD") from None


@date_scalar.literal_parser
def _parse_date_literal(ast: Any, _variables: Any = None) -> date:
    value: date = _parse_date(getattr(ast, "value", None))
    return value


# -- resolvers ----------------------------------------------------------------------
def _customer_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "customerNumber": row["customer_number"],
        "customerType": row["customer_type"],
        "name": {"fullName": row["name"]},
        "balance": Decimal(row["balance_cents"]) / 100,
        "sendPaperStatement": bool(row["send_paper"]),
    }


def _receipt_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "receiptNumber": row["receipt_number"],
        "receiptDate": date.fromisoformat(row["receipt_date"]),
        "distributionCode": row["distribution_code"],
        "paymentCode": row["payment_code"],
        "amount": Decimal(row["amount_cents"]) / 100,
        "accountNumber": row["account_number"],
        "confirmationNumber": row["confirmation_number"],
        "voided": bool(row["voided"]),
        "voidDate": date.fromisoformat(row["void_date"]) if row["void_date"] else None,
    }


def _gql_error(exc: StoreError) -> GraphQLError:
    return GraphQLError(str(exc), extensions={"code": exc.code})


def _bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def _store(info: Any) -> Store:
    store: Store = info.context["store"]
    return store


def _after_commit(info: Any, counter: str) -> None:
    """Count a committed mutation; answer INTERNAL if this request was marked for it."""
    info.context["app"].counters[counter] += 1
    if info.context["request_flags"].get("internal_after_commit"):
        raise GraphQLError("internal error (injected after commit)", extensions={"code": "INTERNAL"})


def resolve_customer(
    _obj: Any,
    info: Any,
    customerNumber: int | None = None,
    id: str | None = None,
    masterContact: int | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    given = [a for a in (customerNumber, id, masterContact, name) if a is not None]
    if len(given) != 1:
        raise _bad_input("give exactly one of customerNumber, id, masterContact, name")
    try:
        if name is not None:
            row = _store(info).customer(name=name)
        elif id is not None:
            row = _store(info).customer(id=id)
        else:  # the emulator's master contact is the customer itself
            row = _store(info).customer(customer_number=customerNumber or masterContact)
    except StoreError as exc:
        raise _gql_error(exc) from None
    return _customer_out(row)


def resolve_receipts(_obj: Any, info: Any, confirmationNumber: str) -> list[dict[str, Any]]:
    return [_receipt_out(r) for r in _store(info).receipts(confirmationNumber)]


def resolve_create_receipt(_obj: Any, info: Any, receipt: dict[str, Any]) -> dict[str, Any]:
    amount: Decimal = receipt["amount"]
    if amount != amount.quantize(Decimal("0.01")):
        raise _bad_input(f"amount {amount} has more than two decimals")
    cents = int(amount * 100)
    if cents <= 0:
        raise _bad_input(f"amount {amount} must be greater than 0")
    if cents > _MAX_AMOUNT_CENTS:
        raise _bad_input(f"amount {amount} is too large")
    if receipt["distributionCode"] <= 0:
        raise _bad_input(f"unknown distribution code {receipt['distributionCode']}")
    if receipt["paymentCode"] < 0:
        raise _bad_input(f"unknown payment code {receipt['paymentCode']}")
    if receipt["glActivityNumber"] < 0:
        raise _bad_input("glActivityNumber must not be negative")
    if not receipt["confirmationNumber"].strip():
        raise _bad_input("confirmationNumber must not be empty")
    try:
        row = _store(info).create_receipt(
            receipt_date=receipt["receiptDate"],
            distribution_code=receipt["distributionCode"],
            payment_code=receipt["paymentCode"],
            amount_cents=cents,
            account_number=receipt["accountNumber"],
            account_name=receipt.get("accountName"),
            gl_activity_number=receipt["glActivityNumber"],
            allocate_to=receipt.get("allocateTo"),
            confirmation_number=receipt["confirmationNumber"],
        )
    except StoreError as exc:
        raise _gql_error(exc) from None
    _after_commit(info, "receipts_created")
    return _receipt_out(row)


def resolve_void_receipt(
    _obj: Any, info: Any, receiptNumber: int, date: date | None = None, voidDate: date | None = None
) -> dict[str, Any]:
    when = date if date is not None else voidDate  # voidDate: the renamed-arg schema variant
    assert when is not None  # the schema makes one of them required
    try:
        row = _store(info).void_receipt(receiptNumber, when)
    except StoreError as exc:
        raise _gql_error(exc) from None
    _after_commit(info, "receipts_voided")
    return _receipt_out(row)


def resolve_send_paper(_obj: Any, info: Any, customerNumber: int, sendPaperStatement: bool) -> dict[str, Any]:
    try:
        row = _store(info).set_send_paper(customerNumber, sendPaperStatement)
    except StoreError as exc:
        raise _gql_error(exc) from None
    _after_commit(info, "paper_updates")
    return _customer_out(row)


def build_schema(sdl: str | None = None) -> Any:
    """The executable schema of ``sdl`` (default: the project's). Resolvers are bound only to
    the root fields the SDL has, so a variant may lack some."""
    sdl = sdl or schema_sdl()
    query = QueryType()
    mutation = MutationType()

    served = parse_sdl(sdl)  # GraphQLError when the SDL is not valid
    binds: tuple[tuple[Any, Any, dict[str, Callable[..., Any]]], ...] = (
        (query, served.query_type, {"customer": resolve_customer, "receipts": resolve_receipts}),
        (
            mutation,
            served.mutation_type,
            {
                "create_receipt": resolve_create_receipt,
                "void_receipt": resolve_void_receipt,
                "customer_send_paper_invoice_update": resolve_send_paper,
            },
        ),
    )
    for obj, root, fns in binds:
        for name, fn in fns.items():
            if root is not None and name in root.fields:
                obj.set_field(name, fn)
    return make_executable_schema(sdl, query, mutation, decimal_scalar, date_scalar)


def format_error(error: GraphQLError, debug: bool = False) -> dict[str, Any]:
    """Every error carries one of the schema's codes; unexpected exceptions say INTERNAL."""
    code = (error.extensions or {}).get("code")
    message = error.message
    if code is None:
        original = error.original_error
        if not error.path:
            code = "BAD_USER_INPUT"  # parse, validation and variable coercion: nothing executed
        elif original is None or isinstance(original, GraphQLError):
            code = "BAD_USER_INPUT"  # an argument the executor refused
        else:
            code = "INTERNAL"
            message = "internal error"
            log.error("resolver failed: %r", original)
    out: dict[str, Any] = {"message": message, "extensions": {"code": code}}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = list(error.path)
    return out
