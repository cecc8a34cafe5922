"""Payments benchmark (issue 4).

(a) The lockbox file for N payments (default 1,000,000), from the IC payment export on disk
    to the lockbox files on disk: read + validate + resolve codes + write, against the floor
    ``bench/floor_lockbox.py`` (mirrors ``../shared/bench/floor_invoices.py``: a
    multi-threaded pyarrow read of the export as strings and a write of the six lockbox
    fields of every row). Each side is a whole child process (imports included), runs
    alternate, peak RSS is each child's own (``os.wait4``; the export is generated in a
    separate process, so no child inherits a big parent's peak). Target: <= 2x the floor.

(b) Posting N payments (default 10,000) to the Caselle emulator with 20 ms injected
    latency: the real daily run (``run_daily_payments``: read, resolve, ledger on SQLite,
    Data Pump posting in aliased batches from a few worker threads). Prints receipts/s
    (target >= 500/s), the client's CPU seconds per receipt (``resource.getrusage`` of the
    posting process, which runs on its own), and checks exactly once: the emulator holds
    exactly one receipt per payment.

Run: ``.venv/bin/python bench/payments.py [--part a|b|both] [--rows N] [--repeat R] [--names few|varied]
[--post-rows N] [--latency-ms MS] [--workers W] [--batch B]``. Prints figures; part (a)
asserts nothing; part (b) stops with an error if a payment is not posted exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "payments"
sys.path.insert(0, str(ROOT))

BENCH_TOML = """
[biller]
name = "Bench Town"
biller_guid = "5009a105-933f-4e03-98f7-84b417d55d9f"
invoice_format_guid = "a2ef4f14-d023-4548-9139-02338672fe88"
timezone = "America/Denver"

[settings]
64 = "101|99|0"
65 = "101|98|0"
131 = '''
{"PaymentSettings": [
  {"PaymentTypeID": 2, "PaymentCode": 95, "DistributionCode": 300},
  {"PaymentTypeID": 11, "PaymentCode": 96, "DistributionCode": 300},
  {"PaymentTypeID": 1, "PaymentCode": 97, "CardVender": ["VISA", "MASTERCARD", "DISCOVER"]},
  {"PaymentTypeID": 1, "PaymentCode": 98, "CardVender": ["AMEX"]},
  {"PaymentTypeID": 1, "PaymentCode": 12, "InvoiceTypeID": 300, "DistributionCode": 300},
  {"PaymentTypeID": 15, "PaymentCode": 99, "DistributionCode": 400}
]}
'''

[lockbox]
combine_cloud_stores = false
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(cmd: list[str]) -> tuple[dict, str]:
    """Run ``cmd`` as a child: wall seconds, CPU seconds and its own peak RSS (os.wait4)."""
    import threading

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} exited {proc.returncode}: {chunks.get('err', b'').decode(errors='replace')}")
    stats = {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}
    return stats, chunks.get("out", b"").decode()


def stage_floor(export: Path, out_dir: Path) -> dict:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    t0 = time.perf_counter()
    with export.open("rb") as fh:
        header = fh.readline().decode().strip().split(",")
    table = pacsv.read_csv(
        export,
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in header}, strings_can_be_null=False
        ),
    )
    t1 = time.perf_counter()
    cols = ["payment_date", "invoice_type_id", "payment_type_id", "amount", "account_number", "customer_name"]
    pacsv.write_csv(
        table.select(cols),
        out_dir / "floor.csv",
        write_options=pacsv.WriteOptions(include_header=False, quoting_style="needed"),
    )
    t2 = time.perf_counter()
    return {
        "read": t1 - t0,
        "write": t2 - t1,
        "total": t2 - t0,
        "rows": table.num_rows,
        "rss_mb": peak_rss_mb(),
    }


def stage_ours(export: Path, out_dir: Path, config: Path) -> dict:
    from caselle_ic.config.model import load_config
    from caselle_ic.payments.codes import load_payment_codes
    from caselle_ic.payments.codes_resolve import resolve_codes
    from caselle_ic.payments.export import read_payment_export
    from caselle_ic.payments.lockbox import write_lockbox_files
    from caselle_ic.tabular.memory import use_jemalloc

    use_jemalloc()  # as run_daily_payments does
    cfg = load_config(config)
    t0 = time.perf_counter()
    exp = read_payment_export(export, cfg)
    t1 = time.perf_counter()
    resolved = resolve_codes(exp.valid, load_payment_codes(cfg))
    t2 = time.perf_counter()
    for old in out_dir.glob("*_PYMT_*.TXT"):
        old.unlink()
    result = write_lockbox_files(resolved, out_dir, date(2026, 11, 2), cfg)
    t3 = time.perf_counter()
    return {
        "read_validate": t1 - t0,
        "resolve": t2 - t1,
        "lockbox": t3 - t2,
        "total": t3 - t0,
        "rows": len(exp.valid),
        "quarantined": len(exp.quarantined) + len(result.quarantined),
        "files": {p.name: f.count for p, f in zip(result.paths, result.files, strict=True)},
        "bytes": sum(p.stat().st_size for p in result.paths),
        "rss_mb": peak_rss_mb(),
    }


# -- (b) posting ------------------------------------------------------------------------------


def stage_post(export: Path, config: Path, workdir: Path, workers: int, batch: int) -> dict:
    """The daily run on its own process: wall and CPU per step (getrusage of this process)."""
    from caselle_ic.payments.pipeline import run_daily_payments
    from caselle_ic.payments.posting import PostingOptions
    from caselle_ic.result import PaymentCount

    steps: dict[str, dict[str, float]] = {}

    def timed(fn):  # the pipeline's step hook: wall and CPU seconds of each step
        def wrapper(*args, **kwargs):
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                r1 = resource.getrusage(resource.RUSAGE_SELF)
                steps[fn.__name__] = {
                    "wall": time.perf_counter() - t0,
                    "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
                }

        return wrapper

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    result = run_daily_payments(
        export,
        config,
        workdir / "out",
        now="2026-11-03T07:00:00",
        ledger_url=f"sqlite:///{workdir / 'ledger.db'}",
        step=timed,
        options=PostingOptions(workers=workers, batch_size=batch),
    )
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "posted": result.counts[PaymentCount.POSTED],
        "exit": result.exit_status,
        "wall": wall,
        "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
        "steps": steps,
        "rss_mb": peak_rss_mb(),
    }


def cli_run(export: Path, config: Path, out: Path, env: dict[str, str], workers: int, batch: int) -> dict:
    """``caselle-ic payments`` as a child process: wall, CPU (os.wait4) and exit status."""
    cmd = [str(Path(sys.executable).parent / "caselle-ic"), "payments", str(export), "--config", str(config)]
    cmd += ["--out", str(out), "--ledger", f"sqlite:///{out / 'ledger.db'}"]
    child_env = {**env, "CASELLE_IC_POST_WORKERS": str(workers), "CASELLE_IC_POST_BATCH": str(batch)}
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "exit": proc.returncode}


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def part_b(rows: int, latency_ms: int, workers: int, batch: int) -> None:
    import shutil
    import tempfile
    from collections import Counter

    from caselle_ic.emulator.process import EmulatorProcess

    work = Path(tempfile.mkdtemp(prefix="bench-post-"))
    try:
        seed = work / "seed.csv"
        seed.write_text(
            "account_number,customer_name,statement_date,due_date,customer_balance,last_statement_balance\r\n"
            + "".join(
                f"{n:06d},Customer {n},10/01/2026,10/20/2026,100.00,0.00\r\n" for n in range(1001, 1051)
            ),
            encoding="utf-8",
        )
        export = work / "post.csv"
        from bench.payment_exports import make_posting_export

        make_posting_export(export, rows)
        with EmulatorProcess(seed=seed, latency_ms=latency_ms) as emu:
            config = emu.write_config(work / "biller" / "biller.toml")
            env = {**os.environ, **emu.env()}
            emu_cpu = process_cpu(emu.pid)
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--stage",
                    "post",
                    "--post-export",
                    str(export),
                    "--post-config",
                    str(config),
                    "--post-workdir",
                    str(work),
                    "--workers",
                    str(workers),
                    "--batch",
                    str(batch),
                ],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            emu_cpu = process_cpu(emu.pid) - emu_cpu
            stats = json.loads(done.stdout.strip().splitlines()[-1])
            counts = Counter(r["confirmation_number"] for r in emu.receipts())
            requests = emu.state()["counters"]["mutation_requests"]
            # the same export as an operator runs it: the installed command, start-up included,
            # on a reset emulator (a new database, same seed) and a new ledger
            emu.reset()
            cli = cli_run(export, config, work / "cli", env, workers, batch)
            cli_counts = Counter(r["confirmation_number"] for r in emu.receipts())
        once = len(counts) == rows and set(counts.values()) == {1}
        post = stats["steps"]["post_payments"]
        print(
            f"(b) posting {rows:,} payments to the emulator, {latency_ms} ms latency,"
            f" {workers} workers x {batch} receipts per document ({requests} mutation documents)"
        )
        print(
            f"  posting step    {post['wall']:.2f} s = {stats['posted'] / post['wall']:.0f} receipts/s"
            f" (target >= 500/s); client CPU {post['cpu']:.2f} s"
            f" = {1e3 * post['cpu'] / stats['posted']:.3f} ms/receipt"
        )
        print(
            f"  whole run       {stats['wall']:.2f} s = {stats['posted'] / stats['wall']:.0f} receipts/s;"
            f" client CPU {stats['cpu']:.2f} s = {1e3 * stats['cpu'] / stats['posted']:.3f} ms/receipt;"
            f" peak RSS {stats['rss_mb']:.0f} MB"
        )
        print(
            f"  emulator CPU    {emu_cpu:.2f} s = {1e3 * emu_cpu / max(1, stats['posted']):.3f} ms/receipt"
            " (the emulator is one process on the same 2 cores: the ceiling)"
        )
        print("  steps           " + ", ".join(f"{k} {v['wall']:.2f} s" for k, v in stats["steps"].items()))
        print(
            f"  exactly once    {'yes' if once else 'NO'}: {len(counts):,} confirmation numbers,"
            f" {sum(counts.values()):,} receipts; exit status {stats['exit']}"
        )
        cli_once = len(cli_counts) == rows and set(cli_counts.values()) == {1}
        print(
            f"  CLI wall        {cli['wall']:.2f} s for `caselle-ic payments` (target <= 3.0 s for 2,000);"
            f" CPU {cli['cpu']:.2f} s; exit {cli['exit']}; exactly once {'yes' if cli_once else 'NO'}"
        )
        if not once or not cli_once:
            raise SystemExit("posting was not exactly once")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_stage(stage: str, rows: int) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--stage", stage, "--rows", str(rows)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per side; the best is reported")
    ap.add_argument("--part", choices=["a", "b", "both"], default="both")
    ap.add_argument("--post-rows", type=int, default=10_000, help="(b) payments to post")
    ap.add_argument("--latency-ms", type=int, default=20, help="(b) injected emulator latency")
    ap.add_argument("--workers", type=int, default=4, help="(b) posting threads")
    ap.add_argument("--batch", type=int, default=50, help="(b) receipts per aliased document")
    ap.add_argument(
        "--names",
        choices=["few", "varied"],
        default="few",
        help="(a) five customer names (the original export) or ~42,000 (per-row name work)",
    )
    ap.add_argument("--stage", choices=["floor", "ours", "post", "make"], help=argparse.SUPPRESS)
    ap.add_argument("--post-export", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--post-config", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--post-workdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage == "post":
        stats = stage_post(args.post_export, args.post_config, args.post_workdir, args.workers, args.batch)
        print(json.dumps(stats))
        return
    if args.part == "b":
        part_b(args.post_rows, args.latency_ms, args.workers, args.batch)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    export = OUT / (f"export-{args.rows}.csv" if args.names == "few" else f"export-varied-{args.rows}.csv")
    named = ["--rows", str(args.rows), "--names", args.names]
    config = OUT / "bench-biller.toml"
    if args.stage == "floor":
        print(json.dumps(stage_floor(export, OUT)))
        return
    if args.stage == "make":
        from bench.payment_exports import make_export

        make_export(export, args.rows, names=args.names)
        return
    if args.stage == "ours":
        print(json.dumps(stage_ours(export, OUT, config)))
        return

    config.write_text(BENCH_TOML, encoding="utf-8")
    if not export.exists():  # part (a) only from here on (part b returned above)
        t = time.perf_counter()
        # in a child: the children measured below must not inherit this one's peak RSS
        subprocess.run([sys.executable, __file__, "--stage", "make", *named], check=True)
        print(
            f"generated {export.name} ({export.stat().st_size / 1e6:.0f} MB)"
            f" in {time.perf_counter() - t:.1f} s"
        )

    # -- (a) lockbox file vs the floor, whole processes, alternating ----------------------------
    size_mb = export.stat().st_size / 1e6
    loads = [os.getloadavg()[0]]
    floors, ours = [], []
    floor_cmd = [sys.executable, str(ROOT / "bench" / "floor_lockbox.py"), str(export), str(OUT / "floor")]
    ours_cmd = [sys.executable, __file__, "--stage", "ours", *named]
    for _ in range(args.repeat):
        floors.append(measure(floor_cmd)[0])
        stats, out = measure(ours_cmd)
        ours.append(stats | json.loads(out.strip().splitlines()[-1]))
        loads.append(os.getloadavg()[0])
    floor = min(floors, key=lambda r: r["wall"])
    best = min(ours, key=lambda r: r["wall"])
    print(
        f"(a) lockbox file for {best['rows']:,} payments, export {size_mb:.0f} MB "
        f"(best of {args.repeat}, whole child processes)"
    )
    print(f"  {'':24s} {'wall s':>8s} {'cpu s':>8s} {'peak RSS MB':>12s} {'x floor':>8s} {'cpu x':>6s}")
    for name, m in (("floor_lockbox.py", floor), ("caselle-ic lockbox run", best)):
        print(
            f"  {name:24s} {m['wall']:8.2f} {m['cpu']:8.2f} {m['rss_mb']:12.0f} "
            f"{m['wall'] / floor['wall']:8.2f} {m['cpu'] / floor['cpu']:6.2f}"
        )
    print(
        f"  steps (in the child)     read+validate {best['read_validate']:.2f} s,"
        f" resolve {best['resolve']:.2f} s,"
        f" lockbox {best['lockbox']:.2f} s = {best['total']:.2f} s; imports and start-up "
        f"{best['wall'] - best['total']:.2f} s"
    )
    print(
        f"  files           {best['files']}  ({best['bytes'] / 1e6:.1f} MB),"
        f" quarantined {best['quarantined']}"
    )
    print(f"  (cpus={os.cpu_count()}; load average {min(loads):.1f}-{max(loads):.1f})")

    # -- (b) posting to the emulator ---------------------------------------------------------------
    if args.part == "both":
        part_b(args.post_rows, args.latency_ms, args.workers, args.batch)


if __name__ == "__main__":
    main()
