"""Benchmark of the monthly invoice file (SPEC §3): seconds and peak memory against the floor.

    .venv/bin/python bench/invoice_file.py [N] [--data DIR] [--out DIR] [--skip-naive]
        [--skip-steps] [--lean] [--runs R]

Uses (or generates once, in a child process, with ``bench/gen_extract.py``) an extract
of N statements x 5 lines (default 100,000; 1,000,000 is about 1.4 GB) in ``--data``,
then measures, each as a whole child process, in the same session:

(a) ``caselle-ic invoices`` end to end (the command a biller runs; start-up included);
(b) a naive baseline: the csv module, one Python loop per row, Decimal money, the same
    rules, writing the same file (its bytes are compared with (a)'s). It streams one
    statement at a time, so it needs the rows of a statement adjacent (as Caselle and the
    generator write them) and refuses an extract where they are not;
(c) the floor: ``../shared/bench/floor_invoices.py`` (a multi-threaded pyarrow read of
    the extract as strings and a quoted write of as many records as the invoice file
    has): the least any implementation must spend;
(a') with ``--lean``: (a) with ``[performance].lean_memory`` (``CASELLE_IC_LEAN_MEMORY=1``);
(d) the same run step by step in one child (read, validate, build, write: wall and CPU
    seconds of each), to show where the time goes;
and a run of the 50-account sample extract (start-up included).

Peak RSS is each child's own ``ru_maxrss`` from ``os.wait4`` (the extract is generated
in a separate process: a child forked from a big parent would inherit its peak). Ratios
are wall-clock time against the floor measured in the same session, runs alternating;
the machine's load average is printed with them. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
CONFIG = ROOT / "data" / "samples" / "biller.toml"
SAMPLE = ROOT / "data" / "samples" / "statements.csv"
NOW = "2026-11-01T06:00:00"
STAMP = "INVCLD_CSLSTMT101_20261101060000"

FLOOR = ROOT.parent / "shared" / "bench" / "floor_invoices.py"
LINES = 5
LEAN = "(a) ... lean_memory"

STEPS = r"""
import json, resource, sys, time
from caselle_ic.config.model import load_config, resolve_now
from caselle_ic.invoices.build import build_records
from caselle_ic.invoices.checks import check_extract
from caselle_ic.invoices.extract import read_extract
from caselle_ic.tabular.memory import use_jemalloc
from caselle_ic.invoices.writer import write_invoice_file

extract, config, out, now = sys.argv[1:5]
cfg = load_config(config)
use_jemalloc(give_back=cfg.performance.lean_memory)  # as run_invoice_file does
clock = resolve_now(now, cfg.tz)
steps = {}
wall, cpu = time.perf_counter(), time.process_time()

def mark(name):
    global wall, cpu
    w, c = time.perf_counter(), time.process_time()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB -> MB, as the input
    steps[name] = {"wall": w - wall, "cpu": c - cpu, "peak_mb": peak}
    wall, cpu = w, c

table = read_extract(extract, cfg); mark("read")
checked = check_extract(table, cfg); mark("validate")
build = build_records(checked, cfg, clock); mark("build")
write_invoice_file(build.records, out, clock); mark("write")
print(json.dumps(steps))
"""


def measure(
    cmd: list[str], stdout: list[str] | None = None, env: dict[str, str] | None = None
) -> dict[str, float]:
    """Run ``cmd``; wall seconds, CPU seconds and peak RSS (MB) of that child."""
    start = time.perf_counter()
    child_env = {**os.environ, **env} if env else None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env)
    # communicate() before wait4 would reap the child; read the pipes on threads instead
    import threading

    chunks: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda n, f: chunks.__setitem__(n, f.read()), args=(n, f))
        for n, f in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    for r in readers:
        r.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = chunks.get("err", b"")
    if stdout is not None:
        stdout.append(chunks.get("out", b"").decode())
    code = proc.returncode
    if code not in (0, 1):
        sys.stderr.write(err.decode(errors="replace"))
        raise SystemExit(f"{cmd[0]} exited {code}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss * 1024 / 1e6,  # KiB -> MB, as the input size
        "exit": code,
    }


# -- (b) the naive baseline -----------------------------------------------------------

AMOUNT = re.compile(r"^(\()?\s*(-)?\$?(\d{1,3}(?:,\d{3})+|\d*)(?:\.(\d{1,2}))?\s*(\))?\Z")
US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})\Z")
ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})\Z")
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
STATEMENT_COLS = [
    "account_number", "customer_name", "attention", "address1", "address2", "city", "state", "zip",
    "phone", "email", "statement_date", "due_date", "customer_balance", "balance_due", "past_due",
    "last_statement_date", "last_statement_balance", "last_payment_amount", "statement_begin_date",
    "statement_end_date", "current_period_payments", "current_period_adjustments", "general_message",
    "bill_to_udf", "customer_udf", "invoice_detail_udf", "invoice_udf",
]  # fmt: skip
LINE_COLS = [
    "line_date", "line_type", "ref_no", "invoice_category_code", "description", "quantity",
    "charge_amount", "credit_amount", "line_due_date",
]  # fmt: skip


class Bad(Exception):
    pass


def amount(text: str) -> Decimal | None:
    t = text.strip()
    if not t:
        return None
    m = AMOUNT.match(t)
    if not m or bool(m.group(1)) != bool(m.group(5)) or (m.group(1) and m.group(2)):
        raise Bad
    whole, frac = m.group(3).replace(",", ""), m.group(4) or ""
    if not whole and not frac:
        raise Bad
    value = Decimal(f"{whole or 0}.{frac or 0}")
    return -value if (m.group(1) or m.group(2)) else value


def a_date(text: str) -> date | None:
    t = text.strip()
    if not t:
        return None
    m = US_DATE.match(t)
    try:
        if m:
            return date(int(m.group(3)), int(m.group(1)), int(m.group(2)))
        m = ISO_DATE.match(t)
        if m:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise Bad from None
    raise Bad


def clean(text: str) -> str:
    return CONTROL.sub(" ", text).strip(" ")


def money(d: Decimal | None) -> str:
    return "" if d is None else f"{d:.2f}"


def mdy(d: date | None) -> str:
    return "" if d is None else f"{d.month:02d}/{d.day:02d}/{d.year:04d}"


def split(message: str, width: int) -> list[str]:
    parts, rest = [], message
    while rest and len(parts) < 5:
        if len(rest) <= width:
            parts.append(rest)
            rest = ""
            break
        cut = rest.rfind(" ", 0, width + 1)
        if cut > 0:
            parts.append(rest[:cut].rstrip(" "))
            rest = rest[cut + 1 :].lstrip(" ")
        else:
            parts.append(rest[:width])
            rest = rest[width:].lstrip(" ")
    return parts + [""] * (5 - len(parts))


def quantity(q: str) -> str:
    if "." in q:
        q = q.rstrip("0").rstrip(".")
        if q in ("", "-"):
            q = "0"
    return q


def naive(extract: str, out_dir: str) -> None:
    import tomllib

    cfg = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    width = cfg.get("invoice_file", {}).get("message_field_length", 255)
    aliases = {k.lower(): v for k, v in cfg.get("extract", {}).get("columns", {}).items()}
    # Pass 1: which raw account numbers clean to the same AccountNumber.
    with open(extract, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = [aliases.get(h.strip().lower(), h.strip().lower()) for h in next(reader)]
        at = header.index("account_number")
        raw_of: dict[str, set[str]] = defaultdict(set)
        for row in reader:
            raw_of[re.sub(r"[^A-Za-z0-9]", "", row[at])].add(row[at])
    cleaned_count = {k: len(v) for k, v in raw_of.items()}
    del raw_of
    # Pass 2: one statement at a time (rows of a statement are adjacent, as Caselle
    # exports them; the baseline refuses anything else), records to a body file.
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    body_path = Path(out_dir) / "body.part"
    total, count = Decimal(0), 0
    with open(body_path, "w", encoding="utf-8", newline="") as body:
        for acct, rows in _adjacent_statements(extract, header):
            out: list[list[str]] = []
            try:
                first = rows[0]
                if any(r[c] != first[c] for r in rows for c in STATEMENT_COLS):
                    raise Bad
                account = re.sub(r"[^A-Za-z0-9]", "", acct)
                if not account or cleaned_count[account] > 1 or not first["customer_name"].strip():
                    raise Bad
                sdate, due = a_date(first["statement_date"]), a_date(first["due_date"])
                balance, bfwd = amount(first["customer_balance"]), amount(first["last_statement_balance"])
                if sdate is None or due is None or balance is None or bfwd is None:
                    raise Bad
                money_cols = {c: amount(first[c]) for c in ("balance_due", "past_due", "last_payment_amount",
                              "current_period_payments", "current_period_adjustments")}  # fmt: skip
                dates = {c: a_date(first[c]) for c in ("last_statement_date", "statement_begin_date",
                         "statement_end_date")}  # fmt: skip
                lines = []
                for i, r in enumerate(rows):
                    if not any(r[c].strip() for c in LINE_COLS):
                        continue
                    ld, kind, ref = a_date(r["line_date"]), r["line_type"].strip().upper(), clean(r["ref_no"])
                    if ld is None or kind not in ("INVOICE", "PAYMENT", "ADJUSTMENT") or not ref:
                        raise Bad
                    charge, credit = amount(r["charge_amount"]), amount(r["credit_amount"])
                    if (charge or 0) < 0 or (credit or 0) < 0:
                        raise Bad
                    lines.append((ld, i, kind, ref, r, charge, credit, a_date(r["line_due_date"])))
                lines.sort(key=lambda x: (x[0], x[1]))
                running, ids = bfwd, []
                for ld, _i, kind, ref, r, charge, credit, ldue in lines:
                    running += (charge or 0) - (credit or 0)
                    code = "" if kind == "PAYMENT" else clean(r["invoice_category_code"])
                    ids.append(["ID", clean(r["description"]), quantity(clean(r["quantity"])), money(charge),
                                money(credit), money(running), mdy(ld), code, mdy(ldue), ref])  # fmt: skip
                if running != balance:
                    raise Bad
            except (Bad, InvalidOperation):
                continue
            invoices = [x for x in lines if x[2] == "INVOICE"]
            if invoices:
                number, chosen = invoices[0][3], invoices[0]
            elif lines:
                chosen = lines[0]
                number = f"{chosen[3]}-{chosen[0].month}/{chosen[0].day}/{chosen[0].year}"
            else:
                chosen, number = None, f"{account}-{sdate.month}/{sdate.day}/{sdate.year}"
            type_id = (
                "" if chosen is None or chosen[2] == "PAYMENT" else clean(chosen[4]["invoice_category_code"])
            )
            msg = split(clean(first["general_message"]), width)
            bal_due = money_cols["balance_due"] if money_cols["balance_due"] is not None else balance
            mc, f = money_cols, first
            ih = [
                "IH",
                "R",
                cfg["biller"]["invoice_format_guid"],
                number,
                mdy(sdate),
                mdy(due),
                money(balance),
            ]
            ih += [mdy(dates["last_statement_date"]), money(mc["last_payment_amount"]), money(bfwd)]
            ih += [mdy(dates["statement_begin_date"]), mdy(dates["statement_end_date"])]
            ih += [money(mc["current_period_payments"]), money(mc["current_period_adjustments"])]
            ih += [msg[0], msg[1], msg[2], money(bal_due), msg[3], msg[4]]
            ih += [clean(f[c]) for c in ("bill_to_udf", "customer_udf", "invoice_detail_udf", "invoice_udf")]
            ih += ["Open Items", type_id, money(mc["past_due"])]
            cr = ["CR", account] + [
                clean(f[c]) for c in ("customer_name", "address1", "address2", "city", "state")
            ]
            cr += [clean(f["zip"]), re.sub(r"\D", "", f["phone"]), clean(f["email"]), clean(f["attention"])]
            out += [ih, cr]
            out += ids
            body.write("".join(_record(rec) for rec in out))
            total += balance
            count += 1
    day = datetime.fromisoformat(NOW)
    fh_rec = ["FH", cfg["biller"]["biller_guid"], f"{day:%m/%d/%Y}", str(count), f"{total:.2f}"]
    with open(Path(out_dir) / f"{STAMP}.txt", "w", encoding="utf-8", newline="") as fh:
        fh.write(_record(fh_rec))
        with open(body_path, encoding="utf-8", newline="") as rest:
            shutil.copyfileobj(rest, fh, 1 << 20)
    body_path.unlink()


def _record(values: list[str]) -> str:
    return "|".join('"' + v.replace('"', '""') + '"' for v in values) + "\r\n"


def _adjacent_statements(extract: str, header: list[str]):  # type: ignore[no-untyped-def]
    """(account, rows as dicts) for each run of adjacent rows of one account."""
    done: set[str] = set()
    with open(extract, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        acct, rows = None, []
        for row in reader:
            rec = dict(zip(header, row, strict=True))
            if rec["account_number"] != acct:
                if acct is not None:
                    yield acct, rows
                    done.add(acct)
                acct, rows = rec["account_number"], []
                if acct in done:
                    raise SystemExit(f"naive baseline: the rows of account {acct!r} are not adjacent")
            rows.append(rec)
        if acct is not None:
            yield acct, rows


# -- driver ----------------------------------------------------------------------------


def invoices_cmd(extract: Path, out: Path) -> list[str]:
    exe = str(VENV_BIN / "caselle-ic")
    return [exe, "invoices", str(extract), "--config", str(CONFIG), "--out", str(out), "--now", NOW]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("n", nargs="?", type=int, default=100_000, help="statements (x 5 lines)")
    p.add_argument("--data", type=Path, default=ROOT / "bench" / "out", help="where extracts are kept")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    p.add_argument("--skip-naive", action="store_true", help="skip (b), which takes minutes at 1M")
    p.add_argument("--skip-steps", action="store_true", help="skip (d), the step-by-step run")
    p.add_argument("--lean", action="store_true", help="also (a) with [performance].lean_memory")
    p.add_argument("--runs", type=int, default=1, help="repeat (a) and (c) alternately; report the best")
    p.add_argument("--naive", nargs=2, metavar=("EXTRACT", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.naive:
        naive(*args.naive)
        return

    args.out.mkdir(parents=True, exist_ok=True)
    args.data.mkdir(parents=True, exist_ok=True)
    extract = args.data / f"statements_{args.n}.csv"
    if not extract.exists():
        # In a child process: this one stays small, because a child's peak RSS starts
        # from its parent's at fork (Linux carries the high-water mark across exec).
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "gen_extract.py"), str(extract), str(args.n)], check=True
        )
        print(f"generated {extract} in {time.perf_counter() - t:.1f} s")
    size_mb = extract.stat().st_size / 1e6
    print(f"extract: {args.n:,} statements x {LINES} lines, {size_mb:,.0f} MB")

    loads = [os.getloadavg()[0]]
    e2e_out = args.out / f"e2e_{args.n}"
    floor_out = args.out / f"floor_{args.n}.txt"
    lean_out = args.out / f"lean_{args.n}"
    runs: dict[str, list[dict[str, float]]] = {"(a) caselle-ic invoices": [], "(c) floor_invoices.py": []}
    if args.lean:
        runs[LEAN] = []
    for _ in range(args.runs):
        runs["(c) floor_invoices.py"].append(
            measure([sys.executable, str(FLOOR), str(extract), str(floor_out), str(LINES)])
        )
        runs["(a) caselle-ic invoices"].append(measure(invoices_cmd(extract, e2e_out)))
        if args.lean:
            runs[LEAN].append(measure(invoices_cmd(extract, lean_out), env={"CASELLE_IC_LEAN_MEMORY": "1"}))
        loads.append(os.getloadavg()[0])
    if args.lean:
        same = (lean_out / f"{STAMP}.txt").read_bytes() == (e2e_out / f"{STAMP}.txt").read_bytes()
        print(f"lean_memory output identical to caselle-ic's: {same}")
    written = (e2e_out / f"{STAMP}.txt").stat().st_size / 1e6
    print(f"invoice file {written:,.0f} MB; floor's file {floor_out.stat().st_size / 1e6:,.0f} MB")
    steps_out: list[str] = []
    if not args.skip_steps:
        step_cmd = [
            sys.executable,
            "-c",
            STEPS,
            str(extract),
            str(CONFIG),
            str(args.out / f"steps_{args.n}"),
            NOW,
        ]
        runs["(d) steps, one process"] = [measure(step_cmd, steps_out)]
        same = (args.out / f"steps_{args.n}" / f"{STAMP}.txt").read_bytes() == (
            e2e_out / f"{STAMP}.txt"
        ).read_bytes()
        print(f"step-by-step output identical to caselle-ic's: {same}")
    if not args.skip_naive:
        naive_out = args.out / f"naive_{args.n}"
        runs["(b) naive csv module"] = [
            measure([sys.executable, __file__, "--naive", str(extract), str(naive_out)])
        ]
        same = (naive_out / f"{STAMP}.txt").read_bytes() == (e2e_out / f"{STAMP}.txt").read_bytes()
        print(f"naive output identical to caselle-ic's: {same}")
    best = {name: min(r, key=lambda m: m["wall"]) for name, r in runs.items()}
    floor = best["(c) floor_invoices.py"]["wall"]
    floor_rss = best["(c) floor_invoices.py"]["rss_mb"]
    print(
        f"\n{'':26s} {'wall s':>8s} {'cpu s':>8s} {'peak RSS MB':>12s} {'x floor':>8s} "
        f"{'RSS/input':>10s} {'RSS/floor':>10s}"
    )
    for name in sorted(best):
        m = best[name]
        print(
            f"{name:26s} {m['wall']:8.2f} {m['cpu']:8.2f} {m['rss_mb']:12.0f} "
            f"{m['wall'] / floor:8.2f} {m['rss_mb'] / size_mb:10.2f} {m['rss_mb'] / floor_rss:10.2f}"
        )
    if steps_out:
        import json

        steps = json.loads(steps_out[0].strip().splitlines()[-1])
        print(f"\n(d) per step {'wall s':>8s} {'cpu s':>8s} {'x floor':>8s} {'peak RSS MB':>12s}")
        for name, m in steps.items():
            print(
                f"  {name:10s} {m['wall']:8.2f} {m['cpu']:8.2f} {m['wall'] / floor:8.2f} {m['peak_mb']:12.0f}"
            )
    sample = [measure(invoices_cmd(SAMPLE, args.out / "sample"))["wall"] for _ in range(5)]
    print(
        f"\n50-account sample, start-up included: best {min(sample):.2f} s, "
        f"median {statistics.median(sample):.2f} s"
    )
    print(
        f"(cpus={os.cpu_count()}; load average during the runs {min(loads):.1f}-{max(loads):.1f}; "
        f"runs={args.runs})"
    )


if __name__ == "__main__":
    main()
