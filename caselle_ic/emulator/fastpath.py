"""A fast path for the one document the audit sends by the thousand: aliased
``receipts(confirmationNumber: $cN) { <scalar fields> }`` queries.

graphql-core executes ~50 µs per field, so a 50-alias receipts query costs the emulator
~30 ms of CPU; an audit of 100,000 payments is 2,000 of them, and the single emulator
process, not the client, would set the pace. A document of exactly that shape (one query
operation, every root field ``receipts`` with a ``String!`` variable, every sub-field a
plain scalar of ``Receipt``, directly or through one fragment on ``Receipt``; validated
against the schema like any other) is answered here
with the same JSON ariadne would give (``tests/audit/test_emulator_admin.py`` compares
both). Anything else — mutations, other fragments, directives, ``__typename``, a missing or
non-string variable, an error — goes through ariadne as before. Auth and faults are applied
before either path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

from graphql import GraphQLSchema, specified_rules
from graphql.language import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
)

from caselle_ic.emulator.admin import parse_cached, query_validator
from caselle_ic.emulator.store import Store

_CENT = Decimal("0.01")
#: Receipt's scalar fields, as ariadne serializes them (Decimal: two decimals as a string).
FIELDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "receiptNumber": lambda r: r["receipt_number"],
    "receiptDate": lambda r: r["receipt_date"],
    "distributionCode": lambda r: r["distribution_code"],
    "paymentCode": lambda r: r["payment_code"],
    "amount": lambda r: str((Decimal(r["amount_cents"]) / 100).quantize(_CENT)),
    "accountNumber": lambda r: r["account_number"],
    "confirmationNumber": lambda r: r["confirmation_number"],
    "voided": lambda r: bool(r["voided"]),
    "voidDate": lambda r: r["void_date"] or None,
}

Plan = tuple[tuple[str, str, tuple[str, ...]], ...]  # (response key, variable, fields) per alias


@lru_cache(maxsize=256)
def _plan(query: str, operation_name: str | None) -> Plan | None:
    try:
        document = parse_cached(query)
    except Exception:
        return None
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    if len(ops) != 1 or len(ops) + len(fragments) != len(document.definitions):
        return None
    op = ops[0]
    if (
        not isinstance(op, OperationDefinitionNode)
        or op.operation != OperationType.QUERY
        or op.directives
        or (operation_name is not None and (op.name is None or op.name.value != operation_name))
    ):
        return None
    plan: list[tuple[str, str, tuple[str, ...]]] = []
    for sel in op.selection_set.selections:
        if not isinstance(sel, FieldNode) or sel.name.value != "receipts" or sel.directives:
            return None
        args = sel.arguments or ()
        if len(args) != 1 or args[0].name.value != "confirmationNumber":
            return None
        if not isinstance(args[0].value, VariableNode) or sel.selection_set is None:
            return None
        fields = _scalars(sel.selection_set.selections, fragments, nested=False)
        if fields is None:
            return None
        key = sel.alias.value if sel.alias else sel.name.value
        plan.append((key, args[0].value.name.value, tuple(fields)))
    if len({k for k, _, _ in plan}) != len(plan):
        return None
    return tuple(plan)


def _scalars(
    selections: Any, fragments: dict[str, FragmentDefinitionNode], *, nested: bool
) -> list[str] | None:
    """The plain scalar fields selected, in order (one level of ``...Fragment on Receipt``
    allowed), or None when anything else is selected."""
    fields: list[str] = []
    for sub in selections:
        if isinstance(sub, FragmentSpreadNode) and not nested and not sub.directives:
            frag = fragments.get(sub.name.value)
            if frag is None or frag.directives or frag.type_condition.name.value != "Receipt":
                return None
            inner = _scalars(frag.selection_set.selections, fragments, nested=True)
            if inner is None:
                return None
            fields += inner
        elif (
            isinstance(sub, FieldNode)
            and sub.alias is None
            and not sub.arguments
            and not sub.directives
            and sub.selection_set is None
            and sub.name.value in FIELDS
        ):
            fields.append(sub.name.value)
        else:
            return None
    return list(dict.fromkeys(fields))  # a field selected twice answers once, where first selected


def receipts_answer(schema: GraphQLSchema, store: Store, body: bytes) -> bytes | None:
    """The JSON answer to an aliased receipts query, or None: let ariadne answer."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("query"), str):
        return None
    name = data.get("operationName")
    plan = _plan(data["query"], name if isinstance(name, str) else None)
    if plan is None or (name is not None and not isinstance(name, str)):
        return None
    if query_validator(schema, parse_cached(data["query"]), rules=specified_rules):
        return None
    variables = data.get("variables") or {}
    if not isinstance(variables, dict) or not all(isinstance(variables.get(v), str) for _, v, _ in plan):
        return None
    out: dict[str, Any] = {}
    for key, var, fields in plan:
        getters = [(f, FIELDS[f]) for f in fields]
        out[key] = [{f: get(row) for f, get in getters} for row in store.receipts(variables[var])]
    return json.dumps({"data": out}).encode()


__all__ = ["FIELDS", "receipts_answer"]
