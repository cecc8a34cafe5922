"""Round trips per second of the Caselle client against the emulator process.

    .venv/bin/python bench/caselle_client.py [--seconds 3]

Measures, with 0 ms and 20 ms injected latency:
* the RTDR balance query (``customer``), one per round trip;
* aliased batches of ``create_receipt`` of 1, 10 and 50 receipts per document.
Everything goes over HTTP to a real ``caselle-ic emulator`` process (OAuth, SQLite with
WAL), on this machine — so the numbers include the emulator's own work.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

from caselle_ic.config.model import load_config
from caselle_ic.connect.client import CaselleClient, ReceiptInput
from caselle_ic.emulator.process import EmulatorProcess


def seed(path: Path) -> Path:
    rows = ["account_number,customer_name,customer_balance"]
    rows += [f"{n:06d},Customer {n},{n}.00" for n in range(1001, 1051)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def measure(fn, seconds: float) -> list[float]:
    fn()  # warm up (token, connection, document cache)
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-caselle-"))
    counter = iter(range(10**9))

    def receipts(n: int) -> list[ReceiptInput]:
        return [
            ReceiptInput(
                date(2025, 6, 1),
                101,
                99,
                Decimal("1.00"),
                f"{1001 + i % 50:06d}",
                f"bench-{next(counter)}",
            )
            for i in range(n)
        ]

    rows = []
    with EmulatorProcess(seed=seed(tmp / "seed.csv")) as emu:
        os.environ.update(emu.env())
        cfg = load_config(emu.write_config(tmp / "biller.toml"))
        with (
            CaselleClient.for_purpose(cfg, "rtdr") as rtdr,
            CaselleClient.for_purpose(cfg, "payments") as pay,
        ):
            for latency in (0, 20):
                emu.faults(latency_ms=latency)
                times = measure(lambda: rtdr.customer(1001), args.seconds)
                rows.append((latency, "balance query", 1, times))
                for size in (1, 10, 50):

                    def post(size: int = size) -> None:
                        outcomes = pay.create_receipts(receipts(size))
                        assert all(o.ok for o in outcomes)

                    rows.append((latency, "create_receipt batch", size, measure(post, args.seconds)))
        state = emu.state()
    print(
        f"emulator: {state['receipts']} receipts committed, {state['counters']['graphql_requests']} requests"
    )
    print()
    header = (
        f"{'latency':>8} | {'operation':<21} | {'batch':>5} | {'round trips/s':>13} | {'items/s':>8} | "
        f"{'median ms':>9} | {'p95 ms':>7}"
    )
    print(header)
    print("-" * len(header))
    for latency, op, size, times in rows:
        rps = len(times) / sum(times)
        p95 = sorted(times)[int(len(times) * 0.95) - 1] * 1000
        print(
            f"{latency:>6} ms | {op:<21} | {size:>5} | {rps:>13.1f} | {rps * size:>8.0f} | "
            f"{statistics.median(times) * 1000:>9.2f} | {p95:>7.2f}"
        )


if __name__ == "__main__":
    main()
