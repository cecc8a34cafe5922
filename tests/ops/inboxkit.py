"""A small real pipeline for the inbox tests, importable by path (also run as a script by
the concurrency test: ``python inboxkit.py CONFIG LEDGER_URL CALLS_LOG``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from caselle_ic.result import RunResult
from caselle_ic.tabular.csvin import read_text_csv
from caselle_ic.tabular.output import write_bytes_atomic, write_rejects
from caselle_ic.tabular.values import parse_cents

GOOD = "account_number,amount\n001001,10.00\n001002,20.50\n"
GOOD2 = "account_number,amount\n001003,1.00\n"
WITH_BAD_ROW = "account_number,amount\n001004,5.00\n001005,abc\n"
MISSING_COLUMN = "account_number,total\n001006,5.00\n"


def total_handler(calls: list[str] | None = None) -> Callable[[Path, Path], RunResult]:
    """A small real pipeline: sum the amounts, quarantine bad ones, write one output file."""

    def handle(path: Path, outbox: Path) -> RunResult:
        if calls is not None:
            calls.append(path.name)
        frame = read_text_csv(path, required=["account_number", "amount"], what="payment export")
        cents, bad = parse_cents(frame["amount"])
        rejects = frame[bad].assign(reason="amount: not an amount")
        stem = path.stem + ".total"
        total = int(cents[~bad].sum())
        out = write_bytes_atomic(outbox / f"{stem}.txt", f"{total}\r\n".encode())
        rejects_path = write_rejects(rejects, outbox, stem)
        return RunResult(
            kind="total",
            biller="test",
            inputs=[path],
            outputs=[out],
            counts={"in": len(frame), "out": int((~bad).sum())},
            quarantined=rejects,
            rejects_path=rejects_path,
        )

    return handle


def main(config: str, url: str, log: str) -> None:
    from caselle_ic.config.model import load_config
    from caselle_ic.ops.inbox import process_inbox

    calls: list[str] = []
    process_inbox(load_config(config), "payments", total_handler(calls), ledger_url=url, settle_seconds=0)
    with open(log, "a", encoding="utf-8") as fh:
        fh.writelines(c + "\n" for c in calls)


if __name__ == "__main__":
    main(*sys.argv[1:4])
