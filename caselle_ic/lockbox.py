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

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from caselle_ic.codes import parse_fallback
from caselle_ic.config import BillerConfig, Setting
from caselle_ic.errors import ConfigError, OutputError
from caselle_ic.output import REASON, atomic_output
from caselle_ic.values import dates_mdy

MAX_DISTRIBUTION_CODE = 9999
MAX_PAYMENT_CODE = 99
MAX_AMOUNT_CENTS = 99_999_999_999  # 999,999,999.99
MAX_ACCOUNT_CHARS = 15
NAME_CHARS = 30
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


def _quote(s: pd.Series) -> pd.Series:
    """Quote only the values holding a comma or a double quote; double embedded quotes."""
    needs = s.str.contains(r'[,"]', regex=True)
    if not needs.any():
        return s
    quoted = '"' + s.str.replace('"', '""', regex=False) + '"'
    return s.where(~needs, quoted)


def format_amounts(cents: pd.Series) -> pd.Series:
    """Integer cents -> ``999,999,999.99`` form, quoted when it holds a comma."""
    c = cents.astype("int64")
    whole, frac = c // 100, c % 100
    g1, g2, g3 = whole // 1_000_000, (whole // 1000) % 1000, whole % 1000
    s1, s2, s3 = (g.astype("string") for g in (g1, g2, g3))
    text = s3.where(
        whole < 1000,
        s2 + "," + s3.str.zfill(3),
    ).where(whole < 1_000_000, s1 + "," + s2.str.zfill(3) + "," + s3.str.zfill(3))
    text = text + "." + frac.astype("string").str.zfill(2)
    return text.where(whole < 1000, '"' + text + '"')


def clean_name(name: pd.Series) -> pd.Series:
    """Control characters (line breaks, tabs) -> space, then cut to 30 characters."""
    s = name.astype("string").fillna("")
    s = s.str.replace(r"[\x00-\x1f\x7f]", " ", regex=True)
    return s.str.slice(0, NAME_CHARS)


def lockbox_lines(frame: pd.DataFrame) -> pd.Series:
    """One lockbox line per row, each ending in CRLF. The rows must be within the limits
    (see :func:`lockbox_problems`)."""
    if frame.empty:
        return pd.Series([], dtype="string")
    date_text = dates_mdy(pd.to_datetime(frame["payment_date"]), pad=True)
    dc = frame["distribution_code"].astype("int64").astype("string")
    pc = frame["payment_code"].astype("int64").astype("string")
    amount = format_amounts(frame["amount_cents"])
    acct = _quote(frame["account_number"].astype("string").fillna(""))
    name = _quote(clean_name(frame["customer_name"]))
    return date_text + "," + dc + "," + pc + "," + amount + "," + acct + "," + name + EOL


def lockbox_problems(frame: pd.DataFrame) -> pd.Series:
    """Per row, why it cannot go into a lockbox file (``field: rule; ...``), else <NA>."""
    idx = frame.index
    reasons: list[pd.Series] = []

    def add(mask: pd.Series, text: pd.Series | str) -> None:
        mask = mask.fillna(True).astype(bool)
        if mask.any():
            reasons.append(pd.Series(text, index=idx, dtype="string").where(mask))

    def source(col: str, default: str) -> pd.Series:
        if col in frame.columns:
            return frame[col].astype("string").fillna(default)
        return pd.Series(default, index=idx, dtype="string")

    dc = frame["distribution_code"].astype("Int64")
    pc = frame["payment_code"].astype("Int64")
    add(dc.isna(), "distribution_code: missing (payment codes were not resolved)")
    add(
        dc.notna() & ((dc > MAX_DISTRIBUTION_CODE) | (dc < 0)),
        "distribution_code: "
        + dc.astype("string").fillna("")
        + f" has more than 4 digits (a lockbox line holds at most {MAX_DISTRIBUTION_CODE}); fix "
        + source("distribution_source", "the payment codes"),
    )
    add(pc.isna(), "payment_code: missing (payment codes were not resolved)")
    add(
        pc.notna() & ((pc > MAX_PAYMENT_CODE) | (pc < 0)),
        "payment_code: "
        + pc.astype("string").fillna("")
        + f" has more than 2 digits (a lockbox line holds at most {MAX_PAYMENT_CODE}); fix "
        + source("payment_source", "the payment codes"),
    )
    cents = frame["amount_cents"].astype("Int64")
    add(cents.isna() | (cents <= 0), "amount: must be greater than 0")
    add(
        cents > MAX_AMOUNT_CENTS,
        "amount: above 999,999,999.99, the most a lockbox line holds; enter it in Caselle by hand",
    )
    acct = frame["account_number"].astype("string").fillna("")
    add(acct.str.strip() == "", "account_number: required")
    add(
        acct.str.len() > MAX_ACCOUNT_CHARS,
        "account_number: "
        + acct.str.len().astype("string")
        + f" characters; the lockbox file holds at most {MAX_ACCOUNT_CHARS} (fix the account number in IC)",
    )
    add(
        acct.str.contains(r"[\x00-\x1f\x7f]", regex=True),
        "account_number: contains a line break or control character",
    )
    add(pd.to_datetime(frame["payment_date"]).isna(), "payment_date: missing")
    out = pd.Series("", index=idx, dtype="string")
    for r in reasons:
        sep = pd.Series("; ", index=idx, dtype="string").where(out != "", "")
        out = out.where(r.isna(), out + sep + r)
    return out.where(out != "", pd.NA)


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


def _joined(lines: pd.Series) -> bytes:
    """The UTF-8 bytes of the lines, concatenated (straight from the Arrow buffer)."""
    if lines.empty:
        return b""
    arr = pa.array(lines, type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):  # pragma: no cover - pa.array returns an Array
        arr = arr.combine_chunks()
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    if data is None:  # pragma: no cover - lines are never empty strings
        return b""
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])].tobytes()


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
    ``distribution_source`` / ``payment_source`` (from ``codes.resolve_codes``) make the
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
    quarantined = frame.loc[bad].copy()
    quarantined[REASON] = problems[bad]
    good = frame.loc[~bad].reset_index(drop=True)
    lines = lockbox_lines(good)

    names = np.empty(len(good), dtype=object)
    line_no = np.zeros(len(good), dtype="int64")
    files: list[PlannedFile] = []
    used = list(taken)
    if len(good):
        dcs = good["distribution_code"].astype("int64")
        groups = [(combined_dc, np.arange(len(good)))] if combine else _groups(dcs.to_numpy())
        for dc, pos in groups:
            assert dc is not None
            name = next_free_name(dc, day, used, out_dir)
            used.append(name)
            names[pos] = name
            line_no[pos] = np.arange(1, len(pos) + 1)
            files.append(
                PlannedFile(
                    name=name,
                    distribution_code=None if combine else int(dc),
                    data=_joined(lines.iloc[pos]),
                    count=len(pos),
                    total_cents=int(good["amount_cents"].to_numpy()[pos].sum()),
                )
            )
    filed = good.copy()
    filed[FILE_COLUMN] = pd.Series(names, dtype="string")
    filed[LINE_COLUMN] = line_no
    return LockboxPlan(
        run_date=day,
        files=files,
        filed=filed,
        quarantined=quarantined.reset_index(drop=True),
        out_dir=Path(out_dir) if out_dir is not None else None,
    )


def _groups(dcs: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Row positions per distribution code, codes in ascending order, rows in frame order."""
    order = np.argsort(dcs, kind="stable")
    uniq, starts = np.unique(dcs[order], return_index=True)
    bounds = [*starts[1:], len(order)]
    return [(int(u), order[s:e]) for u, s, e in zip(uniq, starts, bounds, strict=True)]


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
