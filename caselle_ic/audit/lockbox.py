"""File payments against the lockbox files on disk (SPEC §11): each payment on exactly one
line of one file, and every file unchanged since it was written."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from caselle_ic.audit.discrepancy import (
    FILE,
    FILE_CHANGED,
    IN_TWO_FILES,
    NOT_IN_ANY_FILE,
    Discrepancy,
    LockboxSide,
    as_text,
    int_or_none,
    row_discrepancy,
)


def compare_files(rows: Sequence[Mapping[str, Any]], side: LockboxSide) -> list[Discrepancy]:
    """File payments of the day: each on exactly one line of one file; files unchanged."""
    out: list[Discrepancy] = []
    names = {as_text(r.get("lockbox_file")) for r in rows}
    for f in side.files:
        if f.name not in names or f.actual_sha256 == f.recorded_sha256:
            continue
        out.append(
            Discrepancy(
                kind=FILE_CHANGED,
                posting_method=FILE,
                field="sha256",
                expected=f.recorded_sha256,
                found=f.actual_sha256 or "missing",
                lockbox_file=f.name,
                detail=(
                    f"{f.name} is no longer in {f.directory}"
                    if f.actual_sha256 is None
                    else f"{f.name} in {f.directory} was edited after it was written: compare it with the "
                    "payments listed for it, and re-deliver a corrected file only for what "
                    "Caselle has not imported"
                ),
            )
        )
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[side.expected.get(as_text(r.get("payment_guid")), "")].append(r)
    for text, members in groups.items():
        remaining = list(side.lines.get(text, [])) if text else []
        unplaced: list[Mapping[str, Any]] = []
        placed: dict[str, tuple[str, int]] = {}
        for r in members:  # first the line the ledger recorded for it
            pos = (as_text(r.get("lockbox_file")), int_or_none(r.get("lockbox_line")) or 0)
            if as_text(r.get("state")) == "filed" and pos in remaining:
                remaining.remove(pos)
                placed[as_text(r.get("payment_guid"))] = pos
            else:
                unplaced.append(r)
        for r in unplaced:  # then any other line with the same text (a file re-ordered by hand)
            if remaining:
                placed[as_text(r.get("payment_guid"))] = remaining.pop(0)
                continue
            state = as_text(r.get("state"))
            recorded = as_text(r.get("lockbox_file"))
            out.append(
                row_discrepancy(
                    NOT_IN_ANY_FILE,
                    r,
                    field="lockbox_file",
                    expected=f"{recorded} line {as_text(r.get('lockbox_line'))}" if recorded else "one line",
                    found="none",
                    lockbox_file=recorded,
                    detail=(
                        f"the ledger says {state} in {recorded}, but no lockbox file on disk holds its line"
                        if state == "filed"
                        else f"not filed (ledger state {state})"
                        + (
                            f": {as_text(r.get('reason'))}"
                            if r.get("reason")
                            else ": the next payments run files it"
                        )
                    ),
                )
            )
        for extra in remaining:  # more lines than payments: some payment is in two files
            owner = members[0]
            first = placed.get(as_text(owner.get("payment_guid")))
            out.append(
                row_discrepancy(
                    IN_TWO_FILES,
                    owner,
                    field="lockbox_file",
                    expected=f"{first[0]} line {first[1]}" if first else "",
                    found=f"{extra[0]} line {extra[1]}",
                    lockbox_file=extra[0],
                    detail="the same payment line is in more than one place: make sure Caselle imported it "
                    "once, and reverse the extra receipt if not",
                )
            )
    return out
