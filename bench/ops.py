"""Operations figures: log redaction cost per record, inbox pickup throughput, Prefect server start.

    .venv/bin/python bench/ops.py [--files 500] [--records 20000] [--server]

Prints figures; asserts nothing (speed is measured here, never in tests).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bench_redaction(n: int) -> None:
    from caselle_ic.logsafe import REDACTOR, install_redaction

    logger = logging.getLogger("bench.logsafe")
    logger.propagate = False
    logger.handlers = [logging.StreamHandler(io.StringIO())]
    logger.setLevel(logging.INFO)
    msg = "posted receipt %s for account %s amount %s on %s (token %s)"
    args = ("R-000123", "001017", "1,234.50", "2025-02-03", "tok_8hd72HSk2mzQ91xx")

    def run() -> float:
        t = time.perf_counter()
        for _ in range(n):
            logger.info(msg, *args)
        return time.perf_counter() - t

    before = logging.getLogRecordFactory()
    plain = run()
    install_redaction(["s3cr3t-value-1", "another-secret-2"] * 3)
    redacted = run()
    logging.setLogRecordFactory(before)
    per = (redacted - plain) / n * 1e6
    print(
        f"log redaction: {n:,} records, plain {plain:.3f} s, redacted {redacted:.3f} s, +{per:.1f} µs/record"
    )
    print(f"  known secrets (with URL-encoded forms): {REDACTOR.secret_count}")


def bench_inbox(n: int) -> None:
    logging.getLogger("caselle_ic.ops.inbox").setLevel(logging.ERROR)  # one line per duplicate otherwise
    from caselle_ic.ops.inbox import process_inbox
    from caselle_ic.result import RunResult

    tmp = Path(tempfile.mkdtemp(prefix="bench-inbox-"))
    try:

        class P:
            inbox, outbox, archive, error, state = (
                tmp / d for d in ("inbox", "outbox", "archive", "error", "state")
            )

        class Cfg:
            name = "Bench Town"
            biller_guid = "5009a105-933f-4e03-98f7-84b417d55d9f"
            paths = P

        P.inbox.mkdir(parents=True)
        payload = ("account_number,amount\n" + "001001,10.00\n" * 200).encode()
        old = time.time() - 3600
        for i in range(n):
            f = P.inbox / f"p{i:05d}_payments.csv"
            f.write_bytes(payload + str(i).encode())
            os.utime(f, (old, old))

        def handler(path: Path, outbox: Path) -> RunResult:
            return RunResult(kind="bench", biller="bench", inputs=[path])

        t = time.perf_counter()
        report = process_inbox(Cfg, "payments", handler)
        dt = time.perf_counter() - t
        done = len(report.by_status("processed"))
        print(
            f"inbox pickup: {done:,} files ({len(payload) / 1024:.1f} KiB each) in {dt:.2f} s "
            f"= {done / dt:,.0f} files/s (hash, claim in SQLite, move, record; trivial pipeline)"
        )
        for i in range(n):
            shutil.copy(P.archive / f"p{i:05d}_payments.csv", P.inbox / f"again{i:05d}_payments.csv")
            os.utime(P.inbox / f"again{i:05d}_payments.csv", (old, old))
        t = time.perf_counter()
        report = process_inbox(Cfg, "payments", handler)
        dt = time.perf_counter() - t
        print(f"  duplicates: {len(report.by_status('duplicate')):,} detected in {dt:.2f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_server() -> None:
    from caselle_ic.ops.prefect_server import ensure_server, stop_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = Path(tempfile.mkdtemp(prefix="bench-prefect-"))
    try:
        h = ensure_server(port=port, home=home, use_env=False)
        print(f"prefect server start (fresh SQLite): {h.startup_seconds:.1f} s to healthy")
        t = time.perf_counter()
        stop_server(h)
        print(f"  stop: {time.perf_counter() - t:.1f} s")
        h = ensure_server(port=port, home=home, use_env=False)
        print(f"prefect server restart (existing database): {h.startup_seconds:.1f} s to healthy")
        stop_server(h)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--server", action="store_true", help="also time the Prefect server start")
    a = ap.parse_args()
    bench_redaction(a.records)
    bench_inbox(a.files)
    if a.server:
        bench_server()


if __name__ == "__main__":
    main()
