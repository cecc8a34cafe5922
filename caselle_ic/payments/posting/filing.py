"""Lockbox filing (SPEC §7), exactly once across runs: reserve the file names with the
SHA-256 of their bytes and each payment's file and line, write the files (never replacing
one), then mark the payments ``filed``; a dead run's reservation is checked on disk."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from caselle_ic.errors import CaselleICError
from caselle_ic.failpoints import failpoint
from caselle_ic.payments.posting.base import RunBase, _set
from caselle_ic.store.payment_rows import FILED, HELD, PENDING, RowUpdate

log = logging.getLogger(__name__)


class Filing(RunBase):
    """Put File payments in lockbox files."""

    def file_payments(self) -> int:
        """Put every pending File payment in a lockbox file, exactly once across runs:
        reserve the names (with the bytes' SHA-256) and record each payment's file and
        line, write the files, then mark the payments ``filed``."""
        from caselle_ic.payments.lockbox import plan_lockbox_files

        rows = self.book.claim_files()
        if not rows:
            return 0
        frame = pd.DataFrame(rows)
        frame["payment_date"] = pd.to_datetime(frame["payment_date"])
        frame["amount_cents"] = frame["amount_cents"].astype("int64")
        for c in ("distribution_code", "payment_code"):
            frame[c] = pd.to_numeric(frame[c]).astype("Int64")
        frame["distribution_source"] = frame["code_rule"].astype("string").fillna("").map(_rule_source)
        frame["payment_source"] = frame["distribution_source"]
        directory = str(self.out_dir.resolve())
        for attempt in range(5):
            plan = plan_lockbox_files(
                frame, self.run_date, self.cfg, out_dir=self.out_dir, taken=self.book.lockbox_names()
            )
            files: list[dict[str, Any]] = [
                {
                    "file_name": f.name,
                    "directory": directory,
                    "payments": f.count,
                    "total_cents": f.total_cents,
                    "sha256": hashlib.sha256(f.data).hexdigest(),
                }
                for f in plan.files
            ]
            where = [
                RowUpdate(g, lockbox_file=name, lockbox_line=int(line), reason=None)
                for g, name, line in zip(
                    plan.filed["payment_guid"],
                    plan.filed["lockbox_file"],
                    plan.filed["lockbox_line"],
                    strict=True,
                )
            ]
            held = [
                _set(str(g), HELD, f"not written to a lockbox file: {reason}")
                for g, reason in zip(
                    plan.quarantined["payment_guid"], plan.quarantined["reason"], strict=True
                )
            ]
            try:
                self.book.reserve_files(files, where + held)
                break
            except sa.exc.IntegrityError:  # another run reserved one of these names: plan again
                log.info("a lockbox file name was taken by another run; planning again (%d)", attempt + 1)
        else:  # pragma: no cover - five collisions in a row
            raise CaselleICError(
                "could not reserve lockbox file names (another run keeps taking them); rerun"
            )
        failpoint("file.planned")
        try:
            plan.write(self.out_dir)
        except CaselleICError as exc:  # a planned name appeared on disk: checked below
            self.stats.notes.append(str(exc))
        failpoint("file.written")
        filed = 0
        for f in files:
            guids = plan.filed.loc[plan.filed["lockbox_file"] == f["file_name"], "payment_guid"].tolist()
            filed += self._confirm_file(f["file_name"], Path(directory), f["sha256"], guids)
        return filed

    def _confirm_file(
        self, name: str, directory: Path, sha256: str, guids: Sequence[str], *, recovered: bool = False
    ) -> int:
        """The reserved file on disk with the reserved bytes: its payments are ``filed``.
        Otherwise it was never written: the name stays used, the payments go back to
        ``pending`` and the next file takes them."""
        path = directory / name
        if _same_file(path, sha256):
            why = (
                "recovered: the file was written before the run that wrote it stopped" if recovered else None
            )
            self.book.apply([_set(g, FILED, why, done=True) for g in guids])
            self.book.mark_file(name, "written", "confirmed by a later run" if recovered else None)
            self.stats.files.append(path)
            self.stats.files_recovered += recovered
            return len(guids)
        self.book.mark_file(name, "abandoned", "not written (the run stopped, or the name was taken on disk)")
        self.stats.files_abandoned += 1
        self.stats.notes.append(
            f"lockbox file {name} was reserved but not written; its {len(guids)} payment(s) go to a new file"
        )
        self.book.apply(
            [
                _set(g, PENDING, f"{name} was not written; filed again", lockbox_file=None, lockbox_line=None)
                for g in guids
            ]
        )
        return 0

    def _recover_filing(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """``filing`` rows of a dead run: check the reserved file against the disk."""
        by_file: dict[str, list[str]] = {}
        for r in rows:
            by_file.setdefault(str(r["lockbox_file"] or ""), []).append(str(r["payment_guid"]))
        for name, guids in by_file.items():
            info = self.book.lockbox_file(name) if name else None
            if info is None:  # claimed, but no file planned yet: nothing was written
                self.book.apply([_set(g, PENDING, lockbox_file=None, lockbox_line=None) for g in guids])
                continue
            self._confirm_file(name, Path(info["directory"]), info["sha256"], guids, recovered=True)


def _rule_source(rule: str) -> str:
    """``entry 3`` -> ``setting 131 entry 3``; ``fallback 64`` -> ``setting 64``."""
    if rule.startswith("entry"):
        return f"setting 131 {rule}"
    if rule.startswith("fallback"):
        return "setting " + rule.split()[-1]
    return rule or "the payment codes"


def _same_file(path: Path, sha256: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return False
