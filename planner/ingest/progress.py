"""Progress within one source's load, for a progress bar: DuckDB's query progress, polled.

Each statement reading the source is one of `steps` (an estimate from the number of files the
loader sets), the running one's share taken from DuckDB's `query_progress()` on a thread.
"""

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator

import duckdb

POLL_S = 0.25


class Tracker:
    """How far one source's load is: statements done of `steps`, plus the running one's share."""

    def __init__(self, con: duckdb.DuckDBPyConnection, report: Callable[[float], None]) -> None:
        self.con, self.report = con, report
        self.steps, self.done = 1, 0

    def _poll(self, stop: threading.Event) -> None:
        """Report the running statement's progress until `stop` is set."""
        while not stop.wait(POLL_S):
            share = self.con.query_progress()
            if share >= 0:
                self.report(min((self.done + share / 100.0) / self.steps, 0.99))

    @contextlib.contextmanager
    def statement(self) -> Iterator[None]:
        """One statement reading the source: polled while it runs, counted when it ends."""
        stop = threading.Event()
        poller = threading.Thread(target=self._poll, args=(stop,), daemon=True)
        poller.start()
        try:
            yield
        finally:
            stop.set()
            poller.join()
            self.done += 1
            self.report(min(self.done / self.steps, 0.99))


_TRACKER: contextvars.ContextVar[Tracker | None] = contextvars.ContextVar("tracker", default=None)


def current_tracker() -> Tracker | None:
    """The tracker of the load in progress, if it reports progress."""
    return _TRACKER.get()


def tracked() -> contextlib.AbstractContextManager:
    """The progress tracking of a statement reading the source (nothing without a tracker)."""
    tracker = _TRACKER.get()
    return tracker.statement() if tracker is not None else contextlib.nullcontext()


@contextlib.contextmanager
def tracking(con: duckdb.DuckDBPyConnection, report: Callable[[float], None] | None) -> Iterator:
    """Track a source's load for `report` (DuckDB's progress on, not printed), then restore."""
    if report is None:
        yield
        return
    settings = ("enable_progress_bar", "enable_progress_bar_print")
    before = [con.execute(f"SELECT current_setting('{s}')").fetchall()[0][0] for s in settings]
    con.execute("SET enable_progress_bar = true")
    con.execute("SET enable_progress_bar_print = false")
    token = _TRACKER.set(Tracker(con, report))
    try:
        yield
    finally:
        _TRACKER.reset(token)
        for setting, value in zip(settings, before, strict=True):
            con.execute(f"SET {setting} = {str(value).lower()}")
