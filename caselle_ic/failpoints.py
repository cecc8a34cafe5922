"""Crash points for the exactly-once tests (in the spirit of FreeBSD's fail points and
TiKV's ``fail-rs``): the process kills itself at a named point so a test can rerun and
check that nothing was sent twice or lost.

``CASELLE_IC_FAILPOINT=NAME`` kills the process (SIGKILL: no cleanup, no ``finally``)
the first time the code reaches :func:`failpoint` ``(NAME)``; ``NAME:N`` on the N-th time.
Unset (always, in production), :func:`failpoint` is a dictionary look-up.

Points (caselle_ic/payments/posting/):

* ``post.claimed``   — payments marked ``sending`` (intent committed), nothing sent yet
* ``post.sent``      — Caselle answered the batch; the answer is not recorded
* ``file.planned``   — lockbox file names reserved, rows ``filing``; no file written
* ``file.written``   — the lockbox files are on disk; the ledger still says ``filing``
* ``void.claimed``   — reversal marked ``void_sending``, the void not sent
* ``void.sent``      — Caselle voided the receipt; the answer is not recorded
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "CASELLE_IC_FAILPOINT"

_lock = threading.Lock()
_hits: dict[str, int] = {}


def _armed() -> tuple[str, int] | None:
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return None
    name, _, nth = spec.partition(":")
    return name, int(nth) if nth.isdigit() else 1


def failpoint(name: str) -> None:
    """Kill this process with SIGKILL if ``name`` is armed and this is its N-th hit."""
    armed = _armed()
    if armed is None or armed[0] != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] == armed[1]:
            os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["ENV", "failpoint"]
