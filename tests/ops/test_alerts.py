"""Alerts and red-means-red against a real Prefect server (SPEC §11, issue 9 items 2-3).

One server, one ``caselle-ic serve`` process and one webhook receiver for the module; three
billers served from it:

* ``down-town``: Caselle down (its endpoints point at a closed port);
* ``hang-town``: Caselle answers after 10 minutes (the emulator's latency), run timeout 10 s;
* ``quiet-town``: expects a payments export by a deadline a minute or two ahead; none comes.

The notification block is a real ``CustomWebhookNotificationBlock`` posting to an
``http.server`` on 127.0.0.1. Latencies are printed (``-s`` shows them).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from caselle_ic.config.model import load_config
from caselle_ic.emulator.process import EmulatorProcess
from caselle_ic.ops.prefect_server import ensure_server, stop_server

from .conftest import SAMPLES
from .test_prefect_server import free_port

# one server, one `serve` and one receiver for the module, and the last test reads what the
# others sent: the module runs on one xdist worker
pytestmark = [
    pytest.mark.prefect,
    pytest.mark.slow,
    pytest.mark.xdist_group("alerts"),
    pytest.mark.timeout(600),  # waits on a real deadline and a real timeout on a busy machine
]

BLOCK = "caselle-test-hook"
TZ = ZoneInfo("America/Denver")
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


@dataclass
class Receiver:
    """Every POST body received, with its arrival time."""

    port: int
    got: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, needle: str, timeout: float = 180.0) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for when, body in self.got:
                    if needle in json.dumps(body):
                        return when, body
            time.sleep(0.5)
        raise AssertionError(f"no notification mentioning {needle!r} within {timeout:.0f} s: {self.got}")

    def count(self, needle: str) -> int:
        with self.lock:
            return sum(needle in json.dumps(body) for _, body in self.got)


def start_receiver() -> tuple[Receiver, ThreadingHTTPServer]:
    receiver = Receiver(free_port())

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.lock:
                receiver.got.append((time.time(), json.loads(body or b"{}")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server


@dataclass
class Stack:
    api_url: str
    receiver: Receiver
    emulator: EmulatorProcess
    configs: dict[str, Path]
    deadline: datetime
    env: dict[str, str]
    serve_log: Path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed when we leave: nothing listens there


def _biller(emu: EmulatorProcess, root: Path, name: str, extra: str, base_url: str | None = None) -> Path:
    path = emu.write_config(root / name / "biller.toml", biller={"name": name.replace("-", " ").title()})
    text = path.read_text(encoding="utf-8")
    if base_url:
        text = text.replace(emu.base_url, base_url)
    path.write_text(text + "\n" + extra, encoding="utf-8")
    return path


@contextmanager
def on_server(api_url: str) -> Iterator[None]:
    """Prefect calls made in this process go to ``api_url``.

    An environment variable is not enough: a worker that ran a ``prefect_harness`` test
    before holds that server in Prefect's settings context, which outranks the environment.
    Scoped to each use, so tests interleaved on this worker keep their own server.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}):
        yield


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("alerts")
    server = ensure_server(port=free_port(), home=root / "prefect-home", use_env=False)
    receiver, http = start_receiver()
    emu = EmulatorProcess(seed=SAMPLES / "statements.csv")
    emu.start()
    exported = {k: os.environ.get(k) for k in emu.env()}  # put back at the module's end
    serve: subprocess.Popen[bytes] | None = None
    try:
        env = {
            **os.environ,
            **emu.env(),
            "PREFECT_API_URL": server.api_url,
            "PREFECT_HOME": str(root / "prefect-home"),
            "PREFECT_RUNNER_POLL_FREQUENCY": "2",
            # the run after the hang settles what the hung one sent: 5 s of grace, not 90
            "CASELLE_IC_SETTLE_GRACE": "5",
        }
        os.environ.update(emu.env())
        from prefect.blocks.notifications import CustomWebhookNotificationBlock

        with on_server(server.api_url):
            # headers and cookies default to None, but Field(None, ...) is a positional default,
            # which mypy's dataclass_transform support does not see
            CustomWebhookNotificationBlock(  # type: ignore[call-arg]
                name="caselle-test",
                url=f"http://127.0.0.1:{receiver.port}/hook",
                json_data={"subject": "{{subject}}", "body": "{{body}}"},
            ).save(BLOCK, overwrite=True)

        # the deadline: the first whole minute at least 100 s from now (serve needs to be up)
        deadline = (datetime.now(TZ) + timedelta(seconds=160)).replace(second=0, microsecond=0)
        quick = '[schedule]\npayments = ""\ninvoices = ""\npaperless = ""\nretries = 0\n'
        alerts = f'[alerts]\nnotify = "{BLOCK}"\n'
        configs = {
            "down-town": _biller(
                emu, root, "down-town", quick + alerts, base_url=f"http://127.0.0.1:{_closed_port()}"
            ),
            "hang-town": _biller(emu, root, "hang-town", quick + "timeout = 10\n" + alerts),
            "quiet-town": _biller(
                emu,
                root,
                "quiet-town",
                quick + alerts + f'expect = {{ payments = "{deadline.minute} {deadline.hour} * * *" }}\n',
            ),
        }
        serve_log = root / "serve.log"
        with open(serve_log, "wb") as out:
            serve = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "caselle-ic"),
                    "serve",
                    *[a for p in configs.values() for a in ("--config", str(p))],
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        yield Stack(server.api_url, receiver, emu, configs, deadline, env, serve_log)
    finally:
        if serve is not None:
            serve.terminate()
            try:
                serve.wait(30)
            except subprocess.TimeoutExpired:
                serve.kill()
        http.shutdown()
        emu.stop()
        stop_server(server)
        # a test this worker runs after this module must not see the emulator's secrets
        for k, v in exported.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def _client_call(api_url: str, fn: Any) -> Any:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api=api_url) as client:
        return await fn(client)


def run_and_wait(stack: Stack, deployment: str, timeout: float = 240.0) -> Any:
    """Start a deployment run (taken by the serve process) and wait for its final state."""

    async def go(client: Any) -> Any:
        start = time.monotonic()
        while True:  # serve registers its deployments a few seconds after it starts
            try:
                dep = await client.read_deployment_by_name(deployment)
                break
            except Exception:
                if time.monotonic() - start > 120:
                    log = stack.serve_log.read_text()
                    raise AssertionError(f"{deployment} never appeared; serve log:\n{log}") from None
                await asyncio.sleep(1)
        run = await client.create_flow_run_from_deployment(dep.id)
        while time.monotonic() - start < timeout:
            run = await client.read_flow_run(run.id)
            if run.state is not None and run.state.type.value in FINAL:
                return run
            await asyncio.sleep(1)
        raise AssertionError(f"{deployment} run {run.name} not final after {timeout} s: {run.state}")

    return asyncio.run(_client_call(stack.api_url, go))


def drop_export(cfg_path: Path) -> Path:
    cfg = load_config(cfg_path)
    cfg.paths.inbox.mkdir(parents=True, exist_ok=True)
    dest = cfg.paths.inbox / "payments.csv"
    dest.write_bytes((SAMPLES / "payments.csv").read_bytes())
    old = time.time() - 120  # settled: older than the pickup's settle time
    os.utime(dest, (old, old))
    return dest


def account_numbers() -> set[str]:
    with open(SAMPLES / "payments.csv", encoding="utf-8", newline="") as fh:
        return {row["account_number"] for row in csv.DictReader(fh) if row["account_number"]}


def assert_clean(body: dict[str, Any], stack: Stack) -> None:
    text = json.dumps(body)
    for secret in stack.emulator.env().values():
        assert secret not in text
    leaked = {a for a in account_numbers() if re.search(rf"(?<!\d){re.escape(a)}(?!\d)", text)}
    assert not leaked


def test_caselle_down_run_is_failed_keeps_the_export_and_alerts_once(stack: Stack) -> None:
    export = drop_export(stack.configs["down-town"])
    run = run_and_wait(stack, "payments-inbox/down-town")
    assert run.state.type.value == "FAILED", run.state
    assert export.exists()  # kept in the inbox: the next run posts what is pending
    when, body = stack.receiver.wait_for(run.name)
    latency = when - run.state.timestamp.timestamp()
    print(f"\nalert latency, Caselle down (Failed -> notification received): {latency:.1f} s")
    assert "down-town" in body["body"] and "payments-inbox" in body["body"]
    assert "Failed" in body["subject"]
    assert "did not complete" in body["body"] and "could not be reached" in body["body"]
    assert "see: None" not in body["body"]
    assert str(run.id) in body["body"]
    assert_clean(body, stack)


def test_a_hung_run_times_out_alerts_and_the_next_run_completes(stack: Stack) -> None:
    export = drop_export(stack.configs["hang-town"])
    stack.emulator.faults(latency_ms=600_000)  # Caselle hangs
    run = run_and_wait(stack, "payments-inbox/hang-town")
    assert run.state.name == "TimedOut", run.state
    assert "timeout of 10 s" in (run.state.message or "")
    when, body = stack.receiver.wait_for(run.name)
    print(
        f"\nalert latency, TimedOut -> notification received: {when - run.state.timestamp.timestamp():.1f} s"
    )
    assert "TimedOut" in body["body"] and "hang-town" in body["body"]
    assert_clean(body, stack)
    assert export.exists()  # not moved to error: the claim was released

    stack.emulator.restart()  # Caselle is back (the restart drops the latency and the hung requests)
    # read at run time from the biller's file: room for a normal run on a busy machine
    path = stack.configs["hang-town"]
    path.write_text(
        path.read_text(encoding="utf-8").replace("timeout = 10", "timeout = 600"), encoding="utf-8"
    )
    again = run_and_wait(stack, "payments-inbox/hang-town")
    assert again.state.type.value == "COMPLETED", again.state
    assert not export.exists()
    cfg = load_config(stack.configs["hang-town"])
    assert [p.name for p in cfg.paths.archive.iterdir()] == ["payments.csv"]


def test_an_absent_export_alerts_once_after_its_deadline(stack: Stack) -> None:
    # the other tests ran meanwhile: the deadline may be past and the alert already in
    wait = max((stack.deadline - datetime.now(TZ)).total_seconds(), 0)
    when, body = stack.receiver.wait_for("input missing", timeout=wait + 180)
    latency = when - stack.deadline.timestamp()
    print(f"\nalert latency, deadline -> notification received: {latency:.1f} s")
    assert latency < 120
    assert "quiet-town" in body["body"] and "input-deadline" in body["body"]
    assert "payments" in body["subject"] and "no payments input" in body["body"]
    assert_clean(body, stack)


def test_a_biller_the_fan_out_cannot_start_is_alerted(stack: Stack) -> None:
    """The all-billers run belongs to no biller: a run it could not start must reach the
    biller's own alert, else nobody hears that the biller's input waits."""
    from caselle_ic.flows.ops import all_billers

    async def drop(client: Any) -> None:  # the biller's adjustments deployment is gone
        for _ in range(120):  # serve registers its deployments a few seconds after it starts
            try:
                dep = await client.read_deployment_by_name("adjustments-inbox/hang-town")
                break
            except Exception:
                await asyncio.sleep(1)
        else:
            raise AssertionError(
                f"adjustments-inbox/hang-town never appeared:\n{stack.serve_log.read_text()}"
            )
        await client.delete_deployment(dep.id)

    asyncio.run(_client_call(stack.api_url, drop))
    start = time.time()
    with on_server(stack.api_url), pytest.raises(RuntimeError, match="hang-town"):
        asyncio.run(all_billers(kind="adjustments", period="2026-12-03", billers=["hang-town"]))
    when, body = stack.receiver.wait_for("run not started", timeout=120)
    print(f"\nalert latency, fan-out failed -> notification received: {when - start:.1f} s")
    assert "hang-town" in body["body"] and "adjustments" in body["subject"]
    assert "all-billers could not start adjustments-inbox/hang-town for 2026-12-03" in body["body"]
    assert stack.receiver.count("run not started") == 1
    assert_clean(body, stack)


def test_redeploying_creates_no_duplicates_and_remove_cleans_up(stack: Stack) -> None:
    from caselle_ic.ops.alerts import ensure_alerts
    from caselle_ic.ops.deploy import remove_billers

    cfgs = [load_config(p) for p in stack.configs.values()]
    with on_server(stack.api_url):
        report = ensure_alerts(cfgs)  # serve already deployed them once
    assert report.created == [] and report.updated == [] and len(report.unchanged) == 12

    async def ours(client: Any) -> list[str]:
        return sorted(a.name for a in await client.read_automations() if a.name.startswith("caselle-ic/"))

    names = asyncio.run(_client_call(stack.api_url, ours))
    assert len(names) == 12 and len(set(names)) == 12

    # each alert arrived exactly once (checked last: the others had time to repeat)
    assert stack.receiver.count("payments-inbox/down-town") == 1
    assert stack.receiver.count("input missing") == 1

    with on_server(stack.api_url):
        lines = remove_billers([stack.configs["quiet-town"]])
    assert "automations removed: caselle-ic/quiet-town/run-failed" in " ".join(lines)
    assert any("input-deadline/quiet-town" in line for line in lines)
    left = asyncio.run(_client_call(stack.api_url, ours))
    assert len(left) == 8 and not [n for n in left if "quiet-town" in n]
