"""What goes to Caselle and what comes back, parsed strictly against the schema's types.

An answer is trusted only after it parsed: a JSON object with ``data`` (an object or null)
and ``errors`` (a list of error objects); every Receipt and Customer in it has the schema's
types exactly (a receipt number is a JSON integer in 1..2³¹-1 — not ``true``, ``555001.7``,
``"555001"``, null or 40 digits; an amount is a finite decimal with at most two places).
Anything else raises :class:`MalformedAnswerError`, an :class:`OutcomeUnknownError`: the
request may have been processed and its answer cannot be used, so a mutation is settled
before it is ever sent again. Messages name the field and the rule, never the value
(an account number or a 64 MB text would otherwise travel into logs and the ledger).

Every receipt taken from an answer is also checked against the payment it is for
(:func:`receipt_mismatch`): a stranger's receipt is an error, never recorded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from caselle_ic.errors import (
    ERROR_CODES,
    CaselleAPIError,
    OutcomeUnknownError,
    ServerError,
)

#: Server text kept in a message (GraphQL error messages, HTTP bodies): a few KB at most,
#: wherever it ends up (exceptions, ledger reasons, rejects, logs).
TEXT_CAP = 2000
_MAX_AMOUNT_DIGITS = 12  # 999,999,999,999.99 is far above any receipt (the lockbox caps at 9)
_AMOUNT_RE = re.compile(r"-?\d{1,15}(\.\d{1,2})?")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def clip(text: object, limit: int = TEXT_CAP) -> str:
    """``text`` as a string of at most ``limit`` characters (plus a note of what was cut)."""
    s = text if isinstance(text, str) else str(text)
    if len(s) <= limit:
        return s
    return s[:limit] + f"… [{len(s) - limit} more characters cut]"


class MalformedAnswerError(OutcomeUnknownError):
    """Caselle answered, but not with what the schema promises: the outcome is unknown."""


class ReceiptMismatchError(OutcomeUnknownError):
    """An answer carried a receipt that is not the payment's: never recorded, settled."""


def malformed(what: str, operation: str | None) -> MalformedAnswerError:
    return MalformedAnswerError(
        f"Caselle answered with a malformed answer ({clip(what, 300)}); the outcome is unknown",
        operation=operation,
    )


# -- scalars --------------------------------------------------------------------------------
def _amount(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError('an amount is a string such as "12.34" or a JSON number')
    if isinstance(value, str) and not _AMOUNT_RE.fullmatch(value):
        raise ValueError('an amount is a string such as "12.34"')
    d = Decimal(value)
    if not d.is_finite() or d.adjusted() >= _MAX_AMOUNT_DIGITS:
        raise ValueError("the amount is not a finite amount below 10¹²")
    try:
        if d != d.quantize(Decimal("0.01")):
            raise ValueError("the amount has more than two decimals")
    except InvalidOperation:
        raise ValueError("the amount is not a decimal amount") from None
    return d


def _date(value: Any) -> date:
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise ValueError("a date is a string YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("not a calendar date") from None


Amount = Annotated[Decimal, PlainValidator(_amount)]
Day = Annotated[date, PlainValidator(_date)]
Int32 = Annotated[int, Field(strict=True, ge=-(2**31), le=2**31 - 1)]
ReceiptNo = Annotated[int, Field(strict=True, ge=1, le=2**31 - 1)]
Text = Annotated[str, Field(strict=True, max_length=400)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _ReceiptAnswer(_Strict):
    receiptNumber: ReceiptNo
    receiptDate: Day
    distributionCode: Int32
    paymentCode: Int32
    amount: Amount
    accountNumber: Text
    confirmationNumber: Text
    voided: bool
    voidDate: Day | None = None


class _Name(_Strict):
    fullName: Text | None = None


class _CustomerAnswer(_Strict):
    id: Text
    customerNumber: Int32
    name: _Name | None = None
    balance: Amount | None = None
    sendPaperStatement: bool | None = None


def _parse(model: type[_Strict], value: Any, what: str, operation: str | None) -> Any:
    if not isinstance(value, dict):
        raise malformed(f"{what} is not an object", operation)
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        # The rule and the field, never the input: it may hold an account number.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or what}: {e['msg']}" for e in exc.errors()[:3]
        )
        raise malformed(f"{what}: {problems}", operation) from None


# -- results ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Customer:
    id: str
    customer_number: int
    name: str | None
    balance: Decimal | None
    send_paper_statement: bool | None

    @classmethod
    def from_api(cls, d: Any, operation: str | None = "customer") -> Customer:
        m = _parse(_CustomerAnswer, d, "the customer", operation)
        return cls(
            id=m.id,
            customer_number=m.customerNumber,
            name=m.name.fullName if m.name is not None else None,
            balance=m.balance,
            send_paper_statement=m.sendPaperStatement,
        )


@dataclass(frozen=True)
class Receipt:
    receipt_number: int
    receipt_date: date
    distribution_code: int
    payment_code: int
    amount: Decimal
    account_number: str
    confirmation_number: str
    voided: bool
    void_date: date | None

    @classmethod
    def from_api(cls, d: Any, operation: str | None = "receipt") -> Receipt:
        m = _parse(_ReceiptAnswer, d, "the receipt", operation)
        return cls(
            receipt_number=m.receiptNumber,
            receipt_date=m.receiptDate,
            distribution_code=m.distributionCode,
            payment_code=m.paymentCode,
            amount=m.amount,
            account_number=m.accountNumber,
            confirmation_number=m.confirmationNumber,
            voided=m.voided,
            void_date=m.voidDate,
        )


def receipt_list(value: Any, operation: str | None = "receipts") -> list[Receipt]:
    """``[Receipt!]!``: a list (never null) of receipts."""
    if not isinstance(value, list):
        raise malformed("the receipts are not a list", operation)
    return [Receipt.from_api(v, operation) for v in value]


@dataclass(frozen=True)
class ReceiptInput:
    """One ``create_receipt`` (SPEC §6). ``amount`` is an exact Decimal, two decimals."""

    receipt_date: date
    distribution_code: int
    payment_code: int
    amount: Decimal
    account_number: str
    confirmation_number: str
    account_name: str | None = None
    gl_activity_number: int = 0
    allocate_to: str | None = None

    def variables(self) -> dict[str, Any]:
        amount = Decimal(self.amount)
        if amount != amount.quantize(Decimal("0.01")):
            raise ValueError(f"amount {amount} has more than two decimals")
        return {
            "receiptDate": self.receipt_date.isoformat(),
            "distributionCode": int(self.distribution_code),
            "paymentCode": int(self.payment_code),
            "amount": str(amount.quantize(Decimal("0.01"))),
            "accountNumber": self.account_number,
            "accountName": self.account_name,
            "glActivityNumber": int(self.gl_activity_number),
            "allocateTo": self.allocate_to,
            "confirmationNumber": self.confirmation_number,
        }

    @classmethod
    def from_variables(cls, v: Mapping[str, Any]) -> ReceiptInput | None:
        """The input back from ``create_receipt`` variables (a mapping given by a caller);
        None when they are not complete enough to compare an answer with."""
        try:
            return cls(
                receipt_date=v["receiptDate"]
                if isinstance(v["receiptDate"], date)
                else date.fromisoformat(str(v["receiptDate"])),
                distribution_code=int(v["distributionCode"]),
                payment_code=int(v["paymentCode"]),
                amount=Decimal(str(v["amount"])),
                account_number=str(v["accountNumber"]),
                confirmation_number=str(v["confirmationNumber"]),
            )
        except (KeyError, TypeError, ValueError, ArithmeticError):
            return None


def receipt_mismatch(r: Receipt, expected: ReceiptInput | str, *, created: bool = False) -> list[str]:
    """The fields in which ``r`` is not the receipt of ``expected`` (a payment, or just its
    confirmation number). ``created``: the answer to our own ``create_receipt``, so it is
    also not voided."""
    if isinstance(expected, str):
        return [] if r.confirmation_number == expected else ["confirmationNumber"]
    wrong = [
        name
        for name, ours, theirs in (
            ("confirmationNumber", expected.confirmation_number, r.confirmation_number),
            ("amount", Decimal(expected.amount), r.amount),
            ("accountNumber", expected.account_number, r.account_number),
            ("receiptDate", expected.receipt_date, r.receipt_date),
            ("distributionCode", int(expected.distribution_code), r.distribution_code),
            ("paymentCode", int(expected.payment_code), r.payment_code),
        )
        if ours != theirs
    ]
    if created and r.voided:
        wrong.append("voided")
    return wrong


def mismatch_error(r: Receipt, fields: Sequence[str], operation: str) -> ReceiptMismatchError:
    return ReceiptMismatchError(
        f"Caselle answered with a receipt that is not this payment's (receipt {r.receipt_number} "
        f"differs in {', '.join(fields)}); it is not recorded and the outcome is unknown",
        operation=operation,
    )


def jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    """Variables as JSON values: Decimal -> "1234.56", date -> "YYYY-MM-DD"."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Decimal):
            value = str(value.quantize(Decimal("0.01")))
        elif isinstance(value, date):
            value = value.isoformat()
        out[key] = value
    return out


def same_customer(c: Customer, asked: int, operation: str) -> Customer:
    """``c`` when it is the customer asked about; another one's answer is malformed."""
    if c.customer_number != int(asked):
        raise malformed("the answer is about another customer", operation)
    return c


T = TypeVar("T")


@dataclass(frozen=True)
class ItemOutcome(Generic[T]):
    """The answer for one item of an aliased batch: its value, or its own error."""

    index: int
    value: T | None
    error: CaselleAPIError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def unknown(self) -> bool:
        """The item was sent and its answer lost: settle before sending it again."""
        return isinstance(self.error, OutcomeUnknownError)


# -- the GraphQL envelope -----------------------------------------------------------------------
@dataclass
class Answer:
    """A GraphQL answer: ``data`` (None when nothing executed) and the checked ``errors``
    (each with a string ``message``, maybe a ``path`` and ``extensions.code``)."""

    data: dict[str, Any] | None
    errors: list[dict[str, Any]]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_answer(body: bytes, operation: str | None) -> Answer:
    """The answer of one GraphQL request, or MalformedAnswerError."""
    try:
        raw = json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # also UnicodeDecodeError and the int-digits limit
        raise malformed("not JSON", operation) from None
    if not isinstance(raw, dict):
        raise malformed(f"the body is a JSON {type(raw).__name__}, not an object", operation)
    data = raw.get("data")
    errors = raw.get("errors")
    if data is not None and not isinstance(data, dict):
        raise malformed("data is not an object", operation)
    if errors is not None and not isinstance(errors, list):
        raise malformed("errors is not a list", operation)
    if data is None and not errors:
        raise malformed("neither data nor errors", operation)
    checked: list[dict[str, Any]] = []
    for e in errors or []:
        if not isinstance(e, dict) or not isinstance(e.get("message"), str):
            raise malformed("an error is not an object with a message", operation)
        path = e.get("path")
        if path is not None and not (
            isinstance(path, list) and path and all(isinstance(p, str | int) for p in path)
        ):
            raise malformed("an error's path is not a list of names", operation)
        ext = e.get("extensions")
        if ext is not None and not isinstance(ext, dict):
            raise malformed("an error's extensions are not an object", operation)
        code = (ext or {}).get("code")
        if code is not None and not isinstance(code, str):
            raise malformed("an error's code is not a string", operation)
        item: dict[str, Any] = {"message": clip(e["message"])}
        if path:
            item["path"] = [clip(p, 100) if isinstance(p, str) else p for p in path]
        if code is not None:
            item["extensions"] = {"code": clip(code, 40)}
        checked.append(item)
    return Answer(data, checked)


def error_code(err: Mapping[str, Any]) -> str | None:
    ext = err.get("extensions") or {}
    code = ext.get("code") if isinstance(ext, Mapping) else None
    return str(code) if code else None


def request_level(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in errors if not e.get("path")]


def api_error(err: Mapping[str, Any], operation: str, *, mutation: bool) -> CaselleAPIError:
    """The typed error for one GraphQL error. INTERNAL (or an unknown code) on a mutation
    = outcome unknown. Caselle's message is kept, capped at :data:`TEXT_CAP`."""
    code = error_code(err)
    message = clip(err.get("message") or "error")
    if mutation and (code == "INTERNAL" or code not in ERROR_CODES):
        return OutcomeUnknownError(
            f"Caselle answered {message!r}; the outcome is unknown", operation=operation, code=code
        )
    cls = ERROR_CODES.get(code or "", ServerError)
    return cls(f"Caselle refused: {message}", operation=operation, code=code)


def item_outcomes(
    answer: Answer,
    n: int,
    parse: Callable[[int, Any], T],
    operation: str,
    *,
    mutation: bool,
    missing: Callable[[int], CaselleAPIError],
) -> list[ItemOutcome[T]]:
    """One outcome per alias ``r0..r{n-1}``: its value (parsed and checked by ``parse``),
    its own error, or ``missing(i)``. A value that fails ``parse`` is that item's error."""
    request_errors = request_level(answer.errors)
    by_alias: dict[str, dict[str, Any]] = {}
    for e in answer.errors:
        path = e.get("path")
        if path:
            by_alias.setdefault(str(path[0]), e)
    data = answer.data or {}
    out: list[ItemOutcome[T]] = []
    for i in range(n):
        alias = f"r{i}"
        value = data.get(alias)
        err = by_alias.get(alias)
        if err is None and value is None and request_errors:
            err = request_errors[0]
        if err is not None:
            out.append(ItemOutcome(i, None, api_error(err, operation, mutation=mutation)))
        elif alias not in data:  # GraphQL answers every field asked, null or not
            out.append(ItemOutcome(i, None, malformed(f"{alias} is missing from data", operation)))
        elif value is None:
            out.append(ItemOutcome(i, None, missing(i)))
        else:
            try:
                out.append(ItemOutcome(i, parse(i, value)))
            except OutcomeUnknownError as exc:
                out.append(ItemOutcome(i, None, exc))
    return out


__all__ = [
    "TEXT_CAP",
    "Answer",
    "Customer",
    "ItemOutcome",
    "MalformedAnswerError",
    "Receipt",
    "ReceiptInput",
    "ReceiptMismatchError",
    "api_error",
    "clip",
    "error_code",
    "item_outcomes",
    "jsonable",
    "malformed",
    "mismatch_error",
    "parse_answer",
    "receipt_list",
    "receipt_mismatch",
    "request_level",
    "same_customer",
]
