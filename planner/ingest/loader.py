"""Atomic, idempotent ingest of one source into the store (one transaction per source)."""

import contextlib
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import pyarrow.compute as pc

from planner.errors import PlannerError, one_line
from planner.ingest.aggregate import (
    Aggregates,
    Aggregation,
    canonical_sql,
    length_dists_table,
    lengths_sql,
    rate_windows_table,
    windows_sql,
)
from planner.ingest.formats import (
    COLD_START_COLUMNS,
    COLD_START_DURATIONS,
    RATE_COLUMNS,
    REQUEST_COLUMNS,
    Format,
    Select,
    canonical,
    detect_format,
    duckdb_detail,
    get_format,
    read_source,
)
from planner.ingest.lengths import borrowed_lengths
from planner.ingest.progress import current_tracker, tracked, tracking
from planner.ingest.sources import (
    Source,
    content_hash,
    is_uri,
    open_source,
    refuse_empty_files,
    source_bytes,
)
from planner.store import (
    MAX_TOKENS,
    TraceInfo,
    delete_trace_rows,
    encode_read_options,
    list_traces,
    trace_read_options,
)

_RENAMES: dict[str, dict[str, str]] = {"requests": {"t": "arrival_s"}}
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
_ARROW = "arrow_source"

_NEGATIVE = ("{c} < 0", "negative value in {c}")
_NOT_FINITE = ("NOT isfinite({c})", "value in {c} is not a finite number", "NaN and inf refused")
_COUNTS = ("requests", "rate_rps", "cold_starts", "pods")
_TOKENS = ("input_tokens", "output_tokens")
# Token counts are read as numbers and checked before they are stored: casting first would
# round 2.5 to 3 and -0.4 to 0 (issue 18).
_TOKEN_RULES = [
    (
        _TOKENS,
        "NOT isfinite({c})",
        "value in {c} is not a finite number",
        "token counts are whole numbers",
    ),
    (_TOKENS, *_NEGATIVE, "counts must be >= 0"),
    (
        _TOKENS,
        "{c} <> trunc({c})",
        "value in {c} is not a whole number",
        "token counts are whole numbers",
    ),
    (_TOKENS, f"{{c}} > {MAX_TOKENS}", "value in {c} is too large", f"at most {MAX_TOKENS}"),
]
# What every stored value must satisfy, per table: (columns, SQL true for a bad value, what is
# wrong, what is expected). NULL passes (a column the source lacks); NOT NULL columns are held
# to that by the schema. The first rule a select's rows break is refused, naming its line.
_RULES: dict[str, list[tuple[tuple[str, ...], str, str, str]]] = {
    "requests": [
        (("arrival_s",), *_NOT_FINITE),
        *_TOKEN_RULES,
        (("duration_s",), *_NEGATIVE, "durations must be >= 0"),
        (("duration_s",), *_NOT_FINITE),
    ],
    "cold_starts": [
        (("time_s",), *_NOT_FINITE),
        (COLD_START_DURATIONS, *_NEGATIVE, "durations must be >= 0"),
        (COLD_START_DURATIONS, *_NOT_FINITE),
        (("cpu_millicores", "memory_mb"), *_NEGATIVE, "must be >= 0"),
    ],
    "rate_windows": [
        (("window_start_s", "window_s", "p1", "p2"), *_NOT_FINITE),
        (("window_s",), "{c} <= 0", "window length {c} is not positive", "must be > 0"),
        (_COUNTS, *_NEGATIVE, "counts and rates must be >= 0"),
        ((*_COUNTS, "cv"), *_NOT_FINITE),
        (("cv",), *_NEGATIVE, "a coefficient of variation is >= 0"),
    ],
    "length_dists": [
        (("window_start_s", "window_s", "prob"), *_NOT_FINITE),
        (("tokens", "prob"), *_NEGATIVE, "must be >= 0"),
    ],
}
_GUARD = "planner: a token count breaks its rules"


def _guarded(column: str) -> str:
    """The value of a token column, or an error (`_GUARD`) where it breaks a `_TOKEN_RULES`
    rule, so a bad count stops the insert before a cast rounds it."""
    bad = " OR ".join(f"({test.format(c=column)})" for _, test, *_ in _TOKEN_RULES)
    return f"CASE WHEN coalesce({bad}, FALSE) THEN error('{_GUARD}') ELSE {column} END"


# How the loader's INSERT takes a select's column, where not as it is.
_EXPRS = {"ok": "coalesce(ok, TRUE)", **{c: _guarded(c) for c in _TOKENS}}
# DuckDB's memory budget while aggregating: beyond it the window sort spills to disk, so a
# 10^8-row trace aggregates within 2 GiB of process memory (bench/bench_scale.py).
AGGREGATE_MEMORY = "1GB"
_FIRST_YEAR_S, _LAST_YEAR_S = -62135596800.0, 253402300799.0  # 0001-01-01 .. 9999-12-31
_YEAR_S = 365.25 * 86_400
# The longest span a trace may have: BurstGPT, the longest public request trace, spans 213 days;
# past this the timestamps are far off (1e300, 'epoch' among 2023 dates) or in another unit.
MAX_SPAN_S = 10 * _YEAR_S


@dataclass
class IngestResult:
    """What one ingest did: the trace it made (or found), whether anything changed, any
    warnings about how the source was read (e.g. timestamps that look like milliseconds), the
    rows each file gave where a many-file source was read file by file, and how many requests
    an aggregated ingest summed up."""

    name: str
    format: str
    table: str
    status: str
    rows: int
    span_s: float | None
    series: int | None
    source: str
    warnings: list[str] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)
    aggregated: int | None = None

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
    first = duckdb_detail(exc)
    parts = [where]
    if line := _LINE.search(text):
        parts.append(f"line {line.group(1)}")
    if column := _COLUMN.search(text):
        parts.append(f"column {column.group(1)!r}")
        detail = re.search(r"(Could not convert [^\n]*)", text)
        first = detail.group(1) if detail else first
    if sniffed := re.search(r'sniffing file "([^"]+)"', text):
        parts = [sniffed.group(1)]  # the file of several the CSV sniffer gave up on
    return one_line(": ".join(parts + [first]))


class _Hasher(threading.Thread):
    """Hash the source's bytes in the background while DuckDB reads it (hashlib drops the GIL);
    a URI source's digest is its listing's, known already."""

    def __init__(self, source: Source) -> None:
        super().__init__(daemon=True)
        self.files = [] if source.remote else source.files
        self.digest = source.remote.digest if source.remote else ""
        self.cancelled = threading.Event()

    def run(self) -> None:
        if self.files:
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
    path: Path | str,
    fmt: str | None = None,
    name: str | None = None,
    replace: bool = False,
    mapping: dict[str, str] | None = None,
    time_unit: str | None = None,
    aggregate: Aggregation | None = None,
    progress: Callable[[float], None] | None = None,
    lengths: str | None = None,
) -> IngestResult:
    """Load one source as a trace; on any error the store is left exactly as before.

    `time_unit` (s, ms, us or ns; default s) is the unit of a numeric --map ts column of the
    generic csv / parquet formats. `aggregate` stores a request source as its aggregates only
    (rate windows and length PMFs, by DuckDB or Spark), not its rows. The same content read the
    same way (format, mapping, time unit, aggregation) again is a no-op; content or reading that
    differs from the stored trace of that name needs `replace`. `progress` is told, from time to
    time and from another thread, the share of the source loaded so far (0 to 1). `lengths`
    names a stored trace whose token lengths a rate series without any borrows.
    """
    mapping = mapping or {}
    source = _open(path, mapping, aggregate)
    try:
        chosen = get_format(fmt) if fmt else detect_format(source, mapping)
        if time_unit is not None and not chosen.generic:
            raise PlannerError(
                f"--time-unit applies to the csv and parquet formats (with --map); "
                f"format {chosen.id} has its own time unit"
            )
        options = read_options(chosen, mapping, time_unit)
        if aggregate is not None:
            options["aggregate"] = aggregate.options()
        if lengths is not None:
            options["lengths"] = lengths
        trace_name = name or default_name(source.path)
        read = _Read(chosen, mapping, options, aggregate, lengths)
        with tracking(con, progress):
            result = _ingest(con, source, read, trace_name, replace)
        result.warnings = [source.describe(w) for w in result.warnings]
        return result
    except PlannerError as exc:
        raise PlannerError(_one_line_naming(source, str(exc))) from None
    except duckdb.Error as exc:  # a statement outside `_execute` (reader sniffing, bookkeeping)
        raise PlannerError(_one_line_naming(source, _duckdb_message("", exc))) from None
    finally:
        source.close()


def _open(path: Path | str, mapping: dict[str, str], aggregate: Aggregation | None) -> Source:
    """The source a path names; a URI is listed by Spark, the only engine that reads one."""
    if not is_uri(path):
        return open_source(Path(path))
    if aggregate is None or aggregate.engine != "spark" or not mapping:
        raise PlannerError(
            f"{path}: a URI is read by --engine spark, with --map ts=COL,...; the duckdb engine "
            "reads local files, folders and globs"
        )
    from planner.ingest.spark import remote_source  # pyspark is an optional extra

    return remote_source(str(path), aggregate.master)


def _one_line_naming(source: Source, message: str) -> str:
    """An error message on one line that names the source (archive members as ARCHIVE:MEMBER)."""
    message = one_line(source.describe(message)).removeprefix(": ")
    if str(source.path) not in message:
        message = f"{source.path}: {message}"
    return message


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


@dataclass(frozen=True)
class _Read:
    """How a source is read: its format, column mapping, recorded read options, the
    aggregation that stores it as aggregates instead of rows (None: rows), and the trace a rate
    series borrows its token lengths from (None: its own, if any)."""

    fmt: Format
    mapping: dict[str, str]
    options: dict
    aggregate: Aggregation | None
    lengths: str | None = None

    @property
    def table(self) -> str:
        """The table the trace's rows land in (its kind)."""
        return "rate_windows" if self.aggregate is not None else self.fmt.table


def _same_as_stored(
    con: duckdb.DuckDBPyConnection, old: TraceInfo, digest: str, read: _Read, replace: bool
) -> bool:
    """Whether re-ingesting trace `old` would change nothing; a PlannerError when it would
    change it without --replace."""
    stored = trace_read_options(con, old.id)
    same_read = old.format == read.fmt.id and _options_match(stored, read.options, replace)
    if old.content_hash == digest and same_read:
        return True
    if not replace and old.content_hash == digest:
        raise PlannerError(
            f"trace {old.name!r} is already loaded from this content but read differently "
            f"({_difference(old, stored, read.fmt, read.options)}); use --replace to re-read it "
            "or --name to load it under another name"
        )
    if not replace:
        raise PlannerError(
            f"trace {old.name!r} is already loaded from different content; "
            "use --replace to reload it or --name to load it under another name"
        )
    return False


def _insert_trace(con: duckdb.DuckDBPyConnection, name: str, source: Source, read: _Read) -> int:
    """A new traces row (its content hash filled in when the load finishes); its id."""
    return con.execute(
        "INSERT INTO traces (name, format, kind, source, content_hash, size_bytes, "
        "read_options) VALUES (?, ?, ?, ?, '', ?, ?) RETURNING id",
        [
            name,
            read.fmt.id,
            read.table,
            source.remote.uri if source.remote else str(source.path),
            source_bytes(source),
            encode_read_options(read.options),
        ],
    ).fetchall()[0][0]


def _twin(
    con: duckdb.DuckDBPyConnection,
    traces: Iterable[TraceInfo],
    digest: str,
    name: str,
    read: _Read,
) -> TraceInfo | None:
    """Another stored trace with the same content read the same way, if any."""
    return next(
        (
            t
            for t in traces
            if t.content_hash == digest
            and t.name != name
            and t.format == read.fmt.id
            and _options_match(trace_read_options(con, t.id), read.options, replace=False)
        ),
        None,
    )


def _ingest(
    con: duckdb.DuckDBPyConnection, source: Source, read: _Read, name: str, replace: bool
) -> IngestResult:
    """Load a detected source in one transaction, hashing it alongside; no-op on a trace with
    the same content read the same way (format and read options)."""
    existing = {t.name: t for t in list_traces(con)}
    old = existing.get(name)
    hasher = _Hasher(source)
    if old is not None:
        hasher.run()
        if _same_as_stored(con, old, hasher.digest, read, replace):
            return _result(old, "unchanged")
    else:
        hasher.start()
    try:
        rows = _read_rows(con, source, read)
    except BaseException:
        hasher.stop()
        raise
    con.begin()
    try:
        if old is not None:
            delete_trace_rows(con, old.id)
        trace_id = _insert_trace(con, name, source, read)
        if isinstance(rows, Aggregates):
            _load(con, source, _aggregate_selects(rows), trace_id)
            start, warnings, files = rows.start, rows.warnings, rows.files
        else:
            start, warnings, files = _load(con, source, rows, trace_id)
        if read.lengths is not None:
            _load(con, source, [_borrowed(con, source, read, trace_id)], trace_id)
        if hasher.is_alive():
            hasher.join()
        twin = _twin(con, existing.values(), hasher.digest, name, read)
        if twin is not None:
            con.rollback()
            return _result(twin, "unchanged")
        _finish(con, source, read.table, trace_id, hasher.digest, start)
        con.commit()
    except BaseException:
        _rollback(con)
        hasher.stop()
        raise
    info = next(t for t in list_traces(con) if t.id == trace_id)
    result = _result(info, "replaced" if old is not None else "ingested", warnings)
    result.files = {source.describe(path): count for path, count in files.items()}
    if isinstance(rows, Aggregates):
        result.aggregated = int(pc.sum(rows.rate_windows["requests"]).as_py() or 0)
    return result


def _read_rows(
    con: duckdb.DuckDBPyConnection, source: Source, read: _Read
) -> list[Select] | Aggregates:
    """What a source stores: the selects reading its rows, or its aggregates (computed here,
    before the transaction, by DuckDB or Spark)."""
    agg = read.aggregate
    if agg is not None and agg.engine == "spark":
        from planner.ingest.spark import spark_aggregates  # pyspark is an optional extra

        return spark_aggregates(source, read.fmt, read.mapping, read.options, agg)
    selects = read_source(read.fmt, source, read.mapping, read.options.get("time_unit"))
    tracker = current_tracker()
    if tracker is not None:  # per file: a time pass and an insert, or three passes to aggregate
        tracker.steps = 2 * len(selects) + 1 if agg is None else 3 * len(selects) + 2
    return selects if agg is None else duckdb_aggregates(con, source, selects, agg)


def _borrowed(con: duckdb.DuckDBPyConnection, source: Source, read: _Read, trace_id: int) -> Select:
    """The select storing a rate series' lengths borrowed from trace `read.lengths`; refused
    for a source that is not a rate series or has length PMFs of its own."""
    if read.table != "rate_windows":
        raise PlannerError(
            f"--lengths applies to rate series without token lengths; format {read.fmt.id} "
            f"stores {read.table.replace('_', ' ')}"
        )
    own, span = con.execute(
        "SELECT (SELECT count(*) FROM length_dists WHERE trace_id = $1), "
        "(SELECT max(window_start_s + window_s) FROM rate_windows WHERE trace_id = $1)",
        [trace_id],
    ).fetchall()[0]
    if own:
        raise PlannerError(
            f"{source.path}: has token-length PMFs of its own; --lengths is for rate series "
            "without them"
        )
    pmf = borrowed_lengths(con, str(read.lengths), float(span or 0.0))
    lengths = f"SELECT {', '.join(_TARGETS['length_dists'])} FROM {_ARROW}"
    return Select("length_dists", lengths, rebase=False, time_column="window_start_s", arrow=pmf)


def _aggregate_selects(aggregates: Aggregates) -> list[Select]:
    """Selects storing aggregates from their Arrow tables, in the stored clock."""
    given = {c: c for c in aggregates.rate_windows.column_names}
    windows = f"SELECT {canonical(RATE_COLUMNS, given)} FROM {_ARROW}"
    lengths = f"SELECT {', '.join(_TARGETS['length_dists'])} FROM {_ARROW}"
    return [
        Select(
            "rate_windows",
            windows,
            rebase=False,
            time_column="window_start_s",
            arrow=aggregates.rate_windows,
        ),
        Select(
            "length_dists",
            lengths,
            rebase=False,
            time_column="window_start_s",
            arrow=aggregates.length_dists,
        ),
    ]


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """End a failed ingest's transaction, then drop the Arrow source a failed statement left
    registered (unregistering inside an aborted transaction would itself fail)."""
    with contextlib.suppress(duckdb.TransactionException):  # a failed COMMIT has ended it
        con.rollback()
    con.unregister(_ARROW)


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
) -> tuple[float | None, list[str], dict[str, int]]:
    """Run each reader's SQL into its table, time rebased to the earliest event of any file;
    return that start (for absolute clocks), the readers' warnings about the time column, and
    the rows of each file read by a select of its own."""
    base, warnings = _rebase(con, source, selects)
    files: dict[str, int] = {}
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
        rows = _execute(con, source, sql, [trace_id, *sel.params], sel)[0][0]
        if sel.path is not None:
            files[str(sel.path)] = files.get(str(sel.path), 0) + rows
    refuse_empty_files(source, files)
    for table in dict.fromkeys(sel.table for sel in selects):
        _check_values(con, source, [sel for sel in selects if sel.table == table], trace_id)
    return _start(selects, base), warnings, files


def _start(selects: list[Select], base: float | None) -> float | None:
    """The epoch time a source's rebased clock starts at; None for relative clocks."""
    rebased = any(sel.rebase for sel in selects)
    return base if rebased and any(sel.epoch for sel in selects) else None


def _rebase(
    con: duckdb.DuckDBPyConnection, source: Source, selects: list[Select]
) -> tuple[float, list[str]]:
    """The earliest event of any rebased select (0 when none), after refusing empty or
    non-finite times; and the readers' warnings about the time column over every file."""
    bases, ranges = [], []
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
            _refuse_empty_time(con, source, sel, row[2])
        if sel.warn is not None:
            ranges.append(row[:2])
    base = min((b for b in bases if b is not None), default=0.0)
    if not math.isfinite(base):  # -inf (or NaN): rebasing would turn every time into NaN / inf
        rebased = [s for s in selects if s.rebase]
        found = _locate(con, rebased, f"NOT isfinite({rebased[0].time_column})")
        where = f"{found[0]}: line {found[1]}" if found else _where(source, rebased[0])
        raise PlannerError(f"{where}: timestamp {base} is not a finite number; NaN and inf refused")
    warned = next((sel.warn for sel in selects if sel.warn is not None), None)
    warnings = warned(str(source.path), *_span(ranges)) if warned is not None else []
    return base, warnings


@contextlib.contextmanager
def _memory_limit(con: duckdb.DuckDBPyConnection, limit: str) -> Iterator[None]:
    """DuckDB's memory limit lowered to `limit` for a block (it spills to disk beyond it), then
    restored."""
    before = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    con.execute(f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = '{before}'")


def duckdb_aggregates(
    con: duckdb.DuckDBPyConnection, source: Source, selects: list[Select], agg: Aggregation
) -> Aggregates:
    """Aggregate a request source with DuckDB, streaming from its files (no row is stored):
    the same time, value and per-file checks as a request ingest, then `windows_sql` and
    `lengths_sql` over every file at once."""
    tables = {sel.table for sel in selects}
    if tables != {"requests"}:
        raise PlannerError(
            f"--aggregate applies to request traces; format {'/'.join(sorted(tables))} is not one"
        )
    base, warnings = _rebase(con, source, selects)
    files: dict[str, int] = {}
    for sel in selects:
        _check_values(con, source, [sel], None)
        count = f"SELECT count(*), count(*) - count(t) FROM ({sel.sql})"
        rows, empty = _execute(con, source, count, sel.params, sel)[0]
        if empty:
            found = _locate(con, [sel], "t IS NULL")
            where = f"{found[0]}: line {found[1]}" if found else _where(source, sel)
            raise PlannerError(
                f"{where}: no timestamp (an empty or unreadable value) in {empty} row(s)"
            )
        if sel.path is not None:
            files[str(sel.path)] = rows
    refuse_empty_files(source, files)
    view = " UNION ALL ".join(
        canonical_sql(sel.sql, base if sel.rebase else 0.0) for sel in selects
    )
    params = [p for sel in selects for p in sel.params]
    results = []
    with _memory_limit(con, AGGREGATE_MEMORY):
        for query in (windows_sql("src", agg), lengths_sql("src", agg)):
            sql = f"WITH src AS ({view}) {query}"
            try:
                with tracked():
                    results.append(con.execute(sql, params).fetchnumpy())
            except duckdb.Error as exc:
                raise PlannerError(_duckdb_message(str(source.path), exc)) from None
    return Aggregates(
        rate_windows_table(results[0], agg),
        length_dists_table(results[1], agg),
        _start(selects, base),
        warnings,
        files,
    )


def _span(ranges: list[tuple]) -> tuple[float | None, float | None]:
    """The smallest start and largest end of (min, max) pairs, ignoring unknowns."""
    lows = [lo for lo, _ in ranges if lo is not None]
    highs = [hi for _, hi in ranges if hi is not None]
    return (min(lows) if lows else None), (max(highs) if highs else None)


def _refuse_empty_time(
    con: duckdb.DuckDBPyConnection, source: Source, sel: Select, empty: int
) -> None:
    """Refuse a select whose time column is empty (or unreadable) in `empty` rows, naming the
    first such line where the reader can find it."""
    line = _line_of(con, sel.null_time_line_sql) if sel.null_time_line_sql else None
    where = f": line {line}" if line is not None else ""
    if sel.time_expect:
        what, needs = "empty or unreadable timestamp", f"expected {sel.time_expect}"
    else:
        what, needs = "empty timestamp", "every row needs one"
    raise PlannerError(
        f"{_where(source, sel)}{where}: column {sel.time_source!r}: {what} "
        f"({empty} row(s)); {needs}"
    )


def _execute(
    con: duckdb.DuckDBPyConnection, source: Source, sql: str, params: list, sel: Select
) -> list[tuple]:
    """Execute SQL that reads the source; DuckDB errors become PlannerErrors naming the file.

    After an error the transaction is aborted: `_rollback` unregisters the Arrow source then.
    """
    if sel.arrow is not None:
        con.register(_ARROW, sel.arrow)
    try:
        with tracked():
            rows = con.execute(sql, params).fetchall()
    except duckdb.ConstraintException as exc:
        empty = re.search(r"NOT NULL constraint failed: \w+\.(\w+)", str(exc))
        if not empty:
            raise PlannerError(_duckdb_message(_where(source, sel), exc)) from None
        column = empty.group(1)
        renamed = {v: k for k, v in _RENAMES.get(sel.table, {}).items()}.get(column, column)
        found = _locate(con, [sel], f"{renamed} IS NULL")
        where = f"{found[0]}: line {found[1]}" if found else _where(source, sel)
        raise PlannerError(
            f"{where}: no {column} (an empty or unreadable value); every row needs one"
        ) from None
    except duckdb.Error as exc:
        if _GUARD in str(exc):  # find the row on the source, outside the aborted transaction
            _check_values(con.cursor(), source, [sel], None)
        raise PlannerError(_duckdb_message(_where(source, sel), exc)) from None
    if sel.arrow is not None:
        con.unregister(_ARROW)
    return rows


def _check_values(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    selects: list[Select],
    trace_id: int | None,
) -> None:
    """Refuse values no trace can hold (`_RULES`: NaN or infinite times, negative counts or
    durations, ...) in the rows the selects of one table stored under `trace_id`, or, when it is
    None, in the rows they read; naming the first offending line where the selects know it."""
    table = selects[0].table
    renamed = {v: k for k, v in _RENAMES.get(table, {}).items()}  # stored -> select name
    if trace_id is None:
        union = " UNION ALL ".join(f"SELECT * FROM ({sel.sql})" for sel in selects)
        relation = f"({union}) source_rows"
        params = [p for sel in selects for p in sel.params]
        name = lambda column: renamed.get(column, column)  # noqa: E731
    else:
        relation, params = f"{table} WHERE trace_id = ?", [trace_id]
        name = lambda column: column  # noqa: E731
    checks = [
        (column, test, what.format(c=column), expected)
        for columns, test, what, expected in _RULES[table]
        for column in columns
    ]
    counts = _execute(
        con,
        source,
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE {test.format(c=name(c))})" for c, test, _, _ in checks)
        + f" FROM {relation}",
        params,
        selects[0],
    )[0]
    for (column, test, what, expected), bad in zip(checks, counts, strict=True):
        if not bad:
            continue
        found = _locate(con, selects, test.format(c=renamed.get(column, column)))
        where = f"{found[0]}: line {found[1]}" if found else _where(source, selects[0])
        raise PlannerError(f"{where}: {what} ({bad} row(s)); {expected}")


def _locate(
    con: duckdb.DuckDBPyConnection, selects: list[Select], test: str
) -> tuple[str, int] | None:
    """(file, line) of the first row of the selects, in order, where `test` holds, or None if
    unknown."""
    for sel in selects:
        for where, rows in sel.lines:
            sql = f"SELECT _line FROM ({rows}) WHERE {test} ORDER BY _line LIMIT 1"
            line = _line_of(con, sql)
            if line is not None:
                return where, line
    return None


def _line_of(con: duckdb.DuckDBPyConnection, sql: str) -> int | None:
    """The line number SQL over a source file finds, run alone on one thread so rows keep file
    order; None when it finds none or cannot run. It runs on its own cursor, outside the
    ingest's transaction, which a failure here must not abort."""
    cursor = con.cursor()
    try:
        threads = cursor.execute("SELECT current_setting('threads')").fetchall()[0][0]
        cursor.execute("SET threads = 1")
        try:
            rows = cursor.execute(sql).fetchall()
        except duckdb.Error:
            return None
        finally:
            cursor.execute(f"SET threads = {threads}")
    finally:
        cursor.close()
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


def _finish(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    table: str,
    trace_id: int,
    digest: str,
    start: float | None,
) -> None:
    """Fill the trace's row count, span and series; refuse a source with no data rows."""
    end = "window_start_s + window_s" if table == "rate_windows" else _TIME[table]
    rows, span, series = con.execute(
        f"SELECT count(*), max({end}) - min({_TIME[table]}), count(DISTINCT {_SERIES[table]}) "
        f"FROM {table} WHERE trace_id = ?",
        [trace_id],
    ).fetchall()[0]
    if rows == 0:
        raise PlannerError(f"{source.path}: no data rows (only a header?)")
    if not math.isfinite(span) or span < 0:
        raise PlannerError(
            f"{source.path}: timestamps span {span:g} s, too wide to be a time range; "
            "are some values far off or in another unit?"
        )
    if span > MAX_SPAN_S:  # analytics bin the span by the second: 1e300 s cannot be binned
        raise PlannerError(
            f"{source.path}: timestamps span {span / _YEAR_S:,.4g} years, longer than any "
            f"trace (at most {MAX_SPAN_S / _YEAR_S:g}); are some values far off or in another unit?"
        )
    if start is not None and not _FIRST_YEAR_S <= start <= _LAST_YEAR_S:
        raise PlannerError(
            f"{source.path}: first timestamp {start:g} s from 1970 lies outside the years "
            "1-9999; is it in another unit?"
        )
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
