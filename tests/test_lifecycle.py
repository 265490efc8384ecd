"""Trace lifecycle (issue 18): `planner rm`, re-reading a trace with a corrected --map,
--time-unit for the generic csv/parquet readers, and physical line numbers in their errors."""

import json
from pathlib import Path

import duckdb
import pytest
from conftest import invoke, store_state

from planner.store import SCHEMA_VERSION, delete_traces, open_store

BASE_MS = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC in epoch milliseconds


def ingest_json(db: Path, *args: str | Path) -> list[dict]:
    """Ingest with --json, assert success, and return the per-source results."""
    result = invoke("ingest", *args, "--db", db, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def assert_user_error(result, *expected: str) -> None:
    """Exit 1 with one `error:` line on stderr holding every expected text, nothing on stdout."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of an independent read-only query over the store."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def trace_tables(db: Path) -> list[str]:
    """Every base table of the store with a trace_id column, from information_schema."""
    rows = query(
        db,
        "SELECT c.table_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_catalog, table_schema, table_name) "
        "WHERE c.column_name = 'trace_id' AND t.table_type = 'BASE TABLE' ORDER BY 1",
    )
    return [r[0] for r in rows]


def rows_of(db: Path, trace_id: int) -> dict[str, list[tuple]]:
    """Every row the trace owns, per table."""
    return {
        t: query(db, f'SELECT * FROM "{t}" WHERE trace_id = ? ORDER BY ALL', [trace_id])
        for t in trace_tables(db)
    }


def trace_ids(db: Path) -> dict[str, int]:
    """Trace name -> id."""
    return dict(query(db, "SELECT name, id FROM traces"))


# --- planner rm -------------------------------------------------------------------------------
@pytest.fixture
def three(db_path: Path, tmp_path: Path) -> Path:
    """A store with both embedded samples (requests) and a small cold-start trace."""
    loads = tmp_path / "basemodel_update_latency_anon.csv"
    loads.write_text(
        "timestamp_anon,value,container_ip\n100,2500,10.0.0.1\n160,3100,10.0.0.2\n"
        "400,1900,10.0.0.1\n"
    )
    ingest_json(db_path, "--sample", "azure-code", "--sample", "azure-conv", loads)
    assert set(trace_ids(db_path)) == {"azure-code", "azure-conv", "basemodel_update_latency_anon"}
    return db_path


def test_rm_removes_every_row_of_the_trace_and_nothing_else(three: Path) -> None:
    ids = trace_ids(three)
    assert {"requests", "cold_starts", "rate_windows", "length_dists"} <= set(trace_tables(three))
    kept = {n: rows_of(three, i) for n, i in ids.items() if n != "azure-code"}
    kept_traces = query(three, "SELECT * FROM traces WHERE name <> 'azure-code' ORDER BY id")
    assert len(rows_of(three, ids["azure-code"])["requests"]) == 8819

    result = invoke("rm", "azure-code", "--db", three)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "removed azure-code: 8,819 requests rows, format azure-llm\n"

    for table, rows in rows_of(three, ids["azure-code"]).items():
        assert rows == [], table
    assert query(three, "SELECT count(*) FROM traces WHERE name = 'azure-code'") == [(0,)]
    assert {n: rows_of(three, i) for n, i in trace_ids(three).items()} == kept
    assert query(three, "SELECT * FROM traces ORDER BY id") == kept_traces
    listing = json.loads(invoke("traces", "--db", three, "--json").stdout)
    assert [t["name"] for t in listing] == ["azure-conv", "basemodel_update_latency_anon"]


def test_rm_several_and_json(three: Path) -> None:
    ids = trace_ids(three)
    result = invoke(
        "rm", "azure-conv", "basemodel_update_latency_anon", "azure-conv", "--db", three, "--json"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"name": "azure-conv", "format": "azure-llm", "table": "requests", "rows": 19366},
        {
            "name": "basemodel_update_latency_anon",
            "format": "gentd26-load",
            "table": "cold_starts",
            "rows": 3,
        },
    ]
    for name in ("azure-conv", "basemodel_update_latency_anon"):
        assert all(rows == [] for rows in rows_of(three, ids[name]).values())
    assert list(trace_ids(three)) == ["azure-code"]
    assert len(rows_of(three, ids["azure-code"])["requests"]) == 8819


def test_rm_covers_a_table_added_later(three: Path) -> None:
    """Any table with a trace_id column is cleaned, not only the ones known today."""
    ids = trace_ids(three)
    con = duckdb.connect(str(three))
    con.execute("CREATE TABLE future_things (trace_id INTEGER NOT NULL, x INTEGER)")
    con.execute("INSERT INTO future_things VALUES (?, 1), (?, 2), (?, 3)", list(ids.values()))
    con.close()
    con = open_store(three)
    removed = delete_traces(con, ["azure-conv"])
    con.close()
    assert [t.name for t in removed] == ["azure-conv"]
    assert query(three, "SELECT trace_id FROM future_things ORDER BY 1") == sorted(
        [(ids["azure-code"],), (ids["basemodel_update_latency_anon"],)]
    )


@pytest.mark.parametrize(
    "names", [["nope"], ["azure-code", "nope"], ["azure-conv", "azure-code", "typo"]]
)
def test_rm_unknown_trace_leaves_store_unchanged(three: Path, names: list[str]) -> None:
    before = store_state(three)
    result = invoke("rm", *names, "--db", three)
    assert_user_error(
        result,
        f"unknown trace {names[-1]!r}",
        "loaded traces: azure-code, azure-conv, basemodel_update_latency_anon",
    )
    assert store_state(three) == before


def test_rm_without_a_store_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "absent.duckdb"
    assert_user_error(invoke("rm", "azure-code", "--db", db), "no store here yet")
    assert not db.exists()


def test_rm_needs_a_name(db_path: Path) -> None:
    assert invoke("rm", "--db", db_path).exit_code == 2


# --- re-reading with a corrected --map ----------------------------------------------------------
RIGHT = "ts=when,input=prompt,output=completion"
SWAPPED = "ts=when,input=completion,output=prompt"


@pytest.fixture
def swapped(db_path: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A store holding `mine.csv` ingested with its token columns swapped."""
    lines = ["when,prompt,completion"] + [f"{i * 0.5},{100 + 7 * i},{3 + i}" for i in range(20)]
    path = tmp_path / "mine.csv"
    path.write_text("\n".join(lines) + "\n")
    [result] = ingest_json(db_path, path, "--map", SWAPPED)
    assert result["status"] == "ingested"
    return db_path, path


def stored_tokens(db: Path) -> list[tuple]:
    """(input, output) tokens in arrival order."""
    return query(db, "SELECT input_tokens, output_tokens FROM requests ORDER BY arrival_s")


def csv_tokens(path: Path) -> list[tuple]:
    """(prompt, completion) straight from the CSV, in time order (an independent DuckDB)."""
    con = duckdb.connect()
    try:
        return con.execute(
            f"SELECT prompt, completion FROM read_csv('{path}') ORDER BY \"when\""
        ).fetchall()
    finally:
        con.close()


def test_replace_with_the_right_map_rereads_the_trace(swapped: tuple[Path, Path]) -> None:
    db, path = swapped
    truth = csv_tokens(path)
    assert stored_tokens(db) == [(o, i) for i, o in truth]

    before = store_state(db)
    refused = invoke("ingest", path, "--map", RIGHT, "--db", db)
    assert_user_error(
        refused,
        "'mine'",
        "read differently",
        "--map input=completion,output=prompt,ts=when, now input=prompt,output=completion,ts=when",
        "--replace",
    )
    assert store_state(db) == before

    [result] = ingest_json(db, path, "--map", RIGHT, "--replace")
    assert (result["status"], result["rows"]) == ("replaced", 20)
    assert stored_tokens(db) == truth
    options = query(db, "SELECT read_options FROM traces WHERE name = 'mine'")[0][0]
    assert json.loads(options) == {
        "map": {"input": "prompt", "output": "completion", "ts": "when"},
        "time_unit": "s",
    }

    for extra in ((), ("--replace",)):
        [again] = ingest_json(db, path, "--map", RIGHT, *extra)
        assert again["status"] == "unchanged"
    assert stored_tokens(db) == truth


def test_same_content_under_another_name_with_another_map_is_a_new_trace(
    swapped: tuple[Path, Path], tmp_path: Path
) -> None:
    db, path = swapped
    copy = tmp_path / "copy.csv"
    copy.write_bytes(path.read_bytes())
    [same] = ingest_json(db, copy, "--map", SWAPPED)
    assert (same["status"], same["name"]) == ("unchanged", "mine")
    [other] = ingest_json(db, copy, "--map", RIGHT)
    assert (other["status"], other["name"]) == ("ingested", "copy")


def test_a_schema_1_store_opens_and_migrates(swapped: tuple[Path, Path]) -> None:
    """A store written before read options were recorded (version 1) still works."""
    db, path = swapped
    con = duckdb.connect(str(db))
    con.execute("ALTER TABLE traces DROP COLUMN read_options")
    con.execute("UPDATE schema_version SET version = 1")
    con.close()

    listed = invoke("query", "SELECT name, rows FROM traces", "--db", db, "--json")
    assert listed.exit_code == 0, listed.stderr
    assert json.loads(listed.stdout) == [{"name": "mine", "rows": 20}]

    [same] = ingest_json(db, path, "--map", RIGHT)  # the old map is unknown: no-op as before
    assert same["status"] == "unchanged"
    assert query(db, "SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
    assert query(db, "SELECT read_options FROM traces") == [(None,)]

    [fixed] = ingest_json(db, path, "--map", RIGHT, "--replace")
    assert fixed["status"] == "replaced"
    assert stored_tokens(db) == csv_tokens(path)


# --- --time-unit ------------------------------------------------------------------------------
def epoch_csv(path: Path, factor: int) -> Path:
    """The tester's case: 10 requests 250 ms apart (a 2.25 s trace), epoch ms times `factor`."""
    rows = [f"{(BASE_MS + 250 * i) * factor},{10 + i},{i}" for i in range(10)]
    path.write_text("\n".join(["ts,inp,out", *rows]) + "\n")
    return path


MAP = "ts=ts,input=inp,output=out"


@pytest.mark.parametrize(("unit", "factor"), [("ms", 1), ("us", 1000)])
def test_time_unit_reads_epoch_ms_and_us(
    db_path: Path, tmp_path: Path, unit: str, factor: int
) -> None:
    path = epoch_csv(tmp_path / f"epoch_{unit}.csv", factor)
    result = invoke("ingest", path, "--map", MAP, "--time-unit", unit, "--db", db_path, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    [out] = json.loads(result.stdout)
    assert out["warnings"] == []
    assert out["span_s"] == pytest.approx(2.25)
    con = duckdb.connect()
    raw = con.execute(
        f"SELECT (ts - min(ts) OVER ()) / {1000 * factor}.0 FROM read_csv('{path}') ORDER BY ts"
    ).fetchall()
    con.close()
    stored = query(db_path, "SELECT arrival_s FROM requests ORDER BY arrival_s")
    assert [r[0] for r in stored] == pytest.approx([r[0] for r in raw], abs=1e-6)


@pytest.mark.parametrize(
    ("factor", "given", "suggested"), [(1, (), "ms"), (1000, (), "us"), (1000, ("ms",), "us")]
)
def test_time_unit_warning(
    db_path: Path, tmp_path: Path, factor: int, given: tuple[str, ...], suggested: str
) -> None:
    path = epoch_csv(tmp_path / "epoch.csv", factor)
    unit = ("--time-unit", *given) if given else ()
    result = invoke("ingest", path, "--map", MAP, *unit, "--db", db_path)
    assert result.exit_code == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("warning: ") and "column 'ts'" in line and "epoch.csv" in line
    assert line.endswith(f"use --time-unit {suggested}")
    assert result.stdout.startswith("ingested epoch:")
    other = tmp_path / "other.duckdb"
    [out] = json.loads(invoke("ingest", path, "--map", MAP, *unit, "--db", other, "--json").stdout)
    assert out["warnings"] == [line.removeprefix("warning: ")]


def test_time_unit_warning_for_an_implausible_span(db_path: Path, tmp_path: Path) -> None:
    """Relative milliseconds over 13 months read as seconds span 400 days: warned."""
    path = tmp_path / "rel.csv"
    path.write_text("ts,inp\n0,1\n17280000,2\n34560000,3\n")
    [out] = ingest_json(db_path, path, "--map", "ts=ts,input=inp")
    [warning] = out["warnings"]
    assert "span 400 days" in warning and warning.endswith("--time-unit ms")
    [fine] = ingest_json(db_path, path, "--map", "ts=ts,input=inp", "--time-unit=ms", "--replace")
    assert (fine["status"], fine["span_s"], fine["warnings"]) == ("replaced", 34560.0, [])


def test_plausible_seconds_get_no_warning(db_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "secs.csv"
    path.write_text("ts,inp\n1700000000,1\n1700000003.5,2\n1700086400,3\n")
    result = invoke("ingest", path, "--map", "ts=ts,input=inp", "--db", db_path)
    assert result.exit_code == 0 and result.stderr == ""


def test_time_unit_on_parquet(db_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "epoch.parquet"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT {BASE_MS} + 250 * i AS t, i AS p FROM range(10) r(i)) "
        f"TO '{path}' (FORMAT parquet)"
    )
    con.close()
    [warned] = ingest_json(db_path, path, "--map", "ts=t,input=p")
    assert warned["span_s"] == 2250 and warned["warnings"][0].endswith("--time-unit ms")
    [right] = ingest_json(db_path, path, "--map", "ts=t,input=p", "--time-unit", "ms", "--replace")
    assert (right["status"], right["span_s"], right["warnings"]) == ("replaced", 2.25, [])


BAD_UNITS = {
    "unknown-unit": (("--map", MAP, "--time-unit", "min"), ["--time-unit 'min'", "s, ms, us"]),
    "date-times": (
        ("--map", "ts=when,input=inp", "--time-unit", "ms"),
        ["column 'when' holds date-times", "numeric"],
    ),
    "other-format": (("--format", "burstgpt", "--time-unit", "ms"), ["format burstgpt"]),
}


@pytest.mark.parametrize("case", list(BAD_UNITS))
def test_bad_time_unit_leaves_store_unchanged(db_path: Path, tmp_path: Path, case: str) -> None:
    ingest_json(db_path, "--sample", "azure-code")
    path = tmp_path / "x.csv"
    path.write_text("ts,when,inp,out\n1,2024-01-01 00:00:01,5,6\n2,2024-01-01 00:00:02,5,6\n")
    args, expected = BAD_UNITS[case]
    before = store_state(db_path)
    assert_user_error(invoke("ingest", path, *args, "--db", db_path), *expected)
    assert store_state(db_path) == before


# --- line numbers of bad timestamps (the header is line 1) --------------------------------------
BAD_LINE_3 = {
    "date-time": "when,inp\n2024-01-01 00:00:10,5\n2024-01-01 00:00:1x,6\n2024-01-01 00:00:12,7\n",
    "number": "when,inp\n10,5\n1o,6\n12,7\n",
    "empty": "when,inp\n10,5\n,6\n12,7\n",
    "first-value": "when,inp\n2024-01-01 00:00:10,5\nsoon,6\n",
}


@pytest.mark.parametrize("case", list(BAD_LINE_3))
def test_bad_timestamp_names_its_physical_line(db_path: Path, tmp_path: Path, case: str) -> None:
    ingest_json(db_path, "--sample", "azure-code")
    path = tmp_path / "bad.csv"
    path.write_text(BAD_LINE_3[case])
    before = store_state(db_path)
    result = invoke("ingest", path, "--map", "ts=when,input=inp", "--db", db_path)
    assert_user_error(result, "bad.csv: line 3: column 'when'")
    assert store_state(db_path) == before


def test_unreadable_first_timestamp_names_its_line(db_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("when,inp\n\n soon ,5\n10,6\n")
    result = invoke("ingest", path, "--map", "ts=when,input=inp", "--db", db_path)
    assert_user_error(result, "bad.csv: line 3: column 'when': ' soon ' is neither a number")
