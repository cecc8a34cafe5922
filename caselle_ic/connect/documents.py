"""The GraphQL documents the client sends, and their validation (SPEC §9).

Documents are named module-level constants with variables (``CUSTOMER_QUERY`` ...). A batch
of several operations is *one* document of aliased fields (``r0: create_receipt(receipt:
$r0)``, ...) built from the schema with gql's DSL and cached per size — never by formatting
strings, never as a JSON array (ariadne rejects batched arrays). Every selection of a
``Receipt`` is the one shared fragment ``ReceiptFields``, so the answer checks in
:mod:`caselle_ic.connect.models` always see the same fields.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from gql import gql
from gql.dsl import DSLFragment, DSLMutation, DSLQuery, DSLSchema, DSLVariableDefinitions, dsl_gql
from graphql import DocumentNode, GraphQLSchema, build_schema, print_ast, validate
from graphql.language import OperationDefinitionNode, OperationType

from caselle_ic.errors import SchemaValidationError
from caselle_ic.schemas import schema_sdl

#: The local schema every document is validated against.
SCHEMA: GraphQLSchema = build_schema(schema_sdl())

RECEIPT_FIELDS = (
    "receiptNumber",
    "receiptDate",
    "distributionCode",
    "paymentCode",
    "amount",
    "accountNumber",
    "confirmationNumber",
    "voided",
    "voidDate",
)
CUSTOMER_FIELDS = ("id", "customerNumber", "balance", "sendPaperStatement")

#: The one Receipt selection, shared by every document that returns receipts.
RECEIPT_FRAGMENT = "fragment ReceiptFields on Receipt {\n  " + "\n  ".join(RECEIPT_FIELDS) + "\n}\n"

CUSTOMER_QUERY = gql(
    """
    query Customer($customerNumber: Int!) {
      customer(customerNumber: $customerNumber) {
        id
        customerNumber
        name { fullName }
        balance
        sendPaperStatement
      }
    }
    """
)

RECEIPTS_QUERY = gql(
    RECEIPT_FRAGMENT
    + """
    query Receipts($confirmationNumber: String!) {
      receipts(confirmationNumber: $confirmationNumber) { ...ReceiptFields }
    }
    """
)

CREATE_RECEIPT_MUTATION = gql(
    RECEIPT_FRAGMENT
    + """
    mutation CreateReceipt($receipt: CreateReceiptInput!) {
      create_receipt(receipt: $receipt) { ...ReceiptFields }
    }
    """
)

VOID_RECEIPT_MUTATION = gql(
    RECEIPT_FRAGMENT
    + """
    mutation VoidReceipt($receiptNumber: Int!, $date: Date!) {
      void_receipt(receiptNumber: $receiptNumber, date: $date) { ...ReceiptFields }
    }
    """
)

SEND_PAPER_MUTATION = gql(
    """
    mutation SendPaper($customerNumber: Int!, $sendPaperStatement: Boolean!) {
      customer_send_paper_invoice_update(
        customerNumber: $customerNumber
        sendPaperStatement: $sendPaperStatement
      ) {
        id
        customerNumber
        name { fullName }
        sendPaperStatement
      }
    }
    """
)

#: Mutations that set a value: sending one twice leaves the same state.
REPEATABLE_MUTATIONS = frozenset({"customer_send_paper_invoice_update"})

_DSL = DSLSchema(SCHEMA)


def _receipt_fragment() -> DSLFragment:
    return (
        DSLFragment("ReceiptFields")
        .on(_DSL.Receipt)
        .select(*(getattr(_DSL.Receipt, f) for f in RECEIPT_FIELDS))
    )


def _customer_selection() -> list[Any]:
    return [
        *(getattr(_DSL.Customer, f) for f in CUSTOMER_FIELDS),
        _DSL.Customer.name.select(_DSL.CustomerName.fullName),
    ]


@lru_cache(maxsize=128)
def create_receipts_document(n: int) -> DocumentNode:
    """``mutation CreateReceipts($r0: CreateReceiptInput!, ...) { r0: create_receipt(...) ... }``."""
    var = DSLVariableDefinitions()
    fragment = _receipt_fragment()
    fields = [
        _DSL.Mutation.create_receipt.alias(f"r{i}").args(receipt=getattr(var, f"r{i}")).select(fragment)
        for i in range(n)
    ]
    op = DSLMutation(*fields)
    op.variable_definitions = var
    return dsl_gql(fragment, CreateReceipts=op).document


@lru_cache(maxsize=128)
def send_paper_document(n: int) -> DocumentNode:
    """Aliased ``customer_send_paper_invoice_update`` × n (variables ``$c0``, ``$p0``, ...)."""
    var = DSLVariableDefinitions()
    fields = [
        _DSL.Mutation.customer_send_paper_invoice_update.alias(f"r{i}")
        .args(customerNumber=getattr(var, f"c{i}"), sendPaperStatement=getattr(var, f"p{i}"))
        .select(
            _DSL.Customer.id,
            _DSL.Customer.customerNumber,
            _DSL.Customer.sendPaperStatement,
            _DSL.Customer.name.select(_DSL.CustomerName.fullName),
        )
        for i in range(n)
    ]
    op = DSLMutation(*fields)
    op.variable_definitions = var
    return dsl_gql(SendPaperBatch=op).document


@lru_cache(maxsize=128)
def customers_document(n: int) -> DocumentNode:
    """Aliased ``customer(customerNumber:)`` × n (variables ``$c0``, ...)."""
    var = DSLVariableDefinitions()
    fields = [
        _DSL.Query.customer.alias(f"r{i}")
        .args(customerNumber=getattr(var, f"c{i}"))
        .select(*_customer_selection())
        for i in range(n)
    ]
    op = DSLQuery(*fields)
    op.variable_definitions = var
    return dsl_gql(Customers=op).document


@lru_cache(maxsize=128)
def receipts_document(n: int) -> DocumentNode:
    """Aliased ``receipts(confirmationNumber:)`` × n (variables ``$c0``, ...): settles a
    whole batch whose answer was lost in one round trip."""
    var = DSLVariableDefinitions()
    fragment = _receipt_fragment()
    fields = [
        _DSL.Query.receipts.alias(f"r{i}").args(confirmationNumber=getattr(var, f"c{i}")).select(fragment)
        for i in range(n)
    ]
    op = DSLQuery(*fields)
    op.variable_definitions = var
    return dsl_gql(fragment, ReceiptsBatch=op).document


# -- validation -------------------------------------------------------------------------
_validated: dict[int, DocumentNode] = {}
_printed: dict[int, tuple[DocumentNode, str]] = {}
_cache_lock = threading.Lock()


def validate_document(document: DocumentNode, operation: str = "document") -> None:
    """Raise SchemaValidationError unless ``document`` validates against the local schema.

    A document that passed is remembered (by identity), so the constants and the cached
    batch documents are validated once per process.
    """
    key = id(document)
    with _cache_lock:
        if _validated.get(key) is document:
            return
    errors = validate(SCHEMA, document)
    if errors:
        detail = "; ".join(e.message for e in errors[:3])
        raise SchemaValidationError(
            f"the {operation} document does not match schemas/caselle_connect.graphql: {detail}; "
            "nothing was sent",
            operation=operation,
        )
    with _cache_lock:
        if len(_validated) > 512:
            _validated.clear()
        _validated[key] = document


def printed(document: DocumentNode) -> str:
    """The document's text, printed once per process (a 50-alias batch takes ~4 ms)."""
    key = id(document)
    with _cache_lock:
        hit = _printed.get(key)
        if hit is None or hit[0] is not document:
            if len(_printed) > 512:
                _printed.clear()
            hit = _printed[key] = (document, print_ast(document))
    return hit[1]


def operation_of(document: DocumentNode) -> tuple[str, bool, bool]:
    """(root field name, is mutation, repeatable) of a single-operation document."""
    op = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    fields = [s.name.value for s in op.selection_set.selections if hasattr(s, "name")]
    mutation = op.operation == OperationType.MUTATION
    repeatable = not mutation or all(f in REPEATABLE_MUTATIONS for f in fields)
    return (fields[0] if fields else "document"), mutation, repeatable


__all__ = [
    "CREATE_RECEIPT_MUTATION",
    "CUSTOMER_FIELDS",
    "CUSTOMER_QUERY",
    "RECEIPTS_QUERY",
    "RECEIPT_FIELDS",
    "RECEIPT_FRAGMENT",
    "REPEATABLE_MUTATIONS",
    "SCHEMA",
    "SEND_PAPER_MUTATION",
    "VOID_RECEIPT_MUTATION",
    "create_receipts_document",
    "customers_document",
    "operation_of",
    "printed",
    "receipts_document",
    "send_paper_document",
    "validate_document",
]
