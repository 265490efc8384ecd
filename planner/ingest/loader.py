"""Atomic, idempotent ingest of one source into the store (one transaction per source)."""

import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from planner.errors import PlannerError
from planner.ingest.formats import (
    COLD_START_COLUMNS,
    RATE_COLUMNS,
    REQUEST_COLUMNS,
    Format,
    Select,
    detect_format,
    get_format,
)
from planner.ingest.sources import Source, content_hash, open_source, total_size
from planner.store import TraceInfo, list_traces

_RENAMES: dict[str, dict[str, str]] = {"requests": {"t": "arrival_s"}}
_EXPRS = {"ok": "coalesce(ok, TRUE)"}
_TARGETS: dict[str, tuple[str, ...]] = {
    "requests": REQUEST_COLUMNS,
    "cold_starts": COLD_START_COLUMNS,
    "rate_windows": RATE_COLUMNS,
    "length_dists": ("series", "window_start_s", "window_s", "which", "tokens", "prob"),
}
_TIME = {"requests": "arrival_s", "cold_starts": "time_s", "rate_windows": "window_start_s"}
_SERIES = {
    "requests": "coalesce(series, '')",
    "cold_starts": "coalesce(series, pool, kind, '')",
    "rate_windows": "series",
}
_LINE = re.compile(r"Line: (\d+)")
_COLUMN = re.compile(r'converting column "([^"]+)"')


@dataclass
class IngestResult:
    """What one ingest did: the trace it made (or found) and whether anything changed."""

    name: str
    format: str
    table: str
    status: str
    rows: int
    span_s: float | None
    series: int | None
    source: str

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def default_name(path: Path) -> str:
    """A trace name from its path: the file name without data extensions."""
    name = path.name
    for ext in (".tar.gz", ".tgz", ".zip", ".gz", ".csv", ".jsonl", ".json", ".parquet", ".tar"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return name or path.resolve().name


def _where(source: Source, sel: Select) -> str:
    """The file a select reads: the source itself, or its member file when it has several."""
    if sel.path is None or len(source.files) == 1:
        return str(source.path)
    return str(sel.path)


def _duckdb_message(where: str, exc: duckdb.Error) -> str:
    """One line naming the file, line and column of a DuckDB read error."""
    text = str(exc)
    first = text.splitlines()[0].replace("Conversion Error: ", "").replace("IO Error: ", "")
    parts = [where]
    if line := _LINE.search(text):
        parts.append(f"line {line.group(1)}")
    if column := _COLUMN.search(text):
        parts.append(f"column {column.group(1)!r}")
        detail = re.search(r"(Could not convert [^\n]*)", text)
        first = detail.group(1) if detail else first
    return ": ".join(parts + [first])


class _Hasher(threading.Thread):
    """Hash the source's bytes in the background while DuckDB reads it (hashlib drops the GIL)."""

    def __init__(self, files: list[Path]) -> None:
        super().__init__(daemon=True)
        self.files = files
        self.digest = ""
        self.cancelled = threading.Event()

    def run(self) -> None:
        self.digest = content_hash(self.files, self.cancelled)

    def stop(self) -> None:
        """Abandon the hash (the ingest failed) and wait until no file is open any more."""
        self.cancelled.set()
        if self.is_alive():
            self.join()


def ingest_path(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: str | None = None,
    name: str | None = None,
    replace: bool = False,
    mapping: dict[str, str] | None = None,
) -> IngestResult:
    """Load one source as a trace; on any error the store is left exactly as before."""
    source = open_source(Path(path))
    try:
        mapping = mapping or {}
        chosen = get_format(fmt) if fmt else detect_format(source, mapping)
        return _ingest(con, source, chosen, name or default_name(source.path), replace, mapping)
    except PlannerError as exc:
        raise PlannerError(source.describe(str(exc))) from None
    finally:
        source.close()


def _ingest(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    fmt: Format,
    name: str,
    replace: bool,
    mapping: dict[str, str],
) -> IngestResult:
    """Load a detected source in one transaction, hashing it alongside; no-op on known content."""
    existing = {t.name: t for t in list_traces(con)}
    old = existing.get(name)
    hasher = _Hasher(source.files)
    if old is not None:
        hasher.run()
        if old.content_hash == hasher.digest:
            return _result(old, "unchanged")
        if not replace:
            raise PlannerError(
                f"trace {name!r} is already loaded from different content; "
                "use --replace to reload it or --name to load it under another name"
            )
    selects = fmt.read(source, mapping)
    if old is None:
        hasher.start()
    con.begin()
    try:
        if old is not None:
            _delete_trace(con, old.id)
        trace_id = con.execute(
            "INSERT INTO traces (name, format, kind, source, content_hash, size_bytes) "
            "VALUES (?, ?, ?, ?, '', ?) RETURNING id",
            [name, fmt.id, fmt.table, str(source.path), total_size(source.files)],
        ).fetchall()[0][0]
        start = _load(con, source, selects, trace_id)
        if hasher.is_alive():
            hasher.join()
        twin = next(
            (t for t in existing.values() if t.content_hash == hasher.digest and t.name != name),
            None,
        )
        if twin is not None:
            con.rollback()
            return _result(twin, "unchanged")
        _finish(con, source, fmt, trace_id, hasher.digest, start)
        con.commit()
    except BaseException:
        con.rollback()
        hasher.stop()
        raise
    info = next(t for t in list_traces(con) if t.id == trace_id)
    return _result(info, "replaced" if old is not None else "ingested")


def _result(info: TraceInfo, status: str) -> IngestResult:
    """The IngestResult describing a stored trace."""
    return IngestResult(
        info.name, info.format, info.kind, status, info.rows, info.span_s, info.series, info.source
    )


def _delete_trace(con: duckdb.DuckDBPyConnection, trace_id: int) -> None:
    """Remove a trace and all its rows (inside the caller's transaction)."""
    for table in _TARGETS:
        con.execute(f"DELETE FROM {table} WHERE trace_id = ?", [trace_id])
    con.execute("DELETE FROM traces WHERE id = ?", [trace_id])


def _load(
    con: duckdb.DuckDBPyConnection, source: Source, selects: list[Select], trace_id: int
) -> float | None:
    """Run each reader's SQL into its table, time rebased to the earliest event; return that."""
    bases = []
    for sel in selects:
        if sel.rebase:
            bases.append(
                _scalar(con, source, f"SELECT min({sel.time_column}) FROM ({sel.sql})", sel)
            )
    base = min((b for b in bases if b is not None), default=0.0)
    for sel in selects:
        columns = _TARGETS[sel.table]
        renames = _RENAMES.get(sel.table, {})
        target = ", ".join(renames.get(c, c) for c in columns)
        shift = base if sel.rebase else 0.0
        select_list = ", ".join(
            f"{c} - {shift}" if c == sel.time_column else _EXPRS.get(c, c) for c in columns
        )
        sql = (
            f"INSERT INTO {sel.table} (trace_id, {target}) SELECT ?, {select_list} FROM ({sel.sql})"
        )
        _execute(con, source, sql, [trace_id, *sel.params], sel)
        _check_negative(con, source, sel, trace_id)
    epoch = any(sel.epoch for sel in selects)
    return base if epoch and bases else None


def _scalar(con: duckdb.DuckDBPyConnection, source: Source, sql: str, sel: Select):
    """One value from SQL over a source, with read errors made readable."""
    return _execute(con, source, sql, sel.params, sel)[0][0]


def _execute(
    con: duckdb.DuckDBPyConnection, source: Source, sql: str, params: list, sel: Select
) -> list[tuple]:
    """Execute SQL that reads the source; DuckDB errors become PlannerErrors naming the file."""
    if sel.arrow is not None:
        con.register("arrow_source", sel.arrow)
    try:
        return con.execute(sql, params).fetchall()
    except duckdb.Error as exc:
        raise PlannerError(_duckdb_message(_where(source, sel), exc)) from None
    finally:
        if sel.arrow is not None:
            con.unregister("arrow_source")


def _check_negative(
    con: duckdb.DuckDBPyConnection, source: Source, sel: Select, trace_id: int
) -> None:
    """Refuse negative token counts (or durations), naming the first offending line."""
    if not sel.token_columns:
        return
    cond = " OR ".join(f"{c} < 0" for c in sel.token_columns)
    bad = con.execute(
        f"SELECT count(*) FROM {sel.table} WHERE trace_id = ? AND ({cond})", [trace_id]
    ).fetchall()[0][0]
    if not bad:
        return
    where = ""
    if sel.line_sql:
        threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
        con.execute("SET threads = 1")
        try:
            where = f": line {_scalar(con, source, sel.line_sql, sel)}"
        finally:
            con.execute(f"SET threads = {threads}")
    raise PlannerError(
        f"{_where(source, sel)}{where}: negative value in {' or '.join(sel.token_columns)} "
        f"({bad} row(s)); counts must be >= 0"
    )


def _finish(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    fmt: Format,
    trace_id: int,
    digest: str,
    start: float | None,
) -> None:
    """Fill the trace's row count, span and series; refuse a source with no data rows."""
    table = fmt.table
    end = "window_start_s + window_s" if table == "rate_windows" else _TIME[table]
    rows, span, series = con.execute(
        f"SELECT count(*), max({end}) - min({_TIME[table]}), count(DISTINCT {_SERIES[table]}) "
        f"FROM {table} WHERE trace_id = ?",
        [trace_id],
    ).fetchall()[0]
    if rows == 0:
        raise PlannerError(f"{source.path}: no data rows (only a header?)")
    con.execute(
        "UPDATE traces SET content_hash = ?, rows = ?, span_s = ?, series = ?, "
        "start_time = CASE WHEN ? IS NULL THEN NULL ELSE to_timestamp(?)::TIMESTAMP END "
        "WHERE id = ?",
        [digest, rows, span, series, start, start, trace_id],
    )


def remove_trace(con: duckdb.DuckDBPyConnection, trace_id: int) -> None:
    """Delete a trace and its rows atomically."""
    con.begin()
    try:
        _delete_trace(con, trace_id)
        con.commit()
    except BaseException:
        con.rollback()
        raise
