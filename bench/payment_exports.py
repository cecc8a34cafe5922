"""The synthetic IC payment exports of ``bench/payments.py`` (numpy and pandas are
imported here, not in the measured children)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def make_export(path: Path, n: int, seed: int = 7, names: str = "few") -> None:
    """A synthetic export of n valid PAYMENT rows (vectorized; deterministic).

    ``names="few"``: five customer names (the original bench: per-distinct-value paths
    run on five values). ``"varied"``: ~42,000 distinct names (40 surnames x 40 given
    names x 26 initials; a quarter with a comma, some with a double quote), so the name
    work is paid per row, as in a real export."""
    rng = np.random.default_rng(seed)
    hexes = pd.Series(rng.integers(0, 2**63, size=(n, 2), dtype=np.int64).tolist()).map(
        lambda p: f"{p[0]:016x}{p[1]:016x}"
    )
    guid = (
        hexes.str[0:8]
        + "-"
        + hexes.str[8:12]
        + "-4"
        + hexes.str[13:16]
        + "-8"
        + hexes.str[17:20]
        + "-"
        + hexes.str[20:32]
    )
    ptype = rng.choice(
        np.array(["1", "2", "11", "15", "16", "17"]), size=n, p=[0.5, 0.25, 0.1, 0.05, 0.05, 0.05]
    )
    card = np.where(
        ptype == "1", rng.choice(np.array(["VISA", "MASTERCARD", "AMEX", "DISCOVER"]), size=n), ""
    )
    obd = np.where(ptype == "11", rng.choice(np.array(["FISERV", "RPPS"]), size=n), "")
    acct = pd.Series(rng.integers(1, 999_999, size=n)).astype(str).str.zfill(6)
    names_few = np.array(
        [
            "SMITH, JOHN",
            "GARCIA LUIS",
            "QUINTANILLA-RODRIGUEZ MARIA ELENA",
            'BOB "BUDDY" TANAKA',
            "LEE SOO-JIN",
        ]
    )
    cents = rng.integers(1, 500_000, size=n)
    amount = pd.Series(cents // 100).astype(str) + "." + pd.Series(cents % 100).astype(str).str.zfill(2)
    secs = rng.integers(0, 3 * 86400, size=n)
    date = (pd.Timestamp("2026-10-30") + pd.to_timedelta(secs, unit="s")).strftime("%Y-%m-%dT%H:%M:%S")
    # drawn here, as before --names existed: the five-name export stays byte-identical
    customer = rng.choice(names_few, size=n)
    if names == "varied":
        last = np.array([f"SURNAME{k:02d}" for k in range(38)] + ["O'BRIEN", 'DE "LA" CRUZ'])
        first = np.array([f"GIVEN{k:02d}" for k in range(40)])
        initial = np.array([chr(ord("A") + k) for k in range(26)])
        sep = rng.choice(np.array([", ", " "]), size=n, p=[0.25, 0.75])
        customer = (
            pd.Series(rng.choice(last, size=n))
            + sep
            + rng.choice(first, size=n)
            + " "
            + rng.choice(initial, size=n)
        ).to_numpy()
    frame = pd.DataFrame(
        {
            "payment_guid": guid,
            "transaction_type": "PAYMENT",
            "original_payment_guid": "",
            "payment_date": date,
            "account_number": acct,
            "customer_name": customer,
            "invoice_number": "26" + acct.str[-4:],
            "invoice_type_id": rng.choice(np.array(["42", "7", "300", ""]), size=n),
            "payment_type_id": ptype,
            "card_vendor": card,
            "obd_vendor": obd,
            "amount": amount,
        }
    )
    frame.to_csv(path, index=False)


def make_posting_export(path: Path, n: int) -> None:
    """n DataPump payments (card, VISA, invoice type 42) on the 50 seeded accounts."""
    i = np.arange(n)
    cents = 100 + (i * 37) % 90_000
    frame = pd.DataFrame(
        {
            "payment_guid": [f"00000000-0000-4000-8000-{k:012d}" for k in i],
            "transaction_type": "PAYMENT",
            "original_payment_guid": "",
            "payment_date": "2026-11-02T08:00:00",
            "account_number": pd.Series(1001 + i % 50).astype(str).str.zfill(6),
            "customer_name": "BENCH CUSTOMER",
            "invoice_number": pd.Series(i).astype(str),
            "invoice_type_id": "42",
            "payment_type_id": "1",
            "card_vendor": "VISA",
            "obd_vendor": "",
            "amount": pd.Series(cents // 100).astype(str)
            + "."
            + pd.Series(cents % 100).astype(str).str.zfill(2),
        }
    )
    frame.to_csv(path, index=False)
