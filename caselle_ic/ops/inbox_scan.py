"""What is waiting in the inbox (SPEC §1 ``[paths]``): which files belong to which kind of
input, which are still arriving, and each file's content hash. :func:`scan_inbox` looks;
:mod:`caselle_ic.ops.inbox` runs and moves what it finds.

A file in a sub-folder named after the kind (``inbox/invoices/``, ...) belongs to that
kind whatever its name; a file directly in the inbox is routed by its name
(:data:`NAME_RULES`, first match wins). Hidden names and the names of files still being
written (:data:`IN_PROGRESS_SUFFIXES`) are never picked up; a symbolic link, or a path
resolving outside the inbox, is never read.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from caselle_ic import kinds

# the inbox's logger: what the scan warns about keeps its name
log = logging.getLogger("caselle_ic.ops.inbox")

Kind = str  # a name of caselle_ic.kinds.KINDS with an inbox rule
KINDS: tuple[Kind, ...] = kinds.inbox_kinds()

#: Name rules for files directly in the inbox, tried in this order (first match wins).
NAME_RULES: tuple[tuple[Kind, re.Pattern[str]], ...] = kinds.name_rules()
#: Names of files still being written (or not inputs at all): never picked up.
IN_PROGRESS_SUFFIXES = (".part", ".partial", ".tmp", ".filepart", ".crdownload", ".swp", ".lock")
NOTE_SUFFIXES = (".reason.txt", ".duplicate.txt")


# -- finding files ---------------------------------------------------------------------------
def classify(name: str) -> Kind | None:
    """The kind a file directly in the inbox belongs to, by its name (None: unrecognised)."""
    for kind, pattern in NAME_RULES:
        if pattern.search(name):
            return kind
    return None


def is_in_progress_name(name: str) -> bool:
    lower = name.lower()
    return (
        name.startswith((".", "~")) or lower.endswith(IN_PROGRESS_SUFFIXES) or lower.endswith(NOTE_SUFFIXES)
    )


@dataclass(frozen=True)
class Waiting:
    path: Path
    kind: Kind
    size: int
    mtime: float


def scan_inbox(inbox: Path) -> tuple[list[Waiting], list[Path], list[Path]]:
    """Every candidate input, oldest first; plus in-progress names and unrecognised files."""
    found: list[Waiting] = []
    in_progress: list[Path] = []
    unknown: list[Path] = []
    if not inbox.is_dir():
        return found, in_progress, unknown

    def consider(path: Path, kind: Kind | None) -> None:
        try:
            st = path.stat()
        except FileNotFoundError:  # moved away meanwhile
            return
        if is_in_progress_name(path.name):
            in_progress.append(path)
        elif kind is None:
            unknown.append(path)
        else:
            found.append(Waiting(path, kind, st.st_size, st.st_mtime))

    root = inbox.resolve()

    def outside(path: Path) -> bool:
        """A symbolic link (to anywhere), or a path resolving outside the inbox, is never
        read: its content would be echoed into the error note, stderr and the ledger.
        Listed as unrecognised (name only) and left where it is."""
        try:
            escapes = path.is_symlink() or not path.resolve().is_relative_to(root)
        except OSError:
            escapes = True
        if escapes:
            log.warning("inbox: %s is a symbolic link or resolves outside the inbox; not read", path.name)
            unknown.append(path)
        return escapes

    for entry in sorted(inbox.iterdir()):
        if outside(entry):
            continue
        if entry.is_dir():
            if entry.name in KINDS:
                for sub in sorted(entry.iterdir()):
                    if not outside(sub) and sub.is_file():
                        consider(sub, entry.name)
            continue
        if entry.is_file():
            consider(entry, classify(entry.name))
    found.sort(key=lambda w: (w.mtime, w.path.name))
    return found, in_progress, unknown


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


__all__ = [
    "IN_PROGRESS_SUFFIXES",
    "KINDS",
    "NAME_RULES",
    "NOTE_SUFFIXES",
    "Kind",
    "Waiting",
    "classify",
    "is_in_progress_name",
    "scan_inbox",
    "sha256_file",
]
