"""Every environment variable caselle-ic reads, in one place, with what it does.

Tuning knobs live in the biller file (``[posting]``, ``[performance]``: SPEC §1,
docs/operations.md); the variables below marked with a setting override that setting for
every biller of the process, and are applied once, when the biller file is loaded
(:func:`caselle_ic.config.model.load_config`): domain code never reads the environment
for them. A bad value is a configuration error naming the variable (exit 2), raised by
:mod:`caselle_ic.config.tuning`. This module depends on nothing in the package.

Secrets are not here: a biller file names them (``env:NAME`` / ``prefect-secret:NAME``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class EnvVar:
    name: str
    setting: str  # the biller-file setting it overrides ("" = none)
    kind: Literal["int", "float", "text", "flag"]
    doc: str


VARS: tuple[EnvVar, ...] = (
    EnvVar(
        "CASELLE_IC_SETTLE_GRACE",
        "[posting].settle_grace_seconds",
        "float",
        "Seconds after a Data Pump request was sent during which 'Caselle holds no receipt' is not yet "
        "trusted (the exactly-once window; default 90). Lower only in tests.",
    ),
    EnvVar(
        "CASELLE_IC_POST_WORKERS",
        "[posting].workers",
        "int",
        "Data Pump batches sent at once (default 4).",
    ),
    EnvVar(
        "CASELLE_IC_POST_BATCH",
        "[posting].batch_size",
        "int",
        "Receipts per Data Pump request, as one aliased document (default 50).",
    ),
    EnvVar(
        "CASELLE_IC_RETRY_WINDOW",
        "[connect].retry_window_seconds",
        "float",
        "Seconds a Caselle Connect request answered with a 5xx is asked again, with backoff, "
        "before the endpoint is given up on (default 30).",
    ),
    EnvVar(
        "CASELLE_IC_THREADS",
        "[performance].threads",
        "int",
        "Threads for column work in the invoice run (default: the cores, at most 4; 1 turns it off).",
    ),
    EnvVar(
        "CASELLE_IC_LEAN_MEMORY",
        "[performance].lean_memory",
        "flag",
        "1: the invoice run gives freed memory back at once (lower peak memory, ~35 % more time; default 0).",
    ),
    EnvVar(
        "CASELLE_IC_LOG_DIR",
        "",
        "text",
        "Where the exit-3 traceback goes when the biller file could not be loaded (default "
        "$XDG_STATE_HOME/caselle-ic/logs, else ~/.local/state/caselle-ic/logs). With a biller "
        "file it is always [paths].state/logs.",
    ),
    EnvVar(
        "CASELLE_IC_HOME",
        "",
        "text",
        "On a Prefect worker: the checkout the generated prefect.yaml's pull step changes into.",
    ),
    EnvVar(
        "CASELLE_IC_FAILPOINT",
        "",
        "text",
        "Tests only: NAME[:N] kills the process at fail point NAME, raise:NAME[:N] raises there "
        "(caselle_ic/failpoints.py). Never set in production.",
    ),
    EnvVar(
        "CASELLE_EMULATOR_SECRET",
        "",
        "text",
        "The emulator's credential (caselle-ic emulator refuses to start without it).",
    ),
)

BY_NAME = {v.name: v for v in VARS}
#: setting -> the variable that overrides it
OVERRIDES = {v.setting: v for v in VARS if v.setting}


def override(setting: str) -> tuple[EnvVar, str] | None:
    """The variable overriding ``setting`` (e.g. ``[posting].workers``) and its raw value,
    or None when no variable overrides it or the variable is unset or empty."""
    var = OVERRIDES.get(setting)
    if var is None:
        return None
    raw = os.environ.get(var.name, "").strip()
    return (var, raw) if raw else None


def text(name: str) -> str:
    """A listed variable's raw value ("" when unset); KeyError for an unlisted name."""
    return os.environ.get(BY_NAME[name].name, "").strip()


def markdown_table() -> str:
    """The table docs/operations.md shows (kept in step by a test)."""
    rows = ["| variable | overrides | what it does |", "| --- | --- | --- |"]
    rows += [f"| `{v.name}` | {f'`{v.setting}`' if v.setting else ''} | {v.doc} |" for v in VARS]
    return "\n".join(rows) + "\n"


__all__ = ["BY_NAME", "OVERRIDES", "VARS", "EnvVar", "markdown_table", "override", "text"]
