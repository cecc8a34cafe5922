"""Helpers for the posting tests: exports we can reason about, and the exactly-once check.

* DataPump payments (``dp``): card VISA, invoice type 42 → setting 131 entry 1 (payment code
  4, distribution 111), accounts 001001..001050 (seeded in the emulator).
* File payments (``lb``): invoice type 300 → entry 7 (97 / 300, ``PostingMethod: File``);
  each has its own account ``9NNNNN`` so its lockbox line is recognisable.
* Reversals refer to one of those by GUID.
"""

from __future__ import annotations

import csv
import os
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from caselle_ic.schemas.payments import column_names
from tests.conftest import VENV_BIN

NS = uuid.UUID("0f2b6c1e-4d59-4c1f-9a57-3a3c0c0d5e11")
COLUMNS = column_names()  # the export's columns as schemas/payment_export.csv lists them


def guid(tag: str) -> str:
    return str(uuid.uuid5(NS, tag))


def dp(i: int, day: str = "2026-11-02", tag: str = "dp") -> dict[str, str]:
    """A DataPump payment (account 001001..001050, amount unique per i below 5000)."""
    return {
        "payment_guid": guid(f"{tag}-{i}"),
        "transaction_type": "PAYMENT",
        "original_payment_guid": "",
        "payment_date": f"{day}T08:{i % 60:02d}:00",
        "account_number": f"{1001 + i % 50:06d}",
        "customer_name": f"Customer {1001 + i % 50}",
        "invoice_number": f"INV{i:05d}",
        "invoice_type_id": "42",
        "payment_type_id": "1",
        "card_vendor": "VISA",
        "obd_vendor": "",
        "amount": f"{10 + i}.{i % 100:02d}",
    }


def lb(i: int, day: str = "2026-11-02", tag: str = "lb") -> dict[str, str]:
    """A File (lockbox) payment with its own account 9NNNNN."""
    return {
        "payment_guid": guid(f"{tag}-{i}"),
        "transaction_type": "PAYMENT",
        "original_payment_guid": "",
        "payment_date": f"{day}T09:{i % 60:02d}:00",
        "account_number": f"9{i:05d}",
        "customer_name": f"Store Customer {i}",
        "invoice_number": f"CS{i:05d}",
        "invoice_type_id": "300",
        "payment_type_id": "1",
        "card_vendor": "VISA",
        "obd_vendor": "",
        "amount": f"{20 + i}.50",
    }


def reversal(
    kind: str, original: dict[str, str], day: str = "2026-11-03", tag: str = "rev"
) -> dict[str, str]:
    return {
        **original,
        "payment_guid": guid(f"{tag}-{kind}-{original['payment_guid']}"),
        "transaction_type": kind,
        "original_payment_guid": original["payment_guid"],
        "payment_date": f"{day}T10:00:00",
        "payment_type_id": "2" if kind == "ACH_REJECT" else original["payment_type_id"],
        "card_vendor": "" if kind == "ACH_REJECT" else original["card_vendor"],
    }


def write_export(path: Path, rows: Iterable[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\r\n")
        w.writeheader()
        w.writerows(rows)
    return path


def lockbox_lines(*dirs: Path) -> list[list[str]]:
    """Every line of every lockbox file in these directories, parsed with csv.reader."""
    out: list[list[str]] = []
    for d in dirs:
        for f in sorted(Path(d).glob("*_PYMT_*.TXT")):
            data = f.read_bytes()
            assert data.endswith(b"\r\n") and b"\n" not in data.replace(b"\r\n", b""), f
            out += list(csv.reader(data.decode("utf-8").splitlines()))
    return out


def assert_exactly_once(
    emu: Any, datapump: Sequence[dict[str, str]], filed: Sequence[dict[str, str]], *dirs: Path
) -> None:
    """The emulator holds exactly one receipt per DataPump payment (and none other), and
    the lockbox files hold each File payment on exactly one line (and nothing else)."""
    receipts = emu.receipts()
    counts = Counter(r["confirmation_number"] for r in receipts)
    want = {r["payment_guid"] for r in datapump}
    assert {g: counts[g] for g in want} == dict.fromkeys(want, 1)
    assert set(counts) == want, f"unexpected receipts: {set(counts) - want}"
    by_guid = {r["confirmation_number"]: r for r in receipts}
    for r in datapump:  # and each is the right money
        got = by_guid[r["payment_guid"]]
        assert got["amount_cents"] == int(Decimal(r["amount"]) * 100), r
        assert got["account_number"] == r["account_number"]
    lines = lockbox_lines(*dirs)
    accounts = Counter(line[4] for line in lines)
    expect = {r["account_number"] for r in filed}
    assert {a: accounts[a] for a in expect} == dict.fromkeys(expect, 1)
    assert len(lines) == len(filed), f"unexpected lockbox lines: {set(accounts) - expect}"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(extra)
    return env


def start_cli(*args: str, **env: str) -> subprocess.Popen[str]:
    """``caselle-ic ARGS`` in the background (stdout/stderr captured)."""
    return subprocess.Popen(
        [str(VENV_BIN / "caselle-ic"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(**env),
    )
