"""Atomic, idempotent ingest of one source into the store (one transaction per source)."""

import re
import threading
from dataclasses import asdict, dataclass, field
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
from planner.store import (
    TraceInfo,
    delete_trace_rows,
    encode_read_options,
    list_traces,
    trace_read_options,
)

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
    """What one ingest did: the trace it made (or found), whether anything changed, and any
    warnings about how the source was read (e.g. timestamps that look like milliseconds)."""

    name: str
    format: str
    table: str
    status: str
    rows: int
    span_s: float | None
    series: int | None
    source: str
    warnings: list[str] = field(default_factory=list)

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


def read_options(fmt: Format, mapping: dict[str, str], time_unit: str | None) -> dict:
    """What besides the content and the format decides the rows a source stores.

    Only the generic csv / parquet readers take options (the column mapping and the time unit);
    every other reader's result follows from the content alone, so its options are ``{}``.
    """
    if not fmt.generic:
        return {}
    return {"map": dict(sorted(mapping.items())), "time_unit": time_unit or "s"}


def ingest_path(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: str | None = None,
    name: str | None = None,
    replace: bool = False,
    mapping: dict[str, str] | None = None,
    time_unit: str | None = None,
) -> IngestResult:
    """Load one source as a trace; on any error the store is left exactly as before.

    `time_unit` (s, ms, us or ns; default s) is the unit of a numeric --map ts column of the
    generic csv / parquet formats. The same content read the same way (format, mapping, time
    unit) again is a no-op; content or reading that differs from the stored trace of that name
    needs `replace`.
    """
    source = open_source(Path(path))
    try:
        mapping = mapping or {}
        chosen = get_format(fmt) if fmt else detect_format(source, mapping)
        if time_unit is not None and not chosen.generic:
            raise PlannerError(
                f"--time-unit applies to the csv and parquet formats (with --map); "
                f"format {chosen.id} has its own time unit"
            )
        options = read_options(chosen, mapping, time_unit)
        trace_name = name or default_name(source.path)
        result = _ingest(con, source, chosen, trace_name, replace, mapping, options)
        result.warnings = [source.describe(w) for w in result.warnings]
        return result
    except PlannerError as exc:
        raise PlannerError(source.describe(str(exc))) from None
    finally:
        source.close()


def _options_match(stored: dict | None, options: dict, replace: bool) -> bool:
    """Whether a stored trace's read options are `options`.

    Traces ingested before the options were recorded (schema version 1) have None: for readers
    without options that is a match; for csv / parquet the mapping used is unknown, so it counts
    as a match (idempotent as before) unless `replace` asks to re-read it.
    """
    if stored is None:
        return not options or not replace
    return stored == options


def _difference(old: TraceInfo, stored: dict | None, fmt: Format, options: dict) -> str:
    """How the stored trace was read, against how this ingest would read it."""
    if old.format != fmt.id:
        return f"format {old.format}, now {fmt.id}"
    stored = stored or {}
    changes = []
    if stored.get("map") != options.get("map"):
        was = ",".join(f"{k}={v}" for k, v in (stored.get("map") or {}).items()) or "none"
        now = ",".join(f"{k}={v}" for k, v in options.get("map", {}).items()) or "none"
        changes.append(f"--map {was}, now {now}")
    if stored.get("time_unit") != options.get("time_unit"):
        changes.append(
            f"--time-unit {stored.get('time_unit') or 'unknown'}, now {options.get('time_unit')}"
        )
    return "; ".join(changes) or "different read options"


def _ingest(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    fmt: Format,
    name: str,
    replace: bool,
    mapping: dict[str, str],
    options: dict,
) -> IngestResult:
    """Load a detected source in one transaction, hashing it alongside; no-op on a trace with
    the same content read the same way (format and read options)."""
    existing = {t.name: t for t in list_traces(con)}
    old = existing.get(name)
    hasher = _Hasher(source.files)
    if old is not None:
        hasher.run()
        stored = trace_read_options(con, old.id)
        same_read = old.format == fmt.id and _options_match(stored, options, replace)
        if old.content_hash == hasher.digest and same_read:
            return _result(old, "unchanged")
        if not replace and old.content_hash == hasher.digest:
            raise PlannerError(
                f"trace {name!r} is already loaded from this content but read differently "
                f"({_difference(old, stored, fmt, options)}); use --replace to re-read it "
                "or --name to load it under another name"
            )
        if not replace:
            raise PlannerError(
                f"trace {name!r} is already loaded from different content; "
                "use --replace to reload it or --name to load it under another name"
            )
    if fmt.generic:
        selects = fmt.read(source, mapping, options["time_unit"])
    else:
        selects = fmt.read(source, mapping)
    if old is None:
        hasher.start()
    con.begin()
    try:
        if old is not None:
            delete_trace_rows(con, old.id)
        trace_id = con.execute(
            "INSERT INTO traces (name, format, kind, source, content_hash, size_bytes, "
            "read_options) VALUES (?, ?, ?, ?, '', ?, ?) RETURNING id",
            [
                name,
                fmt.id,
                fmt.table,
                str(source.path),
                total_size(source.files),
                encode_read_options(options),
            ],
        ).fetchall()[0][0]
        start, warnings = _load(con, source, selects, trace_id)
        if hasher.is_alive():
            hasher.join()
        twin = next(
            (
                t
                for t in existing.values()
                if t.content_hash == hasher.digest
                and t.name != name
                and t.format == fmt.id
                and _options_match(trace_read_options(con, t.id), options, replace=False)
            ),
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
    return _result(info, "replaced" if old is not None else "ingested", warnings)


def _result(info: TraceInfo, status: str, warnings: list[str] | None = None) -> IngestResult:
    """The IngestResult describing a stored trace."""
    return IngestResult(
        info.name,
        info.format,
        info.kind,
        status,
        info.rows,
        info.span_s,
        info.series,
        info.source,
        list(warnings or []),
    )


def _load(
    con: duckdb.DuckDBPyConnection, source: Source, selects: list[Select], trace_id: int
) -> tuple[float | None, list[str]]:
    """Run each reader's SQL into its table, time rebased to the earliest event; return that
    start (for absolute clocks) and the readers' warnings about the time column."""
    bases, warnings = [], []
    for sel in selects:
        checked = sel.warn is not None or sel.time_source is not None
        if not (sel.rebase or checked):
            continue
        tc = sel.time_column
        aggs = f"min({tc}), max({tc}), count(*) - count({tc})" if checked else f"min({tc})"
        row = _execute(con, source, f"SELECT {aggs} FROM ({sel.sql})", sel.params, sel)[0]
        if sel.rebase:
            bases.append(row[0])
        if checked and row[2]:
            where = _first_line(con, source, sel, sel.null_time_line_sql)
            raise PlannerError(
                f"{_where(source, sel)}{where}: column {sel.time_source!r}: empty timestamp "
                f"({row[2]} row(s)); every row needs one"
            )
        if sel.warn is not None:
            warnings += sel.warn(row[0], row[1])
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
    return (base if epoch and bases else None), warnings


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
    where = _first_line(con, source, sel, sel.line_sql)
    raise PlannerError(
        f"{_where(source, sel)}{where}: negative value in {' or '.join(sel.token_columns)} "
        f"({bad} row(s)); counts must be >= 0"
    )


def _first_line(
    con: duckdb.DuckDBPyConnection, source: Source, sel: Select, line_sql: str | None
) -> str:
    """': line N' from SQL finding a line (one thread, so rows keep file order), or ''."""
    if not line_sql:
        return ""
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    con.execute("SET threads = 1")
    try:
        return f": line {_scalar(con, source, line_sql, sel)}"
    finally:
        con.execute(f"SET threads = {threads}")


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
        delete_trace_rows(con, trace_id)
        con.commit()
    except BaseException:
        con.rollback()
        raise
