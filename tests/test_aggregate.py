"""Aggregated ingest (`--aggregate`, `--engine spark`): checked against independent computations
on the real traces, DuckDB against Spark, and bad input."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from conftest import ingest_one, invoke, shared_path, store_rows, store_state

from planner.ingest.aggregate import length_bin

AZURE = ("traces", "azure_llm_2023")
AZURE_MAP = "ts=TIMESTAMP,input=ContextTokens,output=GeneratedTokens"
needs_spark = pytest.mark.skipif(
    importlib.util.find_spec("pyspark") is None or shutil.which("java") is None,
    reason='the Spark engine needs PySpark (pip install -e ".[spark]") and a Java runtime',
)


def assert_refused(db: Path, before: tuple, expected: list, *args: str | Path) -> None:
    """`planner ingest ARGS` fails with one line naming each of `expected`; store as `before`."""
    result = invoke("ingest", *args, "--db", db)
    assert result.exit_code == 1, result.stdout
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    for text in expected:
        assert text in result.stderr
    assert store_state(db) == before


WINDOWS = "SELECT series, window_start_s, window_s, requests, rate_rps, cv FROM rate_windows"
LENGTHS = "SELECT series, window_start_s, which, tokens, prob FROM length_dists"


def test_length_bins_match_integer_arithmetic() -> None:
    """The portable SQL bin of every length up to 2^20 (and some far beyond) equals the bin
    computed with Python integers: exact below 16, then 16 bins per octave."""
    xs = np.concatenate([np.arange(0, 1 << 20), [2**30 - 1, 2**30, 2**40 - 1, 2**41, 2**50]])
    con = duckdb.connect()
    con.register("xs", {"x": xs})
    got = con.execute(f"SELECT {length_bin('x')} FROM xs ORDER BY x").fetchnumpy()
    got = next(iter(got.values()))

    def expected(x: int) -> int:
        if x < 16:
            return x
        octave = x.bit_length() - 1
        if octave > 40:
            return 16 * 38
        return 16 * (octave - 3) + ((x - (1 << octave)) >> (octave - 4))

    assert list(got) == [expected(int(x)) for x in sorted(xs)]


def test_aggregates_match_the_requests(db_path: Path, tmp_path: Path) -> None:
    """An aggregated Azure conv trace against the same trace loaded as requests: per-minute
    counts equal, gap CVs equal numpy's on the raw arrivals, and each length PMF's mean is the
    requests' mean (bins keep their mean length); analyze reads both alike."""
    path = shared_path(*AZURE, "AzureLLMInferenceTrace_conv.csv")
    raw_db = tmp_path / "raw.duckdb"
    ingest_one(raw_db, path)
    out = ingest_one(db_path, path, "--aggregate")
    assert (out["table"], out["rows"], out["series"]) == ("rate_windows", 59, 1)
    arrivals, inputs, outputs = (
        np.array(c)
        for c in zip(
            *store_rows(
                raw_db,
                "SELECT arrival_s, input_tokens, output_tokens FROM requests ORDER BY arrival_s",
            ),
            strict=True,
        )
    )
    minute = np.floor(arrivals / 60.0).astype(int)
    windows = store_rows(db_path, WINDOWS + " ORDER BY window_start_s")
    assert [int(w[1] // 60) for w in windows] == sorted(set(minute))
    assert [w[3] for w in windows] == list(np.bincount(minute)[sorted(set(minute))])
    for _, start, _, _, _, cv in windows:
        gaps = np.diff(arrivals[minute == int(start // 60)])
        assert cv == pytest.approx(gaps.std(ddof=1) / gaps.mean(), rel=1e-9)
    means = dict(
        store_rows(db_path, "SELECT which, sum(prob * tokens) FROM length_dists GROUP BY which")
    )
    assert means["input_tokens"] == pytest.approx(inputs.mean(), abs=0.5)
    assert means["output_tokens"] == pytest.approx(outputs.mean(), abs=0.5)
    a = json.loads(
        invoke("analyze", "AzureLLMInferenceTrace_conv", "--db", db_path, "--json").stdout
    )
    r = json.loads(
        invoke("analyze", "AzureLLMInferenceTrace_conv", "--db", raw_db, "--json").stdout
    )
    assert a["requests"] == r["requests"] == len(arrivals)


def test_aggregate_is_idempotent_and_recorded(db_path: Path) -> None:
    """The same source aggregated the same way again is a no-op; another interval needs
    --replace, and the stored read options say how the trace was aggregated."""
    path = shared_path(*AZURE, "AzureLLMInferenceTrace_code.csv")
    ingest_one(db_path, path, "--aggregate")
    again = ingest_one(db_path, path, "--aggregate")
    assert again["status"] == "unchanged"
    before = store_state(db_path)
    refused = invoke("ingest", path, "--aggregate", "--interval", "10min", "--db", db_path)
    assert refused.exit_code == 1 and "--replace" in refused.stderr
    assert store_state(db_path) == before
    out = ingest_one(db_path, path, "--aggregate", "--interval", "10min", "--replace")
    assert (out["status"], out["rows"]) == ("replaced", 6)
    [(options,)] = store_rows(db_path, "SELECT read_options FROM traces")
    assert json.loads(options)["aggregate"] == {"interval_s": 600.0, "length_window_s": 3600.0}


@needs_spark
@pytest.mark.parametrize("name", ["code", "conv"])
def test_spark_and_duckdb_give_identical_aggregates(tmp_path: Path, name: str) -> None:
    """Both engines aggregate the real Azure traces alike: every window's count and every PMF
    bin's length and probability identical, gap CVs equal to the last bits."""
    path = shared_path(*AZURE, f"AzureLLMInferenceTrace_{name}.csv")
    by = {}
    for engine in ("duckdb", "spark"):
        db = tmp_path / f"{engine}.duckdb"
        ingest_one(db, path, "--map", AZURE_MAP, "--engine", engine, "--aggregate")
        by[engine] = (
            store_rows(db, WINDOWS + " ORDER BY 1, 2"),
            store_rows(db, LENGTHS + " ORDER BY 1, 2, 3, 4"),
        )
    (dw, dl), (sw, sl) = by["duckdb"], by["spark"]
    assert dl == sl and len(dl) > 100
    assert [w[:5] for w in dw] == [w[:5] for w in sw]
    assert [w[5] for w in dw] == pytest.approx([w[5] for w in sw], rel=1e-12)


@needs_spark
def test_spark_reads_a_partitioned_folder(tmp_path: Path) -> None:
    """The Mooncake trace written as Hive-partitioned Parquet (real rows, split into 10-minute
    slots): Spark and DuckDB aggregate the folder alike, every row of every file, with the
    partition key as the series."""
    mooncake = shared_path("traces", "mooncake_fast25", "synthetic_trace.jsonl")
    lake = tmp_path / "lake"
    duckdb.sql(
        f"COPY (SELECT timestamp / 1000.0 AS t, input_length AS p, output_length AS c, "
        f"'m' || CAST(floor(timestamp / 6e5) AS INTEGER) AS slot "
        f"FROM read_json('{mooncake}', format='newline_delimited')) "
        f"TO '{lake}' (FORMAT parquet, PARTITION_BY (slot))"
    )
    by = {}
    sources = {
        "duckdb": (lake, "duckdb"),
        "spark": (lake, "spark"),
        "uri": (lake.as_uri(), "spark"),
    }
    for key, (source, engine) in sources.items():
        db = tmp_path / f"{key}.duckdb"
        out = ingest_one(
            db, source, "--map", "ts=t,input=p,output=c,model=slot", "--engine", engine,
            "--aggregate",
        )  # fmt: skip
        by[key] = (
            out,
            store_rows(db, WINDOWS + " ORDER BY 1, 2"),
            store_rows(db, LENGTHS + " ORDER BY 1, 2, 3, 4"),
        )
    (d_out, dw, dl), (s_out, sw, sl), (u_out, uw, ul) = by.values()
    [(rows, slots)] = duckdb.sql(
        f"SELECT count(*), count(DISTINCT floor(timestamp / 6e5)) "
        f"FROM read_json('{mooncake}', format='newline_delimited')"
    ).fetchall()
    assert d_out["files"] == s_out["files"] and sum(d_out["files"].values()) == rows
    assert d_out["series"] == s_out["series"] == len(d_out["files"]) == slots > 1
    assert dl == sl and [w[:5] for w in dw] == [w[:5] for w in sw]
    # the same folder as a file:// URI: listed and read by Spark's file system, not resolved
    # here; every file named under the URI as given, the same aggregates
    named = {f"{lake.as_uri()}/{Path(p).relative_to(lake)}": n for p, n in d_out["files"].items()}
    assert u_out["files"] == named
    assert ul == dl and uw == sw


def _parts(folder: Path, texts: list[str]) -> Path:
    """A folder of CSV parts with the given contents."""
    folder.mkdir()
    for i, text in enumerate(texts):
        (folder / f"part-{i}.csv").write_text(text)
    return folder


@pytest.mark.parametrize(
    ("case", "args", "expected"),
    [
        ("cold-starts", ["--aggregate"], ["--aggregate applies to request traces"]),
        ("bad-interval", ["--aggregate", "--interval", "soon"], ["--interval 'soon'"]),
        ("unknown-engine", ["--engine", "flink"], ["--engine 'flink'", "duckdb, spark"]),
        ("master-without-spark", ["--master", "spark://h:7077"], ["--master applies to"]),
        ("spark-needs-map", ["--engine", "spark"], ["--engine spark reads csv or parquet"]),
        ("negative-tokens", ["--aggregate"], ["part-1.csv", "line 3", "negative"]),
    ],
)
def test_bad_aggregate_input(
    db_path: Path, tmp_path: Path, case: str, args: list, expected: list
) -> None:
    """One line naming what is wrong, exit 1, store unchanged."""
    ingest_one(
        db_path, _parts(tmp_path / "ok", ["t,p,c\n1,2,3\n"]), "--map", "ts=t,input=p,output=c"
    )
    before = store_state(db_path)
    if case == "cold-starts":
        source = shared_path("traces", "alibaba_gentd26", "basemodel_update_latency_anon.tar.gz")
    elif case == "negative-tokens":
        source = _parts(tmp_path / "neg", ["t,p,c\n1,2,3\n", "t,p,c\n2,5,1\n3,-5,1\n"])
        args = [*args, "--map", "ts=t,input=p,output=c"]
    else:
        source = shared_path(*AZURE, "AzureLLMInferenceTrace_code.csv")
    assert_refused(db_path, before, expected, source, *args)


@needs_spark
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unreachable-master", ["--master spark://127.0.0.1:9", "cannot reach the Spark master"]),
        ("negative-tokens", ["part-1.csv", "negative value in input_tokens"]),
        ("empty-partition", ["part-1.csv", "empty partition"]),
        ("missing-column", ["'c' missing"]),
    ],
)
def test_bad_spark_input(db_path: Path, tmp_path: Path, case: str, expected: list) -> None:
    """Spark-side refusals: one line naming the master or file, exit 1, store unchanged."""
    ingest_one(
        db_path, _parts(tmp_path / "ok", ["t,p,c\n1,2,3\n"]), "--map", "ts=t,input=p,output=c"
    )
    before = store_state(db_path)
    texts = {
        "negative-tokens": ["t,p,c\n1,2,3\n", "t,p,c\n2,5,1\n3,-5,1\n"],
        "empty-partition": ["t,p,c\n1,2,3\n", "t,p,c\n"],
        "missing-column": ["t,p\n1,2\n"],
    }.get(case, ["t,p,c\n1,2,3\n"])
    source = _parts(tmp_path / "in", texts)
    extra = ["--master", "spark://127.0.0.1:9"] if case == "unreachable-master" else []
    spark = ["--engine", "spark", "--map", "ts=t,input=p,output=c", *extra]
    assert_refused(db_path, before, expected, source, *spark)


@needs_spark
def test_a_uri_source_is_listed_by_spark_and_reingested_only_when_its_listing_changes(
    db_path: Path, tmp_path: Path
) -> None:
    """A folder given as a file:// URI (the path Spark takes for s3a://, hdfs://, ...): read
    whole, again "unchanged" (the listing's names, sizes and times stand for the content), a
    new part needs --replace; a glob URI reads the files it matches."""
    folder = _parts(tmp_path / "lake", ["t,p,c\n1,2,3\n2,4,5\n", "t,p,c\n3,6,7\n"])
    (folder / "_SUCCESS").write_text("")
    spark = ["--engine", "spark", "--map", "ts=t,input=p,output=c", "--name", "lake"]
    glob = ["--engine", "spark", "--map", "ts=t,input=p,output=c", "--name", "g"]
    first = ingest_one(db_path, folder.as_uri(), *spark)
    assert (first["status"], first["files"]) == (
        "ingested",
        {f"{folder.as_uri()}/part-0.csv": 2, f"{folder.as_uri()}/part-1.csv": 1},
    )
    assert store_rows(db_path, "SELECT source FROM traces") == [(folder.as_uri(),)]
    assert ingest_one(db_path, folder.as_uri(), *spark)["status"] == "unchanged"
    (folder / "part-2.csv").write_text("t,p,c\n4,8,9\n")
    before = store_state(db_path)
    assert_refused(db_path, before, ["lake", "--replace"], folder.as_uri(), *spark)
    replaced = ingest_one(db_path, folder.as_uri(), *spark, "--replace")
    assert replaced["status"] == "replaced" and sum(replaced["files"].values()) == 4
    globbed = ingest_one(db_path, f"{folder.as_uri()}/part-[01].csv", *glob)
    assert sorted(globbed["files"].values()) == [1, 2]


@needs_spark
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("needs-spark", ["a URI is read by --engine spark"]),
        ("matches-nothing", ["/none/*.csv", "matches no data file"]),
        ("no-file-system", ["s3a://bucket/logs", "Spark cannot list it", "S3AFileSystem"]),
    ],
)
def test_bad_uri_source(db_path: Path, tmp_path: Path, case: str, expected: list) -> None:
    """A URI for the duckdb engine, one matching nothing, or a scheme Spark has no file system
    for here (no S3 connector): one line, exit 1, store unchanged."""
    ingest_one(
        db_path, _parts(tmp_path / "ok", ["t,p,c\n1,2,3\n"]), "--map", "ts=t,input=p,output=c"
    )
    before = store_state(db_path)
    uri = {
        "needs-spark": (tmp_path / "ok").as_uri(),
        "matches-nothing": f"{tmp_path.as_uri()}/none/*.csv",
        "no-file-system": "s3a://bucket/logs/",
    }[case]
    engine = [] if case == "needs-spark" else ["--engine", "spark"]
    assert_refused(db_path, before, expected, uri, "--map", "ts=t,input=p,output=c", *engine)


@needs_spark
def test_a_jvm_that_cannot_start_is_one_line_with_its_reason(tmp_path: Path) -> None:
    """Spark's JVM writes to the terminal as it starts; planner points it at a log file, so a
    JVM that cannot start (no Java at JAVA_HOME) is one error line quoting the JVM's last word,
    and a run that starts prints none of the JVM's chatter (checked on the same command with
    Java)."""
    source = _parts(tmp_path / "in", ["t,p,c\n1,2,3\n"])
    args = ["ingest", str(source), "--engine", "spark", "--map", "ts=t,input=p,output=c"]
    root = Path(__file__).resolve().parents[1]
    for java_home, rc in ((str(tmp_path / "no-java"), 1), (os.environ.get("JAVA_HOME"), 0)):
        env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
        env |= {"JAVA_HOME": java_home} if java_home else {}
        run = subprocess.run(
            [sys.executable, "-m", "cli", *args, "--db", str(tmp_path / f"{rc}.duckdb")],
            cwd=root, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == rc, run.stderr
        if rc:
            assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1
            assert "Spark could not start" in run.stderr and "the JVM said: " in run.stderr
        else:
            assert run.stderr == "" and run.stdout.startswith("ingested in: ")


def test_spark_missing_says_how_to_install(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without PySpark, --engine spark says which extra to install; nothing is written."""
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    source = _parts(tmp_path / "in", ["t,p,c\n1,2,3\n"])
    result = invoke(
        "ingest", source, "--engine", "spark", "--map", "ts=t,input=p,output=c", "--db", db_path
    )
    assert result.exit_code == 1
    assert 'pip install -e ".[spark]"' in result.stderr and result.stderr.count("\n") == 1
    assert not db_path.exists() or store_state(db_path)[1]["rate_windows"] == 0


@needs_spark
def test_spark_submit_runs_the_ingest(tmp_path: Path) -> None:
    """README's spark-submit form, locally: spark-submit chooses the master, planner's
    Spark session joins it, and the aggregates are those of a plain --engine spark ingest."""
    submit = Path(sys.executable).with_name("spark-submit")
    if not submit.exists():
        pytest.skip(f"{submit}: PySpark's spark-submit is not in this environment")
    path = shared_path(*AZURE, "AzureLLMInferenceTrace_code.csv")
    db = tmp_path / "submitted.duckdb"
    cli_py = Path(__file__).resolve().parents[1] / "cli.py"
    args = ["ingest", path, "--engine", "spark", "--map", AZURE_MAP, "--json"]
    done = subprocess.run(
        [submit, "--master", "local[1]", cli_py, *args, "--db", db],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [out] = json.loads(done.stdout)
    direct = tmp_path / "direct.duckdb"
    plain = ingest_one(direct, path, "--engine", "spark", "--map", AZURE_MAP)
    assert (out["rows"], out["aggregated"]) == (plain["rows"], 8819)
    assert store_rows(db, LENGTHS + " ORDER BY 1, 2, 3, 4") == store_rows(
        direct, LENGTHS + " ORDER BY 1, 2, 3, 4"
    )


def test_rates_without_lengths_say_how_to_get_them(db_path: Path, tmp_path: Path) -> None:
    """A rate series without length PMFs (a Huawei per-minute table) cannot be simulated; the
    error says which ingest gives a trace that can, and an aggregated one then simulates."""
    series = tmp_path / "series.csv"
    series.write_text("funcID,time,requests\nf1,0,120\nf1,60,90\nf1,120,150\n")
    ingest_one(db_path, series)
    refused = invoke("simulate", "series", "--db", db_path)
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1
    assert "without token-length PMFs" in refused.stderr and "--aggregate" in refused.stderr
    logs = _parts(
        tmp_path / "logs",
        ["t,p,c\n" + "".join(f"{i / 2},{100 + i},{20 + i}\n" for i in range(240))],
    )
    ingest_one(db_path, logs, "--aggregate", "--map", "ts=t,input=p,output=c")
    done = invoke("simulate", "logs", "--db", db_path, "--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["requests"] > 100


def test_a_rate_series_borrows_lengths(db_path: Path, tmp_path: Path) -> None:
    """`--lengths TRACE` gives a rate series one pooled PMF per side from TRACE's requests: the
    PMF's mean is TRACE's mean length (SQL on its rows), the series then simulates, the trace
    records where its lengths came from and the plan says so."""
    ingest_one(db_path, "--sample", "azure-code")
    series = tmp_path / "series.csv"
    minutes = np.arange(3 * 1440)  # SYNTHETIC: three days of a daily cycle, 30 to 90 per minute
    counts = np.rint(60 + 30 * np.sin(2 * np.pi * minutes / 1440)).astype(int)
    body = "".join(f"f1,{60 * m},{c}\n" for m, c in zip(minutes, counts, strict=True))
    series.write_text("funcID,time,requests\n" + body)
    ingest_one(db_path, series, "--lengths", "azure-code")
    means = dict(
        store_rows(
            db_path,
            "SELECT which, sum(prob * tokens) FROM length_dists l JOIN traces t "
            "ON t.id = l.trace_id WHERE t.name = 'series' GROUP BY which",
        )
    )
    [(mean_in, mean_out)] = store_rows(
        db_path,
        "SELECT avg(input_tokens), avg(output_tokens) FROM requests r JOIN traces t "
        "ON t.id = r.trace_id WHERE t.name = 'azure-code' AND ok",
    )
    assert means["input_tokens"] == pytest.approx(mean_in, abs=0.5)
    assert means["output_tokens"] == pytest.approx(mean_out, abs=0.5)
    [(options,)] = store_rows(db_path, "SELECT read_options FROM traces WHERE name = 'series'")
    assert json.loads(options)["lengths"] == "azure-code"
    done = invoke("simulate", "series", "--db", db_path, "--json")
    assert done.exit_code == 0, done.stderr
    out = tmp_path / "PLAN.json"
    planned = invoke(
        "plan",
        "series",
        "--model",
        "llama-3.1-8b",
        "--slo",
        "ttft_p99=2000ms",
        "--accelerators",
        "h100",
        "--out",
        out,
        "--db",
        db_path,
    )
    assert planned.exit_code == 0, planned.stderr
    assert json.loads(out.read_text())["trace"]["lengths_from"] == "azure-code"


@pytest.mark.parametrize(
    ("case", "args", "expected"),
    [
        ("unknown-trace", ["--lengths", "nowhere"], ["unknown trace 'nowhere'"]),
        ("no-lengths", ["--lengths", "cold"], ["--lengths cold", "no token lengths to borrow"]),
        ("request-source", ["--lengths", "azure-code"], ["--lengths applies to rate series"]),
    ],
)
def test_bad_lengths(db_path: Path, tmp_path: Path, case: str, args: list, expected: list) -> None:
    """One line naming what is wrong, exit 1, store unchanged."""
    ingest_one(db_path, "--sample", "azure-code")
    cold = shared_path("traces", "alibaba_gentd26", "basemodel_update_latency_anon.tar.gz")
    ingest_one(db_path, cold, "--name", "cold")
    before = store_state(db_path)
    if case == "request-source":
        source = _parts(tmp_path / "req", ["t,p,c\n1,2,3\n2,3,4\n"])
        args = [*args, "--map", "ts=t,input=p,output=c"]
    else:
        source = tmp_path / "series.csv"
        source.write_text("funcID,time,requests\nf1,0,120\nf1,60,90\n")
    assert_refused(db_path, before, expected, source, *args)


def test_lengths_borrowed_from_a_rate_trace(db_path: Path, tmp_path: Path) -> None:
    """Borrowed from an aggregated trace, a rate series' PMF is the equal-weight mixture of the
    lender's PMFs: its mean equals the mean of their means (SQL on the lender's rows)."""
    ingest_one(db_path, shared_path(*AZURE, "AzureLLMInferenceTrace_code.csv"), "--aggregate")
    lender = "AzureLLMInferenceTrace_code"
    series = tmp_path / "series.csv"
    series.write_text("funcID,time,requests\nf1,0,120\nf1,60,90\n")
    ingest_one(db_path, series, "--lengths", lender)
    got = dict(
        store_rows(
            db_path,
            "SELECT which, sum(prob * tokens) FROM length_dists l JOIN traces t "
            "ON t.id = l.trace_id WHERE t.name = 'series' GROUP BY which",
        )
    )
    expected = dict(
        store_rows(
            db_path,
            "SELECT which, avg(m) FROM (SELECT which, l.series, l.window_start_s, "
            "sum(prob * tokens) AS m FROM length_dists l JOIN traces t ON t.id = l.trace_id "
            f"WHERE t.name = '{lender}' GROUP BY 1, 2, 3) GROUP BY which",
        )
    )
    assert got == pytest.approx(expected, rel=1e-9) and len(got) == 2
