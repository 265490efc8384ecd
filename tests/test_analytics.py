"""Trace analytics: every figure against an independent computation on the raw files.

Independent = numpy / scipy / polars or a fresh DuckDB query over the raw file in
../shared/data, never the store's tables through the code under test.
"""

import json
import tarfile
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from conftest import invoke, shared_path
from scipy import stats

from planner.analytics import (
    analyze_trace,
    arrival_counts,
    arrivals_of,
    fit,
    fit_groups,
    keepalive_curve,
    window_fits,
)
from planner.ingest import ingest_path, ingest_sample
from planner.store import get_trace, open_store

AZURE = ("traces", "azure_llm_2023")
GENTD = ("traces", "alibaba_gentd26")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the Azure samples, Mooncake, GenTD26 and Azure Functions traces."""
    db = tmp_path_factory.mktemp("analytics") / "store.duckdb"
    con = open_store(db)
    try:
        ingest_sample(con, "azure-code")
        ingest_sample(con, "azure-conv")
        for parts, name in (
            (("traces", "mooncake_fast25", "synthetic_trace.jsonl"), "mooncake"),
            ((*GENTD, "lora_request_trace.csv"), "lora"),
            ((*GENTD, "basemodel_update_latency_anon.tar.gz"), "basemodel"),
            (("traces", "azure_functions_2021_sample", "Azure2021_200.csv"), "functions"),
        ):
            path = shared_path(*parts)
            ingest_path(con, path, name=name)
    finally:
        con.close()
    return db


@pytest.fixture(scope="module")
def con(store: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the module's store."""
    connection = duckdb.connect(str(store), read_only=True)
    yield connection
    connection.close()


def azure_raw(which: str) -> pl.DataFrame:
    """The raw Azure 2023 CSV with arrival seconds parsed by polars (not by the reader)."""
    frame = pl.read_csv(shared_path(*AZURE, f"AzureLLMInferenceTrace_{which}.csv"))
    t = frame["TIMESTAMP"].str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="ns")
    return frame.with_columns((t.dt.epoch("ns") / 1e9).alias("t")).sort("t")


def whole_bin_counts(t: np.ndarray, bin_s: float) -> np.ndarray:
    """Requests per whole bin from the first arrival, by np.bincount."""
    idx = np.floor((t - t[0]) / bin_s).astype(np.int64)
    bins = int((t[-1] - t[0]) // bin_s)
    return np.bincount(idx[idx < bins], minlength=bins)


# --- fits on samples from known distributions -------------------------------------------------
# n = 20,000 draws: the MLE's standard error is below 1 % of each parameter here, so 4 % is
# more than 4 standard errors; and on the same sample the fit must match scipy's MLE to 1e-4.


@pytest.mark.parametrize(
    ("dist", "draw", "truth", "scipy_dist"),
    [
        ("gamma", lambda r, n: r.gamma(0.45, 2.0, n), (0.45, 2.0), stats.gamma),
        ("weibull", lambda r, n: 3.0 * r.weibull(0.7, n), (0.7, 3.0), stats.weibull_min),
        ("lognormal", lambda r, n: r.lognormal(1.0, 0.8, n), (1.0, 0.8), None),
    ],
)
def test_fit_recovers_known_parameters(dist, draw, truth, scipy_dist) -> None:
    x = draw(np.random.default_rng(7), 20_000)
    (res,) = fit(x, (dist,))
    p1, p2 = res["params"].values()
    assert p1 == pytest.approx(truth[0], rel=0.04)
    assert p2 == pytest.approx(truth[1], rel=0.04)
    if scipy_dist is not None:
        shape, _, scale = scipy_dist.fit(x, floc=0)
        assert (p1, p2) == pytest.approx((shape, scale), rel=1e-4)
        ks = stats.kstest(x, scipy_dist.cdf, args=(p1, 0, p2)).statistic
    else:
        sigma, _, scale = stats.lognorm.fit(x, floc=0)
        assert (p1, p2) == pytest.approx((np.log(scale), sigma), rel=1e-4)
        ks = stats.kstest(x, stats.lognorm.cdf, args=(p2, 0, np.exp(p1))).statistic
    assert res["ks"] == pytest.approx(ks, abs=1e-9)
    assert res["ks"] < 0.015


def test_batched_fits_recover_each_group() -> None:
    rng = np.random.default_rng(3)
    shapes = np.array([0.3, 0.8, 1.5, 4.0])
    values = np.concatenate([2.0 * rng.weibull(k, 5_000) for k in shapes])
    groups = np.repeat(np.arange(shapes.size), 5_000)
    res = fit_groups(values, groups, ("weibull", "gamma"))
    assert res["weibull_p1"] == pytest.approx(shapes, rel=0.04)
    assert res["weibull_p2"] == pytest.approx(np.full(4, 2.0), rel=0.04)
    for g in range(shapes.size):
        k, _, theta = stats.gamma.fit(values[groups == g], floc=0)
        assert (res["gamma_p1"][g], res["gamma_p2"][g]) == pytest.approx((k, theta), rel=1e-4)


# --- burstiness on the Azure 2023 traces ------------------------------------------------------


@pytest.mark.parametrize("which", ["code", "conv"])
def test_rates_and_interarrivals_match_raw_file(con, which: str) -> None:
    raw = azure_raw(which)
    t = raw["t"].to_numpy()
    result = analyze_trace(con, f"azure-{which}")
    assert result["requests"] == raw.height
    assert result["span_s"] == pytest.approx(t[-1] - t[0], rel=1e-6)
    for rate in result["rates"]:
        counts = whole_bin_counts(t, rate["bin_s"])
        r = counts / rate["bin_s"]
        assert rate["bins"] == counts.size
        expected = (r.mean(), np.quantile(r, 0.5), np.quantile(r, 0.99), r.max())
        got = (rate["mean"], rate["p50"], rate["p99"], rate["max"])
        assert got == pytest.approx(expected, rel=1e-5)
        assert rate["peak_to_mean"] == pytest.approx(counts.max() / counts.mean(), rel=1e-5)
        assert rate["index_of_dispersion"] == pytest.approx(counts.var() / counts.mean(), rel=1e-5)
    gaps = np.diff(t)
    assert result["interarrival_cv"] == pytest.approx(gaps.std(ddof=1) / gaps.mean(), rel=1e-5)
    positive = gaps[gaps > 0]
    for f in result["fits"]["interarrival"]:
        scipy_dist = {"gamma": stats.gamma, "weibull": stats.weibull_min}[f["dist"]]
        shape, _, scale = scipy_dist.fit(positive, floc=0)
        assert (f["params"]["shape"], f["params"]["scale"]) == pytest.approx(
            (shape, scale), rel=1e-3
        )
        ks = stats.kstest(positive, scipy_dist.cdf, args=(shape, 0, scale)).statistic
        assert f["ks"] == pytest.approx(ks, abs=1e-3)


def test_azure_code_is_bursty(con) -> None:
    result = analyze_trace(con, "azure-code")
    assert result["rate_per_s"]["cv"] == pytest.approx(
        2.27, abs=0.05
    )  # README: per-second CV ≈ 2.3
    assert result["rate_per_s"]["peak_to_mean"] > 20


def test_window_fits_match_scipy_per_window(con) -> None:
    raw = azure_raw("conv")
    t = raw["t"].to_numpy()
    frame = window_fits(arrivals_of(con, get_trace(con, "azure-conv").id), 600.0, max_gaps=10**6)
    window = np.floor((t[1:] - t[0]) / 600.0).astype(int)
    gaps = np.diff(t)
    assert frame["gaps"].to_list() == np.bincount(window).tolist()
    for w in (0, 3):
        g = gaps[(window == w) & (gaps > 0)]
        row = frame.row(w, named=True)
        shape, _, scale = stats.gamma.fit(g, floc=0)
        assert (row["gamma_shape"], row["gamma_scale"]) == pytest.approx((shape, scale), rel=1e-3)
        shape, _, scale = stats.weibull_min.fit(g, floc=0)
        assert row["weibull_shape"] == pytest.approx(shape, rel=1e-3)
        ks = stats.kstest(g, stats.weibull_min.cdf, args=(shape, 0, scale)).statistic
        assert row["weibull_ks"] == pytest.approx(ks, abs=1e-3)
        assert row["cv"] == pytest.approx(gaps[window == w].std(ddof=1) / gaps[window == w].mean())
    sampled = window_fits(arrivals_of(con, get_trace(con, "azure-conv").id), 600.0)
    assert (sampled["fitted_gaps"] <= 500).all()
    assert sampled["weibull_shape"].to_numpy() == pytest.approx(
        frame["weibull_shape"].to_numpy(), rel=0.15
    )


def test_arrival_counts_match_sql_with_empty_bins(con) -> None:
    trace_id = get_trace(con, "azure-code").id
    frame = arrival_counts(con, trace_id, 60.0)
    expected = con.execute(
        """WITH b AS (SELECT min(arrival_s) AS t0, max(arrival_s) AS t1 FROM requests
                      WHERE trace_id = $1),
               c AS (SELECT floor((arrival_s - t0) / 60) AS k, count(*) AS n
                     FROM requests, b WHERE trace_id = $1 GROUP BY k)
           SELECT coalesce(n, 0) FROM b, range(CAST(floor((t1 - t0) / 60) AS BIGINT)) r(k)
           LEFT JOIN c ON c.k = r.k ORDER BY r.k""",
        [trace_id],
    ).fetchall()
    assert frame["requests"].to_list() == [n for (n,) in expected]
    assert frame["rate_rps"].to_numpy() == pytest.approx(frame["requests"].to_numpy() / 60.0)


# --- token lengths ----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["code", "conv"])
def test_token_quantiles_and_lognormal_fit_match_raw_file(con, which: str) -> None:
    path = shared_path(*AZURE, f"AzureLLMInferenceTrace_{which}.csv")
    raw = duckdb.connect()
    result = analyze_trace(con, f"azure-{which}")
    for col, key in (("ContextTokens", "input_tokens"), ("GeneratedTokens", "output_tokens")):
        qs, top = raw.execute(
            f"SELECT quantile_disc({col}, [0.5, 0.9, 0.99]), max({col}) FROM '{path}'"
        ).fetchall()[0]
        got = result[key]
        assert [got["p50"], got["p90"], got["p99"], got["max"]] == [*qs, top]
        x = raw.execute(f"SELECT {col} FROM '{path}' WHERE {col} > 0").fetchnumpy()[col]
        x = x.astype(float)
        (f,) = result["fits"][key]
        sigma, _, scale = stats.lognorm.fit(x, floc=0)
        assert (f["params"]["mu"], f["params"]["sigma"]) == pytest.approx(
            (np.log(scale), sigma), rel=1e-4
        )
        ks = stats.kstest(x, stats.lognorm.cdf, args=(sigma, 0, scale)).statistic
        assert f["ks"] == pytest.approx(ks, abs=1e-6)
    raw.close()


def test_io_relation_matches_raw_bins(con) -> None:
    path = shared_path(*AZURE, "AzureLLMInferenceTrace_conv.csv")
    expected = (
        duckdb.connect()
        .execute(
            f"""SELECT floor(log2(greatest(ContextTokens, 1))) AS b, count(*),
                   quantile_disc(GeneratedTokens, 0.5), quantile_disc(GeneratedTokens, 0.9)
            FROM '{path}' GROUP BY b ORDER BY b"""
        )
        .fetchall()
    )
    got = analyze_trace(con, "azure-conv")["io_relation"]
    assert [(r["requests"], r["output_p50"], r["output_p90"]) for r in got] == [
        (n, p50, p90) for _, n, p50, p90 in expected
    ]


def test_prefix_reuse_matches_python_scan(con) -> None:
    seen: set[int] = set()
    total = reused = 0
    path = shared_path("traces", "mooncake_fast25", "synthetic_trace.jsonl")
    lines = sorted(
        (json.loads(line) for line in path.read_text().splitlines() if line.strip()),
        key=lambda r: r["timestamp"],
    )
    for record in lines:
        for h in record["hash_ids"]:
            total += 1
            reused += h in seen
            seen.add(h)
    got = analyze_trace(con, "mooncake")["prefix_reuse"]
    assert (got["blocks"], got["reused_blocks"]) == (total, reused)
    assert got["reuse_share"] == pytest.approx(reused / total, rel=1e-5)


# --- rate windows (ServeGen) ------------------------------------------------------------------


def test_servegen_rate_windows_match_raw_files(db_path: Path) -> None:
    folder = shared_path("traces", "alibaba_servegen", "data", "language", "m-large")
    con = open_store(db_path)
    ingest_path(con, folder, name="m-large")
    result = analyze_trace(con, "m-large", sections=["rates"])
    con.close()
    raw = (
        duckdb.connect()
        .execute(
            f"""SELECT avg(r), max(r), count(*) FROM (
                SELECT column0 AS w, sum(column1) AS r
                FROM read_csv('{folder}/**/chunk-*-trace.csv', header=false)
                GROUP BY w)"""
        )
        .fetchall()[0]
    )
    cv = (
        duckdb.connect()
        .execute(
            f"""SELECT quantile_cont(column2, 0.5) FILTER (column1 > 0),
                   sum(column2 * column1) FILTER (column1 > 0) / sum(column1) FILTER (column1 > 0)
            FROM read_csv('{folder}/**/chunk-*-trace.csv', header=false)"""
        )
        .fetchall()[0]
    )
    summary = result["rate_windows"]
    assert summary["series"] == 162
    assert (summary["rate_per_window"]["mean"], summary["rate_per_window"]["max"]) == pytest.approx(
        raw[:2], rel=1e-5
    )
    assert (summary["cv"]["p50"], summary["cv"]["weighted_mean"]) == pytest.approx(cv, rel=1e-5)
    assert result["interarrival_cv"] == pytest.approx(cv[1], rel=1e-5)


# --- keep-alive counterfactual ----------------------------------------------------------------


def keepalive_reference(frame: pl.DataFrame, keepalives: list[float]) -> list[tuple]:
    """Cold starts, idle seconds and avoidable cold starts by polars, per the keepalive doc."""
    ends = frame.sort("series", "t").with_columns(
        (pl.col("t") + pl.col("d").fill_null(0)).alias("end")
    )
    ends = ends.with_columns(pl.col("end").cum_max().shift(1).over("series").alias("busy"))
    gaps = (ends["t"] - ends["busy"]).clip(lower_bound=0).to_numpy()
    trace_end = ends["end"].max()
    tails = (trace_end - ends.group_by("series").agg(pl.col("end").max())["end"]).to_numpy()
    first = np.isnan(gaps)
    out = []
    for k in keepalives:
        cold = int((first | (gaps > k)).sum())
        idle = np.minimum(gaps[~first], k).sum() + np.minimum(tails, k).sum()
        avoidable = int(((gaps > k) & (gaps <= 2 * k)).sum())
        out.append((cold, idle, avoidable))
    return out


def test_gentd26_keepalive_matches_polars(con) -> None:
    raw = pl.read_csv(shared_path(*GENTD, "lora_request_trace.csv"), try_parse_dates=True)
    frame = raw.select(
        pl.col("checkpoint_model_version_id").alias("series"),
        (pl.col("gmt_create").dt.epoch("ms") / 1000).alias("t"),
        pl.col("exec_time_seconds").alias("d"),
    )
    keepalives = [60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0]
    result = analyze_trace(con, "lora", load_trace="basemodel")
    got = result["keepalive"]
    assert [r["keepalive_s"] for r in got] == keepalives
    for row, (cold, idle, avoidable) in zip(
        got, keepalive_reference(frame, keepalives), strict=True
    ):
        assert row["cold_starts"] == cold
        assert row["idle_instance_s"] == pytest.approx(idle, rel=1e-5)
        assert row["avoidable_cold_starts"] == avoidable
        assert row["cold_start_s"] == pytest.approx(cold * result["keepalive_load_s"], rel=1e-5)
    colds = [r["cold_starts"] for r in got]
    assert colds == sorted(colds, reverse=True)
    assert result["keepalive_load_s"] == pytest.approx(22.718, abs=0.01)


def test_azure_functions_keepalive_matches_polars(con) -> None:
    raw = pl.read_csv(shared_path("traces", "azure_functions_2021_sample", "Azure2021_200.csv"))
    frame = raw.select(
        (pl.col("app") + "/" + pl.col("func")).alias("series"),
        (pl.col("end_timestamp") - pl.col("duration")).alias("t"),
        pl.col("duration").alias("d"),
    )
    curve = keepalive_curve(con, get_trace(con, "functions").id, (60.0, 600.0))
    expected = keepalive_reference(frame, [60.0, 600.0])
    assert curve["cold_starts"].to_list() == [c for c, _, _ in expected]
    assert curve["idle_instance_s"].to_numpy() == pytest.approx([i for _, i, _ in expected])


# --- cold starts ------------------------------------------------------------------------------


def test_gentd26_cold_starts_match_raw_tar(con) -> None:
    with tarfile.open(shared_path(*GENTD, "basemodel_update_latency_anon.tar.gz")) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".csv"))
        raw = pl.read_csv(tar.extractfile(member).read())
    seconds = raw["value"].to_numpy() / 1000.0
    result = analyze_trace(con, "basemodel")
    cold = result["cold_starts"]
    assert cold["count"] == seconds.size
    got = cold["total_s"]
    assert (got["p50"], got["p99"], got["max"]) == pytest.approx(
        (np.median(seconds), np.quantile(seconds, 0.99), seconds.max()), rel=1e-5
    )
    assert cold["components"]["model_load"]["share"] == pytest.approx(1.0)
    positive = seconds[seconds > 0]
    lognormal, weibull = result["fits"]["cold_start_s"]
    sigma, _, scale = stats.lognorm.fit(positive, floc=0)
    assert lognormal["params"]["sigma"] == pytest.approx(sigma, rel=1e-4)
    shape, _, scale = stats.weibull_min.fit(positive, floc=0)
    assert (weibull["params"]["shape"], weibull["params"]["scale"]) == pytest.approx(
        (shape, scale), rel=1e-3
    )


COLD_FIXTURE = """
INSERT INTO traces (id, name, format, kind, source, content_hash, rows)
VALUES (901, 'cold-fixture', 'fixture', 'cold_starts', 'test', 'a', 6),
       (902, 'pods-fixture', 'fixture', 'requests', 'test', 'b', 7);
INSERT INTO cold_starts (trace_id, time_s, series, pool, cluster, total_s, pod_allocation_s,
                         deploy_code_s, deploy_dependency_s, scheduling_s, cpu_millicores,
                         memory_mb, pod_id) VALUES
 (901, 0, 'f1', 'pool24', 'c1', 2.0, 1.0, 0.5, 0.25, 0.25, 600, 512, 'p1'),
 (901, 10, 'f1', 'pool24', 'c1', 4.0, 1.0, 1.0, 1.0, 1.0, 600, 512, 'p2'),
 (901, 30, 'f2', 'pool22', 'c1', 8.0, 2.0, 2.0, 2.0, 2.0, 300, 128, 'p3'),
 (901, 70, 'f2', 'pool22', 'c2', 1.0, 0.5, 0.5, 0.0, 0.0, 300, 128, 'p4'),
 (901, 80, 'f3', 'pool24', 'c2', 3.0, 0.0, 1.0, 1.0, 1.0, 600, 512, NULL),
 (901, 95, 'f3', 'pool24', 'c2', 6.0, 3.0, 1.0, 1.0, 1.0, 600, 512, NULL);
INSERT INTO requests (trace_id, arrival_s, series, duration_s, pod_id) VALUES
 (902, 2, 'f1', 1, 'p1'), (902, 20, 'f1', 2, 'p1'),
 (902, 14, 'f1', 1, 'p2'),
 (902, 38, 'f2', 1, 'p3'), (902, 100, 'f2', 3, 'p3'),
 (902, 71, 'f2', 0.5, 'p4'), (902, 72, 'f2', 0.5, 'p4');
"""


def test_cold_start_components_pools_and_pod_utility(db_path: Path) -> None:
    con = open_store(db_path)
    con.execute(COLD_FIXTURE)
    result = analyze_trace(con, "cold-fixture")
    pods = analyze_trace(con, "pods-fixture", sections=["coldstarts"])["cold_starts"]
    con.close()
    cold = result["cold_starts"]
    total = np.array([2, 4, 8, 1, 3, 6.0])
    parts = {
        "pod_allocation": [1, 1, 2, 0.5, 0, 3],
        "deploy_code": [0.5, 1, 2, 0.5, 1, 1],
        "deploy_dependency": [0.25, 1, 2, 0, 1, 1],
        "scheduling": [0.25, 1, 2, 0, 1, 1],
    }
    for name, values in parts.items():
        assert cold["components"][name]["share"] == pytest.approx(sum(values) / total.sum())
    assert cold["components"]["other"]["share"] == pytest.approx(0.0, abs=1e-9)
    assert cold["total_s"]["p50"] == pytest.approx(np.median(total))
    pools = {g["key"]: g for g in cold["by"]["pool"]["top"]}
    assert pools["pool24"]["count"] == 4 and pools["pool22"]["count"] == 2
    assert pools["pool24"]["p50"] == pytest.approx(np.median([2, 4, 3, 6.0]))
    assert (pools["pool22"]["cpu_millicores"], pools["pool22"]["memory_mb"]) == (300, 128)
    assert cold["by"]["cluster"]["groups"] == 2
    # pod utility = (last request end − first request arrival) / cold-start seconds
    ratios = np.array([(22 - 2) / 2.0, (15 - 14) / 4.0, (103 - 38) / 8.0, (72.5 - 71) / 1.0])
    for side in (cold["pod_utility"], pods["pod_utility"]):
        assert side["pods"] == 4
        assert side["p50"] == pytest.approx(np.median(ratios))
        assert side["share_below_1"] == pytest.approx((ratios < 1).mean())
    assert pods["cold_starts_per_1k_requests"] == pytest.approx(1000 * 4 / 7)
    gaps = np.diff([0, 10, 30, 70, 80, 95.0])
    (interval,) = result["fits"]["cold_start_interval_s"]
    shape, _, scale = stats.weibull_min.fit(gaps, floc=0)
    assert interval["params"]["shape"] == pytest.approx(shape, rel=1e-3)


# --- CLI and bad input ------------------------------------------------------------------------


def test_cli_json_has_the_contract_keys(store: Path) -> None:
    result = invoke("analyze", "azure-code", "--db", store, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("requests", "span_s", "interarrival_cv", "input_tokens", "output_tokens"):
        assert key in data
    assert set(data["rate_per_s"]) >= {"mean", "p50", "p99", "max"}
    assert set(data["input_tokens"]) >= {"p50", "p90", "p99", "max"}
    assert {f["dist"] for f in data["fits"]["interarrival"]} == {"gamma", "weibull"}
    assert all({"dist", "params", "ks"} <= set(f) for f in data["fits"]["interarrival"])
    keep = invoke("analyze", "functions", "--db", store, "--json", "--keepalive", "60,600")
    assert keep.exit_code == 0, keep.stderr
    rows = json.loads(keep.stdout)["keepalive"]
    assert [r["keepalive_s"] for r in rows] == [60, 600]
    assert {"cold_starts", "idle_instance_s"} <= set(rows[0])


def test_cli_human_table(store: Path) -> None:
    result = invoke("analyze", "lora", "--db", store, "--load-from", "basemodel")
    assert result.exit_code == 0, result.stderr
    assert "keep-alive" in result.stdout and "inter-arrival CV" in result.stdout


def _one_line_error(result, fragment: str) -> None:
    """Exit 1 with one line on stderr naming the problem."""
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert fragment in result.stderr


def test_bad_input(store: Path, db_path: Path, tmp_path: Path) -> None:
    _one_line_error(invoke("analyze", "nope", "--db", store), "unknown trace 'nope'")
    _one_line_error(
        invoke("analyze", "functions", "--db", store, "--only", "lengths"), "no token columns"
    )
    _one_line_error(invoke("analyze", "functions", "--db", store, "--only", "bogus"), "bogus")
    _one_line_error(
        invoke("analyze", "functions", "--db", store, "--keepalive", "1m"), "--keepalive"
    )
    _one_line_error(
        invoke("analyze", "azure-code", "--db", store, "--only", "coldstarts"), "no pod ids"
    )
    one = tmp_path / "one.csv"
    one.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n")
    con = open_store(db_path)
    ingest_path(con, one, name="one")
    con.execute(
        "INSERT INTO traces (name, format, kind, source, content_hash) "
        "VALUES ('empty-cold', 'fixture', 'cold_starts', 'test', 'x')"
    )
    con.close()
    _one_line_error(invoke("analyze", "one", "--db", db_path), "1 request(s)")
    _one_line_error(invoke("analyze", "empty-cold", "--db", db_path), "no cold starts")
