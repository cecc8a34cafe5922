"""The local Prefect server of the demo: started detached, reused, stopped — for real."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from caselle_ic.errors import ServiceError
from caselle_ic.ops.prefect_server import (
    PID_FILE,
    ensure_server,
    is_healthy,
    stop_server,
    wait_healthy,
)

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nothing_answers_on_a_free_port() -> None:
    port = free_port()
    assert not is_healthy(f"http://127.0.0.1:{port}/api", timeout=0.5)
    with pytest.raises(ServiceError, match="did not answer"):
        wait_healthy(f"http://127.0.0.1:{port}/api", timeout=0.5)


def test_server_outlives_its_starter_is_reused_and_stops(tmp_path: Path) -> None:
    home, port = tmp_path / "prefect-home", free_port()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    # 1. a short-lived process starts it (as `caselle-ic demo` does) and exits
    code = (
        "import json, sys\n"
        "from caselle_ic.ops.prefect_server import ensure_server\n"
        f"h = ensure_server(port={port}, home={str(home)!r}, use_env=False)\n"
        "print(json.dumps({'pid': h.pid, 'started': h.started, 'seconds': h.startup_seconds}))\n"
    )
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"prefect server start: {info['seconds']:.1f} s to healthy "
        f"({time.monotonic() - t0:.1f} s with the starter)"
    )
    assert info["started"] is True
    api = f"http://127.0.0.1:{port}/api"
    assert is_healthy(api)  # still up after its starter exited
    assert (home / PID_FILE).read_text() == str(info["pid"])
    assert (home / "prefect.db").exists()  # SQLite under PREFECT_HOME
    log = (home / "caselle-ic-server.log").read_text()
    assert str(port) in log

    # 2. a second call reuses it instead of starting another one
    again = ensure_server(port=port, home=home, use_env=False)
    assert (again.started, again.api_url, again.pid) == (False, api, None)
    assert again.ui_url == f"http://127.0.0.1:{port}/runs"

    # 3. Prefect's own `prefect server stop` stops it (the pid file is the one it reads)
    stop = subprocess.run(
        [sys.executable, "-m", "prefect", "server", "stop"],
        capture_output=True,
        text=True,
        env={**env, "PREFECT_HOME": str(home)},
        timeout=60,
    )
    assert stop.returncode == 0, stop.stderr
    deadline = time.monotonic() + 30
    while is_healthy(api, timeout=0.5) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not is_healthy(api, timeout=0.5)

    # 4. start in-process, stop with stop_server(); a stale pid file is cleaned up first
    (home / PID_FILE).write_text("999999999")
    handle = ensure_server(port=port, home=home, use_env=False, log_path=tmp_path / "server.log")
    print(f"prefect server restart: {handle.startup_seconds:.1f} s to healthy")
    assert handle.started and is_healthy(api)
    assert stop_server(handle) is True
    assert not is_healthy(api, timeout=0.5)
    assert not (home / PID_FILE).exists()
    assert handle.process is not None and handle.process.returncode is not None
    assert stop_server(home=home) is False  # nothing left to stop


def test_a_port_taken_by_something_else_is_reported(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServiceError, match="exited with status") as err:
            ensure_server(port=port, home=tmp_path / "home", use_env=False, timeout=120)
    assert "log" in str(err.value)
    assert not (tmp_path / "home" / PID_FILE).exists()


@pytest.mark.postgres
def test_server_on_postgresql(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented path when one machine is outgrown: the server's database on PostgreSQL."""
    import sqlalchemy as sa

    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("drop database if exists caselle_ic_prefect_test with (force)"))
        conn.execute(sa.text("create database caselle_ic_prefect_test"))
    admin.dispose()
    url = sa.make_url(pg_url).set(drivername="postgresql+asyncpg", database="caselle_ic_prefect_test")
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", url.render_as_string(hide_password=False))
    handle = ensure_server(port=free_port(), home=tmp_path / "home", use_env=False)
    try:
        print(f"prefect server on PostgreSQL: {handle.startup_seconds:.1f} s to healthy")
        code = (
            "from prefect import flow\n"
            "@flow(name='pg-check')\n"
            "def f() -> int:\n"
            "    return 42\n"
            "assert f() == 42\n"
        )
        env = {**os.environ, "PREFECT_API_URL": handle.api_url}
        env.pop("PREFECT_API_DATABASE_CONNECTION_URL")
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr[-2000:]
    finally:
        stop_server(handle)
    engine = sa.create_engine(pg_url.rsplit("/", 1)[0] + "/caselle_ic_prefect_test")
    with engine.connect() as conn:
        names = conn.execute(sa.text("select name from flow")).scalars().all()
    engine.dispose()
    assert "pg-check" in names  # the run was stored in PostgreSQL, not in SQLite
    assert not (tmp_path / "home" / "prefect.db").exists()
