"""A local Prefect server for the demo and for one-machine operation.

:func:`ensure_server` reuses a server that already answers (``PREFECT_API_URL``, or
``http://127.0.0.1:4200/api``) and otherwise starts ``prefect server start`` **detached**:
in its own session (so Ctrl-C in the terminal that ran the demo does not stop it), with
stdin closed and its output in a log file, so it keeps running after the demo and the
runs stay visible in the UI. Its database is SQLite under ``PREFECT_HOME`` (default
``~/.prefect``) and analytics are off.

The server's process id is written to ``$PREFECT_HOME/server.pid`` — the file Prefect's own
``prefect server stop`` reads — so either :func:`stop_server` or ``prefect server stop``
stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from caselle_ic.errors import ServiceError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
PID_FILE = "server.pid"  # the name `prefect server stop` reads in PREFECT_HOME
INFO_FILE = "caselle-ic-server.json"


@dataclass
class ServerHandle:
    api_url: str  # http://127.0.0.1:4200/api
    pid: int | None  # None when we reuse a server we did not start
    started: bool  # True when this call started it
    home: Path | None
    log_path: Path | None
    startup_seconds: float = 0.0
    process: subprocess.Popen[bytes] | None = None

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api") + "/runs"


def api_url_for(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
    return f"http://{host}:{port}/api"


def prefect_home(home: str | Path | None = None) -> Path:
    if home is not None:
        return Path(home).expanduser().resolve()
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser().resolve()


def is_healthy(api_url: str, timeout: float = 2.0) -> bool:
    """True when ``GET {api_url}/health`` answers 200 ``true``."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as resp:  # noqa: S310
            return resp.status == 200 and json.loads(resp.read() or b"null") is True
    except (OSError, ValueError, urllib.error.URLError):
        return False


def _log_tail(path: Path | None, lines: int = 20) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


def wait_healthy(
    api_url: str,
    *,
    timeout: float = 120.0,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> float:
    """Wait until the server answers; seconds waited. ServiceError on timeout or exit."""
    start = time.monotonic()
    while True:
        if is_healthy(api_url):
            return time.monotonic() - start
        if process is not None and process.poll() is not None:
            raise ServiceError(
                f"the Prefect server exited with status {process.returncode} before answering at "
                f"{api_url}; its log ({log_path}) ends with:\n{_log_tail(log_path)}"
            )
        if time.monotonic() - start > timeout:
            raise ServiceError(
                f"the Prefect server did not answer at {api_url}/health within {timeout:.0f} s; "
                f"see its log {log_path}"
            )
        time.sleep(0.25)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap our own child if it exited
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure_server(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    home: str | Path | None = None,
    log_path: str | Path | None = None,
    timeout: float = 120.0,
    use_env: bool = True,
) -> ServerHandle:
    """A healthy Prefect server: the configured or running one, else a new detached one.

    ``use_env``: reuse ``PREFECT_API_URL`` when it is set and answers. The caller points
    its Prefect client at ``handle.api_url`` (``PREFECT_API_URL``).
    """
    configured = os.environ.get("PREFECT_API_URL")
    if use_env and configured and is_healthy(configured):
        return ServerHandle(configured.rstrip("/"), None, False, None, None)
    url = api_url_for(host, port)
    home_dir = prefect_home(home)
    if is_healthy(url):
        return ServerHandle(url, None, False, home_dir, None)

    home_dir.mkdir(parents=True, exist_ok=True)
    pid_file = home_dir / PID_FILE
    old = _read_pid(home_dir)
    if old is not None and not _alive(old):
        pid_file.unlink(missing_ok=True)  # left by a server that died (reboot, kill -9)
    elif old is not None:
        raise ServiceError(
            f"a Prefect server process ({old}, from {pid_file}) is running but does not answer at "
            f"{url}; stop it with `prefect server stop` (PREFECT_HOME={home_dir}) or pick another port"
        )
    log = Path(log_path) if log_path else home_dir / "caselle-ic-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        {
            "PREFECT_HOME": str(home_dir),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_API_HOST": host,
            "PREFECT_SERVER_API_PORT": str(port),
        }
    )
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]
    started = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(home_dir),
            start_new_session=True,  # its own session: survives the demo and its terminal
            close_fds=True,
        )
    pid_file.write_text(str(proc.pid), encoding="ascii")
    (home_dir / INFO_FILE).write_text(
        json.dumps({"pid": proc.pid, "api_url": url, "log": str(log)}), encoding="utf-8"
    )
    handle = ServerHandle(url, proc.pid, True, home_dir, log, process=proc)
    try:
        wait_healthy(url, timeout=timeout, process=proc, log_path=log)
    except ServiceError:
        stop_server(handle)
        raise
    handle.startup_seconds = time.monotonic() - started
    return handle


def _read_pid(home_dir: Path) -> int | None:
    try:
        return int((home_dir / PID_FILE).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def stop_server(
    handle: ServerHandle | None = None, *, home: str | Path | None = None, timeout: float = 30.0
) -> bool:
    """Stop a server started by :func:`ensure_server` (or found in ``$PREFECT_HOME/server.pid``).

    SIGTERM to its process group, then SIGKILL after ``timeout``. Returns True when a
    process was stopped. A server this module did not start (no pid) is left alone.
    """
    home_dir = handle.home if handle is not None and handle.home is not None else prefect_home(home)
    pid = handle.pid if handle is not None else _read_pid(home_dir)
    if pid is None:
        return False
    stopped = False
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)  # start_new_session: its pgid is its pid
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            if handle is not None and handle.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    handle.process.wait(0.2)
            else:
                time.sleep(0.2)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            if handle is not None and handle.process is not None:
                handle.process.wait(10)
        stopped = True
    if _read_pid(home_dir) == pid:
        (home_dir / PID_FILE).unlink(missing_ok=True)
        (home_dir / INFO_FILE).unlink(missing_ok=True)
    return stopped
