"""The DuckDB trace store: one file holding every ingested trace in canonical tables.

Tables (the one place they are documented):

- ``traces``        one row per ingested source: id, name, format, kind (requests, rate_windows,
                    cold_starts), source path, content hash, row count, span, absolute start, and
                    read_options: JSON of the options besides the content and format that decide
                    the stored rows (the --map and --time-unit of csv/parquet; ``{}`` for the
                    other formats; NULL for traces ingested before schema version 2).
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

Every table whose rows belong to a trace has a ``trace_id`` column; `delete_traces` finds them in
``information_schema``, so a table added later is covered without touching it.
"""

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from planner.errors import PlannerError

SCHEMA_VERSION = 2
DEFAULT_DB = "planner.duckdb"
MAX_TOKENS = 2**31 - 1  # the largest token count the INTEGER token columns below hold

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
        ingested_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        read_options VARCHAR)""",
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

# Statements that bring a store from version N-1 to N, applied in order by `_migrate`. A new
# store gets the current `_SCHEMA` directly; these only run on older files.
_MIGRATIONS: dict[int, list[str]] = {
    2: ["ALTER TABLE traces ADD COLUMN IF NOT EXISTS read_options VARCHAR"],
}


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


def remove_store(path: Path) -> None:
    """Delete a store file and its write-ahead log (a store that holds nothing)."""
    for file in (path, path.with_name(path.name + ".wal")):
        file.unlink(missing_ok=True)


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
    """Create the schema on a new file, or bring an older file up to date (`_MIGRATIONS`)."""
    for statement in _SCHEMA:
        con.execute(statement)
    current = con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]
    if current is None:
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION])
    elif current > SCHEMA_VERSION:
        raise PlannerError(
            f"store schema version {current} is newer than this planner ({SCHEMA_VERSION})"
        )
    start = SCHEMA_VERSION if current is None else current
    for version in range(start + 1, SCHEMA_VERSION + 1):
        con.begin()
        try:
            for statement in _MIGRATIONS.get(version, []):
                con.execute(statement)
            con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
            con.commit()
        except BaseException:
            con.rollback()
            raise


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


def trace_read_options(con: duckdb.DuckDBPyConnection, trace_id: int) -> dict | None:
    """The read options a trace was ingested with (see ``traces``); None if not recorded."""
    rows = con.execute("SELECT read_options FROM traces WHERE id = ?", [trace_id]).fetchall()
    return json.loads(rows[0][0]) if rows and rows[0][0] is not None else None


def encode_read_options(options: dict) -> str:
    """The stored (canonical JSON) form of a trace's read options."""
    return json.dumps(options, sort_keys=True, separators=(",", ":"))


def trace_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every table of the store with a ``trace_id`` column: where a trace's rows live."""
    rows = con.execute(
        "SELECT DISTINCT c.table_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_catalog, table_schema, table_name) "
        "WHERE c.column_name = 'trace_id' AND t.table_type = 'BASE TABLE' "
        "AND c.table_catalog = current_database() AND c.table_schema = current_schema() "
        "ORDER BY c.table_name"
    ).fetchall()
    return [r[0] for r in rows]


def delete_trace_rows(con: duckdb.DuckDBPyConnection, trace_id: int) -> None:
    """Remove a trace and every row that belongs to it (inside the caller's transaction)."""
    for table in trace_tables(con):
        con.execute(f'DELETE FROM "{table}" WHERE trace_id = ?', [trace_id])
    con.execute("DELETE FROM traces WHERE id = ?", [trace_id])


def delete_traces(con: duckdb.DuckDBPyConnection, names: Iterable[str]) -> list[TraceInfo]:
    """Remove the named traces and all their rows in one transaction; return what was removed.

    Every name is checked first: one unknown name is a PlannerError listing the loaded traces,
    and nothing is removed.
    """
    infos = {}
    for name in names:
        infos.setdefault(name, get_trace(con, name))
    con.begin()
    try:
        for info in infos.values():
            delete_trace_rows(con, info.id)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return list(infos.values())


# `planner query` runs one statement of these kinds; everything else (SET, PRAGMA, CALL, COPY,
# EXPORT, ATTACH, INSTALL/LOAD, writes, DDL, transactions, ...) is refused before DuckDB runs it.
# SHOW, DESCRIBE and SUMMARIZE parse as SELECTs; an EXPLAIN must wrap a SELECT.
_READ_STATEMENTS = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)
# Table functions a query may call: generators and read-only catalog views. The others can change
# settings, write files, read files or run SQL given as a string (enable_logging, checkpoint,
# read_csv, query, ...).
_READ_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "repeat",
        "json_each",
        "json_tree",
        "duckdb_columns",
        "duckdb_constraints",
        "duckdb_databases",
        "duckdb_functions",
        "duckdb_indexes",
        "duckdb_keywords",
        "duckdb_schemas",
        "duckdb_settings",
        "duckdb_tables",
        "duckdb_types",
        "duckdb_views",
        "pragma_table_info",
        "pragma_show",
        "pragma_database_size",
        "pragma_version",
    }
)
_READ_ONLY = "planner query runs one read-only SELECT on the store"


def run_query(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple]]:
    """Run one read-only SELECT and return (column names, rows); anything else is a PlannerError.

    DuckDB's own parser classifies the SQL first, and only a single SELECT (SHOW, DESCRIBE and
    SUMMARIZE included) or an EXPLAIN of one, calling only the table functions in
    `_READ_TABLE_FUNCTIONS`, ever reaches execution. Then external access and Python replacement
    scans are switched off and the configuration locked, so the query can read the store but no
    other file or setting. Every DuckDB error, and anything else DuckDB raises, becomes one line.
    """
    try:
        _check_read_only(con, sql)
        if not con.execute("SELECT current_setting('lock_configuration')").fetchone()[0]:
            con.execute("SET enable_external_access = false")
            con.execute("SET python_enable_replacements = false")
            con.execute("SET lock_configuration = true")
        cursor = con.execute(sql)
        if cursor.description is None:
            return [], []
        columns = [d[0] for d in cursor.description]
        return columns, cursor.fetchall()
    except PlannerError:
        raise
    except Exception as exc:  # duckdb raises its own Error tree, but also ValueError & co.
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise PlannerError(f"query failed: {lines[0] if lines else type(exc).__name__}") from None


def _check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse (PlannerError) SQL that is not exactly one read: parsed, never executed."""
    statements = [(_statement_type(s), s.query) for s in con.extract_statements(sql)]
    if not statements:
        raise PlannerError(
            f"query refused: no SQL statement given; {_READ_ONLY}, e.g. 'SELECT * FROM traces'"
        )
    for kind, query in statements:
        if kind not in _READ_STATEMENTS:
            word = _leading_keyword(query) or (kind.name.replace("_", " ") if kind else "these")
            raise PlannerError(f"query refused: {word} statements are not allowed; {_READ_ONLY}")
    if len(statements) > 1:
        raise PlannerError(f"query refused: {len(statements)} statements given; {_READ_ONLY}")
    kind, text = statements[0]
    if kind == duckdb.StatementType.EXPLAIN:
        text = _explained(text)
        inner = [_statement_type(s) for s in con.extract_statements(text)] if text.strip() else []
        if inner != [duckdb.StatementType.SELECT]:
            raise PlannerError(f"query refused: EXPLAIN only of a SELECT; {_READ_ONLY}")
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()[0])
    if tree.get("error"):
        reason = str(tree.get("error_message") or "").strip().splitlines()
        raise PlannerError(
            f"query refused: cannot check this SELECT ({reason[0] if reason else 'unknown'}); "
            f"{_READ_ONLY}"
        )
    refused = sorted(_table_functions(tree) - _READ_TABLE_FUNCTIONS)
    if refused:
        raise PlannerError(
            f"query refused: table function {refused[0]}() is not allowed; planner query reads "
            "only the store's tables, range, generate_series, unnest, json_each, json_tree, "
            "pragma_table_info and the duckdb_* catalog functions"
        )


def _statement_type(statement: "duckdb.Statement") -> "duckdb.StatementType | None":
    """A parsed statement's type; None for a type this duckdb's Python API cannot name."""
    try:
        return statement.type
    except ValueError:  # e.g. UPDATE EXTENSIONS: "29 is not a valid StatementType"
        return None


def _tokens(sql: str) -> list[tuple[int, str]]:
    """(offset, text) of each token of `sql` but comments, from DuckDB's tokenizer."""
    spans = [start for start, kind in duckdb.tokenize(sql) if kind != duckdb.token_type.comment]
    return [(start, sql[start:].split(None, 1)[0]) for start in spans]


def _leading_keyword(sql: str) -> str | None:
    """The keyword a statement starts with (PRAGMA, CALL, ...), unless it is WITH or none."""
    tokens = _tokens(sql)
    word = tokens[0][1].rstrip(";(").upper() if tokens else ""
    return word if word.isalpha() and word != "WITH" else None


def _explained(sql: str) -> str:
    """The statement an `EXPLAIN [ANALYZE] [(options)]` wraps ("" when there is none)."""
    tokens = _tokens(sql)
    if not tokens or tokens[0][1].upper() != "EXPLAIN":
        return ""
    i = 1
    if i < len(tokens) and tokens[i][1].upper() in ("ANALYZE", "ANALYSE"):
        i += 1
    if i < len(tokens) and tokens[i][1].startswith("("):
        while i < len(tokens) and not tokens[i][1].startswith(")"):
            i += 1
        i += 1
    return sql[tokens[i][0] :] if i < len(tokens) else ""


def _table_functions(node: object) -> set[str]:
    """Names of the table functions a serialized (json_serialize_sql) query calls."""
    found: set[str] = set()
    if isinstance(node, dict):
        if node.get("type") == "TABLE_FUNCTION":
            found.add(str((node.get("function") or {}).get("function_name", "")).lower())
        for value in node.values():
            found |= _table_functions(value)
    elif isinstance(node, list):
        for value in node:
            found |= _table_functions(value)
    return found
