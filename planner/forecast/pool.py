"""Run per-series fits in parallel: a process pool sized to the cores, inline for small jobs."""

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

INLINE_BELOW = 4


def default_workers() -> int:
    """Worker processes: the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parallel_map(
    fn: Callable[[Any], Any],
    tasks: Sequence[Any],
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
    what: str = "series",
) -> list[Any]:
    """`[fn(t) for t in tasks]`, spread over a process pool when it is worth it; `progress`
    hears "<what> k/n" as each result arrives (in order)."""
    workers = workers or default_workers()
    out: list[Any] = []

    def collect(results: Iterable[Any]) -> list[Any]:
        """Gather the results, reporting each."""
        for result in results:
            out.append(result)
            if progress:
                progress(f"{what} {len(out)}/{len(tasks)}")
        return out

    if workers <= 1 or len(tasks) < INLINE_BELOW:
        return collect(fn(t) for t in tasks)
    chunk = max(1, len(tasks) // (workers * 4))
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        return collect(pool.map(fn, tasks, chunksize=chunk))
