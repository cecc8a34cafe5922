"""The biller file's tuning sections, ``[posting]``, ``[connect]`` and ``[performance]``
(docs/operations.md).

Each setting may be overridden for the whole process by an environment variable listed in
:mod:`caselle_ic.env`; :func:`with_env_overrides` applies them once, when the file is
loaded, so the code that uses a value never reads the environment.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from caselle_ic import env
from caselle_ic.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PostingSection(_Strict):
    """How the daily payment run sends to Data Pump (docs/payments.md)."""

    #: batches sent at once
    workers: int = Field(default=4, ge=1, le=64)
    #: receipts per request (one aliased GraphQL document)
    batch_size: int = Field(default=50, ge=1, le=500)
    #: "Caselle holds no receipt" is trusted only this long after a request was sent: the
    #: exactly-once window (connect retries + the 30 s read timeout, with margin)
    settle_grace_seconds: float = Field(default=90.0, ge=0)


class ConnectSection(_Strict):
    """How every Caselle Connect client of a run rides out an endpoint that answers 5xx."""

    #: a request the server answered with a 5xx (or a repeatable one whose answer was lost)
    #: is asked again, with backoff, for this long before the run gives up on the endpoint
    retry_window_seconds: float = Field(default=30.0, ge=0)


class PerformanceSection(_Strict):
    """Local resources of a run."""

    #: threads for column work in the invoice run; None: the cores, at most 4
    threads: int | None = Field(default=None, ge=1, le=64)
    #: the invoice run gives freed memory back to the system at once: on a million
    #: statements peak RSS 2.1x -> 1.8x the extract, for ~35 % more time (docs/invoices.md)
    lean_memory: bool = False


S = TypeVar("S", PostingSection, ConnectSection, PerformanceSection)


_FLAGS = dict.fromkeys(("1", "true", "yes", "on"), True) | dict.fromkeys(("0", "false", "no", "off"), False)


def _parse(var: env.EnvVar, raw: str, setting: str) -> int | float | bool | str:
    if var.kind == "int":
        if not raw.isdigit() or int(raw) < 1:
            raise ConfigError(f"{var.name}={raw!r} must be a positive integer (it overrides {setting})")
        return int(raw)
    if var.kind == "flag":
        if raw.lower() not in _FLAGS:
            raise ConfigError(f"{var.name}={raw!r} must be 1 or 0 (true/false; it overrides {setting})")
        return _FLAGS[raw.lower()]
    if var.kind == "float":
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not value >= 0:  # also refuses nan
            raise ConfigError(f"{var.name}={raw!r} must be a number of seconds (it overrides {setting})")
        return value
    return raw


def with_env_overrides(section: S, name: str) -> S:
    """``section`` with every field that an environment variable overrides replaced."""
    changes = {}
    for field in type(section).model_fields:
        setting = f"[{name}].{field}"
        found = env.override(setting)
        if found is not None:
            changes[field] = _parse(*found, setting)
    return section.model_copy(update=changes) if changes else section


__all__ = ["ConnectSection", "PerformanceSection", "PostingSection", "with_env_overrides"]
