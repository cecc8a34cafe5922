"""RTDR balance (SPEC §8): ``customer(customerNumber:)`` through setting 8, failing over to 88.

* :func:`lookup_balance` — one account, for ``caselle-ic balance ACCOUNT`` (prints JSON).
* :func:`run_balance_refresh` — a list of accounts, looked up in aliased batches, written
  to ``balances_<YYYYMMDDHHMMSS>.csv`` (flow ``balance-refresh``).
"""

from __future__ import annotations

import csv
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from caselle_ic.config.model import BillerConfig, load_config, resolve_now
from caselle_ic.connect.client import CaselleClient
from caselle_ic.errors import InputError, UsageError, file_problem
from caselle_ic.result import BalanceCount, RunResult
from caselle_ic.tabular.csvin import LINE, normalize_header, read_text_csv
from caselle_ic.tabular.output import REASON, atomic_output, write_rejects
from caselle_ic.tabular.values import digits_only, format_cents, parse_cents, spreadsheet_safe

KIND = "balance-refresh"
BATCH_SIZE = 50
MAX_CUSTOMER_NUMBER = 2**31 - 1
#: An account may carry the separators the extracts use; anything else is not an account.
_ACCOUNT = re.compile(r"^[0-9][0-9 .\-]*\Z")
OUTPUT_COLUMNS = ("account_number", "customer_number", "name", "balance", "retrieved_at")


def customer_number_of(account: str) -> int:
    """``"001001"`` / ``"00-1001"`` -> 1001; UsageError for anything else."""
    text = (account or "").strip()
    if not _ACCOUNT.match(text):
        raise UsageError(
            f"account {text!r} is not a Caselle customer number (digits, optionally with - . or spaces)"
        )
    number = int(re.sub(r"\D", "", text))
    if number > MAX_CUSTOMER_NUMBER:
        raise UsageError("the account number is too large for a Caselle customer number")
    return number


def _balance_text(balance: Decimal | None) -> str | None:
    return None if balance is None else str(balance.quantize(Decimal("0.01")))


def lookup_balance(account: str, cfg: BillerConfig | str | Path, **client_options: Any) -> dict[str, Any]:
    """``{"customerNumber": 1001, "name": "...", "balance": "123.45"}`` (exact decimal text)."""
    cfg = cfg if isinstance(cfg, BillerConfig) else load_config(cfg)
    number = customer_number_of(account)
    with CaselleClient.for_purpose(cfg, "rtdr", **client_options) as client:
        customer = client.customer(number)
    return {
        "customerNumber": customer.customer_number,
        "name": customer.name,
        "balance": _balance_text(customer.balance),
    }


def read_accounts(path: str | Path) -> pd.DataFrame:
    """Accounts to look up: a CSV with an ``account_number`` column, or one per line.

    Returns ``account_number`` (as written) and ``_line``. In the one-per-line form blank
    lines and lines starting with ``#`` are skipped.
    """
    p = Path(path)
    if (problem := file_problem(p)) is not None:
        raise InputError(f"the accounts file {problem}", file=p)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("the accounts file is not UTF-8 text", file=p) from None
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    header = [normalize_header(h) for h in next(csv.reader([first]), [])]
    if "account_number" in header:
        if len(header) < 2:  # a one-column CSV: read_text_csv wants a delimiter
            lines = text.splitlines()
            start = lines.index(first)
            return pd.DataFrame(
                {
                    "account_number": pd.Series([ln.strip() for ln in lines[start + 1 :]], dtype="string"),
                    LINE: range(start + 2, len(lines) + 1),
                }
            ).query("account_number != ''")
        frame = read_text_csv(p, required=("account_number",), known=("account_number",), what="accounts")
        return frame[["account_number", LINE]]
    lines = pd.Series(text.splitlines(), dtype="string")
    frame = pd.DataFrame({"account_number": lines.str.strip(), LINE: range(1, len(lines) + 1)})
    keep = (frame["account_number"] != "") & ~frame["account_number"].str.startswith("#")
    return frame[keep].reset_index(drop=True)


def run_balance_refresh(
    accounts: str | Path,
    config: str | Path | BillerConfig,
    out_dir: str | Path,
    *,
    now: str | None = None,
    batch_size: int = BATCH_SIZE,
    client_options: dict[str, Any] | None = None,
) -> RunResult:
    """Look up every account's balance and write ``OUT/balances_<stamp>.csv``.

    Accounts that are not customer numbers, or that Caselle does not know, are
    quarantined to ``OUT/rejects/balances_<stamp>.rejects.csv`` (exit status 1).
    """
    cfg = config if isinstance(config, BillerConfig) else load_config(config)
    run_at = resolve_now(now, cfg.tz)
    stamp = run_at.strftime("%Y%m%d%H%M%S")
    out = Path(out_dir)
    frame = read_accounts(accounts)
    result = RunResult(kind=KIND, biller=cfg.name, inputs=[Path(accounts)])

    text = frame["account_number"].astype("string")
    valid = text.str.match(_ACCOUNT.pattern).fillna(False).astype(bool)
    digits = digits_only(text).where(valid, "")
    number = pd.to_numeric(digits.where(digits.str.len().between(1, 10), None), errors="coerce").astype(
        "Int64"
    )
    ok = valid & number.notna() & (number <= MAX_CUSTOMER_NUMBER).fillna(False)
    rejects = [frame[~ok].assign(**{REASON: "account_number is not a Caselle customer number"})]
    frame = frame[ok].assign(customer_number=number[ok].astype("int64"))

    unique = frame["customer_number"].drop_duplicates().tolist()
    found: dict[int, tuple[str | None, str | None]] = {}
    errors: dict[int, str] = {}
    if unique:
        with CaselleClient.for_purpose(cfg, "rtdr", **(client_options or {})) as client:
            for start in range(0, len(unique), batch_size):
                chunk = unique[start : start + batch_size]
                for n, outcome in zip(chunk, client.customers(chunk), strict=True):
                    if outcome.value is not None:
                        found[n] = (outcome.value.name, _balance_text(outcome.value.balance))
                    else:
                        errors[n] = str(outcome.error)
            if client.failovers:
                result.notes.append(f"the RTDR endpoint failed over to {client.active_endpoint}")
    hit = frame["customer_number"].isin(list(found))
    rejects.append(frame[~hit].assign(**{REASON: frame.loc[~hit, "customer_number"].map(errors)}))
    rows = frame[hit]
    names = {n: v[0] or "" for n, v in found.items()}
    amounts = {n: v[1] or "" for n, v in found.items()}
    table = pd.DataFrame(
        {
            "account_number": rows["account_number"],
            "customer_number": rows["customer_number"].astype("string"),
            "name": spreadsheet_safe(rows["customer_number"].map(names).astype("string")),
            "balance": rows["customer_number"].map(amounts).astype("string"),
            "retrieved_at": run_at.isoformat(),
        }
    )
    target = out / f"balances_{stamp}.csv"
    with atomic_output(target, "w", encoding="utf-8", newline="") as fh:
        table.to_csv(fh, index=False, columns=list(OUTPUT_COLUMNS), lineterminator="\r\n")
    result.outputs.append(target)
    quarantined = pd.concat([r for r in rejects if not r.empty] or [pd.DataFrame()], ignore_index=True)
    if not quarantined.empty:
        quarantined = quarantined[["account_number", LINE, REASON]]
        result.rejects_path = write_rejects(quarantined, out, f"balances_{stamp}")
    result.quarantined = quarantined
    cents, _bad = parse_cents(table["balance"])
    result.counts = {
        BalanceCount.ACCOUNTS: len(frame) + len(rejects[0]),
        BalanceCount.FOUND: len(table),
        BalanceCount.QUARANTINED: len(quarantined),
    }
    result.totals = {"balance": format_cents(int(cents.fillna(0).sum()))}
    result.tables["balances"] = table
    return result


__all__ = ["customer_number_of", "lookup_balance", "read_accounts", "run_balance_refresh"]
