"""Ingest through the CLI: every reader on the real traces, synthetic formats, and bad input."""

import gzip
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import duckdb
import pytest
from conftest import invoke, shared_path, store_state

from planner.errors import one_line
from planner.ingest import ingest_path
from planner.store import open_store

BURSTGPT_BASE = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"


def raw(sql: str) -> tuple:
    """One row of an independent DuckDB query over a raw file (a fresh in-memory database)."""
    con = duckdb.connect()
    try:
        return con.execute(sql).fetchall()[0]
    finally:
        con.close()


def stored(db: Path, sql: str) -> tuple:
    """One row of a query over the store."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()[0]
    finally:
        con.close()


def ingest_ok(db: Path, *args: str | Path) -> list[dict]:
    """Ingest with --json, assert success, and return the per-source results."""
    result = invoke("ingest", *args, "--db", db, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def trace(db: Path, name: str) -> dict:
    """One trace as `planner traces --json` lists it."""
    result = invoke("traces", "--db", db, "--json")
    assert result.exit_code == 0, result.stderr
    return {t["name"]: t for t in json.loads(result.stdout)}[name]


def write(path: Path, text: str) -> Path:
    """Write a fixture file and return its path."""
    path.write_text(text)
    return path


# --- real traces (../shared/data; skipped when absent) ----------------------------------------
@pytest.mark.parametrize(("kind", "count"), [("code", 8819), ("conv", 19366)])
def test_azure_llm(db_path: Path, kind: str, count: int) -> None:
    path = shared_path("traces", "azure_llm_2023", f"AzureLLMInferenceTrace_{kind}.csv")
    [result] = ingest_ok(db_path, path)
    assert (result["status"], result["format"], result["rows"]) == ("ingested", "azure-llm", count)
    src = f"read_csv('{path}', types={{'TIMESTAMP': 'VARCHAR'}})"
    n, in_min, in_max, out_min, out_max, span = raw(
        "SELECT count(*), min(ContextTokens), max(ContextTokens), min(GeneratedTokens), "
        "max(GeneratedTokens), epoch(max(TIMESTAMP::TIMESTAMP)) - epoch(min(TIMESTAMP::TIMESTAMP)) "
        f"FROM {src}"
    )
    info = trace(db_path, f"AzureLLMInferenceTrace_{kind}")
    assert info["rows"] == n == count
    assert info["span_s"] == pytest.approx(span, abs=1e-5)
    assert info["start_time"].startswith("2023-11-16")
    got = stored(
        db_path,
        "SELECT count(*), min(input_tokens), max(input_tokens), min(output_tokens), "
        "max(output_tokens), min(arrival_s), max(arrival_s), bool_and(ok) FROM requests",
    )
    assert got[:5] == (n, in_min, in_max, out_min, out_max)
    assert got[5] == 0.0
    assert got[6] == pytest.approx(span, abs=1e-5)
    assert got[7] is True


def test_servegen_clients_are_series(db_path: Path) -> None:
    folder = shared_path("traces", "alibaba_servegen", "data", "language", "m-large")
    files = sorted(folder.glob("chunk-*-trace.csv"))
    [result] = ingest_ok(db_path, folder)
    n, rate_sum = raw(
        f"SELECT count(*), sum(column1) FROM read_csv({[str(f) for f in files]}, header=false)"
    )
    info = trace(db_path, "m-large")
    assert (info["format"], info["series"], info["rows"]) == ("servegen", len(files), n)
    assert result["series"] == len(files)
    got = stored(
        db_path,
        "SELECT count(DISTINCT series), sum(rate_rps), min(window_s), max(window_s), "
        "max(abs(requests - rate_rps * 600)), min(window_start_s) FROM rate_windows",
    )
    assert got[0] == len(files)
    assert got[1] == pytest.approx(rate_sum)
    assert got[2:] == (600.0, 600.0, 0.0, 0.0)
    pmf_total = stored(
        db_path,
        "SELECT max(abs(s - 1)) FROM (SELECT sum(prob) AS s FROM length_dists "
        "GROUP BY series, window_start_s, which)",
    )[0]
    assert pmf_total < 1e-6


def test_mooncake(db_path: Path) -> None:
    path = shared_path("traces", "mooncake_fast25", "synthetic_trace.jsonl")
    ingest_ok(db_path, path)
    expected = raw(
        "SELECT count(*), min(input_length), max(input_length), max(output_length), "
        "(max(timestamp) - min(timestamp)) / 1000.0, sum(len(hash_ids)) "
        f"FROM read_json('{path}', format='newline_delimited')"
    )
    got = stored(
        db_path,
        "SELECT count(*), min(input_tokens), max(input_tokens), max(output_tokens), "
        "max(arrival_s), sum(len(prefix_blocks)) FROM requests",
    )
    assert got == pytest.approx(expected)
    assert trace(db_path, "synthetic_trace")["span_s"] == pytest.approx(expected[4])


def test_azure_functions_sample(db_path: Path) -> None:
    path = shared_path("traces", "azure_functions_2021_sample", "Azure2021_200.csv")
    ingest_ok(db_path, path)
    n, series, span, busy = raw(
        "SELECT count(*), count(DISTINCT app || '/' || func), "
        "max(end_timestamp - duration) - min(end_timestamp - duration), sum(duration) "
        f"FROM read_csv('{path}')"
    )
    info = trace(db_path, "Azure2021_200")
    assert (info["format"], info["rows"], info["series"]) == ("azure-functions", n, series)
    assert n == 199
    got = stored(db_path, "SELECT min(arrival_s), max(arrival_s), sum(duration_s) FROM requests")
    assert got == pytest.approx((0.0, span, busy))


@pytest.mark.parametrize("kind", ["basemodel", "lora", "pipeline"])
def test_gentd26_load_latencies(db_path: Path, tmp_path: Path, kind: str) -> None:
    archive = shared_path("traces", "alibaba_gentd26", f"{kind}_update_latency_anon.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "raw", filter="data")
    [csv] = [p for p in (tmp_path / "raw").rglob("*.csv") if not p.name.startswith("._")]
    ingest_ok(db_path, archive)
    n, low, high, span = raw(
        "SELECT count(*), min(value) / 1000, max(value) / 1000, "
        f"max(timestamp_anon) - min(timestamp_anon) FROM read_csv('{csv}')"
    )
    info = trace(db_path, f"{kind}_update_latency_anon")
    assert (info["format"], info["kind"], info["rows"]) == ("gentd26-load", "cold_starts", n)
    assert info["span_s"] == pytest.approx(span)
    got = stored(
        db_path,
        "SELECT min(total_s), max(total_s), min(time_s), max(time_s), any_value(kind), "
        "bool_and(model_load_s = total_s) FROM cold_starts",
    )
    assert got == pytest.approx((low, high, 0.0, span, kind, True))


def test_gentd26_lora_requests(db_path: Path) -> None:
    path = shared_path("traces", "alibaba_gentd26", "lora_request_trace.csv")
    ingest_ok(db_path, path)
    expected = raw(
        "SELECT count(*), count(DISTINCT coalesce(checkpoint_model_version_id, '')), "
        "count(*) FILTER (predict_status = 'SUCCEED'), "
        "epoch(max(gmt_create)) - epoch(min(gmt_create)), sum(exec_time_seconds) "
        f"FROM read_csv('{path}')"
    )
    assert expected[0] == 26823
    info = trace(db_path, "lora_request_trace")
    assert (info["format"], info["rows"], info["series"]) == ("gentd26-requests", *expected[:2])
    got = stored(
        db_path,
        "SELECT count(*), count(DISTINCT coalesce(series, '')), count(*) FILTER (ok), "
        "max(arrival_s), "
        "sum(duration_s) FROM requests",
    )
    assert got == pytest.approx(expected)


def test_embedded_sample(db_path: Path) -> None:
    [result] = ingest_ok(db_path, "--sample", "azure-code")
    assert (result["name"], result["rows"], result["status"]) == ("azure-code", 8819, "ingested")
    [again] = ingest_ok(db_path, "--sample", "azure-code")
    assert again["status"] == "unchanged"


# --- synthetic files for formats not on this machine --------------------------------------
BURSTGPT_ROWS = [
    ("5", "ChatGPT", "100", "20", "120", "Conversation log"),
    ("7.5", "GPT-4", "300", "0", "300", "API log"),
    ("12", "ChatGPT", "50", "10", "60", "Conversation log"),
]


@pytest.mark.parametrize(
    ("extra", "values"),
    [
        ((), ()),
        (("Session ID",), ("s1",)),
        (("Session ID", "Elapsed time"), ("s1", "2.5")),
    ],
)
def test_burstgpt_variants(
    db_path: Path, tmp_path: Path, extra: tuple[str, ...], values: tuple[str, ...]
) -> None:
    header = ",".join([BURSTGPT_BASE, *extra])
    lines = [",".join([*row, *values]) for row in BURSTGPT_ROWS]
    path = write(tmp_path / "burst.csv", "\n".join([header, *lines]) + "\n")
    [result] = ingest_ok(db_path, path)
    assert (result["format"], result["rows"], result["series"]) == ("burstgpt", 3, 2)
    rows = duckdb.connect(str(db_path), read_only=True).execute(
        "SELECT arrival_s, input_tokens, output_tokens, series, ok, session_id, duration_s "
        "FROM requests ORDER BY arrival_s"
    )
    got = rows.fetchall()
    assert [r[:5] for r in got] == [
        (5.0, 100, 20, "ChatGPT", True),
        (7.5, 300, 0, "GPT-4", False),
        (12.0, 50, 10, "ChatGPT", True),
    ]
    assert {r[5] for r in got} == ({"s1"} if "Session ID" in extra else {None})
    assert {r[6] for r in got} == ({2.5} if "Elapsed time" in extra else {None})


@pytest.mark.parametrize(
    ("ts_values", "expected"),
    [
        (["10", "11.5", "20"], [0.0, 1.5, 10.0]),
        (["2024-01-01 00:00:10", "2024-01-01 00:00:11.5", "2024-01-01 00:00:20"], [0, 1.5, 10]),
    ],
)
def test_generic_csv_with_map(
    db_path: Path, tmp_path: Path, ts_values: list[str], expected: list[float]
) -> None:
    lines = ["when,prompt,completion,llm"] + [
        f"{ts},{10 * i},{i},m{i % 2}" for i, ts in enumerate(ts_values)
    ]
    path = write(tmp_path / "mine.csv", "\n".join(lines) + "\n")
    spec = "ts=when,input=prompt,output=completion,model=llm"
    [result] = ingest_ok(db_path, path, "--map", spec)
    assert (result["format"], result["rows"], result["series"]) == ("csv", 3, 2)
    con = duckdb.connect(str(db_path), read_only=True)
    got = con.execute(
        "SELECT arrival_s, input_tokens, output_tokens, series FROM requests ORDER BY arrival_s"
    ).fetchall()
    assert got == [(pytest.approx(t), 10 * i, i, f"m{i % 2}") for i, t in enumerate(expected)]


def test_mapped_column_names_are_quoted_as_identifiers(db_path: Path, tmp_path: Path) -> None:
    """A column whose name holds a double quote maps like any other (it was spliced into the
    SQL unescaped and refused with a parser error)."""
    path = write(tmp_path / "quoted.csv", 'time,in"put,out\n1.0,7,2\n2.0,9,3\n')
    [result] = ingest_ok(db_path, path, "--map", 'ts=time,input=in"put,output=out')
    assert result["rows"] == 2
    got = stored(db_path, "SELECT list(input_tokens ORDER BY arrival_s) FROM requests")
    assert got == ([7, 9],)


def test_one_line_leaves_no_line_break_or_control_character() -> None:
    """Every break str.splitlines knows becomes "; ", tabs spaces, other control characters
    (an escape sequence quoted back from a binary header) are shown escaped."""
    message = one_line("a\x0cb\x85c\u2028d\x1c e \n\n\tf\x1b[2J g\r\n")
    assert message == "a; b; c; d; e; f\\x1b[2J g"
    assert len(message.splitlines()) == 1 and message.isprintable()


def test_generic_parquet_with_map(db_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "mine.parquet"
    raw(
        "COPY (SELECT 100.0 + i AS t, 7 * i AS p, i AS c, 'x' AS m FROM range(5) r(i)) "
        f"TO '{path}' (FORMAT parquet)"
    )
    [result] = ingest_ok(db_path, path, "--map", "ts=t,input=p,output=c,model=m")
    assert (result["format"], result["rows"], result["span_s"]) == ("parquet", 5, 4.0)
    got = stored(
        db_path, "SELECT sum(input_tokens), sum(output_tokens), min(arrival_s) FROM requests"
    )
    assert got == (70, 10, 0.0)


def _burstgpt_text(rows: int = 3) -> str:
    """A small valid BurstGPT file."""
    body = [f"{i},ChatGPT,{i + 1},{i % 4},{i + 1 + i % 4},Conversation log" for i in range(rows)]
    return "\n".join([BURSTGPT_BASE, *body]) + "\n"


@pytest.mark.parametrize("packing", ["gz", "tar.gz", "zip"])
def test_compressed_inputs(db_path: Path, tmp_path: Path, packing: str) -> None:
    text = _burstgpt_text(50)
    path = tmp_path / f"burst.csv.{packing}" if packing == "gz" else tmp_path / f"burst.{packing}"
    if packing == "gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        plain = write(tmp_path / "burst.csv", text)
        if packing == "zip":
            with zipfile.ZipFile(path, "w") as archive:
                archive.write(plain, "burst.csv")
        else:
            with tarfile.open(path, "w:gz") as tar:
                tar.add(plain, "burst.csv")
    [result] = ingest_ok(db_path, path)
    assert (result["name"], result["format"], result["rows"]) == ("burst", "burstgpt", 50)
    assert stored(db_path, "SELECT count(*) FILTER (NOT ok) FROM requests")[0] == 13


# --- many files, one trace -------------------------------------------------------------------
def _parquet_part(path: Path, first: int, rows: int) -> Path:
    """A Parquet part of `rows` requests numbered from `first` (t = 10 + i s, input = 3i)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw(
        f"COPY (SELECT 10.0 + i AS t, 3 * i AS p, i % 7 AS c FROM range({first}, {first + rows}) "
        f"r(i)) TO '{path}' (FORMAT parquet)"
    )
    return path


def test_parquet_folder_ingests_every_part(db_path: Path, tmp_path: Path) -> None:
    """A 4-part Parquet folder (as Spark writes it, with _SUCCESS) is one trace of every row;
    the ingest reports each file's rows; totals match DuckDB reading the parts directly."""
    folder = tmp_path / "lake"
    for k in range(4):
        _parquet_part(folder / f"part-{k:05d}.parquet", 2500 * k, 2500)
    (folder / "_SUCCESS").write_text("")
    [result] = ingest_ok(db_path, folder, "--map", "ts=t,input=p,output=c")
    assert (result["name"], result["rows"], result["span_s"]) == ("lake", 10_000, 9_999.0)
    assert sorted(Path(f).name for f in result["files"]) == [
        f"part-{k:05d}.parquet" for k in range(4)
    ]
    assert set(result["files"].values()) == {2500}
    expected = raw(f"SELECT count(*), sum(p), sum(c) FROM read_parquet('{folder}/*.parquet')")
    got = stored(db_path, "SELECT count(*), sum(input_tokens), sum(output_tokens) FROM requests")
    assert got == expected
    assert stored(db_path, "SELECT min(arrival_s) FROM requests")[0] == 0.0


def test_hive_partitions_are_columns(db_path: Path, tmp_path: Path) -> None:
    """A Hive-partitioned folder (model=NAME/day=N/part.parquet) ingests every file, and a
    partition key maps like any column (here: the series)."""
    lake = tmp_path / "hive"
    for k, (model, day) in enumerate([("a", 1), ("a", 2), ("b", 1)]):
        _parquet_part(lake / f"model={model}" / f"day={day}" / "part-0.parquet", 100 * k, 100)
    [result] = ingest_ok(db_path, lake, "--map", "ts=t,input=p,output=c,model=model")
    assert (result["rows"], result["series"], len(result["files"])) == (300, 2, 3)
    by_series = stored(
        db_path,
        "SELECT list(n ORDER BY series) FROM "
        "(SELECT series, count(*) AS n FROM requests GROUP BY series)",
    )[0]
    assert by_series == [200, 100]


def test_glob_of_csv_parts(db_path: Path, tmp_path: Path) -> None:
    """A quoted glob over CSV parts in several folders is one trace of every row (BurstGPT
    detected on the first part); files the glob does not match are left out."""
    for day in (1, 2):
        for k in range(2):
            start = 1000 * day + 10 * k
            body = [f"{start + i},ChatGPT,{i + 1},{i % 3},{i + 1 + i % 3},x" for i in range(10)]
            part = tmp_path / "logs" / f"2026-0{day}" / f"part-{k}.csv"
            part.parent.mkdir(parents=True, exist_ok=True)
            write(part, "\n".join([BURSTGPT_BASE, *body]) + "\n")
    write(tmp_path / "logs" / "2026-01" / "notes.txt", "not data")
    pattern = str(tmp_path / "logs" / "2026-*" / "part-*.csv")
    result = invoke("ingest", pattern, "--db", db_path, "--name", "burst-parts")
    assert result.exit_code == 0, result.stderr
    assert "40 requests rows from 4 files, format burstgpt" in result.stdout
    assert result.stdout.count(": 10 rows") == 4
    got = stored(db_path, "SELECT count(*), min(arrival_s), max(arrival_s) FROM requests")
    assert got == (40, 1000.0, 2019.0)  # BurstGPT keeps its own clock across the parts


def test_many_files_same_content_is_a_no_op(db_path: Path, tmp_path: Path) -> None:
    """Ingesting the same folder again changes nothing; a folder with one more part needs
    --replace (its content differs)."""
    folder = tmp_path / "parts"
    for k in range(2):
        _parquet_part(folder / f"p{k}.parquet", 50 * k, 50)
    ingest_ok(db_path, folder, "--map", "ts=t,input=p")
    [again] = ingest_ok(db_path, folder, "--map", "ts=t,input=p")
    assert (again["status"], again["rows"]) == ("unchanged", 100)
    _parquet_part(folder / "p2.parquet", 100, 50)
    before = store_state(db_path)
    refused = invoke("ingest", folder, "--map", "ts=t,input=p", "--db", db_path)
    assert refused.exit_code == 1 and "--replace" in refused.stderr
    assert store_state(db_path) == before
    [replaced] = ingest_ok(db_path, folder, "--map", "ts=t,input=p", "--replace")
    assert (replaced["status"], replaced["rows"]) == ("replaced", 150)


def test_formats_lists_every_reader() -> None:
    result = invoke("formats", "--json")
    listing = {f["id"]: f for f in json.loads(result.stdout)}
    for fmt in ("azure-llm", "burstgpt", "mooncake", "servegen", "azure-functions", "csv"):
        assert fmt in listing
    assert listing["huawei-coldstart"]["table"] == "cold_starts"
    assert "totalCost_cold_start" in listing["huawei-coldstart"]["columns"]
    text = invoke("formats").stdout
    assert "[hash_ids]" in text and "[podID]" in text
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert [line.split(" (")[0] for line in lines if not line.startswith(" ")][:-1] == list(listing)


# --- idempotency and replace ------------------------------------------------------------------
@pytest.fixture
def loaded(db_path: Path, tmp_path: Path) -> Path:
    """A store holding one small BurstGPT trace named `burst`."""
    ingest_ok(db_path, write(tmp_path / "burst.csv", _burstgpt_text()))
    return db_path


def test_duplicate_ingest_is_a_no_op(loaded: Path, tmp_path: Path) -> None:
    before = store_state(loaded)
    again = invoke("ingest", tmp_path / "burst.csv", "--db", loaded)
    assert again.exit_code == 0
    assert "unchanged burst" in again.stdout and "nothing to do" in again.stdout
    twin = write(tmp_path / "copy.csv", _burstgpt_text())
    [result] = ingest_ok(loaded, twin)
    assert (result["status"], result["name"]) == ("unchanged", "burst")
    assert store_state(loaded) == before


def test_changed_content_needs_replace(loaded: Path, tmp_path: Path) -> None:
    before = store_state(loaded)
    write(tmp_path / "burst.csv", _burstgpt_text(7))
    refused = invoke("ingest", tmp_path / "burst.csv", "--db", loaded)
    assert refused.exit_code == 1
    assert "--replace" in refused.stderr and "'burst'" in refused.stderr
    assert store_state(loaded) == before
    [result] = ingest_ok(loaded, tmp_path / "burst.csv", "--replace")
    assert (result["status"], result["rows"]) == ("replaced", 7)
    traces, counts = store_state(loaded)
    assert len(traces) == 1 and counts["requests"] == 7


# --- bad input: exit 1, one line on stderr naming the file, store exactly as before -----------
def _gz_truncated(path: Path) -> Path:
    """A gzip file cut in the middle of its data."""
    data = gzip.compress(_burstgpt_text(5000).encode())
    path.write_bytes(data[: len(data) // 2])
    return path


def _folder(d: Path, files: dict[str, str]) -> Path:
    """A folder of the given text files."""
    folder = d / "parts"
    folder.mkdir()
    for name, text in files.items():
        write(folder / name, text)
    return folder


def _servegen_models(d: Path) -> Path:
    """A ServeGen language folder whose two model folders each hold a client chunk-0."""
    for model in ("m-large", "m-mid"):
        (d / "language" / model).mkdir(parents=True)
        write(d / "language" / model / "chunk-0-trace.csv", "0,0.5,1.0,Gamma,1.0,2.0\n")
    return d / "language"


def _parquet_types(folder: Path) -> Path:
    """Two Parquet parts whose timestamp columns differ in type (DOUBLE, then text)."""
    folder.mkdir()
    raw(f"COPY (SELECT 1.0 AS t) TO '{folder / 'p0.parquet'}' (FORMAT parquet)")
    raw(f"COPY (SELECT '2' AS t) TO '{folder / 'p1.parquet'}' (FORMAT parquet)")
    return folder


def _parquet_of(path: Path, select: str) -> Path:
    """A Parquet file holding the rows of `select`."""
    raw(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
    return path


BAD_INPUTS = {
    "missing-file": (lambda d: d / "absent.csv", (), ["absent.csv", "no such file"]),
    "unknown-header": (
        lambda d: write(d / "odd.csv", "alpha,beta\n1,2\n"),
        (),
        ["odd.csv", "unknown format", "alpha", "--format"],
    ),
    "missing-column": (
        lambda d: write(d / "short.csv", "TIMESTAMP,ContextTokens\n2023-11-16 18:17:03,5\n"),
        ("--format", "azure-llm"),
        [
            "short.csv",
            "'GeneratedTokens' missing",
            "expected columns: TIMESTAMP, ContextTokens, GeneratedTokens",
        ],
    ),
    "non-numeric-tokens": (
        lambda d: write(
            d / "nan.csv",
            f"{BURSTGPT_BASE}\n1,ChatGPT,10,2,12,x\n2,ChatGPT,ten,2,12,x\n",
        ),
        (),
        ["nan.csv", "line 3", "Request tokens", "ten"],
    ),
    "negative-tokens": (
        lambda d: write(
            d / "neg.csv",
            f"{BURSTGPT_BASE}\n1,ChatGPT,10,2,12,x\n2,ChatGPT,10,2,12,x\n3,ChatGPT,10,-2,8,x\n",
        ),
        (),
        ["neg.csv", "line 4", "negative"],
    ),
    "truncated-gz": (
        lambda d: _gz_truncated(d / "cut.csv.gz"),
        (),
        ["cut.csv.gz", "GZIP"],
    ),
    "empty-file": (lambda d: write(d / "empty.csv", ""), (), ["empty.csv", "empty file"]),
    "header-only": (
        lambda d: write(d / "head.csv", BURSTGPT_BASE + "\n"),
        (),
        ["head.csv", "no data rows"],
    ),
    "mixed-schemas": (
        lambda d: _folder(d, {"a.csv": _burstgpt_text(), "b.csv": "Timestamp,Model\n1,x\n"}),
        (),
        ["b.csv", "lacks column 'Request tokens'", "same columns"],
    ),
    "parquet-type-differs": (
        lambda d: _parquet_types(d / "typed"),
        ("--map", "ts=t"),
        ["p1.parquet", "'t VARCHAR'", "same columns"],
    ),
    "other-kind-in-folder": (
        lambda d: _folder(d, {"a.csv": _burstgpt_text(), "b.jsonl": '{"timestamp": 1}\n'}),
        (),
        ["b.jsonl", "among .csv files", "one format"],
    ),
    "empty-partition": (
        lambda d: _folder(d, {"a.csv": _burstgpt_text(), "b.csv": BURSTGPT_BASE + "\n"}),
        (),
        ["b.csv", "empty partition"],
    ),
    "servegen-client-in-two-model-folders": (
        _servegen_models,
        (),
        [
            "two ServeGen trace files of client chunk-0",
            "m-large/chunk-0-trace.csv and m-mid/chunk-0-trace.csv",
            "ingest each model's folder on its own",
        ],
    ),
    "control-characters-in-header": (
        lambda d: write(
            d / "ctrl.csv",
            "TIME\x0cSTAMP\x1b[7m,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03,5,3\n",
        ),
        ("--format", "azure-llm"),
        ["ctrl.csv", "found: TIME; STAMP\\x1b[7m, ContextTokens"],
    ),
    "timestamp-far-off": (
        lambda d: write(
            d / "far.csv", f"{BURSTGPT_BASE}\n1,ChatGPT,5,2,7,x\n1e300,ChatGPT,5,2,7,x\n"
        ),
        (),
        ["far.csv", "span 3.169e+292 years", "longer than any trace (at most 10)"],
    ),
    "epoch-word-among-dates": (
        lambda d: write(d / "ep.csv", "ts,i\n2023-01-01 00:00:00,5\nepoch,5\n"),
        ("--map", "ts=ts,input=i"),
        ["ep.csv", "span 53 years", "far off or in another unit"],
    ),
    "parquet-list-timestamps": (
        lambda d: _parquet_of(d / "l.parquet", "SELECT [1.5, 2.5] AS t, 5 AS i"),
        ("--map", "ts=t,input=i"),
        ["l.parquet", "column 't': DECIMAL(2,1)[] values", "numbers or date-times"],
    ),
    "parquet-struct-tokens": (
        lambda d: _parquet_of(d / "s.parquet", "SELECT 1.0 AS t, {'n': 5} AS i"),
        ("--map", "ts=t,input=i"),
        ["s.parquet", "column 'i': STRUCT(n INTEGER) values", "token counts are numbers"],
    ),
    "glob-matches-nothing": (
        lambda d: d / "logs" / "2027-*" / "*.parquet",
        (),
        ["2027-*", "matches no file"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_leaves_store_unchanged(loaded: Path, tmp_path: Path, case: str) -> None:
    make, options, expected = BAD_INPUTS[case]
    path = make(tmp_path)
    before = store_state(loaded)
    result = invoke("ingest", path, *options, "--db", loaded)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert len(result.stderr.splitlines()) == 1 and result.stderr[:-1].isprintable()
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr
    assert store_state(loaded) == before


def _token_file(d: Path, reader: str, value: str) -> tuple[Path, tuple[str, ...], int]:
    """A two-request file of `reader` whose second request's input token count is written as
    `value`: its path, the ingest options it needs, and the line that request is on."""
    if reader == "burstgpt":
        text = f"{BURSTGPT_BASE}\n1,ChatGPT,5,2,7,x\n2,ChatGPT,{value},2,12,x\n"
        return write(d / "t.csv", text), (), 3
    if reader == "azure-llm":
        text = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03,5,2\n"
        return write(d / "t.csv", f"{text}2023-11-16 18:17:04,{value},2\n"), (), 3
    if reader == "mooncake":
        rows = [(1, 5), (2, value)]
        text = "".join(
            f'{{"timestamp": {t}, "input_length": {v}, "output_length": 2}}\n' for t, v in rows
        )
        return write(d / "t.jsonl", text), (), 2
    mapped = ("--map", "ts=ts,input=i,output=o")
    if reader == "csv --map":
        return write(d / "t.csv", f"ts,i,o\n1,5,2\n2,{value},2\n"), mapped, 3
    path = d / "t.parquet"
    raw(
        "COPY (SELECT * FROM (VALUES (1.0, 5.0, 2), "
        f"(2.0, {value}::DOUBLE, 2)) v(ts, i, o)) TO '{path}'"
    )
    return path, mapped, 0


# (reader, value as written, what the refusal says); CSV readers read counts as numbers, so
# text such as 0x10 is a conversion error naming the column, and casts never round first.
READERS = ("burstgpt", "azure-llm", "mooncake", "csv --map", "parquet --map")
TOKEN_VALUES = [
    *[(r, "2.5", "not a whole number") for r in READERS],
    *[(r, "-0.4", "negative value in input_tokens") for r in ("burstgpt", "mooncake", "csv --map")],
    *[(r, "3000000000", "is too large") for r in ("burstgpt", "mooncake", "parquet --map")],
    ("burstgpt", "0x10", "Could not convert string \"0x10\""),
    ("csv --map", "inf", "not a finite number"),
    ("mooncake", "true", "not a finite number"),
    ("mooncake", '"12"', "not a finite number"),
    ("mooncake", "[3]", "not a finite number"),
]  # fmt: skip


@pytest.mark.parametrize(("reader", "value", "reason"), TOKEN_VALUES)
def test_token_counts_are_checked_before_they_are_stored(
    loaded: Path, tmp_path: Path, reader: str, value: str, reason: str
) -> None:
    """A token count that is not a whole number in 0..2^31-1 is refused naming its line and
    the store is left as it was (DuckDB's cast used to store 2.5 as 3, -0.4 as 0, true as 1)."""
    path, options, line = _token_file(tmp_path, reader, value)
    before = store_state(loaded)
    for aggregate in ((), ("--aggregate",)):
        result = invoke("ingest", path, *options, *aggregate, "--db", loaded)
        assert result.exit_code == 1, result.stdout
        assert reason in result.stderr and result.stderr.count("\n") == 1
        assert (f": line {line}: " in result.stderr) == bool(line)
        assert store_state(loaded) == before


@pytest.mark.parametrize("reader", ["burstgpt", "mooncake", "csv --map", "parquet --map"])
def test_whole_token_counts_in_any_notation_are_stored(
    db_path: Path, tmp_path: Path, reader: str
) -> None:
    """1e3 is a whole count, stored as 1000."""
    path, options, _ = _token_file(tmp_path, reader, "1e3")
    ingest_ok(db_path, path, *options)
    assert stored(db_path, "SELECT list(input_tokens ORDER BY arrival_s) FROM requests") == (
        [5, 1000],
    )


def test_locked_store(loaded: Path, tmp_path: Path) -> None:
    before = store_state(loaded)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True);"
            " time.sleep(30)",
            str(loaded),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        result = invoke("ingest", write(tmp_path / "other.csv", _burstgpt_text(9)), "--db", loaded)
        listing = invoke("traces", "--db", loaded)
    finally:
        holder.kill()
        holder.wait()
    for res in (result, listing):
        assert res.exit_code == 1
        assert "locked by another process" in res.stderr and str(loaded) in res.stderr
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert store_state(loaded) == before


def test_db_in_missing_folder(tmp_path: Path) -> None:
    db = tmp_path / "nowhere" / "store.duckdb"
    result = invoke("ingest", "--sample", "azure-code", "--db", db)
    assert result.exit_code == 1
    assert "folder" in result.stderr and "does not exist" in result.stderr
    assert not db.parent.exists()


def test_a_first_ingest_that_fails_leaves_no_store(tmp_path: Path) -> None:
    """Bad input into a store that does not exist yet: one line, exit 1, and no empty store file
    left behind; a store the same command stored a trace in is kept."""
    db = tmp_path / "new.duckdb"
    bad = write(tmp_path / "odd.csv", "alpha,beta\n1,2\n")
    result = invoke("ingest", bad, "--db", db)
    assert result.exit_code == 1 and "unknown format" in result.stderr
    assert not db.exists() and not db.with_name("new.duckdb.wal").exists()
    good = write(tmp_path / "good.csv", _burstgpt_text())
    assert invoke("ingest", good, bad, "--db", db).exit_code == 1
    assert stored(db, "SELECT list(name) FROM traces") == (["good"],)


def test_query_refuses_writes(loaded: Path) -> None:
    before = store_state(loaded)
    for sql in (
        "DELETE FROM requests",
        "DROP TABLE traces",
        "INSERT INTO traces (name) VALUES (1)",
    ):
        result = invoke("query", sql, "--db", loaded)
        assert result.exit_code == 1
        assert "read-only" in result.stderr and "Traceback" not in result.stderr
    assert store_state(loaded) == before


def test_json_output_is_only_json(loaded: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "more.csv", _burstgpt_text(4))
    for args in (
        ("ingest", path, "--db", loaded, "--json"),
        ("traces", "--db", loaded, "--json"),
        ("query", "SELECT name, rows FROM traces ORDER BY id", "--db", loaded, "--json"),
        ("formats", "--json"),
    ):
        result = invoke(*args)
        assert result.exit_code == 0, result.stderr
        assert isinstance(json.loads(result.stdout), list)
    rows = json.loads(
        invoke(
            "query", "SELECT name, rows FROM traces ORDER BY id", "--db", loaded, "--json"
        ).stdout
    )
    assert rows == [{"name": "burst", "rows": 3}, {"name": "more", "rows": 4}]


def test_progress_is_reported_within_a_source(db_path: Path, tmp_path: Path) -> None:
    """A source's load reports its progress as it goes (each statement reading it, and DuckDB's
    share of the running one): rising shares below 1, and DuckDB's progress setting as before."""
    folder = tmp_path / "lake"
    for k in range(3):
        _parquet_part(folder / f"part-{k}.parquet", 1000 * k, 1000)
    shares: list[float] = []
    con = open_store(db_path)
    try:
        result = ingest_path(con, folder, mapping={"ts": "t", "input": "p"}, progress=shares.append)
        setting = con.execute("SELECT current_setting('enable_progress_bar')").fetchall()[0][0]
    finally:
        con.close()
    assert result.rows == 3000
    assert len(shares) >= 6  # at least a time pass and an insert per file
    assert shares == sorted(shares) and shares[0] > 0 and shares[-1] < 1
    assert setting is False
