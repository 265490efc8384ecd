"""The DuckDB trace store: one file holding every ingested trace in canonical tables.

Tables (the one place they are documented):

- ``traces``        one row per ingested source: id, name, format, kind (requests, rate_windows,
                    cold_starts), source path, content hash, row count, span, absolute start.
- ``requests``      one row per request: arrival_s (seconds from trace start), input/output
                    tokens, series (model / service / function / app), session, ok, duration_s
                    (execution time where the source gives it), pod_id, prefix_blocks
                    (Mooncake 512-token block hashes).
- ``rate_windows``  pre-aggregated sources: per series and window, the request count and rate,
                    the inter-arrival CV and fitted distribution the source gives, and cold-start
                    / pod counts where the source has them.
- ``cold_starts``   one row per cold start: time, function / pool / kind, total seconds and its
                    components, pool resources (mCPU, MB), pod id.
- ``length_dists``  token-length PMFs per series and window (ServeGen dataset.json).
"""

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from planner.errors import PlannerError

SCHEMA_VERSION = 1
DEFAULT_DB = "planner.duckdb"

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER NOT NULL,
        applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
    "CREATE SEQUENCE IF NOT EXISTS trace_ids START 1",
    """CREATE TABLE IF NOT EXISTS traces (
        id INTEGER PRIMARY KEY DEFAULT nextval('trace_ids'),
        name VARCHAR NOT NULL UNIQUE,
        format VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        content_hash VARCHAR NOT NULL,
        size_bytes BIGINT NOT NULL DEFAULT 0,
        rows BIGINT NOT NULL DEFAULT 0,
        span_s DOUBLE,
        series INTEGER,
        start_time TIMESTAMP,
        ingested_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
    """CREATE TABLE IF NOT EXISTS requests (
        trace_id INTEGER NOT NULL,
        arrival_s DOUBLE NOT NULL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        series VARCHAR,
        session_id VARCHAR,
        ok BOOLEAN NOT NULL DEFAULT TRUE,
        duration_s DOUBLE,
        pod_id VARCHAR,
        prefix_blocks BIGINT[])""",
    """CREATE TABLE IF NOT EXISTS rate_windows (
        trace_id INTEGER NOT NULL,
        series VARCHAR NOT NULL,
        window_start_s DOUBLE NOT NULL,
        window_s DOUBLE NOT NULL,
        requests DOUBLE,
        rate_rps DOUBLE,
        cv DOUBLE,
        dist VARCHAR,
        p1 DOUBLE,
        p2 DOUBLE,
        cold_starts DOUBLE,
        pods DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS cold_starts (
        trace_id INTEGER NOT NULL,
        time_s DOUBLE NOT NULL,
        series VARCHAR,
        pool VARCHAR,
        kind VARCHAR,
        cluster VARCHAR,
        total_s DOUBLE NOT NULL,
        pod_allocation_s DOUBLE,
        deploy_code_s DOUBLE,
        deploy_dependency_s DOUBLE,
        scheduling_s DOUBLE,
        model_load_s DOUBLE,
        cpu_millicores INTEGER,
        memory_mb INTEGER,
        pod_id VARCHAR,
        request_id VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS length_dists (
        trace_id INTEGER NOT NULL,
        series VARCHAR NOT NULL,
        window_start_s DOUBLE NOT NULL,
        window_s DOUBLE NOT NULL,
        which VARCHAR NOT NULL,
        tokens INTEGER NOT NULL,
        prob DOUBLE NOT NULL)""",
]

DATA_TABLES = ("requests", "rate_windows", "cold_starts", "length_dists")


@dataclass(frozen=True)
class TraceInfo:
    """One row of the ``traces`` table."""

    id: int
    name: str
    format: str
    kind: str
    source: str
    content_hash: str
    rows: int
    span_s: float | None
    series: int | None
    start_time: str | None
    ingested_at: str


def default_db_path() -> Path:
    """The store path: ``$PLANNER_DB`` if set, else ``./planner.duckdb``."""
    return Path(os.environ.get("PLANNER_DB", DEFAULT_DB))


def open_store(
    path: Path | str | None = None, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """Open (creating and migrating if needed) the store, with clear errors for common faults."""
    db = Path(path) if path is not None else default_db_path()
    if not db.parent.exists():
        raise PlannerError(f"{db}: folder {db.parent} does not exist")
    if read_only and not db.exists():
        raise PlannerError(f"{db}: no store here yet (run `planner ingest` first)")
    try:
        con = duckdb.connect(str(db), read_only=read_only)
    except duckdb.IOException as exc:
        msg = str(exc).splitlines()[0]
        if "lock" in msg.lower():
            raise PlannerError(f"{db}: the store is locked by another process ({msg})") from None
        raise PlannerError(f"{db}: cannot open store ({msg})") from None
    except duckdb.Error as exc:
        raise PlannerError(f"{db}: not a planner store ({str(exc).splitlines()[0]})") from None
    con.execute("SET enable_progress_bar = false").fetchall()
    if not read_only:
        _migrate(con)
    else:
        _check_version(con, db)
    return con


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schema on a new file; later versions add their migrations here."""
    for statement in _SCHEMA:
        con.execute(statement)
    current = con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]
    if current is None:
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION])
    elif current > SCHEMA_VERSION:
        raise PlannerError(
            f"store schema version {current} is newer than this planner ({SCHEMA_VERSION})"
        )


def _check_version(con: duckdb.DuckDBPyConnection, db: Path) -> None:
    """Refuse a read-only store that is not ours or is newer than this code."""
    try:
        current = con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]
    except duckdb.CatalogException:
        raise PlannerError(f"{db}: not a planner store (no schema_version table)") from None
    if current is None or current > SCHEMA_VERSION:
        raise PlannerError(f"{db}: unsupported store schema version {current}")


def list_traces(con: duckdb.DuckDBPyConnection) -> list[TraceInfo]:
    """All ingested traces, oldest first."""
    rows = con.execute(
        "SELECT id, name, format, kind, source, content_hash, rows, span_s, series, "
        "CAST(start_time AS VARCHAR), CAST(ingested_at AS VARCHAR) FROM traces ORDER BY id"
    ).fetchall()
    return [TraceInfo(*row) for row in rows]


def get_trace(con: duckdb.DuckDBPyConnection, name: str) -> TraceInfo:
    """The trace called `name`, or a PlannerError listing the ones that exist."""
    for info in list_traces(con):
        if info.name == name:
            return info
    known = ", ".join(t.name for t in list_traces(con)) or "none (run `planner ingest` first)"
    raise PlannerError(f"unknown trace {name!r}; loaded traces: {known}")


def run_query(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple]]:
    """Run read-only SQL and return (column names, rows), with DuckDB errors as PlannerError.

    External access is switched off first, so user SQL can read the store but cannot read or
    write other files (e.g. COPY ... TO).
    """
    try:
        con.execute("SET enable_external_access = false").fetchall()
        cursor = con.execute(sql)
    except duckdb.Error as exc:
        raise PlannerError(f"query failed: {str(exc).splitlines()[0]}") from None
    if cursor.description is None:
        return [], []
    columns = [d[0] for d in cursor.description]
    return columns, cursor.fetchall()
