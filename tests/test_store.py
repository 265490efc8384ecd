"""The store: schema creation, versioning, paths and read-only access."""

from pathlib import Path

import duckdb
import pytest

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
    with pytest.raises(PlannerError, match="query failed"):
        run_query(con, f"COPY (SELECT 1) TO '{target}'")
    assert not target.exists()
