"""``caselle-ic demo``: every flow end to end on ``data/samples/``, against the emulator.

What it does, in order:

1. Prepares the work directory (default ``./demo-output``). A directory the demo made
   before (it holds ``.caselle-ic-demo``) is cleared first, so every demo starts fresh; a
   non-empty directory the demo did not make is refused, never cleared.
2. With Prefect (the default): reuses the Prefect server answering at ``PREFECT_API_URL``
   or ``http://127.0.0.1:4200/api``, or starts one **detached** (SQLite under
   ``PREFECT_HOME``, analytics off) that keeps running after the demo so the runs stay in
   the UI (stop it with ``prefect server stop``).
3. Starts the Caselle Connect emulator (a subprocess on a free port, its database
   ``<workdir>/emulator.db``, seeded from ``data/samples/statements.csv``) and writes the
   demo biller config ``<workdir>/biller.toml`` pointing at it, with ``[paths]`` inside the
   work directory.
4. Drops the samples into ``<workdir>/inbox`` and runs the inbox pickups — invoices,
   adjustments (when a sample exists), payments, paperless — exactly as the scheduled
   deployments do (as Prefect flows when Prefect is on), then a balance refresh.
5. Voids one posted receipt by hand in the emulator (what a clerk does in Caselle) and runs
   the daily audit of its day (``daily-audit``), which must find it as
   ``voided_without_reversal`` (``outbox/audit/audit-<day>.csv``).
6. Checks the results a newcomer should see: an IC invoice file and a lockbox file in the
   outbox, receipts and paper-statement updates in the emulator, a balances CSV; prints
   where each output is and the UI address.

Exit status: **0** every step ran and produced its outputs. The samples contain
deliberately bad rows, so quarantined records (and their rejects files) are expected and
reported, not failures. **1** a step failed (an input ended in ``error/``, a flow raised,
or an expected output is missing). **2** the demo could not start (work directory refused,
Prefect server or emulator did not start).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caselle_ic.errors import CaselleICError, InboxError, OutputError, ServiceError
from caselle_ic.resources import SAMPLES

MARKER = ".caselle-ic-demo"
DEFAULT_WORKDIR = "demo-output"

#: Sample inputs per inbox kind (first existing name wins); kinds without a sample are skipped.
DEMO_INPUTS: dict[str, tuple[str, ...]] = {
    "invoices": ("statements.csv",),
    "adjustments": ("adjustments.csv", "statement_adjustments.csv"),
    "payments": ("payments.csv",),
    "paperless": ("paperless.csv",),
}
#: Accounts the balance refresh looks up (sample accounts, one written with a separator).
DEMO_ACCOUNTS = ("001001", "00-1017", "001050")


@dataclass
class Step:
    name: str
    ok: bool = True
    lines: list[str] = field(default_factory=list)


def prepare_workdir(workdir: str | Path | None) -> Path:
    """The demo's work directory, emptied of a previous demo's files; refuses foreign dirs."""
    wd = Path(workdir or DEFAULT_WORKDIR).expanduser().resolve()
    if wd.exists() and not wd.is_dir():
        raise OutputError(f"--workdir {wd} is a file; give a directory")
    if wd.exists() and any(wd.iterdir()) and not (wd / MARKER).exists():
        raise OutputError(
            f"--workdir {wd} is not empty and was not made by the demo; refusing to clear it. "
            "Give an empty or new directory"
        )
    if wd.exists():
        for child in wd.iterdir():
            if child.name == MARKER:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    wd.mkdir(parents=True, exist_ok=True)
    (wd / MARKER).write_text("made by `caselle-ic demo`; the demo clears this directory on each run\n")
    return wd


def stage_inputs(inbox: Path) -> dict[str, Path]:
    """Copy one sample per kind into the inbox (keeping mtimes: they are settled)."""
    inbox.mkdir(parents=True, exist_ok=True)
    staged: dict[str, Path] = {}
    for kind, names in DEMO_INPUTS.items():
        for name in names:
            src = SAMPLES / name
            if src.is_file():
                staged[kind] = Path(shutil.copy2(src, inbox / name))
                break
    return staged


@contextlib.contextmanager
def _prefect_api(url: str | None) -> Iterator[None]:
    """Point this process (and its children) at the Prefect API ``url`` (None: no Prefect)."""
    if url is None:
        saved = os.environ.pop("PREFECT_API_URL", None)
        try:
            yield
        finally:
            if saved is not None:
                os.environ["PREFECT_API_URL"] = saved
        return
    os.environ["PREFECT_API_URL"] = url
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: url}):
        yield


def _run_pickup(kind: str, cfg_path: Path, prefect: bool) -> dict[str, Any]:
    """One inbox pickup, as the scheduled deployment runs it; returns its summary."""
    if prefect:
        from caselle_ic.kinds import get

        rule = get(kind).inbox
        assert rule is not None, kind
        try:
            return dict(rule.flow()(config=str(cfg_path), settle_seconds=0))
        except InboxError as exc:
            return exc.summary
    from caselle_ic.config.model import load_config
    from caselle_ic.ops.inbox import make_handler, process_inbox

    cfg = load_config(cfg_path)
    handler = make_handler(kind, cfg, via_flow=False)
    return process_inbox(cfg, kind, handler, settle_seconds=0).to_dict()


def _describe(summary: dict[str, Any], step: Step) -> None:
    files = summary.get("files", [])
    if not files:
        step.ok = False
        step.lines.append("nothing was picked up from the inbox")
    for f in files:
        status = f["status"]
        line = f"{f['name']}: {status}"
        if f.get("quarantined"):
            line += f", {f['quarantined']} record(s) quarantined (expected: the samples have bad rows)"
        step.lines.append(line)
        step.lines += [f"  wrote {o}" for o in f.get("outputs", [])]
        if f.get("rejects"):
            step.lines.append(f"  rejects {f['rejects']}")
        if status != "processed":
            step.ok = False
            step.lines.append(f"  {f.get('reason') or ''} -> {f.get('moved_to') or 'left in the inbox'}")


def _expect(step: Step, ok: bool, what: str) -> None:
    if not ok:
        step.ok = False
        step.lines.append(f"missing: {what}")


def run_demo(workdir: str | Path | None = None, prefect: bool = True) -> int:
    """Run the demo; exit status as in the module docstring."""
    from caselle_ic.config.model import load_config
    from caselle_ic.emulator.process import EmulatorProcess
    from caselle_ic.ops.prefect_server import ensure_server

    started = time.monotonic()
    wd = prepare_workdir(workdir)
    out = sys.stdout
    print(f"caselle-ic demo: work directory {wd}", file=out)
    server = None
    if prefect:
        print("  starting or finding the Prefect server ...", file=out, flush=True)
        server = ensure_server()
        how = f"started in {server.startup_seconds:.1f} s" if server.started else "already running"
        print(f"  Prefect server {server.api_url} ({how})", file=out)

    steps: list[Step] = []
    emu = EmulatorProcess(db=wd / "emulator.db")  # seeds itself from data/samples/statements.csv
    try:
        try:
            emu.start()
        except RuntimeError as exc:  # EmulatorError: did not start
            raise ServiceError(f"the Caselle Connect emulator did not start: {exc}") from None
        print(f"  Caselle Connect emulator {emu.base_url} (database {wd / 'emulator.db'})", file=out)
        os.environ.update(emu.env())  # the demo config reads its secrets from these
        cfg_path = emu.write_config(wd / "biller.toml")
        cfg = load_config(cfg_path)  # its secrets join the redaction the CLI installed
        staged = stage_inputs(cfg.paths.inbox)
        with _prefect_api(server.api_url if server else None):
            for kind in DEMO_INPUTS:
                if kind not in staged:
                    continue
                step = Step(kind)
                try:
                    _describe(_run_pickup(kind, cfg_path, prefect), step)
                except CaselleICError as exc:
                    step.ok, step.lines = False, [f"failed: {exc}"]
                steps.append(step)
            steps.append(_balance_step(cfg_path, wd, cfg.paths.outbox, prefect))
            steps.append(_audit_step(cfg_path, emu, cfg.paths.outbox, prefect))
        outbox = cfg.paths.outbox
        checks = Step("checks")
        _expect(checks, any(outbox.glob("INVCLD_CSLSTMT101_*.txt")), "the IC invoice file in the outbox")
        _expect(checks, any(outbox.glob("*_PYMT_*.TXT")), "a lockbox file in the outbox")
        receipts, papers = emu.receipts(), emu.paper_updates()
        _expect(checks, bool(receipts), "receipts in the emulator (Data Pump posting)")
        _expect(checks, bool(papers), "paper-statement updates in the emulator (paperless sync)")
        checks.lines.append(
            f"emulator holds {len(receipts)} receipt(s) and {len(papers)} paper-statement update(s)"
        )
        steps.append(checks)
    finally:
        with contextlib.suppress(OSError):
            shutil.copy(emu.log_path, wd / "emulator.log")
        emu.__exit__(None, None, None)

    for step in steps:
        print(f"  [{'ok' if step.ok else 'FAILED'}] {step.name}", file=out)
        for line in step.lines:
            print(f"      {line}", file=out)
    print(f"  outputs: {wd / 'outbox'}   inputs archived: {wd / 'archive'}", file=out)
    if server is not None:
        print(f"  Prefect UI: {server.ui_url}  (runs, logs, artifacts; the server keeps running:", file=out)
        print("              stop it with `prefect server stop`)", file=out)
    ok = all(s.ok for s in steps)
    print(f"demo {'OK' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s", file=out)
    return 0 if ok else 1


def _audit_step(cfg_path: Path, emu: Any, outbox: Path, prefect: bool) -> Step:
    """A clerk voids one receipt by hand in Caselle; the audit of that day must find it."""
    from caselle_ic.result import AuditCount

    step = Step("audit")
    live = [r for r in emu.receipts() if not r["voided"]]
    if not live:
        step.ok, step.lines = False, ["no receipt to void: the payments step posted nothing"]
        return step
    victim = live[0]
    emu.receipt_op("void", victim["receipt_number"])
    day = str(victim["receipt_date"])
    step.lines.append(f"voided receipt {victim['receipt_number']} of {day} by hand in the emulator")
    try:
        if prefect:
            from caselle_ic.flows.audit import daily_audit

            result = daily_audit(config=str(cfg_path), date=day, out_dir=str(outbox / "audit"))
        else:
            from caselle_ic.audit.pipeline import run_audit

            result = run_audit(cfg_path, day, outbox / "audit")
    except CaselleICError as exc:
        step.ok, step.lines = False, [f"failed: {exc}"]
        return step
    step.lines.append(result.summary_lines()[0])
    step.lines += [f"wrote {p}" for p in result.outputs]
    found = [d for d in result.discrepancies if d.kind == AuditCount.VOIDED_WITHOUT_REVERSAL]
    _expect(
        step,
        [d.receipt_number for d in found] == [str(victim["receipt_number"])],
        "the audit finding the hand-voided receipt (voided_without_reversal)",
    )
    return step


def _balance_step(cfg_path: Path, wd: Path, outbox: Path, prefect: bool) -> Step:
    step = Step("balance")
    accounts = wd / "accounts.txt"
    accounts.write_text("\n".join(DEMO_ACCOUNTS) + "\n", encoding="utf-8")
    try:
        if prefect:
            from caselle_ic.flows.balance import balance_refresh

            result = balance_refresh(accounts=str(accounts), config=str(cfg_path), out_dir=str(outbox))
        else:
            from caselle_ic.sync.balance import run_balance_refresh

            result = run_balance_refresh(accounts, cfg_path, outbox)
    except CaselleICError as exc:
        step.ok, step.lines = False, [f"failed: {exc}"]
        return step
    step.lines += [f"wrote {p}" for p in result.outputs]
    if result.n_quarantined:
        step.lines.append(f"{result.n_quarantined} account(s) quarantined -> {result.rejects_path}")
    _expect(step, bool(result.outputs), "the balances CSV")
    return step
