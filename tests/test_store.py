"""The store: schema creation, versioning, paths and read-only access."""

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import invoke

from planner.errors import PlannerError
from planner.store import SCHEMA_VERSION, default_db_path, open_store, run_query


def test_new_store_has_tables_and_version(db_path: Path) -> None:
    con = open_store(db_path)
    tables = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    assert {"traces", "requests", "rate_windows", "cold_starts", "length_dists"} <= tables
    assert con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0] == SCHEMA_VERSION
    con.close()
    again = open_store(db_path)
    assert again.execute("SELECT count(*) FROM schema_version").fetchall()[0][0] == 1


def test_newer_schema_is_refused(db_path: Path) -> None:
    open_store(db_path).close()
    con = duckdb.connect(str(db_path))
    con.execute("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION + 1])
    con.close()
    with pytest.raises(PlannerError, match="newer"):
        open_store(db_path)


def test_default_path_follows_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANNER_DB", "/tmp/elsewhere.duckdb")
    assert default_db_path() == Path("/tmp/elsewhere.duckdb")
    monkeypatch.delenv("PLANNER_DB")
    assert default_db_path() == Path("planner.duckdb")


def test_read_only_missing_store_and_foreign_file(tmp_path: Path) -> None:
    with pytest.raises(PlannerError, match="no store here"):
        open_store(tmp_path / "absent.duckdb", read_only=True)
    foreign = tmp_path / "foreign.duckdb"
    duckdb.connect(str(foreign)).close()
    with pytest.raises(PlannerError, match="not a planner store"):
        open_store(foreign, read_only=True)


def test_query_is_read_only(db_path: Path) -> None:
    open_store(db_path).close()
    con = open_store(db_path, read_only=True)
    with pytest.raises(PlannerError, match="read-only"):
        run_query(con, "DELETE FROM traces")
    assert run_query(con, "SELECT 1 AS one") == (["one"], [(1,)])


def test_query_cannot_touch_other_files(db_path: Path, tmp_path: Path) -> None:
    open_store(db_path).close()
    con = open_store(db_path, read_only=True)
    target = tmp_path / "leak.csv"
    with pytest.raises(PlannerError, match="query refused: COPY"):
        run_query(con, f"COPY (SELECT 1) TO '{target}'")
    assert not target.exists()


def filled_store(db: Path) -> None:
    """A store holding one trace with two requests."""
    open_store(db).close()
    con = duckdb.connect(str(db))
    con.execute(
        "INSERT INTO traces (name, format, kind, source, content_hash, rows) "
        "VALUES ('t', 'csv', 'requests', 't.csv', 'h', 2)"
    )
    con.execute(
        "INSERT INTO requests (trace_id, arrival_s, input_tokens) VALUES (1, 0, 5), (1, 1, 7)"
    )
    con.close()


def snapshot(db: Path) -> tuple[dict[str, int], list[str]]:
    """Every table of the store with its row count, and every file beside the store."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        names = [r[0] for r in tables]
        counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in names}
    finally:
        con.close()
    return counts, sorted(str(p.relative_to(db.parent)) for p in db.parent.rglob("*"))


# Escape attempts: (SQL with {out} for a path beside the store and {secret} for a file outside
# it, a fragment the one-line error must hold). None of them may run.
ESCAPES = [
    ("COPY (SELECT 1) TO '{out}.csv'", "COPY statements are not allowed"),
    ("COPY requests TO '{out}.parquet' (FORMAT parquet)", "COPY statements"),
    ("EXPORT DATABASE '{out}'", "EXPORT statements"),
    ("ATTACH '{out}.duckdb' AS other", "ATTACH statements"),
    ("INSTALL httpfs", "INSTALL statements"),
    ("LOAD httpfs", "LOAD statements"),
    ("SET profile_output = '{out}.json'", "SET statements"),
    ("SET enable_external_access = true", "SET statements"),
    ("RESET enable_external_access", "RESET statements"),
    ("PRAGMA profiling_output = '{out}.json'", "PRAGMA statements"),
    ("PRAGMA enable_profiling", "PRAGMA statements"),
    ("PRAGMA table_info('traces')", "PRAGMA statements"),
    # aborts the whole process when DuckDB runs it: it must be refused before
    ("CALL enable_logging(storage = 'file', storage_path = '{out}')", "CALL statements"),
    ("SELECT * FROM enable_logging(storage = 'file', storage_path = '{out}')", "enable_logging()"),
    ("SELECT (SELECT count(*) FROM checkpoint())", "checkpoint()"),
    ("SELECT * FROM query('SELECT 1')", "query()"),
    ("CHECKPOINT", "CHECKPOINT statements"),
    ("INSERT INTO requests (trace_id, arrival_s) VALUES (1, 2)", "INSERT statements"),
    ("WITH x AS (SELECT 1) INSERT INTO requests (trace_id, arrival_s) SELECT 1, 2", "INSERT"),
    ("UPDATE requests SET ok = false", "UPDATE statements"),
    ("DELETE FROM requests", "DELETE statements"),
    ("CREATE TABLE stolen AS SELECT * FROM requests", "CREATE statements"),
    ("DROP TABLE traces", "DROP statements"),
    ("ALTER TABLE traces RENAME TO gone", "ALTER statements"),
    ("BEGIN TRANSACTION", "BEGIN statements"),
    ("SELECT 1; DROP TABLE traces", "DROP statements are not allowed"),
    ("SELECT 1; SELECT 2", "2 statements given"),
    ("EXPLAIN ANALYZE CREATE TABLE stolen AS SELECT 1", "EXPLAIN only of a SELECT"),
    ("EXPLAIN COPY (SELECT 1) TO '{out}.csv'", "EXPLAIN only of a SELECT"),
    ("SELECT * FROM read_csv('{secret}')", "read_csv()"),
    ("EXPLAIN ANALYZE SELECT * FROM read_text('{secret}')", "read_text()"),
    ("FROM '{secret}'", "query failed"),
    ("", "no SQL statement given"),
]


@pytest.mark.parametrize(("sql", "fragment"), ESCAPES, ids=[e[0][:40] for e in ESCAPES])
def test_query_refuses_all_but_a_read(tmp_path: Path, sql: str, fragment: str) -> None:
    db = tmp_path / "store" / "store.duckdb"
    db.parent.mkdir()
    filled_store(db)
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    before = snapshot(db)
    con = open_store(db, read_only=True)
    try:
        with pytest.raises(PlannerError) as caught:
            run_query(con, sql.format(out=db.parent / "leak", secret=secret))
        message = str(caught.value)
        assert "\n" not in message and fragment in message
        assert message.startswith(("query refused: ", "query failed: "))
        assert "hunter2" not in message
        assert "read-only" in message or "query failed" in message or "reads only" in message
        # the connection still answers a read afterwards
        assert run_query(con, "SELECT count(*) AS n FROM requests") == (["n"], [(2,)])
    finally:
        con.close()
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM requests",
        "FROM requests ORDER BY arrival_s LIMIT 1",
        "-- the traces\nWITH t AS (SELECT name FROM traces) SELECT * FROM t;",
        "SHOW TABLES",
        "DESCRIBE traces",
        "SUMMARIZE requests",
        "EXPLAIN SELECT * FROM requests",
        "/* plan */ EXPLAIN ANALYZE (FORMAT json) SELECT count(*) FROM requests",
        "SELECT * FROM range(3) r(i), generate_series(1, 2) g(j)",
        "SELECT * FROM pragma_table_info('traces')",
        "SELECT table_name FROM duckdb_tables()",
        "SELECT current_setting('enable_external_access')",
    ],
)
def test_query_runs_reads(db_path: Path, sql: str) -> None:
    filled_store(db_path)
    con = open_store(db_path, read_only=True)
    columns, _ = run_query(con, sql)
    assert columns
    assert run_query(con, "SELECT 1 AS one") == (["one"], [(1,)])  # a second query works too


def test_cli_query_refusal_is_one_line(db_path: Path, tmp_path: Path) -> None:
    filled_store(db_path)
    before = snapshot(db_path)
    target = tmp_path / "profile.json"
    result = invoke("query", f"PRAGMA profiling_output = '{target}'", "--db", db_path)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: query refused: PRAGMA statements are not allowed")
    assert not target.exists() and snapshot(db_path) == before


def test_cli_query_never_runs_enable_logging(db_path: Path, tmp_path: Path) -> None:
    """DuckDB aborts the process on this call, so it runs in a child: refused, exit code 1."""
    filled_store(db_path)
    logs = tmp_path / "logs"
    sql = f"CALL enable_logging(storage = 'file', storage_path = '{logs}')"
    child = subprocess.run(
        [sys.executable, "-m", "cli", "query", sql, "--db", str(db_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 1, child.stderr
    assert child.stderr.count("\n") == 1
    assert child.stderr.startswith("error: query refused: CALL statements are not allowed")
    assert not logs.exists()
