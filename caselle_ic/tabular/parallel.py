"""Column-at-a-time work on a few threads.

The heavy lifting of the pipelines is Arrow compute and numpy over whole columns; those
kernels release the GIL, so independent columns (parse this one, format that one,
validate three record types) run side by side on the machine's cores. Order of results
is the order of the inputs. ``CASELLE_IC_THREADS=1`` turns it off (for profiling).
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


def threads() -> int:
    configured = os.environ.get("CASELLE_IC_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(1, min(MAX_THREADS, os.cpu_count() or 1))


def column_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(x) for x in items]``, on worker threads when there are cores to use."""
    work = list(items)
    n = threads()
    if n < 2 or len(work) < 2:
        return [fn(x) for x in work]
    with ThreadPoolExecutor(max_workers=min(n, len(work)), thread_name_prefix="columns") as pool:
        return list(pool.map(fn, work))
