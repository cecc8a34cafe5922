"""Audit benchmark (issue 10): a day of N Data Pump payments (default 100,000) audited
against the Caselle emulator with 20 ms injected latency. Target: under 60 s.

Set-up (not timed): the emulator's receipts are inserted straight into its SQLite store
(:func:`caselle_ic.emulator.admin.insert_receipts`), the ledger's ``payments`` rows straight
into a SQLite ledger, and the day's export written as CSV — posting 100,000 receipts
through the API would only measure the posting again (bench/payments.py does).

Timed: ``run_audit`` end to end in this process: read and validate the export, resolve its
codes, read the ledger, ask Caselle ``receipts(confirmationNumber:)`` for every payment in
aliased batches from a few threads, compare, write the CSVs. The run must come out clean
(every receipt matches), and the emulator's request log must show no mutation.

Run: ``.venv/bin/python bench/audit.py [--rows N] [--latency-ms MS] [--workers W] [--batch B]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from caselle_ic.schemas.payments import column_names  # noqa: E402 - after the path

DAY = "2026-11-02"
BILLER_GUID = "5009a105-933f-4e03-98f7-84b417d55d9f"  # the sample biller's (its ledger key)
NS = uuid.UUID("6a0c54f2-3f8e-4f7b-9d0b-6c1f2b0a7e33")
COLUMNS = column_names()  # the export's columns as schemas/payment_export.csv lists them


def payment(i: int) -> dict[str, object]:
    """Payment i: VISA, invoice type 42 (setting 131 entry 1 of the sample: 111 / 4)."""
    cents = 1000 + (i * 37) % 500_000
    return {
        "guid": str(uuid.uuid5(NS, f"p{i}")),
        "when": f"{DAY}T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}",
        "account": f"{1001 + i % 50:06d}",
        "name": f"Customer {1001 + i % 50}",
        "invoice": f"INV{i:07d}",
        "cents": cents,
    }


def set_up(work: Path, rows: int) -> tuple[Path, Path, str]:
    import sqlalchemy as sa

    from caselle_ic.emulator.admin import insert_receipts
    from caselle_ic.emulator.store import FIRST_RECEIPT_NUMBER, Store
    from caselle_ic.store.ledger import open_ledger
    from caselle_ic.store.tables import payments

    pays = [payment(i) for i in range(rows)]
    db = work / "emulator.db"
    store = Store(db)
    insert_receipts(
        store,
        (
            {
                "receipt_date": DAY,
                "distribution_code": 111,
                "payment_code": 4,
                "amount_cents": p["cents"],
                "account_number": p["account"],
                "account_name": p["name"],
                "confirmation_number": p["guid"],
            }
            for p in pays
        ),
    )
    store.close()

    url = f"sqlite:///{work / 'state' / 'ledger.db'}"
    ledger = open_ledger(url)
    now = "2026-11-03T14:00:00.000000Z"
    run = str(uuid.uuid4())
    with ledger.begin() as conn:
        conn.execute(
            payments.insert(),
            [
                {
                    "biller": BILLER_GUID,
                    "payment_guid": p["guid"],
                    "transaction_type": "PAYMENT",
                    "original_guid": "",
                    "payment_date": p["when"],
                    "account_number": p["account"],
                    "customer_name": p["name"],
                    "invoice_number": p["invoice"],
                    "invoice_type_id": 42,
                    "payment_type_id": 1,
                    "card_vendor": "VISA",
                    "obd_vendor": "",
                    "amount_cents": p["cents"],
                    "export_name": "payments-bench.csv",
                    "export_line": i + 2,
                    "distribution_code": 111,
                    "payment_code": 4,
                    "gl_activity": 0,
                    "posting_method": "DataPump",
                    "code_rule": "entry 1",
                    "state": "posted",
                    "receipt_number": FIRST_RECEIPT_NUMBER + i,
                    "receipt_amount_cents": p["cents"],
                    "receipt_distribution_code": 111,
                    "receipt_payment_code": 4,
                    "attempts": 1,
                    "first_run_id": run,
                    "last_run_id": run,
                    "created_at": now,
                    "updated_at": now,
                    "done_at": now,
                }
                for i, p in enumerate(pays)
            ],
        )
        assert conn.execute(sa.select(sa.func.count()).select_from(payments)).scalar() == rows
    ledger.close()

    export = work / "payments-bench.csv"
    with export.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(COLUMNS)
        for p in pays:
            c = int(p["cents"])  # type: ignore[call-overload]
            w.writerow(
                [
                    *(p["guid"], "PAYMENT", "", p["when"], p["account"], p["name"], p["invoice"]),
                    *("42", "1", "VISA", "", f"{c // 100}.{c % 100:02d}"),
                ]
            )
    return db, export, url


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--batch", type=int, default=50)
    args = ap.parse_args()

    from caselle_ic.audit.pipeline import run_audit
    from caselle_ic.emulator.process import EmulatorProcess

    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        db, export, url = set_up(work, args.rows)
        print(
            f"set-up: {args.rows:,} receipts, ledger rows and export lines "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        with EmulatorProcess(db=db, latency_ms=args.latency_ms) as emu:
            os.environ.update(emu.env())
            cfg = emu.write_config(work / "biller" / "biller.toml", oauth=False)
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            steps: dict[str, float] = {}

            def timed(fn):  # type: ignore[no-untyped-def]
                def run(*a, **k):  # type: ignore[no-untyped-def]
                    t = time.perf_counter()
                    try:
                        return fn(*a, **k)
                    finally:
                        steps[fn.__name__] = time.perf_counter() - t

                return run

            result = run_audit(
                cfg,
                DAY,
                work / "audit",
                ledger_url=url,
                exports=[export],
                step=timed,
                caselle_options={"workers": args.workers, "batch_size": args.batch},
            )
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            totals = emu.requests()["totals"]
        print(
            f"audit of {args.rows:,} Data Pump payments at {args.latency_ms} ms latency "
            f"({args.workers} threads x {args.batch} per document): {wall:.1f} s wall, "
            f"{cpu:.1f} s client CPU, "
            f"{result.extra['requests']} documents; target < 60 s: {'met' if wall < 60 else 'NOT met'}"
        )
        print("  steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()))
        print(f"  emulator requests: {totals}; discrepancies: {len(result.discrepancies)}")
        if result.discrepancies or totals.get("mutation"):
            sys.exit("the bench day must audit clean, with no mutation")


if __name__ == "__main__":
    main()
