"""The trace formats planner reads: how each is detected and mapped onto the store's tables.

Each reader returns SQL that DuckDB streams straight from the file into a canonical shape;
`planner.ingest.loader` runs it inside one transaction. No Python loop touches rows.
"""

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from planner.errors import PlannerError
from planner.ingest.servegen_pmf import DATASET, PMF_WINDOW_S, read_pmfs
from planner.ingest.sources import (
    Source,
    csv_first_value,
    csv_header,
    csv_shape_problem,
    jsonl_keys,
)

REQUEST_COLUMNS = (
    "t",
    "input_tokens",
    "output_tokens",
    "series",
    "session_id",
    "ok",
    "duration_s",
    "pod_id",
    "prefix_blocks",
)
COLD_START_DURATIONS = (
    "total_s",
    "pod_allocation_s",
    "deploy_code_s",
    "deploy_dependency_s",
    "scheduling_s",
    "model_load_s",
)
COLD_START_COLUMNS = (
    "time_s",
    "series",
    "pool",
    "kind",
    "cluster",
    *COLD_START_DURATIONS,
    "cpu_millicores",
    "memory_mb",
    "pod_id",
    "request_id",
)
RATE_COLUMNS = (
    "series",
    "window_start_s",
    "window_s",
    "requests",
    "rate_rps",
    "cv",
    "dist",
    "p1",
    "p2",
    "cold_starts",
    "pods",
)


@dataclass
class Select:
    """SQL producing canonical rows for one table, and how to place its time axis.

    `warn` turns the source's name and the time column's (min, max) in seconds, over every file
    of the source, into warnings for the user;
    `time_source` (the source column of the time) asks the loader to refuse empty times,
    naming the first line `null_time_line_sql` finds (and `time_expect`, the format expected,
    where a value that does not parse also reads as empty). `lines` lets the loader name the
    line of a value it refuses (see `numbered`): per file read, SQL giving each canonical row
    with its physical line as ``_line``.
    """

    table: str
    sql: str
    params: list = field(default_factory=list)
    rebase: bool = True
    epoch: bool = False
    time_column: str = "t"
    lines: list[tuple[str, str]] = field(default_factory=list)
    arrow: pa.Table | None = None
    path: Path | None = None
    warn: Callable[[str, float | None, float | None], list[str]] | None = None
    time_source: str | None = None
    null_time_line_sql: str | None = None
    time_expect: str | None = None


@dataclass(frozen=True)
class Format:
    """A readable trace format: its id, target table, expected columns, detector and reader.

    `generic` marks the csv / parquet readers, whose result also depends on the --map and the
    time unit: their `read` takes the time unit as a third argument. `reads_folder` marks a
    reader that takes a many-file source as a whole (a ServeGen folder, a Huawei release); any
    other reader reads one file, and a many-file source of its format is read file by file
    (`read_source`).
    """

    id: str
    table: str
    description: str
    columns: tuple[str, ...]
    optional: tuple[str, ...]
    detect: Callable[[Source], bool]
    read: Callable[[Source, dict[str, str]], list[Select]]
    generic: bool = False
    reads_folder: bool = False


def sql_str(value: str | Path) -> str:
    """Quote a string as a SQL literal."""
    return "'" + str(value).replace("'", "''") + "'"


def canonical(columns: tuple[str, ...], given: dict[str, str]) -> str:
    """A SELECT list with every canonical column, NULL where the source lacks it."""
    return ", ".join(f"{given.get(c, 'NULL')} AS {c}" for c in columns)


def require_columns(path: Path, header: list[str], fmt_id: str, required: tuple[str, ...]) -> None:
    """Fail with the missing column and the format's expected columns."""
    missing = [c for c in required if c not in header]
    if missing:
        raise PlannerError(
            f"{path}: column {missing[0]!r} missing for format {fmt_id}; "
            f"expected columns: {', '.join(required)}; found: {', '.join(header)}"
        )
    unique_columns(path, header, required)


def unique_columns(path: Path, header: list[str], used: tuple[str, ...] | list[str]) -> None:
    """Refuse a header that names a column the reader uses more than once (which one is it?)."""
    twice = next((c for c in used if header.count(c) > 1), None)
    if twice is not None:
        raise PlannerError(f"{path}: header: column {twice!r} appears more than once")


def _has_columns(source: Source, required: tuple[str, ...]) -> bool:
    """True when the source is one CSV file whose header holds all `required` columns."""
    if len(source.files) != 1 or source.main.suffix in (".jsonl", ".json", ".parquet"):
        return False
    return set(required) <= set(csv_header(source.main))


# The CSV dialect every reader uses, fixed rather than sniffed: a comma-separated file with
# double quotes, no comment lines and no lines skipped before the header. Sniffing would let a
# damaged file be read another way: a line starting with '#' taken for a comment and dropped,
# junk lines before the header skipped, another delimiter guessed.
CSV_DIALECT = "delim=',', quote='\"', escape='\"', comment='', skip=0, strict_mode=true"


def typed_csv(
    path: Path, types: dict[str, str], header: bool = True, names: list[str] | None = None
) -> str:
    """A read_csv call with forced column types (so bad values fail with their line)."""
    typed = ", ".join(f"{sql_str(k)}: {sql_str(v)}" for k, v in types.items())
    opts = [f"header={str(header).lower()}", f"types={{{typed}}}"] if types else []
    if not header:
        opts = ["header=false", f"names={names!r}"]
        if types:
            opts.append(f"types={{{typed}}}")
    return f"read_csv({sql_str(path)}, {', '.join([*opts, CSV_DIALECT])})"


def numbered(path: Path | str, sql: str, first_line: int) -> list[tuple[str, str]]:
    """`Select.lines` for a select reading one file in order: its rows numbered from
    `first_line` (2 after a header line). Run with one thread, rows keep file order."""
    return [(str(path), f"SELECT row_number() OVER () + {first_line - 1} AS _line, * FROM ({sql})")]


def tokens_line_sql(source_sql: str, checks: str) -> str:
    """SQL finding the first data line (1-based, header = line 1) where `checks` holds."""
    return (
        f"SELECT n + 1 FROM (SELECT row_number() OVER () AS n, * FROM {source_sql}) "
        f"WHERE {checks} ORDER BY n LIMIT 1"
    )


# --- azure-llm -------------------------------------------------------------------------------
AZURE_LLM = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def _read_azure_llm(source: Source, _: dict[str, str]) -> list[Select]:
    require_columns(source.main, csv_header(source.main), "azure-llm", AZURE_LLM)
    src = typed_csv(
        source.main,
        {"TIMESTAMP": "VARCHAR", "ContextTokens": "DOUBLE", "GeneratedTokens": "DOUBLE"},
    )
    # try_strptime: an unreadable timestamp becomes NULL, which the loader refuses by its line
    stamp = "try_strptime(split_part(TIMESTAMP, '.', 1), '%Y-%m-%d %H:%M:%S')"
    ts = f"epoch({stamp}) + coalesce(TRY_CAST('0.' || split_part(TIMESTAMP, '.', 2) AS DOUBLE), 0)"
    cols = {"t": ts, "input_tokens": "ContextTokens", "output_tokens": "GeneratedTokens"}
    sql = f"SELECT {canonical(REQUEST_COLUMNS, cols)} FROM {src}"
    return [
        Select(
            "requests",
            sql,
            epoch=True,
            lines=numbered(source.main, sql, 2),
            time_source="TIMESTAMP",
            null_time_line_sql=tokens_line_sql(src, f"{stamp} IS NULL"),
            time_expect="YYYY-MM-DD HH:MM:SS[.fraction]",
        )
    ]


# --- burstgpt --------------------------------------------------------------------------------
BURSTGPT = ("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")
BURSTGPT_OPTIONAL = ("Session ID", "Elapsed time")


def _read_burstgpt(source: Source, _: dict[str, str]) -> list[Select]:
    header = csv_header(source.main)
    require_columns(source.main, header, "burstgpt", BURSTGPT)
    types = {"Timestamp": "DOUBLE", "Request tokens": "DOUBLE", "Response tokens": "DOUBLE"}
    cols = {
        "t": '"Timestamp"',
        "input_tokens": '"Request tokens"',
        "output_tokens": '"Response tokens"',
        "series": '"Model"',
        "ok": '"Response tokens" > 0',
    }
    if "Session ID" in header:
        types["Session ID"] = "VARCHAR"
        cols["session_id"] = '"Session ID"'
    if "Elapsed time" in header:
        types["Elapsed time"] = "DOUBLE"
        cols["duration_s"] = '"Elapsed time"'
    src = typed_csv(source.main, types)
    sql = f"SELECT {canonical(REQUEST_COLUMNS, cols)} FROM {src}"
    return [Select("requests", sql, rebase=False, lines=numbered(source.main, sql, 2))]


def json_number(column: str) -> str:
    """A JSON value as a DOUBLE: NaN where it is not a JSON number (`true`, `"12"`, a list),
    which the loader refuses as not finite, where a cast would read `true` as 1."""
    return (
        f"CASE WHEN json_type({column}) IN ('UBIGINT', 'BIGINT', 'DOUBLE') "
        f"THEN CAST({column} AS DOUBLE) WHEN {column} IS NOT NULL THEN 'NaN'::DOUBLE END"
    )


# --- mooncake --------------------------------------------------------------------------------
MOONCAKE = ("timestamp", "input_length", "output_length")


def _read_mooncake(source: Source, _: dict[str, str]) -> list[Select]:
    keys = jsonl_keys(source.main)
    require_columns(source.main, keys, "mooncake", MOONCAKE)
    spec = "{timestamp: 'JSON', input_length: 'JSON', output_length: 'JSON'"
    spec += ", hash_ids: 'BIGINT[]'}" if "hash_ids" in keys else "}"
    src = f"read_json({sql_str(source.main)}, format='newline_delimited', columns={spec})"
    cols = {
        "t": f"{json_number('timestamp')} / 1000.0",
        "input_tokens": json_number("input_length"),
        "output_tokens": json_number("output_length"),
    }
    if "hash_ids" in keys:
        cols["prefix_blocks"] = "hash_ids"
    sql = f"SELECT {canonical(REQUEST_COLUMNS, cols)} FROM {src}"
    return [Select("requests", sql, lines=numbered(source.main, sql, 1))]


# --- azure-functions -------------------------------------------------------------------------
AZURE_FUNCTIONS = ("app", "func", "end_timestamp", "duration")


def _read_azure_functions(source: Source, _: dict[str, str]) -> list[Select]:
    require_columns(source.main, csv_header(source.main), "azure-functions", AZURE_FUNCTIONS)
    src = typed_csv(source.main, {"end_timestamp": "DOUBLE", "duration": "DOUBLE"})
    cols = {
        "t": "end_timestamp - duration",
        "series": "app || '/' || func",
        "duration_s": "duration",
    }
    sql = f"SELECT {canonical(REQUEST_COLUMNS, cols)} FROM {src}"
    return [Select("requests", sql, lines=numbered(source.main, sql, 2))]


# --- gentd26 ---------------------------------------------------------------------------------
GENTD26_LOAD = ("timestamp_anon", "value", "container_ip")
GENTD26_REQUESTS = (
    "gmt_create",
    "predict_status",
    "exec_time_seconds",
    "checkpoint_model_version_id",
)


def _gentd26_kind(path: Path) -> str:
    """The load kind from the release's file name: basemodel, lora or pipeline."""
    return path.name.split("_update_latency")[0].split("_")[0]


def _read_gentd26_load(source: Source, _: dict[str, str]) -> list[Select]:
    selects = []
    for path in source.files:
        require_columns(path, csv_header(path), "gentd26-load", GENTD26_LOAD)
        src = typed_csv(
            path, {"timestamp_anon": "DOUBLE", "value": "DOUBLE", "container_ip": "VARCHAR"}
        )
        cols = {
            "time_s": "timestamp_anon",
            "kind": sql_str(_gentd26_kind(path)),
            "total_s": "value / 1000.0",
            "model_load_s": "value / 1000.0",
            "pod_id": "container_ip",
        }
        sql = f"SELECT {canonical(COLD_START_COLUMNS, cols)} FROM {src}"
        selects.append(
            Select(
                "cold_starts",
                sql,
                epoch=True,
                time_column="time_s",
                lines=numbered(path, sql, 2),
                path=path,
            )
        )
    return selects


def _read_gentd26_requests(source: Source, _: dict[str, str]) -> list[Select]:
    require_columns(source.main, csv_header(source.main), "gentd26-requests", GENTD26_REQUESTS)
    src = typed_csv(source.main, {"gmt_create": "TIMESTAMP", "exec_time_seconds": "DOUBLE"})
    cols = {
        "t": "epoch(gmt_create)",
        "series": "checkpoint_model_version_id",
        "ok": "predict_status = 'SUCCEED'",
        "duration_s": "exec_time_seconds",
    }
    sql = f"SELECT {canonical(REQUEST_COLUMNS, cols)} FROM {src}"
    return [Select("requests", sql, epoch=True, lines=numbered(source.main, sql, 2))]


# --- servegen --------------------------------------------------------------------------------
SERVEGEN_TRACE = re.compile(r"chunk-(\d+)-trace\.csv$")
SERVEGEN_COLUMNS = ("window_start_s", "rate_rps", "cv", "dist", "p1", "p2")
SERVEGEN_WINDOW_S = 600.0


def servegen_traces(source: Source) -> list[Path]:
    """The per-client chunk-N-trace.csv files of a ServeGen folder."""
    return [p for p in source.files if SERVEGEN_TRACE.search(p.name)]


def _servegen_sql(traces: list[Path]) -> str:
    """Canonical rate_windows rows of ServeGen chunk-N-trace.csv files."""
    files = "[" + ", ".join(sql_str(p) for p in traces) + "]"
    types = {"rate_rps": "DOUBLE", "window_start_s": "DOUBLE", "cv": "DOUBLE"}
    typed = ", ".join(f"{sql_str(k)}: {sql_str(v)}" for k, v in types.items())
    src = (
        f"read_csv({files}, header=false, names={list(SERVEGEN_COLUMNS)!r}, "
        f"types={{{typed}}}, filename=true, {CSV_DIALECT})"
    )
    cols = {
        "series": "regexp_extract(filename, 'chunk-[0-9]+')",
        "window_start_s": "window_start_s",
        "window_s": str(SERVEGEN_WINDOW_S),
        "requests": f"rate_rps * {SERVEGEN_WINDOW_S}",
        "rate_rps": "rate_rps",
        "cv": "cv",
        "dist": "nullif(dist, '')",
        "p1": "TRY_CAST(p1 AS DOUBLE)",
        "p2": "TRY_CAST(p2 AS DOUBLE)",
    }
    return f"SELECT {canonical(RATE_COLUMNS, cols)} FROM {src}"


def _one_file_per_client(source: Source) -> None:
    """Refuse a folder with two trace (or two dataset) files of one client: ServeGen numbers
    its clients per model folder (language/m-large and language/m-mid both hold chunk-0), and
    the two would be stored as one series, every window twice."""
    seen: dict[tuple[str, str], Path] = {}
    for path in source.files:
        for kind, pattern in (("trace", SERVEGEN_TRACE), ("dataset", DATASET)):
            match = pattern.search(path.name)
            if match is None:
                continue
            key = (kind, "chunk-" + match.group(1).removeprefix("chunk-"))
            if key in seen:
                both = " and ".join(str(p.relative_to(source.path)) for p in (seen[key], path))
                raise PlannerError(
                    f"{source.path}: two ServeGen {kind} files of client {key[1]} ({both}): "
                    "clients are numbered per model folder; ingest each model's folder on its own"
                )
            seen[key] = path


def _read_servegen(source: Source, _: dict[str, str]) -> list[Select]:
    traces = servegen_traces(source)
    if not traces:
        raise PlannerError(f"{source.path}: no chunk-N-trace.csv files for format servegen")
    _one_file_per_client(source)
    return [
        Select(
            "rate_windows",
            _servegen_sql(traces),
            rebase=False,
            time_column="window_start_s",
            lines=[line for p in traces for line in numbered(p, _servegen_sql([p]), 1)],
        ),
        Select(
            "length_dists",
            f"SELECT series, window_start_s, {PMF_WINDOW_S} AS window_s, which, tokens, prob "
            "FROM arrow_source",
            rebase=False,
            time_column="window_start_s",
            arrow=read_pmfs(source.files),
        ),
    ]


def _is_servegen(source: Source) -> bool:
    return source.path.is_dir() and bool(servegen_traces(source))


# --- generic csv / parquet -------------------------------------------------------------------
MAP_KEYS = {
    "ts": "t",
    "input": "input_tokens",
    "output": "output_tokens",
    "model": "series",
    "series": "series",
    "session": "session_id",
    "duration": "duration_s",
    "ok": "ok",
}
TIME_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
EPOCH_LIMIT_S = 1e11
SPAN_LIMIT_S = 366 * 86_400.0
_NUMERIC = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL",
}  # fmt: skip
_TZ_SUFFIX = re.compile(r"\d:\d\d(:\d\d(\.\d*)?)?\s*(Z|[+-]\d\d(:?\d\d)?)$", re.IGNORECASE)


def time_unit_warnings(
    where: str | Path, column: str, unit: str, lo: float | None, hi: float | None
) -> list[str]:
    """Warnings for numeric timestamps that look finer than the `unit` they were read in.

    `lo` and `hi` are the smallest and largest timestamp in seconds (read in `unit`). The rule:

    1. Magnitude. A value above 1e11 s cannot be seconds: as an epoch it is past the year 5138,
       as an offset from the trace start it is 3,170 years. Epoch milliseconds pass 1e11 from
       March 1973 on and epoch microseconds from 2 January 1970 on, so the suggested unit is
       the coarsest finer one that brings the largest value under 1e11 s (ms for epoch ms, us
       for epoch us).
    2. Span. Otherwise, a span of more than 366 days is longer than any request trace we know
       (BurstGPT, the longest public one, spans 213 days), while a few hours of relative
       milliseconds read as seconds land there; the next finer unit is suggested.

    Relative timestamps whose span still looks plausible when read as seconds (a 2-hour trace in
    ms reads as 83 days) cannot be told apart from a genuinely long trace, and get no warning.
    """
    if lo is None or hi is None:
        return []
    finer = [u for u, f in TIME_UNITS.items() if f > TIME_UNITS[unit]]
    if not finer:
        return []
    here = f"{where}: column {column!r}"
    seconds = max(abs(lo), abs(hi))
    if seconds > EPOCH_LIMIT_S:
        raw = seconds * TIME_UNITS[unit]
        fits = [u for u in finer if raw / TIME_UNITS[u] <= EPOCH_LIMIT_S]
        suggest = fits[0] if fits else finer[-1]
        return [
            f"{here}: timestamps reach {raw:.4g}, too large for {UNIT_NAMES[unit]} (over 1e11 s, "
            f"3,170 years); they look like epoch {UNIT_NAMES[suggest]}: use --time-unit {suggest}"
        ]
    if hi - lo > SPAN_LIMIT_S:
        return [
            f"{here}: timestamps span {(hi - lo) / 86_400:,.0f} days as {UNIT_NAMES[unit]}, "
            f"longer than any request trace; if they are {UNIT_NAMES[finer[0]]}, use "
            f"--time-unit {finer[0]}"
        ]
    return []


def _ident(name: str) -> str:
    """Quote a column name as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _describe(path: Path, src: str) -> dict[str, str]:
    """Column name -> DuckDB type of a table function over a file (a fresh in-memory DuckDB)."""
    con = duckdb.connect()
    try:
        return {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    except duckdb.Error as exc:
        raise PlannerError(f"{path}: {duckdb_detail(exc)}") from None
    finally:
        con.close()


def duckdb_detail(exc: duckdb.Error) -> str:
    """What went wrong, in one line, from a (many-line) DuckDB error, without its class prefix.

    A CSV error's reason follows the offending line's text; when the CSV sniffer gives up on a
    file (a ragged row, a stray quote), the first row whose width differs is named instead.
    """
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    first = re.sub(r"^[A-Za-z ]*Error: ", "", lines[0])
    if first.startswith("CSV Error on Line"):
        # "CSV Error on Line: N", "Original Line: <text, maybe several lines>", the reason, ""
        block = list(itertools.takewhile(str.strip, lines[1:]))
        reason = block[-1].strip() if len(block) > 1 else ""
        return reason or first
    sniffed = re.search(r'sniffing file "([^"]+)"', first)
    if sniffed:
        shape = csv_shape_problem(Path(sniffed.group(1)))
        return f"{shape}; not a comma-separated file" if shape else "cannot parse it as CSV"
    return first


def _scalar(dtype: str) -> str:
    """A DuckDB type's name without its parameters ("DECIMAL(9,2)" -> "DECIMAL"); the whole
    type for a list, array, struct, map or union, which no scalar check accepts."""
    if dtype.endswith("]") or dtype.startswith(("STRUCT", "MAP", "UNION")):
        return dtype
    return dtype.split("(")[0].strip()


def _time_type(path: Path, column: str, dtype: str, first: tuple[int | None, str] | None) -> str:
    """The type to read a timestamp column as: DOUBLE for numbers, or a date-time type.

    `dtype` is what DuckDB sniffed (or the Parquet schema says); when that is text, the first
    non-empty value decides, so that a bad value later fails on its own line rather than the
    whole column being taken for text.
    """
    base = _scalar(dtype)
    if base in _NUMERIC:
        return "DOUBLE"
    if base.startswith(("TIMESTAMP", "DATE", "TIME")):
        return dtype
    if base != "VARCHAR":
        raise PlannerError(
            f"{path}: column {column!r}: {dtype} values; timestamps must be numbers or date-times"
        )
    if first is None:
        raise PlannerError(f"{path}: column {column!r}: no timestamps (every value is empty)")
    line, value = first
    con = duckdb.connect()
    try:
        number, stamp = con.execute(
            "SELECT TRY_CAST(?::VARCHAR AS DOUBLE), TRY_CAST(?::VARCHAR AS TIMESTAMP)",
            [value, value],
        ).fetchall()[0]
    finally:
        con.close()
    if number is not None:
        return "DOUBLE"
    if stamp is not None:
        return "TIMESTAMP WITH TIME ZONE" if _TZ_SUFFIX.search(value.strip()) else "TIMESTAMP"
    where = f"{path}: line {line}" if line is not None else str(path)
    raise PlannerError(f"{where}: column {column!r}: {value!r} is neither a number nor a date-time")


def check_mapping(source: Source, mapping: dict[str, str], time_unit: str) -> None:
    """Refuse a --map without ts or with an unknown key, and an unknown time unit."""
    if "ts" not in mapping:
        raise PlannerError(
            f"{source.path}: generic formats need --map ts=COL[,input=COL,output=COL,model=COL]"
        )
    unknown = sorted(set(mapping) - set(MAP_KEYS))
    if unknown:
        raise PlannerError(f"--map: unknown key {unknown[0]!r}; known keys: {', '.join(MAP_KEYS)}")
    if time_unit not in TIME_UNITS:
        raise PlannerError(f"--time-unit {time_unit!r}: expected one of {', '.join(TIME_UNITS)}")


def _parquet_time_type(path: Path, column: str, src: str, declared: str) -> str:
    """The type a Parquet file's timestamp column is read as (text columns by their first
    non-blank value)."""
    first = None
    if declared == "VARCHAR":
        ts = _ident(column)
        con = duckdb.connect()
        try:
            rows = con.execute(
                f"SELECT {ts} FROM {src} WHERE nullif(trim({ts}), '') IS NOT NULL LIMIT 1"
            ).fetchall()
        except duckdb.Error as exc:
            raise PlannerError(f"{path}: {duckdb_detail(exc)}") from None
        finally:
            con.close()
        first = (None, rows[0][0]) if rows else None
    return _time_type(path, column, declared, first)


def _epoch_seconds(path: Path, column: str, ts_type: str, time_unit: str) -> str:
    """SQL for the timestamp column in epoch seconds (numbers in `time_unit`, date-times as
    they are)."""
    ts = _ident(column)
    if ts_type == "DOUBLE":
        seconds = f"CAST({ts} AS DOUBLE)"
        return seconds if time_unit == "s" else f"{seconds} / {TIME_UNITS[time_unit]}.0"
    if time_unit != "s":
        raise PlannerError(
            f"{path}: column {column!r} holds date-times; --time-unit applies to numeric "
            "timestamps only"
        )
    return f"epoch(CAST({ts} AS {ts_type}))"


def _read_mapped(source: Source, mapping: dict[str, str], time_unit: str = "s") -> list[Select]:
    """Any CSV or Parquet file, through a column mapping (--map) and a time unit (--time-unit).

    Numeric timestamps are read in `time_unit` (s, ms, us or ns), with a warning when they look
    finer (`time_unit_warnings`); date-time timestamps are converted to epoch seconds and take
    no unit. The timestamp column is read with a fixed type (see `_time_type`), so a bad or
    empty value fails naming its line (the header is line 1).
    """
    check_mapping(source, mapping, time_unit)
    path, column = source.main, mapping["ts"]
    parquet = path.suffix == ".parquet"
    if parquet:
        src = f"read_parquet({sql_str(path)})"
        schema = _describe(path, src)
        header = list(schema)
    else:
        header = csv_header(path)
    require_columns(path, header, "csv/parquet --map", tuple(mapping.values()))
    ts = _ident(column)
    if parquet:
        ts_type = _parquet_time_type(path, column, src, schema[column])
        for key in ("input", "output"):
            dtype = schema.get(mapping.get(key, ""), "VARCHAR")
            if _scalar(dtype) not in (*_NUMERIC, "VARCHAR"):
                raise PlannerError(
                    f"{path}: column {mapping[key]!r}: {dtype} values; token counts are numbers"
                )
    else:
        sniffed = _describe(path, f"read_csv({sql_str(path)}, header=true, {CSV_DIALECT})")
        first = csv_first_value(path, column) if sniffed.get(column) == "VARCHAR" else None
        ts_type = _time_type(path, column, sniffed.get(column, "VARCHAR"), first)
        types = {column: ts_type}
        types.update({mapping[k]: "DOUBLE" for k in ("input", "output") if k in mapping})
        src = typed_csv(path, types)
    cols = {MAP_KEYS[k]: _ident(v) for k, v in mapping.items() if k != "ts"}
    for key in ("input", "output"):  # numbers, checked whole before they are stored
        if key in mapping:
            cols[MAP_KEYS[key]] = f"CAST({_ident(mapping[key])} AS DOUBLE)"
    cols["t"] = _epoch_seconds(path, column, ts_type, time_unit)
    if "series" in cols:
        cols["series"] = f"CAST({cols['series']} AS VARCHAR)"
    number = ts_type == "DOUBLE"
    sql = f"SELECT {canonical(REQUEST_COLUMNS, cols)} FROM {src}"
    return [
        Select(
            "requests",
            sql,
            lines=numbered(path, sql, 2) if not parquet else [],
            warn=(lambda where, lo, hi: time_unit_warnings(where, column, time_unit, lo, hi))
            if number
            else None,
            time_source=column,
            null_time_line_sql=None if parquet else tokens_line_sql(src, f"{ts} IS NULL"),
        )
    ]


def _is_jsonl(source: Source) -> bool:
    return len(source.files) == 1 and source.main.name.endswith((".jsonl", ".jsonl.gz"))


def _never(_: Source) -> bool:
    return False


FORMATS: dict[str, Format] = {
    f.id: f
    for f in [
        Format(
            "azure-llm",
            "requests",
            "Azure LLM inference trace 2023 (CSV, absolute timestamps with 7 decimals)",
            AZURE_LLM,
            (),
            lambda s: _has_columns(s, AZURE_LLM),
            _read_azure_llm,
        ),
        Format(
            "burstgpt",
            "requests",
            "BurstGPT (CSV, Timestamp in s from trace start; 0 response tokens = failed)",
            BURSTGPT,
            BURSTGPT_OPTIONAL,
            lambda s: _has_columns(s, BURSTGPT),
            _read_burstgpt,
        ),
        Format(
            "mooncake",
            "requests",
            "Mooncake / Kimi (JSONL, timestamp in ms, hash_ids of 512-token prefix blocks)",
            MOONCAKE,
            ("hash_ids",),
            lambda s: _is_jsonl(s) and set(MOONCAKE) <= set(jsonl_keys(s.main)),
            _read_mooncake,
        ),
        Format(
            "servegen",
            "rate_windows",
            "Alibaba ServeGen folder (header-less chunk-N-trace.csv per client, 10-min windows; "
            "chunk-N-dataset.json(.gz) token PMFs)",
            SERVEGEN_COLUMNS,
            (),
            _is_servegen,
            _read_servegen,
            reads_folder=True,
        ),
        Format(
            "azure-functions",
            "requests",
            "Azure Functions invocation trace 2021 (CSV, end_timestamp and duration in s)",
            AZURE_FUNCTIONS,
            (),
            lambda s: _has_columns(s, AZURE_FUNCTIONS),
            _read_azure_functions,
        ),
        Format(
            "gentd26-load",
            "cold_starts",
            "Alibaba GenAI 2026 model load latencies (*_update_latency_anon CSV in tar.gz, ms)",
            GENTD26_LOAD,
            (),
            lambda s: "update_latency" in s.path.name and _has_columns(s, GENTD26_LOAD),
            _read_gentd26_load,
            reads_folder=True,
        ),
        Format(
            "gentd26-requests",
            "requests",
            "Alibaba GenAI 2026 LoRA request trace (CSV; series = checkpoint model version)",
            GENTD26_REQUESTS,
            (),
            lambda s: _has_columns(s, GENTD26_REQUESTS),
            _read_gentd26_requests,
        ),
        Format(
            "csv",
            "requests",
            "any CSV with a column mapping: --map ts=COL,input=COL,output=COL[,model=COL,...]; "
            "numeric ts in --time-unit s|ms|us|ns (default s), or date-times",
            ("ts",),
            ("input", "output", "model", "session", "duration", "ok"),
            _never,
            _read_mapped,
            generic=True,
        ),
        Format(
            "parquet",
            "requests",
            "any Parquet file with a column mapping and time unit (as csv)",
            ("ts",),
            ("input", "output", "model", "session", "duration", "ok"),
            _never,
            _read_mapped,
            generic=True,
        ),
    ]
}


def register(fmt: Format) -> None:
    """Add a reader to the registry (used by reader modules defined elsewhere)."""
    FORMATS[fmt.id] = fmt


def detect_format(source: Source, mapping: dict[str, str]) -> Format:
    """The format of a source from its header, keys or folder layout; a many-file source that
    no folder reader takes is detected on its first file."""
    if mapping:
        return FORMATS["parquet" if source.main.suffix == ".parquet" else "csv"]
    first = source.part(source.main)
    for fmt in FORMATS.values():
        if fmt.detect(source if fmt.reads_folder else first):
            return fmt
    what = f"header {csv_header(source.main)}" if len(source.files) == 1 else "folder layout"
    raise PlannerError(
        f"{source.path}: unknown format ({what}); use --format with one of: "
        f"{', '.join(FORMATS)} (see `planner formats`)"
    )


def read_source(
    fmt: Format, source: Source, mapping: dict[str, str], time_unit: str | None
) -> list[Select]:
    """The selects reading a source in a format: a many-file source of a one-file format is
    read file by file, every file checked to hold the first one's kind and columns."""
    parts = [source] if fmt.reads_folder or len(source.files) == 1 else []
    if not parts:
        layout = _layout(source.main)
        for path in source.files[1:]:
            _same_layout(path, _layout(path), source.main, layout)
        parts = [source.part(p) for p in source.files]
    selects = []
    for part in parts:
        read = fmt.read(part, mapping, time_unit or "s") if fmt.generic else fmt.read(part, mapping)
        if part is not source:
            for sel in read:
                sel.path = part.path
        selects += read
    return selects


_DATA_KINDS = (".csv.gz", ".jsonl.gz", ".csv", ".jsonl", ".json", ".parquet")


def _layout(path: Path) -> tuple[str, list[str]]:
    """A file's data kind (by extension) and columns: a CSV header, the keys of the first JSON
    line, or a Parquet schema's names and types (Hive partition keys included)."""
    kind = next((k for k in _DATA_KINDS if path.name.endswith(k)), path.suffix or path.name)
    if kind == ".parquet":
        schema = _describe(path, f"read_parquet({sql_str(path)})")
        return kind, [f"{name} {dtype}" for name, dtype in schema.items()]
    if kind.startswith(".json"):
        return kind, jsonl_keys(path)
    return kind, csv_header(path)


def _same_layout(
    path: Path, layout: tuple[str, list[str]], first: Path, expected: tuple[str, list[str]]
) -> None:
    """Refuse a file of a many-file trace whose kind or columns differ from the first file's."""
    (kind, columns), (want_kind, want) = layout, expected
    if kind != want_kind:
        raise PlannerError(
            f"{path}: a {kind} file among {want_kind} files (as {first.name}); every file of a "
            "trace must be of one format"
        )
    extra = next((c for c in columns if c not in want), None)
    missing = next((c for c in want if c not in columns), None)
    if extra is not None or missing is not None:
        what = f"has column {extra!r}" if extra is not None else f"lacks column {missing!r}"
        raise PlannerError(
            f"{path}: {what}, unlike {first.name}; every file of a trace must have the same columns"
        )


def get_format(fmt_id: str) -> Format:
    """A format by id, or an error listing the known ones."""
    if fmt_id not in FORMATS:
        raise PlannerError(f"unknown format {fmt_id!r}; known formats: {', '.join(FORMATS)}")
    return FORMATS[fmt_id]
