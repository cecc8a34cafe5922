"""Column rules: the declared contract of a frame, checked in vectorised code.

A :class:`FrameRules` lists, per column, its dtype, whether it may be null and its rules
(each a vectorised test and the reason an analyst reads), plus frame-wide rules. It is
the same contract as a pandera ``DataFrameSchema`` -- :meth:`FrameRules.to_pandera`
builds that schema, and tests hold the two to the same failures -- but
:func:`failure_cases` checks it without pandera: pandera adds seconds per million rows
of bookkeeping around the same tests, and its import (which pulls in hypothesis) costs
most of a second at start-up.

:func:`failure_cases` returns what pandera's lazy ``SchemaErrors.failure_cases`` holds
for the same frame (columns ``index``, ``column``, ``check``; ``check`` is the rule's
error text, ``not_nullable`` for a null in a non-nullable column), in the same order:
column by column, nulls first, then the rules in order, then the frame-wide rules. A
frame that does not have the declared columns or dtypes raises :class:`RulesMismatch`:
that is a bug in the code that built the frame, not bad input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from caselle_ic.tabular.parallel import column_map

if TYPE_CHECKING:  # pragma: no cover
    from pandera.pandas import DataFrameSchema

NOT_NULLABLE = "not_nullable"


class RulesMismatch(ValueError):
    """The frame does not have the columns or dtypes its rules declare."""


@dataclass(frozen=True)
class Rule:
    """One rule: ``test`` maps the column (or, frame-wide, the frame) to a boolean mask,
    True where the value passes. Nulls pass (they have the nullable rule)."""

    error: str
    test: Callable[[Any], Any]
    #: How pandera spells the rule when it has a built-in for it: ("str_matches",
    #: pattern), ("str_length", max), ("isin", values); None = ``Check(test)``.
    builtin: tuple[str, Any] | None = None
    name: str | None = None  # pandera's check name; the error text when None


@dataclass(frozen=True)
class ColumnRules:
    name: str
    dtype: Any  # what pandas.api.types.pandas_dtype accepts; None = any
    nullable: bool = False
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class FrameRules:
    name: str
    columns: tuple[ColumnRules, ...]
    checks: tuple[Rule, ...] = ()
    strict: bool = False
    ordered: bool = False

    def column(self, name: str) -> ColumnRules:
        return next(c for c in self.columns if c.name == name)

    def to_pandera(self) -> DataFrameSchema:
        """The same contract as a pandera schema (imports pandera)."""
        from pandera.pandas import Check, Column, DataFrameSchema

        def check(rule: Rule) -> Check:
            name = rule.name or rule.error
            if rule.builtin is None:
                return Check(rule.test, error=rule.error, name=name)
            kind, arg = rule.builtin
            if kind == "str_matches":
                return Check.str_matches(arg, error=rule.error, name=name)
            if kind == "str_length":
                return Check.str_length(max_value=arg, error=rule.error, name=name)
            if kind == "isin":
                return Check.isin(list(arg), error=rule.error, name=name)
            raise ValueError(f"unknown built-in check {kind!r}")

        columns = {
            c.name: Column(c.dtype, checks=[check(r) for r in c.rules], nullable=c.nullable, name=c.name)
            for c in self.columns
        }
        return DataFrameSchema(
            columns,
            checks=[check(r) for r in self.checks] or None,
            strict=self.strict,
            ordered=self.ordered,
            name=self.name,
        )


def _dtype_ok(expected: Any, actual: Any) -> bool:
    if expected is None:
        return True
    try:
        return bool(pd.api.types.pandas_dtype(expected) == actual)
    except TypeError:  # pragma: no cover - an exotic dtype spelling
        return str(expected) == str(actual)


def _structure(rules: FrameRules, frame: pd.DataFrame) -> None:
    names = [c.name for c in rules.columns]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise RulesMismatch(f"{rules.name}: column(s) {missing} missing")
    if rules.strict:
        extra = [c for c in frame.columns if c not in set(names)]
        if extra:
            raise RulesMismatch(f"{rules.name}: column(s) {extra} not in the rules")
    if rules.ordered and [c for c in frame.columns if c in set(names)] != names:
        raise RulesMismatch(f"{rules.name}: columns out of order")
    for c in rules.columns:
        if not _dtype_ok(c.dtype, frame[c.name].dtype):
            raise RulesMismatch(f"{rules.name}: column {c.name!r} is {frame[c.name].dtype}, not {c.dtype}")


def _failing(mask: Any, null: np.ndarray | None) -> np.ndarray:
    ok = np.asarray(mask.to_numpy(dtype=bool, na_value=True) if isinstance(mask, pd.Series) else mask)
    bad = ~ok.astype(bool, copy=False)
    if null is not None:
        bad &= ~null
    return bad


def _column_failures(c: ColumnRules, s: pd.Series) -> list[tuple[np.ndarray, str, str]]:
    parts: list[tuple[np.ndarray, str, str]] = []
    null_mask = s.isna().to_numpy(dtype=bool)
    null = null_mask if null_mask.any() else None
    if null is not None and not c.nullable:
        parts.append((np.flatnonzero(null), c.name, NOT_NULLABLE))
    for r in c.rules:
        bad = _failing(r.test(s), null)
        if bad.any():
            parts.append((np.flatnonzero(bad), c.name, r.error))
    return parts


def failure_cases(rules: FrameRules, frame: pd.DataFrame) -> pd.DataFrame:
    """Every failing (row, column, rule) of ``frame``, as pandera's lazy validation lists
    them (``index`` holds the frame's index labels)."""
    _structure(rules, frame)
    index = frame.index.to_numpy()
    # columns are checked side by side (their tests are Arrow/numpy kernels that release
    # the GIL); the failures are listed in the rules' order all the same
    found = column_map(lambda c: _column_failures(c, frame[c.name]), rules.columns)
    parts = [p for column in found for p in column]
    for r in rules.checks:
        bad = _failing(r.test(frame), None)
        if bad.any():
            parts.append((np.flatnonzero(bad), rules.name, r.error))
    if not parts:
        return pd.DataFrame({"index": pd.Series([], dtype=object), "column": [], "check": []})
    return pd.DataFrame(
        {
            "index": np.concatenate([index[p] for p, _, _ in parts]),
            "column": np.concatenate([np.full(len(p), col, dtype=object) for p, col, _ in parts]),
            "check": np.concatenate([np.full(len(p), err, dtype=object) for p, _, err in parts]),
        }
    )


def frame_rules(
    name: str,
    columns: Sequence[ColumnRules],
    checks: Sequence[Rule] = (),
    *,
    strict: bool = False,
    ordered: bool = False,
) -> FrameRules:
    return FrameRules(name, tuple(columns), tuple(checks), strict=strict, ordered=ordered)
