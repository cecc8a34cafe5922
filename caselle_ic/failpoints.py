"""Crash points for the exactly-once tests (in the spirit of FreeBSD's fail points and
TiKV's ``fail-rs``): the process kills itself at a named point so a test can rerun and
check that nothing was sent twice or lost.

``CASELLE_IC_FAILPOINT=NAME`` kills the process (SIGKILL: no cleanup, no ``finally``)
the first time the code reaches :func:`failpoint` ``(NAME)``; ``NAME:N`` on the N-th time.
``raise:NAME[:N]`` raises :class:`FailpointError` there instead: an unexpected exception
(a bug), which the commands report as exit status 3 (SPEC §11) while ``finally`` blocks
and the ledger's bookkeeping run as they would for a real one.
Unset (always, in production), :func:`failpoint` is a dictionary look-up.

Points (caselle_ic/payments/posting.py):

* ``post.claimed``   — payments marked ``sending`` (intent committed), nothing sent yet
* ``post.sent``      — Caselle answered the batch; the answer is not recorded
* ``file.planned``   — lockbox file names reserved, rows ``filing``; no file written
* ``file.written``   — the lockbox files are on disk; the ledger still says ``filing``
* ``void.claimed``   — reversal marked ``void_sending``, the void not sent
* ``void.sent``      — Caselle voided the receipt; the answer is not recorded

and, for every command (caselle_ic/cli.py and caselle_ic/steps.py):

* ``command.<name>`` — the command's configuration is loaded, nothing else done yet
* ``step.<step>``    — a pipeline step (``step.read-extract``, ``step.post-payments`` ...)
  is about to start, in a direct run
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "CASELLE_IC_FAILPOINT"

_lock = threading.Lock()
_hits: dict[str, int] = {}


class FailpointError(RuntimeError):
    """Raised at an armed ``raise:`` fail point: stands for a bug (not a CaselleICError)."""


def _armed() -> tuple[str, int, bool] | None:
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return None
    raising = spec.startswith("raise:")
    name, _, nth = spec.removeprefix("raise:").partition(":")
    return name, int(nth) if nth.isdigit() else 1, raising


def failpoint(name: str) -> None:
    """Kill this process with SIGKILL (or raise) if ``name`` is armed and this is its N-th hit."""
    armed = _armed()
    if armed is None or armed[0] != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] != armed[1]:
            return
    if armed[2]:
        raise FailpointError(f"fail point {name} (test fault injected by {ENV})")
    os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["ENV", "FailpointError", "failpoint"]
