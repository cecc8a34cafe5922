"""Count names are declared once per kind, as a StrEnum in ``caselle_ic/result.py``, and
every pipeline writes its counts with those members (issue 8, item 6).

Two checks: every pipeline run on the samples (as the demo does, without Prefect) returns
counts whose every key is a member of its kind's enum, not a bare string; and no module of
the package (flows included) writes or reads a count by a string literal, so counts that
appear only in rare runs (a lost answer settled, a lockbox name abandoned) are held to the
same rule.
"""

from __future__ import annotations

import ast
from enum import StrEnum
from pathlib import Path

from caselle_ic.audit import discrepancy
from caselle_ic.audit.pipeline import KIND as AUDIT_KIND
from caselle_ic.audit.pipeline import run_audit
from caselle_ic.emulator.process import EmulatorProcess
from caselle_ic.kinds import KINDS
from caselle_ic.result import (
    AuditCount,
    BalanceCount,
    InvoiceCount,
    PaperlessCount,
    PaymentCount,
    RunResult,
)
from tests.conftest import SAMPLES

PACKAGE = Path(__file__).resolve().parents[2] / "caselle_ic"

#: RunResult.kind -> the enum its counts are named by.
COUNTS_OF: dict[str, type[StrEnum]] = {
    "invoice-file": InvoiceCount,
    "adjustments-file": InvoiceCount,
    "daily-payments": PaymentCount,
    "paperless-sync": PaperlessCount,
    "balance-refresh": BalanceCount,
    AUDIT_KIND: AuditCount,
}


def undeclared(result: RunResult) -> list[str]:
    """Count names of ``result`` that are not members of its kind's enum."""
    names = COUNTS_OF[result.kind]
    return [repr(k) for k in result.counts if type(k) is not names]


def test_every_kind_has_its_count_names() -> None:
    assert {k.flow_name for k in KINDS.values()} | {AUDIT_KIND} == set(COUNTS_OF)


def test_every_discrepancy_kind_is_an_audit_count() -> None:
    """The audit counts each discrepancy kind under its own name."""
    assert all(type(k) is AuditCount for k in discrepancy.KINDS)


def test_sample_runs_write_only_declared_count_names(
    sample_toml: Path, sample_emu: EmulatorProcess, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    accounts = tmp_path / "accounts.txt"
    accounts.write_text("001001\n00-1017\n001050\nnot-an-account\n", encoding="utf-8")
    inputs = {
        "invoices": SAMPLES / "statements.csv",
        "payments": SAMPLES / "payments.csv",
        "paperless": SAMPLES / "paperless.csv",
        "balance": accounts,
    }
    results = [
        KINDS[name].run(path, sample_toml, out_dir=out, now="2026-11-02T07:00:00", ledger_url=ledger)
        for name, path in inputs.items()
    ]
    # a receipt voided by hand in Caselle: the audit of its day counts a discrepancy kind too
    victim = next(r for r in sample_emu.receipts() if not r["voided"])
    sample_emu.receipt_op("void", victim["receipt_number"])
    audit = run_audit(
        sample_toml,
        str(victim["receipt_date"]),
        tmp_path / "audit",
        ledger_url=ledger,
        exports=[SAMPLES / "payments.csv"],
    )
    assert audit.counts.get(AuditCount.VOIDED_WITHOUT_REVERSAL) == 1, audit.summary_lines()
    for result in [*results, audit]:
        assert result.counts, result.kind
        assert not undeclared(result), (result.kind, undeclared(result))


# -- no count by a string literal ------------------------------------------------------------
def _is_counts(node: ast.expr) -> bool:
    """``counts``, ``x.counts``, ``build.counts`` (any name ending in ``counts``)."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name.endswith("counts")


def _text(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _reads_by_literal(node: ast.AST) -> bool:
    """``counts["x"]`` or ``counts.get("x")`` (also ``pop``, ``setdefault``)."""
    if isinstance(node, ast.Subscript):
        return _is_counts(node.value) and _text(node.slice)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("get", "pop", "setdefault")
        and _is_counts(node.func.value)
        and bool(node.args)
        and _text(node.args[0])
    )


def _written_to_counts(node: ast.AST) -> ast.expr | None:
    """The value of ``counts = v``, ``x.counts: T = v``, ``counts |= v`` or ``counts=v``."""
    if isinstance(node, ast.Assign) and any(_is_counts(t) for t in node.targets):
        return node.value
    if isinstance(node, ast.AnnAssign | ast.AugAssign) and _is_counts(node.target):
        return node.value
    if isinstance(node, ast.keyword) and node.arg == "counts":
        return node.value
    return None


def literal_count_names(tree: ast.AST) -> list[int]:
    """Lines where a string literal names a count: ``counts["x"]``, ``counts.get("x")``,
    ``{"x": n}`` assigned (or ``|=``-ed) to a counts or passed as ``counts=``."""
    lines: list[int] = []
    for node in ast.walk(tree):
        value = _written_to_counts(node)
        if _reads_by_literal(node) or (isinstance(value, ast.Dict) and any(_text(k) for k in value.keys)):
            lines.append(getattr(node, "lineno", 0) or getattr(value, "lineno", 0))
    return sorted(lines)


def test_the_check_sees_literal_count_names() -> None:
    tree = ast.parse(
        'counts = {"posted": 1}\nr.counts["pending"] += 1\nn = b.counts.get("carried over", 0)\n'
        'counts |= {"sent": 2}\nRunResult(kind="k", counts={"rows": 1})\nok = counts[PaymentCount.POSTED]\n'
    )
    assert literal_count_names(tree) == [1, 2, 3, 4, 5]


def test_no_count_named_by_a_literal() -> None:
    offenders = {
        str(p.relative_to(PACKAGE)): lines
        for p in sorted(PACKAGE.rglob("*.py"))
        if "__pycache__" not in p.parts
        and (lines := literal_count_names(ast.parse(p.read_text(encoding="utf-8"), filename=str(p))))
    }
    assert not offenders, f"name counts by their enum (caselle_ic/result.py): {offenders}"
