"""Which pipeline step a direct run is in: for the exit-3 line and the progress display.

The pipelines take a ``step`` wrapper (the Prefect flows pass one that makes each step a
task). A direct run passes :func:`tracked`: it records the step's name
(``read-extract``, ``post-payments``: the same names the Prefect tasks get), reaches the
fail point ``step.<name>`` (tests only) and tells a listener (the progress display) that a
step began. Nothing here imports Prefect.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from functools import wraps
from typing import Any, TypeVar

from caselle_ic.failpoints import failpoint

F = TypeVar("F", bound=Callable[..., Any])

_current: ContextVar[str] = ContextVar("caselle_ic_step", default="")
_listeners: list[Callable[[str], None]] = []


def step_name(fn: Callable[..., Any]) -> str:
    """``read_extract`` -> ``read-extract`` (the Prefect task name of the step)."""
    return getattr(fn, "__name__", "step").replace("_", "-")


def current_step() -> str:
    """The step the run was in last ("" outside a tracked run)."""
    return _current.get()


def enter_step(name: str) -> None:
    """Record that ``name`` begins (also used by commands that have no pipeline steps)."""
    _current.set(name)
    for listen in list(_listeners):
        listen(name)
    failpoint(f"step.{name}")


def tracked(fn: F) -> F:
    """The ``step`` wrapper of a direct run: the step is recorded before it runs."""
    name = step_name(fn)

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        enter_step(name)
        return fn(*args, **kwargs)

    return run  # type: ignore[return-value]


def add_listener(listen: Callable[[str], None]) -> Callable[[], None]:
    """Call ``listen(step)`` as each step begins; returns the function that removes it."""
    _listeners.append(listen)
    return lambda: _listeners.remove(listen) if listen in _listeners else None


__all__ = ["add_listener", "current_step", "enter_step", "step_name", "tracked"]
