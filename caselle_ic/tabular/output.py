"""Writing outputs atomically, and the rejects file analysts open in a spreadsheet.

Every output is written to a hidden temporary file in the destination directory, flushed
and fsynced, then renamed into place (``os.replace`` is atomic on one file system): a
reader never sees half a file, and a crash leaves no partial output behind.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

from caselle_ic.errors import OutputError
from caselle_ic.tabular.values import spreadsheet_safe

REASON = "reason"


@contextlib.contextmanager
def atomic_output(
    final: str | Path, mode: str = "wb", *, exclusive: bool = False, **open_kw: object
) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``final``; on success rename it into place.

    ``exclusive=True`` never replaces an existing ``final``: the finished file is
    hard-linked into place (atomic, and it fails when the name exists) and
    ``FileExistsError`` is raised — for files that must never be rewritten once a reader
    may have taken them (the lockbox files).
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output directory {final.parent}: {exc.strerror}") from None
    tmp = final.with_name(f".{final.name}.{os.getpid()}.part")
    try:
        with open(tmp, mode, **open_kw) as fh:  # type: ignore[call-overload]
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, final)
            tmp.unlink()
        else:
            os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes_atomic(final: str | Path, data: bytes) -> Path:
    with atomic_output(final, "wb") as fh:
        fh.write(data)
    return Path(final)


def spreadsheet_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text column through :func:`spreadsheet_safe`: for any CSV an
    analyst opens (rejects, reconciliation, balances). Numbers are left as they are."""
    out = frame.copy()
    for c in out.columns:
        if pd.api.types.is_string_dtype(out[c].dtype) or out[c].dtype == object:
            out[c] = spreadsheet_safe(out[c].astype("string"))
    return out


def write_rejects(rejects: pd.DataFrame, out_dir: str | Path, stem: str) -> Path | None:
    """Write quarantined rows to ``OUT/rejects/<stem>.rejects.csv``.

    ``rejects`` holds the input columns as read (text), an optional ``_line`` and a
    ``reason`` column. Values that a spreadsheet would run as a formula get a leading
    apostrophe; everything else is written as read. Returns None when there is nothing.
    """
    if rejects is None or rejects.empty:
        return None
    frame = rejects.copy()
    if "_line" in frame.columns:
        frame = frame.rename(columns={"_line": "line"})
    cols = [c for c in frame.columns if c != REASON] + [REASON]
    frame = frame[cols]
    for c in frame.columns:
        frame[c] = spreadsheet_safe(frame[c].astype("string").fillna(""))
    path = Path(out_dir) / "rejects" / f"{stem}.rejects.csv"
    with atomic_output(path, "w", encoding="utf-8", newline="") as fh:
        frame.to_csv(fh, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    return path


def check_writable_directory(path: Path, what: str) -> None:
    """``path`` is a writable directory or can be created as one (OutputError naming
    ``what`` otherwise). Nothing is created: a probe file is made and removed."""
    existing = path
    while not existing.exists():
        if existing.is_symlink():
            target = os.readlink(existing)
            raise OutputError(
                f"{what} {path}: {existing} is a symbolic link to {target}, which does not exist"
            )
        if existing.parent == existing:  # pragma: no cover - the root always exists
            break
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{what} {path}: {existing} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".caselle-ic-probe-"):
            pass
    except OSError as exc:
        raise OutputError(f"{what} {path}: {existing} is not writable ({exc.strerror})") from None
