"""Run the emulator as a real subprocess: for tests, the demo and benchmarks.

    with EmulatorProcess() as emu:
        cfg_path = emu.write_config(tmp / "biller.toml")
        os.environ.update(emu.env())
        ...
        emu.faults(fail_next=3)

The process is the installed ``caselle-ic emulator`` console script of the running venv,
on a free port, with a temporary SQLite file and a fresh random secret.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from caselle_ic.emulator import SECRET_ENV
from caselle_ic.resources import SAMPLES

SAMPLE_BILLER = SAMPLES / "biller.toml"
GRAPHQL_PATH = "/tp/api/cr0/graphql"
#: The env vars the sample biller config reads its secrets from.
CONFIG_SECRET_ENVS = ("CASELLE_RTDR_KEY", "CASELLE_DP_PASSWORD", "CASELLE_CLIENT_SECRET")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmulatorError(RuntimeError):
    """The emulator process did not start or stopped unexpectedly."""

    def __init__(self, message: str, *, exited: bool = False):
        super().__init__(message)
        self.exited = exited


class EmulatorProcess:
    """A ``caselle-ic emulator`` subprocess with a tmp database and a random secret."""

    def __init__(
        self,
        *,
        db: str | Path | None = None,
        seed: str | Path | None = None,
        token_ttl: int = 3600,
        port: int | None = None,
        latency_ms: int = 0,
        startup_timeout: float = 30.0,
        secret: str | None = None,
        schema_variant: str | None = None,
    ):
        self._tmp = Path(tempfile.mkdtemp(prefix="caselle-emu-"))
        self.db = Path(db) if db is not None else self._tmp / "emulator.db"
        self.seed = Path(seed) if seed is not None else None
        self.token_ttl = token_ttl
        self.latency_ms = latency_ms
        self.schema_variant = schema_variant
        self._auto_port = port is None
        self._started = False
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.secret = secret or secrets.token_urlsafe(24)
        self.log_path = self._tmp / "emulator.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = requests.Session()
        self._http.auth = ("admin", self.secret)

    def __repr__(self) -> str:  # never show the secret
        return f"EmulatorProcess(base_url={self.base_url!r}, db={str(self.db)!r})"

    # -- addresses -------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graphql_url(self) -> str:
        return self.base_url + GRAPHQL_PATH

    def graphql_url_under(self, prefix: str) -> str:
        """The same API under a path prefix, e.g. a "secondary" endpoint: ``/secondary``."""
        return self.base_url + "/" + prefix.strip("/") + GRAPHQL_PATH

    @property
    def token_url(self) -> str:
        return self.base_url + "/oauth/token"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # -- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self._http.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _command(self) -> list[str]:
        exe = Path(sys.executable).parent / "caselle-ic"
        cmd = [
            str(exe),
            "emulator",
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            "--token-ttl",
            str(self.token_ttl),
        ]
        if self.seed is not None:
            cmd += ["--seed", str(self.seed)]
        if self.latency_ms:
            cmd += ["--latency-ms", str(self.latency_ms)]
        if self.schema_variant:
            cmd += ["--schema-variant", self.schema_variant]
        return cmd

    def start(self) -> None:
        """Start and wait until it answers. A free port taken by someone else in the
        meantime is retried on another port (only before the first start)."""
        for attempt in range(3):
            try:
                self._start_once()
                self._started = True
                return
            except EmulatorError as exc:
                if not (exc.exited and self._auto_port and not self._started and attempt < 2):
                    raise
                self.port = free_port()

    def _start_once(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env[SECRET_ENV] = self.secret
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                self._command(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        finally:
            log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                status = self._proc.returncode
                raise EmulatorError(
                    f"the emulator exited with status {status} while starting:\n{self.log_tail()}",
                    exited=True,
                )
            try:
                r = self._http.get(self.base_url + "/_admin/state", timeout=1)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise EmulatorError(
            f"the emulator did not answer within {self.startup_timeout} s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> None:
        """Stop and start again on the same port, database and secret."""
        self.stop()
        self.start()

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    # -- admin -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        r = self._http.get(self.base_url + "/_admin/state", timeout=10)
        r.raise_for_status()
        return dict(r.json())

    def faults(self, **changes: Any) -> dict[str, Any]:
        """Set faults: latency_ms, fail_next, drop_after_commit, internal_after_commit,
        down_prefixes, unauthenticated_as ("http"|"graphql"), token_ttl, reset=True."""
        r = self._http.post(self.base_url + "/_admin/faults", json=changes, timeout=10)
        if r.status_code != 200:
            raise EmulatorError(f"faults refused: {r.text}")
        return dict(r.json())

    def reset(self) -> dict[str, Any]:
        """Back to a new database with the seed, faults and counters of the start
        (``POST /_admin/reset``); the process, port and secret stay."""
        r = self._http.post(self.base_url + "/_admin/reset", timeout=30)
        r.raise_for_status()
        return dict(r.json())

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def reset_faults(self) -> dict[str, Any]:
        return self.faults(reset=True)

    def expire_tokens(self) -> int:
        r = self._http.post(self.base_url + "/_admin/expire-tokens", timeout=10)
        r.raise_for_status()
        return int(r.json()["expired"])

    def paper_updates(self) -> list[dict[str, Any]]:
        r = self._http.get(self.base_url + "/_admin/paper-updates", timeout=10)
        r.raise_for_status()
        return list(r.json())

    def receipts(self) -> list[dict[str, Any]]:
        r = self._http.get(self.base_url + "/_admin/receipts", timeout=10)
        r.raise_for_status()
        return list(r.json())

    def receipt_op(self, op: str, receipt_number: int, **args: Any) -> dict[str, Any]:
        """A hand edit of a receipt (emulator/admin.py): ``void`` (date=), ``change``
        (amount=, accountNumber=, distributionCode=, paymentCode=, receiptDate=),
        ``duplicate``, ``delete``."""
        r = self._http.post(
            f"{self.base_url}/_admin/receipts/{op}",
            json={"receiptNumber": receipt_number, **args},
            timeout=10,
        )
        if r.status_code != 200:
            raise EmulatorError(f"receipt {op} refused: {r.text}")
        return dict(r.json())

    def requests(self) -> dict[str, Any]:
        """``{"totals": {"query": n, "mutation": n, ...}, "requests": [...]}``."""
        r = self._http.get(self.base_url + "/_admin/requests", timeout=10)
        r.raise_for_status()
        return dict(r.json())

    # -- configuration for the integration ---------------------------------------------
    def env(self) -> dict[str, str]:
        """Env vars the sample biller config reads its secrets from, set to this emulator's."""
        return dict.fromkeys(CONFIG_SECRET_ENVS, self.secret)

    def write_config(self, path: str | Path, **overrides: Any) -> Path:
        """Write a biller TOML (the sample biller) whose endpoints point at this emulator.

        Overrides, all optional:
        ``settings={"88": url, "126": None}`` (None removes a setting), ``oauth=False``
        (drop 126/127: HTTP basic), ``biller={...}``, ``paths={...}`` (default: folders
        beside ``path``), ``extract={...}``, ``invoice_file={...}``, ``lockbox={...}``.
        """
        path = Path(path)
        data = tomllib.loads(SAMPLE_BILLER.read_text(encoding="utf-8"))
        settings: dict[str, Any] = {}
        for key, value in data["settings"].items():
            if isinstance(value, str) and value.startswith("http://127.0.0.1:8765"):
                value = self.base_url + value[len("http://127.0.0.1:8765") :]
            settings[str(key)] = value
        if overrides.pop("oauth", True) is False:
            settings.pop("126", None)
            settings.pop("127", None)
        for key, value in (overrides.pop("settings", None) or {}).items():
            if value is None:
                settings.pop(str(key), None)
            else:
                settings[str(key)] = value
        data["settings"] = settings
        base = path.parent
        data["paths"] = {
            name: str(base / name) for name in ("inbox", "outbox", "archive", "error", "state")
        } | dict(overrides.pop("paths", None) or {})
        for section in ("biller", "extract", "invoice_file", "lockbox"):
            if section in overrides:
                data[section] = {**data.get(section, {}), **overrides.pop(section)}
        if overrides:
            raise TypeError(f"unknown write_config override(s): {', '.join(overrides)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_toml(data), encoding="utf-8")
        return path


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dump_toml(data: dict[str, Any]) -> str:
    """A two-level TOML writer (tables of scalars and inline tables): enough for a biller."""
    lines = ["# written by caselle_ic.emulator.process.EmulatorProcess.write_config"]
    for table, body in data.items():
        lines += ["", f"[{table}]"]
        lines += [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


__all__ = ["CONFIG_SECRET_ENVS", "EmulatorError", "EmulatorProcess", "dump_toml", "free_port"]
