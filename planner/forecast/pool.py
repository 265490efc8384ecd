"""Run per-series fits in parallel: a process pool sized to the cores, inline for small jobs."""

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

INLINE_BELOW = 4


def default_workers() -> int:
    """Worker processes: the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parallel_map(
    fn: Callable[[Any], Any], tasks: Sequence[Any], workers: int | None = None
) -> list[Any]:
    """`[fn(t) for t in tasks]`, spread over a process pool when it is worth it."""
    workers = workers or default_workers()
    if workers <= 1 or len(tasks) < INLINE_BELOW:
        return [fn(t) for t in tasks]
    chunk = max(1, len(tasks) // (workers * 4))
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        return list(pool.map(fn, tasks, chunksize=chunk))
