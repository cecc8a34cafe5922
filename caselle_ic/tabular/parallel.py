"""Column-at-a-time work on a few threads.

The heavy lifting of the pipelines is Arrow compute and numpy over whole columns; those
kernels release the GIL, so independent columns (parse this one, format that one,
validate three record types) run side by side on the machine's cores. Order of results
is the order of the inputs. How many threads: :func:`set_threads`, which a run calls with
the biller file's ``[performance].threads`` (``CASELLE_IC_THREADS`` overrides it when the
file is loaded; ``1`` turns it off, for profiling).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: More threads than this buys little: the kernels are memory-bound.
MAX_THREADS = 4


_configured: int | None = None


def set_threads(n: int | None) -> None:
    """Use ``n`` threads from now on in this process (None: the cores, at most 4)."""
    global _configured
    _configured = n if n is None or n >= 1 else None


def threads() -> int:
    if _configured is not None:
        return _configured
    return max(1, min(MAX_THREADS, os.cpu_count() or 1))


def column_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(x) for x in items]``, on worker threads when there are cores to use."""
    work = list(items)
    n = threads()
    if n < 2 or len(work) < 2:
        return [fn(x) for x in work]
    with ThreadPoolExecutor(max_workers=min(n, len(work)), thread_name_prefix="columns") as pool:
        return list(pool.map(fn, work))


def side_by_side(*jobs: Callable[[], R]) -> list[R]:
    """Call independent pieces of column work at once; their results in the jobs' order."""
    return column_map(lambda job: job(), jobs)
