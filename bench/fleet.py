"""Fleet benchmark (issue 11 item 5): N billers through a process work pool, measured.

Set-up (timed separately, not in the fleet's wall):

* the Caselle emulator with ``--latency-ms`` injected latency (default 20 ms), seeded with
  the 50 accounts 001001..001050 (as ``bench/payments.py``);
* a PostgreSQL ledger: a fresh database on 127.0.0.1:5432 (``CASELLE_IC_PG_ADMIN``, as the
  tests), migrated once, dropped at the end;
* N biller files (``--billers``, default 100), each a copy of the sample biller pointed at
  the emulator with its own name, BillerGuid and folders, and ``[schedule]`` entries ``""``
  (the fan-out is the fleet's only schedule, as docs/operations.md "A thousand billers"
  describes); each inbox holds one payments export of M Data Pump payments
  (``--payments``, default 500; VISA, invoice type 42), written by a child process so no
  measured child inherits its peak RSS, back-dated past the inbox's 30 s settle window;
* a local Prefect server (``caselle_ic.ops.prefect_server.ensure_server``, a temporary
  ``PREFECT_HOME``, SQLite), the ``caselle-ic`` process work pool, and every deployment
  ``caselle-ic deployments --config … --ledger URL`` generates that the timed fan-out runs
  (``payments-inbox/<biller>``, ``all-billers/payments``; ``--all-deployments``: all of
  them), deployed with ``prefect deploy --all`` (the documented work-pool path,
  tests/ops/test_work_pool.py);
* W workers (``--workers``, default 2), ``prefect worker start --pool caselle-ic --limit L``
  (``--runs-per-worker``, default 2), started in the work directory (not the checkout), so
  the pull steps enter ``$CASELLE_IC_HOME`` and run ``uv sync --locked`` before every run.

Timed: ``all-billers/payments`` is started once (``run_deployment``, ``timeout=0``) and the
bench waits until every ``payments-inbox/<biller>`` run it fans out to is finished.

Reported: total wall (trigger to the last run's end), flow runs per minute, and for each
biller run, from Prefect's state history and the ledger:

* queue:  created -> Pending (waiting for a worker slot: grows with the fleet);
* launch: Pending -> Running (the worker's process: interpreter, pull steps, imports);
* run:    Prefect's start_time -> end_time of the ``payments-inbox`` run;
  of which: start -> the ``daily-payments`` subflow's start (config, inbox scan, hash,
  claim), the subflow (its task runs summed beside it), subflow end -> run end
  (artifacts, archive, events);
* pipeline: the pipeline's own record of its time, the ledger's ``runs`` row
  (``started_at`` -> ``finished_at``, written by ``run_daily_payments``) plus the steps
  before the row is opened that are task runs (``read-export``; ``resolve-payment-codes``
  too before it ran inside the flow run, a2149eb: since then its ~10 ms counts as
  overhead). Nothing is added to the flows to time them. The row's window also holds the
  Prefect task-run calls of the steps inside it that are tasks, so "pipeline" is an upper
  bound and the overhead a lower bound;
* overhead = run - pipeline (the headline, p50 / p95), and overhead + launch.

Exactly once across the fleet: every payment GUID of every input file is one receipt in
the emulator (counted by confirmation number): none missing, no duplicates, no strangers;
and each ledger row is ``posted``. Workers and the server are stopped at the end and reaped
with ``os.wait4``: their CPU and peak RSS include the flow-run processes they started.

Run: ``.venv/bin/python bench/fleet.py [--billers N] [--payments M] [--workers W]
[--runs-per-worker L] [--latency-ms MS] [--all-deployments] [--json] [--keep]``. Prints
figures; exits 1 when a biller run failed or was not started (the fan-out failing is
reported, and the runs it did start are still waited for and measured) or a payment was not
posted exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.payments import process_cpu  # noqa: E402 - after the path
from caselle_ic.schemas.payments import column_names  # noqa: E402

PG_ADMIN_URL = os.environ.get("CASELLE_IC_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
NS = uuid.UUID("0c7d3f5e-8f4a-4d51-9b6e-3a1f0e2c9d11")
SCHEDULE_OFF = '\n[schedule]\ninvoices = ""\nadjustments = ""\npayments = ""\npaperless = ""\n'
BACKDATE_SECONDS = 300  # older than the inbox's 30 s settle window


# -- inputs (child process) ---------------------------------------------------------------


def payments_only(prefect_yaml: str) -> str:
    """The prefect.yaml cut to what the timed fan-out runs: ``payments-inbox/<biller>`` and
    ``all-billers/payments``. ``prefect deploy`` takes 0.3-1.0 s a deployment, so all the
    deployments of 100 billers (~800) would take 4-13 min of set-up for deployments never run;
    ``--all-deployments`` deploys them all, as an operator's prefect.yaml does."""
    import yaml

    doc = yaml.safe_load(prefect_yaml)
    doc["deployments"] = [
        d
        for d in doc["deployments"]
        if d["entrypoint"].endswith(".payments_inbox")
        or (d["entrypoint"].endswith(".all_billers") and d["name"] == "payments")
    ]
    return yaml.safe_dump(doc, sort_keys=False, width=110)


def biller_dir(work: Path, b: int) -> Path:
    return work / "billers" / f"b{b:03d}"


def make_inputs(work: Path, billers: int, payments: int) -> dict[str, Any]:
    """One payments export per biller, in its inbox: M VISA payments of invoice type 42
    (DataPump, setting 131 of the sample) on the 50 seeded accounts; GUIDs unique over the
    fleet. Back-dated so the pickup does not wait for them to settle."""
    day = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    old = time.time() - BACKDATE_SECONDS
    total_cents = 0
    for b in range(billers):
        folder = biller_dir(work, b) / "inbox" / "payments"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"ic-payments-{day.replace('-', '')}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(column_names())
            for i in range(payments):
                cents = 100 + (b * 7919 + i * 37) % 90_000
                total_cents += cents
                out.writerow(
                    [
                        str(uuid.uuid5(NS, f"{b}/{i}")),
                        "PAYMENT",
                        "",
                        f"{day}T{8 + i // 3600 % 12:02d}:{i // 60 % 60:02d}:{i % 60:02d}",
                        f"{1001 + i % 50:06d}",
                        "FLEET CUSTOMER",
                        f"F{b:03d}{i:06d}",
                        "42",
                        "1",
                        "VISA",
                        "",
                        f"{cents // 100}.{cents % 100:02d}",
                    ]
                )
        os.utime(path, (old, old))
    return {"files": billers, "payments": billers * payments, "total_cents": total_cents}


def read_inputs(work: Path, billers: int) -> list[str]:
    """Every payment GUID of every biller's export, wherever the pickup left the file
    (archive/, error/ or still in the inbox)."""
    guids: list[str] = []
    for b in range(billers):
        home = biller_dir(work, b)
        found = [
            p
            for folder in ("archive", "error", "inbox/payments")
            for p in sorted((home / folder).glob("ic-payments-*.csv"))
            if not p.name.endswith(".reconciliation.csv")
        ]
        if len(found) != 1:
            raise SystemExit(f"biller {b}: expected one export, found {[str(p) for p in found]}")
        with found[0].open(newline="", encoding="utf-8") as fh:
            guids += [row["payment_guid"] for row in csv.DictReader(fh)]
    return guids


# -- child processes ----------------------------------------------------------------------
def reap(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, float]:
    """Wait for ``proc`` with ``os.wait4`` (SIGKILL to its group after ``timeout``): its wall
    is not known here; CPU seconds and peak RSS include the children it reaped."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


def measure(cmd: list[str], *, env: dict[str, str], cwd: Path = ROOT) -> tuple[dict[str, float], str]:
    """Run ``cmd`` to the end: wall, CPU and peak RSS (``os.wait4``), its stdout."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd, start_new_session=True)
        stats = reap(proc, timeout=3600)
        stats["wall"] = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text, errors = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} … exited {proc.returncode}:\n{text[-2000:]}\n{errors[-3000:]}")
    return stats, text


# -- the ledger database --------------------------------------------------------------------
def create_database() -> tuple[str, str]:
    import sqlalchemy as sa

    name = f"caselle_fleet_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_database(name: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def ledger_figures(url: str) -> tuple[dict[str, float], Counter[str]]:
    """Seconds of each payments run by biller key (the ledger's ``runs`` table) and the
    ``payments`` rows counted by state."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select biller, started_at, finished_at, status from runs where kind = 'daily-payments'")
        ).all()
        states = Counter(
            {s: n for s, n in conn.execute(sa.text("select state, count(*) from payments group by state"))}
        )
    engine.dispose()
    seconds: dict[str, float] = {}
    for biller, started, finished, _status in rows:
        if finished:
            span = _utc(finished) - _utc(started)
            seconds[biller] = seconds.get(biller, 0.0) + span
    return seconds, states


def _utc(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


# -- Prefect ---------------------------------------------------------------------------------
async def _all_runs(client: Any, **filters: Any) -> list[Any]:
    out: list[Any] = []
    while True:
        page = await client.read_flow_runs(limit=200, offset=len(out), **filters)
        out += page
        if len(page) < 200:
            return out


async def _runs_of(client: Any, flow_name: str) -> list[Any]:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    return await _all_runs(client, flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))


async def trigger_and_wait(billers: int, timeout: float, quiet: bool) -> dict[str, Any]:
    """Start ``all-billers/payments`` once; wait until it and every biller run are final."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import arun_deployment

    t0 = time.time()
    parent = await arun_deployment("all-billers/payments", timeout=0)
    last_print = 0.0
    async with get_client() as client:
        while True:
            fan = await client.read_flow_run(parent.id)
            runs = await _runs_of(client, "payments-inbox")
            final = [r for r in runs if r.state is not None and r.state.is_final()]
            now = time.time()
            if not quiet and now - last_print >= 15:
                last_print = now
                print(
                    f"  … {now - t0:6.0f} s: {len(final)}/{billers} biller runs finished, "
                    f"{len(runs) - len(final)} pending or running (load {os.getloadavg()[0]:.1f})",
                    file=sys.stderr,
                )
            fan_done = fan.state is not None and fan.state.is_final()
            # a fan-out that could not start every biller's run is a finding, not the end of
            # the bench: wait for the runs it did start, report the rest as not started
            expected = billers if fan_done and fan.state.is_completed() else len(runs)
            if fan_done and len(final) >= expected:
                break
            if now - t0 > timeout:
                raise SystemExit(f"timed out after {timeout:.0f} s: {len(final)}/{billers} runs finished")
            await asyncio.sleep(1.0)
        t_end = time.time()
        return await collect(client, parent.id, t0, t_end)


async def collect(client: Any, parent_id: Any, t0: float, t_end: float) -> dict[str, Any]:
    """Every biller run's state history, its subflow and the subflow's task runs."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    fan = await client.read_flow_run(parent_id)
    inbox_runs = await _runs_of(client, "payments-inbox")
    subflows = await _runs_of(client, "daily-payments")
    histories = await asyncio.gather(*(client.read_flow_run_states(r.id) for r in inbox_runs))
    tasks: list[Any] = []
    ids = [r.id for r in subflows]
    for i in range(0, len(ids), 50):
        flt = FlowRunFilter(id=FlowRunFilterId(any_=ids[i : i + 50]))
        while True:
            page = await client.read_task_runs(flow_run_filter=flt, limit=200, offset=len(tasks))
            tasks += page
            if len(page) < 200:
                break
    return {
        "t0": t0,
        "t_end": t_end,
        "fan": fan,
        "inbox_runs": inbox_runs,
        "histories": dict(zip([r.id for r in inbox_runs], histories, strict=True)),
        "subflows": subflows,
        "tasks": tasks,
    }


def _ts(moment: Any) -> float:
    return float(moment.timestamp())


def _gap(start: Any, end: Any) -> float:
    return _ts(end) - _ts(start) if start is not None and end is not None else float("nan")


def per_run(found: dict[str, Any], pipeline_ledger: dict[str, float], slug_key: dict[str, str]) -> list[dict]:
    """One row per biller run: queue, launch, run, subflow, tasks, pipeline, overhead (s)."""
    sub_by_slug = {r.name.split("/")[1]: r for r in found["subflows"]}
    tasks_by_flow: dict[Any, list[Any]] = {}
    for t in found["tasks"]:
        tasks_by_flow.setdefault(t.flow_run_id, []).append(t)
    rows = []
    for run in found["inbox_runs"]:
        slug = run.name.split("/")[1]
        states = sorted(found["histories"][run.id], key=lambda s: s.timestamp)
        pending = next((_ts(s.timestamp) for s in states if s.type.value == "PENDING"), None)
        sub = sub_by_slug.get(slug)
        sub_tasks = tasks_by_flow.get(sub.id, []) if sub is not None else []
        before_ledger = sum(
            _ts(t.end_time) - _ts(t.start_time)
            for t in sub_tasks
            if t.name.startswith(("read-export", "resolve-payment-codes")) and t.start_time and t.end_time
        )
        run_s = _ts(run.end_time) - _ts(run.start_time) if run.start_time and run.end_time else float("nan")
        pipeline = pipeline_ledger.get(slug_key.get(slug, ""), float("nan")) + before_ledger
        launch = _ts(run.start_time) - pending if pending and run.start_time else float("nan")
        rows.append(
            {
                "biller": slug,
                "state": run.state.name if run.state else "?",
                "queue": (pending - _ts(run.created)) if pending else float("nan"),
                "launch": launch,
                "run": run_s,
                "before_subflow": _gap(run.start_time, sub.start_time if sub is not None else None),
                "subflow": _gap(sub.start_time, sub.end_time) if sub is not None else float("nan"),
                "after_subflow": _gap(sub.end_time if sub is not None else None, run.end_time),
                "n_tasks": len(sub_tasks),
                "tasks": sum(
                    _ts(t.end_time) - _ts(t.start_time) for t in sub_tasks if t.start_time and t.end_time
                ),
                "pipeline": pipeline,
                "overhead": run_s - pipeline,
                "overhead_with_launch": run_s - pipeline + launch,
                "end": _ts(run.end_time) if run.end_time else float("nan"),
                "start": _ts(run.start_time) if run.start_time else float("nan"),
            }
        )
    return rows


#: the per-run figures, as the table labels them
PER_RUN = {
    "queue": "queue (created->Pending)",
    "launch": "launch (Pending->Running)",
    "run": "run (Prefect start->end)",
    "before_subflow": "  start -> subflow start",
    "subflow": "  daily-payments subflow",
    "tasks": "    its tasks, summed",
    "after_subflow": "  subflow end -> end",
    "pipeline": "pipeline (ledger + read)",
    "overhead": "overhead = run - pipeline",
    "overhead_with_launch": "overhead + launch",
}


def pct(values: list[float], q: float) -> float:
    vals = sorted(v for v in values if v == v)
    if not vals:
        return float("nan")
    if len(vals) == 1:
        return vals[0]
    return statistics.quantiles(vals, n=100, method="inclusive")[int(q) - 1]


# -- the run ----------------------------------------------------------------------------------
def write_seed(path: Path) -> Path:
    path.write_text(
        "account_number,customer_name,statement_date,due_date,customer_balance,last_statement_balance\r\n"
        + "".join(f"{n:06d},Customer {n},10/01/2026,10/20/2026,100.00,0.00\r\n" for n in range(1001, 1051)),
        encoding="utf-8",
    )
    return path


def start_worker(i: int, limit: int, env: dict[str, str], work: Path) -> subprocess.Popen[bytes]:
    log = (work / f"worker-{i}.log").open("ab")
    try:
        cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", "caselle-ic"]
        cmd += ["--name", f"fleet-{i}", "--limit", str(limit)]
        return subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True
        )
    finally:
        log.close()


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout: float = 60) -> dict[str, float]:
    """Stop a worker (SIGINT: it shuts down cleanly); SIGKILL to its process group — the
    flow-run processes it started — when it is still there after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    return reap(proc, timeout)


def run_fleet(args: argparse.Namespace) -> dict[str, Any]:
    from caselle_ic.emulator.process import EmulatorProcess, free_port
    from caselle_ic.ops.prefect_server import ensure_server, stop_server
    from caselle_ic.store.ledger import open_ledger

    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr))
    loads = [os.getloadavg()[0]]
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    setup: dict[str, float] = {}
    db_name = None
    server = None
    workers: list[subprocess.Popen[bytes]] = []
    worker_usage: list[dict[str, float]] = []
    server_usage: dict[str, float] = {}
    try:
        with EmulatorProcess(seed=write_seed(work / "seed.csv"), latency_ms=args.latency_ms) as emu:
            t = time.perf_counter()
            db_name, ledger_url = create_database()
            open_ledger(ledger_url).close()  # migrated once, as an operator's database is
            setup["ledger database"] = time.perf_counter() - t
            say(f"work directory {work}; emulator {emu.base_url} ({args.latency_ms} ms); ledger {db_name}")

            t = time.perf_counter()
            configs = []
            slug_key: dict[str, str] = {}
            for b in range(args.billers):
                guid = str(uuid.uuid5(NS, f"biller/{b}"))
                path = emu.write_config(
                    biller_dir(work, b) / "biller.toml",
                    biller={"name": f"Fleet Biller {b:03d}", "biller_guid": guid},
                )
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(SCHEDULE_OFF)
                configs.append(path)
                slug_key[f"fleet-biller-{b:03d}"] = guid
            base_env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | emu.env()
            sizes = ["--billers", str(args.billers), "--payments", str(args.payments)]
            gen, _ = measure(
                [sys.executable, __file__, "--stage", "make", "--work", str(work), *sizes], env=base_env
            )
            setup["biller files and exports"] = time.perf_counter() - t
            say(f"inputs: {args.billers} exports x {args.payments} payments in {gen['wall']:.1f} s")

            home = work / "prefect-home"
            server = ensure_server(port=free_port(), home=home, use_env=False, timeout=600)
            setup["Prefect server start"] = server.startup_seconds
            os.environ["PREFECT_API_URL"] = server.api_url
            os.environ["PREFECT_HOME"] = str(home)
            env = base_env | {
                "PREFECT_API_URL": server.api_url,
                "PREFECT_HOME": str(home),
                "CASELLE_IC_HOME": str(ROOT),
            }
            say(f"Prefect server {server.api_url} (started in {server.startup_seconds:.1f} s)")

            cmd = [str(Path(sys.executable).parent / "caselle-ic"), "deployments", "--no-alerts"]
            cmd += ["--root", str(ROOT), "--ledger", ledger_url]
            for c in configs:
                cmd += ["--config", str(c)]
            gen_yaml, text = measure(cmd, env=env)
            setup["caselle-ic deployments"] = gen_yaml["wall"]
            yaml_path = work / "prefect.yaml"
            yaml_path.write_text(text if args.all_deployments else payments_only(text), encoding="utf-8")
            n_deployments = yaml_path.read_text(encoding="utf-8").count("\n- name: ")
            prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
            measure([*prefect, "work-pool", "create", "caselle-ic", "--type", "process"], env=env)
            deploy, _ = measure([*prefect, "deploy", "--prefect-file", str(yaml_path), "--all"], env=env)
            setup["prefect deploy --all"] = deploy["wall"]
            say(f"deployed {n_deployments} deployments in {deploy['wall']:.1f} s")

            # yardsticks of what every flow run's process does before the flow starts
            uv_sync, _ = measure(["uv", "sync", "--locked"], env=env)
            flows = "import prefect.engine, caselle_ic.flows.ops, caselle_ic.flows.payments"
            imports, _ = measure([sys.executable, "-c", flows], env=env)

            workers = [start_worker(i, args.runs_per_worker, env, work) for i in range(args.workers)]
            loads.append(os.getloadavg()[0])
            say(
                f"{args.workers} workers (--limit {args.runs_per_worker} each); starting all-billers/payments"
            )
            cpu_emu0 = process_cpu(emu.pid)
            cpu_srv0 = process_cpu(server.pid)
            found = asyncio.run(trigger_and_wait(args.billers, args.timeout, args.json))
            cpu_emu = process_cpu(emu.pid) - cpu_emu0
            cpu_srv = process_cpu(server.pid) - cpu_srv0
            loads.append(os.getloadavg()[0])

            receipts = Counter(r["confirmation_number"] for r in emu.receipts())
            worker_usage = [stop(w) for w in workers]
            workers = []
        pipeline, states = ledger_figures(ledger_url)
        inputs = read_inputs(work, args.billers)
    finally:
        for w in workers:
            with contextlib.suppress(ProcessLookupError):  # an aborted run: its flow runs too
                os.killpg(w.pid, signal.SIGKILL)
            worker_usage.append(reap(w, 10))
        if server is not None and server.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid or 0, signal.SIGTERM)
            server_usage = reap(server.process, 30)
            stop_server(server)  # the pid files
        if db_name:
            drop_database(db_name)
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    rows = per_run(found, pipeline, slug_key)
    if not rows:
        fan = found["fan"].state
        raise SystemExit(f"no biller run was started: all-billers/payments {fan.name}: {fan.message}")
    want = Counter(inputs)
    missing = [g for g in want if g not in receipts]
    dupes = [g for g, n in receipts.items() if n > 1]
    strangers = [g for g in receipts if g not in want]
    once = (
        not missing
        and not dupes
        and not strangers
        and len(want) == args.billers * args.payments
        and set(want.values()) == {1}
    )
    wall = found["t_end"] - found["t0"]
    last_end = max(r["end"] for r in rows)
    return {
        "billers": args.billers,
        "payments_per_biller": args.payments,
        "workers": args.workers,
        "runs_per_worker": args.runs_per_worker,
        "latency_ms": args.latency_ms,
        "deployments": n_deployments,
        "setup_seconds": {k: round(v, 2) for k, v in setup.items()},
        "yardsticks": {
            "uv_sync_locked_wall": round(uv_sync["wall"], 3),
            "import_engine_and_flows_wall": round(imports["wall"], 3),
            "import_engine_and_flows_cpu": round(imports["cpu"], 3),
            "import_engine_and_flows_rss_mb": round(imports["rss_mb"], 1),
            "generate_inputs_rss_mb": round(gen["rss_mb"], 1),
        },
        "wall_seconds": round(wall, 2),
        "wall_to_last_run_end": round(last_end - found["t0"], 2),
        "flow_runs_per_minute": round(60 * len(rows) / (last_end - found["t0"]), 2),
        "runs": len(rows),
        "runs_completed": sum(r["state"] == "Completed" for r in rows),
        "fan_out_state": found["fan"].state.name if found["fan"].state else "?",
        "fan_out_message": (found["fan"].state.message or "")[:600] if found["fan"].state else "",
        "billers_not_started": sorted(set(slug_key) - {r["biller"] for r in rows}),
        "per_run": {
            k: {
                "p50": round(pct([r[k] for r in rows], 50), 3),
                "p95": round(pct([r[k] for r in rows], 95), 3),
            }
            for k in PER_RUN
        },
        "cpu_seconds": {
            "workers_and_flow_runs": round(sum(u["cpu"] for u in worker_usage), 1),
            "prefect_server": round(cpu_srv, 1),
            "emulator": round(cpu_emu, 1),
        },
        "peak_rss_mb": {
            "worker_or_flow_run": round(max((u["rss_mb"] for u in worker_usage), default=0), 1),
            "prefect_server": round(server_usage.get("rss_mb", float("nan")), 1),
        },
        "exactly_once": once,
        "inputs": len(inputs),
        "receipts": sum(receipts.values()),
        "missing": len(missing),
        "duplicates": len(dupes),
        "strangers": len(strangers),
        "ledger_states": dict(states),
        "load_average": [round(min(loads), 2), round(max(loads), 2)],
        "cpus": os.cpu_count(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "rows": rows,
    }


def report(r: dict[str, Any]) -> None:
    n = r["runs"]
    print(
        f"fleet: {r['billers']} billers x {r['payments_per_biller']} payments "
        f"({r['billers'] * r['payments_per_biller']:,} Data Pump receipts),"
        f" emulator latency {r['latency_ms']} ms,"
        f" {r['workers']} workers x --limit {r['runs_per_worker']}, ledger on PostgreSQL"
    )
    print(
        "  set-up (not in the wall): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in r["setup_seconds"].items())
        + f" ({r['deployments']} deployments)"
    )
    print(
        f"  total wall      {r['wall_seconds']:.1f} s from starting all-billers/payments"
        " to the last biller run's end"
        f" ({r['runs_completed']}/{n} Completed, fan-out {r['fan_out_state']})"
    )
    if r["billers_not_started"]:
        print(f"  NOT STARTED     {', '.join(r['billers_not_started'])}: {r['fan_out_message']}")
    print(f"  throughput      {r['flow_runs_per_minute']:.1f} biller flow runs per minute")
    rows, slots = r["rows"], r["workers"] * r["runs_per_worker"]
    t0 = max(x["end"] for x in rows) - r["wall_to_last_run_end"]
    busy = sum(x["launch"] + x["run"] for x in rows) / (slots * r["wall_to_last_run_end"])
    first = min(x["start"] for x in rows) - t0
    print(
        f"  slots           {slots} run slots busy (launch + run) {busy:.0%} of the wall; the first biller"
        f" run was running {first:.0f} s after the trigger (the fan-out's own launch and run;"
        f" workers poll every {os.environ.get('PREFECT_WORKER_QUERY_SECONDS', '10')} s:"
        " PREFECT_WORKER_QUERY_SECONDS, default 10)"
    )
    print(f"  per biller run (s){'':10s} {'p50':>8s} {'p95':>8s}")
    for k, label in PER_RUN.items():
        p = r["per_run"][k]
        print(f"    {label:27s} {p['p50']:8.2f} {p['p95']:8.2f}")
    o, pl = r["per_run"]["overhead_with_launch"]["p50"], r["per_run"]["pipeline"]["p50"]
    if pl:
        print(f"  ratio           (overhead + launch) / pipeline = {o / pl:.1f}x at p50")
    rpm = r["flow_runs_per_minute"]
    print(
        f"  projection      at {rpm:.1f} runs/min: 100 billers {100 / rpm:.0f} min,"
        f" 1,000 billers {1000 / rpm:.0f} min on this pool"
    )
    y = r["yardsticks"]
    print(
        f"  yardsticks      `uv sync --locked` (the pull step) {y['uv_sync_locked_wall']:.2f} s;"
        f" import prefect.engine + the flows {y['import_engine_and_flows_wall']:.2f} s wall,"
        f" {y['import_engine_and_flows_cpu']:.2f} s CPU, {y['import_engine_and_flows_rss_mb']:.0f} MB"
    )
    c = r["cpu_seconds"]
    print(
        f"  CPU             workers + flow-run processes {c['workers_and_flow_runs']:.0f} s"
        f" = {c['workers_and_flow_runs'] / n:.2f} s per biller run;"
        f" Prefect server {c['prefect_server']:.0f} s"
        f" = {c['prefect_server'] / n:.2f} s per run; emulator {c['emulator']:.0f} s"
    )
    m = r["peak_rss_mb"]
    print(
        f"  peak RSS        largest worker or flow-run process {m['worker_or_flow_run']:.0f} MB;"
        f" Prefect server {m['prefect_server']:.0f} MB (os.wait4)"
    )
    print(
        f"  exactly once    {'yes' if r['exactly_once'] else 'NO'}: {r['inputs']:,} payments in the inputs,"
        f" {r['receipts']:,} receipts; missing {r['missing']}, duplicated {r['duplicates']},"
        f" not in the inputs {r['strangers']}; ledger {r['ledger_states']}"
    )
    lo, hi = r["load_average"]
    print(f"  (cpus={r['cpus']}; load average {lo:.1f}-{hi:.1f}; {r['date']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--billers", type=int, default=100)
    ap.add_argument("--payments", type=int, default=500, help="payments per biller export")
    ap.add_argument("--workers", type=int, default=2, help="prefect worker processes")
    ap.add_argument("--runs-per-worker", type=int, default=2, help="each worker's --limit")
    ap.add_argument("--latency-ms", type=int, default=20, help="injected emulator latency")
    ap.add_argument("--timeout", type=float, default=3600, help="give up waiting after this many seconds")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout instead of the table")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, outputs)")
    ap.add_argument(
        "--all-deployments",
        action="store_true",
        help="deploy every kind of every biller, not only the payments deployments the run uses",
    )
    ap.add_argument("--stage", choices=["make"], help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage == "make":
        print(json.dumps(make_inputs(args.work, args.billers, args.payments)))
        return
    result = run_fleet(args)
    if args.json:
        print(json.dumps(result))
    else:
        report(result)
    failed = result["runs_completed"] != args.billers or not result["exactly_once"]
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
