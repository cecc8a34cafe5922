"""The lockbox file for Caselle Cloud Store misc AR (SPEC §7).

One line per payment, no header, CRLF, UTF-8 (no byte-order mark)::

    10/31/2026,300,95,"1,234.50",001018,ROSSI GIOVANNI

Fields: Date (``MM/DD/YYYY``), Distribution Code (digits, at most 4), Payment Code (digits,
at most 2), Amount (``999,999,999.99`` form), Customer No (at most 15 characters),
Customer Name (cut to 30 characters). A value holding a comma or a ``"`` is enclosed in
double quotes with embedded quotes doubled; nothing else is quoted. Line breaks and other
control characters in a name become spaces (they would break the line-based file).

Files are named ``{DistributionCode}_PYMT_{YYYYMMDD}.TXT`` (the run's local date), one per
distribution code, or one for all named after setting 64's distribution code when
``[lockbox].combine_cloud_stores = true``.

Each payment must be in exactly one file across all runs, so a written file is never
rewritten (decided): a second run on the same day writes the day's *new* payments to the
next free name, ``{DC}_PYMT_{YYYYMMDD}_2.TXT``, ``_3`` and so on. A name is free when it
is neither in the output directory nor in ``taken`` (the names the ledger says were used,
for outboxes that are emptied after delivery). Files are written aside, fsynced and
hard-linked into place, so a reader never sees half a file and an existing file is never
replaced.

Two steps, so the caller can record intent in the ledger before any file appears:
:func:`plan_lockbox_files` (validate, build the bytes, choose the names) and
:meth:`LockboxPlan.write`; :func:`write_lockbox_files` does both.

Everything is vectorized over the frame; the only Python loop is over the files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from caselle_ic.config.model import BillerConfig
from caselle_ic.config.settings import Setting
from caselle_ic.errors import ConfigError, OutputError
from caselle_ic.payments.codes import parse_fallback
from caselle_ic.payments.lockbox_fields import (
    STR,
    account_facts,
    clean_name,
    format_amounts,
    join_text,
    quote,
    text_array,
)
from caselle_ic.tabular.frames import rows_where
from caselle_ic.tabular.output import REASON, atomic_output
from caselle_ic.tabular.parallel import side_by_side
from caselle_ic.tabular.values import map_distinct

MAX_DISTRIBUTION_CODE = 9999
MAX_PAYMENT_CODE = 99
MAX_AMOUNT_CENTS = 99_999_999_999  # 999,999,999.99
MAX_ACCOUNT_CHARS = 15
EOL = "\r\n"

FILE_COLUMN = "lockbox_file"
LINE_COLUMN = "lockbox_line"
NEEDED = (
    "payment_guid",
    "payment_date",
    "distribution_code",
    "payment_code",
    "amount_cents",
    "account_number",
    "customer_name",
)


@dataclass(frozen=True)
class PlannedFile:
    name: str
    distribution_code: int | None  # None: the combined file
    data: bytes
    count: int
    total_cents: int


@dataclass(frozen=True)
class LockboxFile:
    path: Path
    distribution_code: int | None
    count: int
    total_cents: int


@dataclass
class LockboxResult:
    files: list[LockboxFile]
    #: the written payments: the input rows + ``lockbox_file`` (name) + ``lockbox_line`` (1-based)
    filed: pd.DataFrame
    #: payments not written: the input rows + ``reason`` (names the setting or field to fix)
    quarantined: pd.DataFrame

    @property
    def paths(self) -> list[Path]:
        return [f.path for f in self.files]

    def file_of(self) -> dict[str, str]:
        """payment_guid -> the name of the file that carries it."""
        return dict(zip(self.filed["payment_guid"], self.filed[FILE_COLUMN], strict=True))


@dataclass
class LockboxPlan:
    run_date: date
    files: list[PlannedFile]
    filed: pd.DataFrame
    quarantined: pd.DataFrame
    out_dir: Path | None = None
    notes: list[str] = field(default_factory=list)

    def write(self, out_dir: str | Path | None = None) -> LockboxResult:
        """Write every planned file atomically; never replaces an existing file.

        OutputError when a planned name already exists (another run took it after the
        plan was made): the files written before it stay (each is complete) and the
        caller re-plans the rest with a fresh ``taken``.
        """
        target = Path(out_dir) if out_dir is not None else self.out_dir
        if target is None:
            raise ValueError("out_dir is required")
        written: list[LockboxFile] = []
        for f in self.files:
            path = target / f.name
            try:
                with atomic_output(path, "wb", exclusive=True) as fh:
                    fh.write(f.data)
            except FileExistsError:
                raise OutputError(
                    f"{path} appeared while this run was writing it (another run for the same "
                    "biller?); it was left as it is. Rerun: the payments not yet filed go to the "
                    "next free name"
                ) from None
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {exc.strerror}") from None
            written.append(LockboxFile(path, f.distribution_code, f.count, f.total_cents))
        return LockboxResult(written, self.filed, self.quarantined)


# -- formatting ---------------------------------------------------------------------------


def lockbox_lines(frame: pd.DataFrame) -> pa.Array:
    """One lockbox line per row (an Arrow string array), without its CRLF. The rows must
    be within the limits (see :func:`lockbox_problems`)."""
    return _lines(frame, np.arange(len(frame)), lead="")


def _name_field(names: pa.Array) -> pa.Array:
    return quote(clean_name(names))


def _lines(frame: pd.DataFrame, order: np.ndarray, lead: str) -> pa.Array:
    """The lines of the rows at positions ``order``, each after ``lead``."""
    if len(order) == 0:
        return pa.array([], type=STR)
    identity = len(order) == len(frame) and bool((order == np.arange(len(order))).all())
    take = pa.array(order)

    def text(col: str | pa.ChunkedArray) -> pa.Array:
        values = text_array(frame[col]) if isinstance(col, str) else col.combine_chunks()
        return values if identity else pc.take(values, take)

    days = pd.to_datetime(frame["payment_date"]).to_numpy(dtype="datetime64[D]")[order]
    dcs = frame["distribution_code"].to_numpy(dtype=np.int64)[order]
    pcodes = frame["payment_code"].to_numpy(dtype=np.int64)[order]
    # "MM/DD/YYYY,DC,PC" once per distinct (day, codes): a day's run has a handful. One
    # element-wise join of four arrays after that (each extra input of a join costs a
    # pass over every row).
    key = (days.astype(np.int64) << 24) | (dcs << 8) | pcodes  # days < 2**39, dc <= 9999 < 2**16
    codes, uniq = pd.factorize(key)
    uniq = np.asarray(uniq, dtype=np.int64)
    heads = [
        f"{lead}{pd.Timestamp(np.datetime64(int(u >> 24), 'D')):%m/%d/%Y},{(u >> 8) & 0xFFFF},{u & 0xFF}"
        for u in uniq
    ]
    head = pc.take(pa.array(heads, type=STR), pa.array(codes.astype(np.int64)))
    # the three formatted fields are independent column work: side by side on threads
    amount, acct, name = side_by_side(
        lambda: format_amounts(frame["amount_cents"].to_numpy(dtype=np.int64)[order]),
        lambda: quote(text("account_number")),
        lambda: text(
            map_distinct(text_array(frame["customer_name"]), lambda names: quote(clean_name(names)))
        ),
    )
    return join_text(head, amount, acct, name, sep=",")


def lockbox_problems(frame: pd.DataFrame) -> pd.Series:
    """Per row, why it cannot go into a lockbox file (``field: rule; ...``), else <NA>."""
    idx = frame.index
    n = len(frame)
    dc = frame["distribution_code"].astype("Int64")
    pcode = frame["payment_code"].astype("Int64")
    cents = frame["amount_cents"].astype("Int64")
    acct = text_array(frame["account_number"])
    acct_blank, acct_len, acct_ctrl = account_facts(acct)
    dc_na, pc_na, cents_na = dc.isna().to_numpy(), pcode.isna().to_numpy(), cents.isna().to_numpy()
    dcv = dc.fillna(0).to_numpy(dtype=np.int64)
    pcv = pcode.fillna(0).to_numpy(dtype=np.int64)
    cv = cents.fillna(0).to_numpy(dtype=np.int64)
    when = pd.to_datetime(frame["payment_date"]).isna().to_numpy()

    def source(col: str) -> pd.Series:
        if col in frame.columns:
            return frame[col].astype("string").fillna("the payment codes")
        return pd.Series("the payment codes", index=idx, dtype="string")

    # (mask, reason for those rows) — reasons are only built for the failing rows
    rules: list[tuple[np.ndarray, Callable[[np.ndarray], pd.Series | str]]] = [
        (dc_na, lambda m: "distribution_code: missing (payment codes were not resolved)"),
        (
            ~dc_na & ((dcv > MAX_DISTRIBUTION_CODE) | (dcv < 0)),
            lambda m: (
                "distribution_code: "
                + dc[m].astype("string")
                + f" has more than 4 digits (a lockbox line holds at most {MAX_DISTRIBUTION_CODE}); fix "
                + source("distribution_source")[m]
            ),
        ),
        (pc_na, lambda m: "payment_code: missing (payment codes were not resolved)"),
        (
            ~pc_na & ((pcv > MAX_PAYMENT_CODE) | (pcv < 0)),
            lambda m: (
                "payment_code: "
                + pcode[m].astype("string")
                + f" has more than 2 digits (a lockbox line holds at most {MAX_PAYMENT_CODE}); fix "
                + source("payment_source")[m]
            ),
        ),
        (cents_na | (cv <= 0), lambda m: "amount: must be greater than 0"),
        (
            ~cents_na & (cv > MAX_AMOUNT_CENTS),
            lambda m: (
                "amount: above 999,999,999.99, the most a lockbox line holds; enter it in Caselle by hand"
            ),
        ),
        (acct_blank, lambda m: "account_number: required"),
        (
            acct_len > MAX_ACCOUNT_CHARS,
            lambda m: (
                "account_number: "
                + pd.Series(acct_len[m], index=idx[m]).astype("string")
                + f" characters; the lockbox file holds at most {MAX_ACCOUNT_CHARS}"
                + " (fix the account number in IC)"
            ),
        ),
        (acct_ctrl, lambda m: "account_number: contains a line break or control character"),
        (when, lambda m: "payment_date: missing"),
    ]
    out = pd.Series(pd.NA, index=idx, dtype="string")
    if not any(mask.any() for mask, _ in rules) or n == 0:
        return out
    for mask, reason in rules:
        if not mask.any():
            continue
        text = reason(mask)
        new = pd.Series(text, index=idx[mask], dtype="string") if isinstance(text, str) else text
        old = out[mask]
        out[mask] = (old + "; " + new).where(old.notna(), new)
    return out


# -- naming -------------------------------------------------------------------------------


def lockbox_file_name(distribution_code: int, run_date: date, sequence: int = 1) -> str:
    """``{DC}_PYMT_{YYYYMMDD}.TXT``; the n-th file of the same day gets ``_n``."""
    base = f"{int(distribution_code)}_PYMT_{run_date:%Y%m%d}"
    return f"{base}.TXT" if sequence <= 1 else f"{base}_{sequence}.TXT"


def next_free_name(
    distribution_code: int, run_date: date, taken: Iterable[str] = (), out_dir: str | Path | None = None
) -> str:
    """The first name of the day for this code that is neither taken nor on disk."""
    used = {t.upper() for t in taken}
    existing = (
        {p.name.upper() for p in Path(out_dir).glob(f"{int(distribution_code)}_PYMT_{run_date:%Y%m%d}*")}
        if out_dir is not None and Path(out_dir).is_dir()
        else set()
    )
    seq = 1
    while True:
        name = lockbox_file_name(distribution_code, run_date, seq)
        if name.upper() not in used and name.upper() not in existing:
            return name
        seq += 1


def combined_distribution_code(cfg: BillerConfig) -> int:
    """Setting 64's distribution code: the name of the combined file."""
    fb, problem = parse_fallback(int(Setting.CC_CODE), cfg.get(Setting.CC_CODE))
    if fb is None:
        raise ConfigError(
            (problem or f"{Setting.CC_CODE.label} is not set")
            + "; [lockbox].combine_cloud_stores = true names the combined file after its distribution code",
            file=cfg.source,
            setting=Setting.CC_CODE.label,
        )
    return fb.distribution_code


# -- building -------------------------------------------------------------------------------


def _file_bytes(lines: pa.Array, first: int, end: int) -> bytes:
    """The bytes of the lines ``first`` to ``end`` (exclusive), each made with a CRLF
    lead: the file is that span of the Arrow buffer without its first CRLF, plus a CRLF
    at the end (one copy, no join per line)."""
    if end <= first:
        return b""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    data = lines.buffers()[2]
    assert data is not None  # lines are never empty strings
    # one copy: join reads the Arrow buffer in place (slice-then-add would copy twice)
    return b"".join((memoryview(data)[int(offsets[first]) + len(EOL) : int(offsets[end])], EOL.encode()))


def plan_lockbox_files(
    frame: pd.DataFrame,
    run_date: date | datetime,
    cfg: BillerConfig,
    *,
    out_dir: str | Path | None = None,
    taken: Iterable[str] = (),
) -> LockboxPlan:
    """Validate the payments to file, build each file's bytes and choose its name.

    ``frame``: the payments to put in files *now* (resolved codes, not yet filed by any
    earlier run): columns ``payment_guid``, ``payment_date`` (datetime), ``distribution_code``,
    ``payment_code``, ``amount_cents``, ``account_number``, ``customer_name``; optional
    ``distribution_source`` / ``payment_source`` (from ``codes_resolve.resolve_codes``) make the
    reasons name the setting to fix. Lines keep the frame's order.
    """
    missing = [c for c in NEEDED if c not in frame.columns]
    if missing:
        raise ValueError(f"lockbox frame lacks columns {missing}")
    if "transaction_type" in frame.columns and (frame["transaction_type"] != "PAYMENT").any():
        raise ValueError("only PAYMENT rows go into a lockbox file; reversals are handled by hand")
    day = run_date.date() if isinstance(run_date, datetime) else run_date
    combine = cfg.lockbox.combine_cloud_stores
    combined_dc = combined_distribution_code(cfg) if combine and len(frame) else None

    frame = frame.reset_index(drop=True)
    problems = lockbox_problems(frame)
    bad = problems.notna().to_numpy()
    quarantined = rows_where(frame, bad)
    quarantined[REASON] = problems[bad]
    good = rows_where(frame, ~bad).reset_index(drop=True) if bad.any() else frame
    file_of_row = np.zeros(len(good), dtype=np.int64)  # index into file_names
    line_no = np.zeros(len(good), dtype=np.int64)
    files: list[PlannedFile] = []
    file_names: list[str] = []
    used = list(taken)
    if len(good):
        dcs = good["distribution_code"].to_numpy(dtype=np.int64)
        cents = good["amount_cents"].to_numpy(dtype=np.int64)
        groups = [(combined_dc, np.arange(len(good)))] if combine else _groups(dcs)
        # the lines are made in file order, so each file is one span of them
        lines = _lines(good, np.concatenate([pos for _, pos in groups]), lead=EOL)
        first = 0
        for dc, pos in groups:
            assert dc is not None
            name = next_free_name(dc, day, used, out_dir)
            used.append(name)
            file_of_row[pos] = len(file_names)
            file_names.append(name)
            line_no[pos] = np.arange(1, len(pos) + 1)
            files.append(
                PlannedFile(
                    name=name,
                    distribution_code=None if combine else int(dc),
                    data=_file_bytes(lines, first, first + len(pos)),
                    count=len(pos),
                    total_cents=int(cents[pos].sum()),
                )
            )
            first += len(pos)
    names = (
        pc.take(pa.array(file_names, type=STR), pa.array(file_of_row)) if file_names else pa.array([], STR)
    )
    filed = good.assign(
        **{
            FILE_COLUMN: pd.Series(pd.arrays.ArrowStringArray(names), index=good.index, dtype="string"),
            LINE_COLUMN: line_no,
        }
    )
    return LockboxPlan(
        run_date=day,
        files=files,
        filed=filed,
        quarantined=quarantined.reset_index(drop=True),
        out_dir=Path(out_dir) if out_dir is not None else None,
    )


def _groups(dcs: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Row positions per distribution code, codes in ascending order, rows in frame order."""
    codes, uniq = pd.factorize(dcs, sort=True)
    small = codes.astype(np.int16) if len(uniq) < 2**15 else codes  # int16: numpy radix-sorts
    order = np.argsort(small, kind="stable")
    bounds = np.searchsorted(small[order], np.arange(len(uniq) + 1))
    return [(int(u), order[bounds[k] : bounds[k + 1]]) for k, u in enumerate(uniq)]


def write_lockbox_files(
    frame: pd.DataFrame,
    out_dir: str | Path,
    run_date: date | datetime,
    cfg: BillerConfig,
    *,
    taken: Iterable[str] = (),
) -> LockboxResult:
    """Plan and write the lockbox files for ``frame`` (see :func:`plan_lockbox_files`)."""
    return plan_lockbox_files(frame, run_date, cfg, out_dir=out_dir, taken=taken).write(out_dir)
