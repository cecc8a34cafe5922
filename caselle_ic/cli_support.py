"""What every ``caselle-ic`` command shares (SPEC §10, §11 "Every command").

* :func:`run_command` is the process edge: logging (``--log-level``, ``--log-format``),
  log redaction, the biller file loaded **once** and handed to the command, the exit
  status, ``--json``, and the exit-3 report of an unexpected exception.
* :class:`Report` is what a command that is not a pipeline run returns; a pipeline run
  returns its :class:`~caselle_ic.result.RunResult`.
* :func:`progress_display` shows the step and the posting progress on stderr, only when
  stderr is a terminal (rich, which Prefect already brings).

Exit statuses: 0 accepted; 1 written, some records quarantined; 2 nothing written / bad
arguments, configuration or input; 3 internal error (one redacted line on stderr naming
the step and the log file; the redacted traceback in ``[paths].state/logs/``); 130
interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from caselle_ic import env
from caselle_ic.errors import CaselleICError
from caselle_ic.failpoints import failpoint

EXIT_STATUSES = """exit status:
  0    everything was accepted
  1    output was written and some records were quarantined (see the summary)
  2    nothing written: bad arguments, bad configuration, unreadable input,
       or (payments) Caselle Connect could not be reached
  3    internal error: one line on stderr names the step and the log file holding
       the traceback ([paths].state/logs/, redacted)
  130  interrupted"""

INTERNAL_ERROR = 3


@dataclass
class Report:
    """A command's outcome that is not a pipeline run (balance, inbox, deployments ...)."""

    exit_status: int = 0
    payload: dict[str, Any] = field(default_factory=dict)  # the --json object (less exit_status)
    stdout: str = ""  # printed as is without --json
    stderr: list[str] = field(default_factory=list)  # lines, without --json


Outcome = Any  # RunResult | Report | int


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("caselle-ic")
    except PackageNotFoundError:  # pragma: no cover - a checkout without the package installed
        return "unknown"


# -- arguments every command shares ------------------------------------------------------------------------
def config_arg(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    p.add_argument(
        "--config",
        required=True,
        type=Path,
        metavar="BILLER.toml",
        action="append" if many else "store",
        help="the biller file (SPEC §1)" + ("; repeat for several billers" if many else ""),
    )


def out_arg(p: argparse.ArgumentParser, *, required: bool = True, help: str = "where outputs go") -> None:
    p.add_argument("--out", required=required, type=Path, metavar="DIR", help=help)


def now_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--now", metavar="YYYY-MM-DDTHH:MM:SS", help="pin the run clock (biller local time)")


def ledger_arg(p: argparse.ArgumentParser, help: str = "SQLAlchemy URL of the ledger database") -> None:
    p.add_argument("--ledger", metavar="URL", help=help + " (default: SQLite in [paths].state)")


def common_options(p: argparse.ArgumentParser) -> None:
    """The options every command takes (SPEC §11 "Every command")."""
    p.add_argument("--version", action=VersionAction)
    p.add_argument("--json", action="store_true", help="print the run's summary as one JSON object on stdout")
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log to stderr from this level (direct runs; redacted)",
    )
    p.add_argument("--log-format", choices=["text", "json"], help="log lines as text (default) or JSON")


class VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked (keeps --help fast)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version and exit"
        )

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(f"caselle-ic {version()}")
        parser.exit(0)


# -- logging ---------------------------------------------------------------------------------
class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str | None, fmt: str | None) -> None:
    """Log to stderr with timestamps, level and logger, when the user asked for it.

    Without ``--log-level`` / ``--log-format`` nothing is configured: warnings reach stderr
    as bare lines, as they always did (the command outputs stay byte-identical).
    """
    from caselle_ic.logsafe import install_redaction

    if level or fmt:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            JsonFormatter()
            if fmt == "json"
            else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(level or "WARNING")
    install_redaction()  # after the handler: it carries the filter too


# -- exit status 3 ------------------------------------------------------------------------------
def fallback_log_dir() -> Path:
    """Where tracebacks go when no biller file could be loaded (docs/operations.md)."""
    configured = env.text("CASELLE_IC_LOG_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "caselle-ic" / "logs"


def log_dir_for(args: argparse.Namespace, cfg: Any) -> Path:
    """``[paths].state/logs`` of the biller (the first, for several), else the fallback."""
    if cfg is not None:
        return Path(cfg.paths.state) / "logs"
    configs = getattr(args, "config", None)
    first = configs[0] if isinstance(configs, list) and configs else configs
    if isinstance(first, Path):
        with contextlib.suppress(Exception):
            from caselle_ic.config.model import load_config

            return Path(load_config(first, resolve_secrets=False).paths.state) / "logs"
    return fallback_log_dir()


def _where(exc: BaseException) -> str:
    """The innermost frame of our own code: ``payments/posting.py:478 in _post_batch``."""
    frames = traceback.extract_tb(exc.__traceback__)
    plumbing = ("failpoints.py", "steps.py")  # where a fault is raised, not where it happened
    ours = [f for f in frames if "caselle_ic" in f.filename and not f.filename.endswith(plumbing)]
    if not ours:
        return ""
    f = ours[-1]
    path = f.filename.replace(os.sep, "/")
    short = path.split("caselle_ic/")[-1] if "caselle_ic/" in path else Path(path).name
    return f"{short}:{f.lineno} in {f.name}"


def report_internal_error(command: str, exc: BaseException, log_dir: Path, argv: list[str]) -> str:
    """Write the redacted traceback under ``log_dir``; return the one redacted stderr line."""
    from caselle_ic.logsafe import redact
    from caselle_ic.steps import current_step

    step = current_step() or command
    where = _where(exc)
    now = datetime.now(UTC)
    text = (
        f"caselle-ic {version()} {command}: internal error at {now.isoformat(timespec='seconds')}\n"
        f"argv: {' '.join(argv)}\nstep: {step}\nwhere: {where}\npid: {os.getpid()}\n\n"
        + "".join(traceback.format_exception(exc))
    )
    path = log_dir / f"caselle-ic-{now:%Y%m%dT%H%M%SZ}-{command}-{os.getpid()}.log"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(redact(text), encoding="utf-8")
        where_to = str(path)
    except OSError as write_error:  # the state directory is unwritable: say so, keep one line
        where_to = f"(not written: {log_dir}: {write_error.strerror})"
    message = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    at = f" ({where})" if where else ""
    return redact(
        f"caselle-ic {command}: internal error in step {step}{at}: {message}; full traceback: {where_to}"
    )


# -- progress ----------------------------------------------------------------------------------
@contextlib.contextmanager
def progress_display(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """On a terminal: a transient status line on stderr with the current step, and a bar
    while receipts are posted. Yields the ``progress(done, total)`` callback (None: off)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    from caselle_ic.steps import add_listener

    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("starting", total=None)

    def on_step(name: str) -> None:
        # drawn now, not at the next tick: a step shorter than the 0.1 s refresh still shows
        bar.update(task, description=name, refresh=True)

    def on_progress(done: int, total: int) -> None:
        bar.update(task, description="posting receipts", completed=done, total=max(total, 1))

    remove = add_listener(on_step)
    with bar:
        try:
            yield on_progress
        finally:
            remove()


# -- the edge ----------------------------------------------------------------------------------
def _emit(outcome: Outcome, args: argparse.Namespace) -> int:
    from caselle_ic.result import RunResult

    as_json = bool(getattr(args, "json", False))
    if isinstance(outcome, RunResult):
        if outcome.nothing_written:  # an error line, as for any other exit 2
            print(f"caselle-ic {args.command}: error: {outcome.error}", file=sys.stderr)
        if as_json:
            print(json.dumps({"command": args.command, **outcome.to_json()}, ensure_ascii=False))
        elif not outcome.nothing_written:
            for line in outcome.summary_lines():
                print(line, file=sys.stderr)
        return int(outcome.exit_status)
    if isinstance(outcome, Report):
        if as_json:
            print(
                json.dumps({"command": args.command, "exit_status": outcome.exit_status, **outcome.payload})
            )
        else:
            if outcome.stdout:
                sys.stdout.write(outcome.stdout)
            for line in outcome.stderr:
                print(line, file=sys.stderr)
        return outcome.exit_status
    status = int(outcome or 0)
    if as_json:
        print(json.dumps({"command": args.command, "exit_status": status}))
    return status


def _fail(args: argparse.Namespace, status: int, line: str, **extra: Any) -> int:
    print(line, file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"command": args.command, "exit_status": status, "error": line, **extra}))
    return status


def run_command(args: argparse.Namespace, argv: list[str]) -> int:
    """Run the parsed command at the process edge; always returns an exit status."""
    configure_logging(getattr(args, "log_level", None), getattr(args, "log_format", None))
    cfg = None
    try:
        config = getattr(args, "config", None)
        if isinstance(config, Path) and getattr(args, "loads_config", True):
            from caselle_ic.config.model import load_config

            cfg = load_config(config)  # once per run; passed down from here
        failpoint(f"command.{args.command}")
        return _emit(args.func(args, cfg), args)
    except CaselleICError as exc:
        return _fail(args, exc.exit_status, f"caselle-ic {args.command}: error: {exc}")
    except KeyboardInterrupt:
        return _fail(args, 130, f"caselle-ic {args.command}: interrupted")
    except Exception as exc:  # an internal error: never exit 1 (that means "quarantined")
        from caselle_ic.logsafe import redact

        line = report_internal_error(args.command, exc, log_dir_for(args, cfg), [redact(a) for a in argv])
        return _fail(args, INTERNAL_ERROR, line)


__all__ = [
    "EXIT_STATUSES",
    "INTERNAL_ERROR",
    "JsonFormatter",
    "Report",
    "VersionAction",
    "common_options",
    "config_arg",
    "configure_logging",
    "fallback_log_dir",
    "ledger_arg",
    "now_arg",
    "out_arg",
    "progress_display",
    "report_internal_error",
    "run_command",
    "version",
]
