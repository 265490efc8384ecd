"""Scale: aggregating a partitioned Parquet trace of 10^6 to 10^8 rows with DuckDB and Spark.

The traces are SYNTHETIC: the real Azure 2023 requests replayed over one week as Hive
partitions (see synth.partitioned_parquet). Every command runs as a child process, so wall time
and peak RSS are measured alike; the reference is DuckDB scanning the same files (a count and
two sums) in the same run. analyze, forecast and plan then run on each aggregated trace: the
week has the same windows at every size, so analyze and forecast time should not grow with the
rows; plan's grows little: its replay of the held-back day simulates at most 200,000 of the
requests the aggregates imply (planner/scaling/holdout.py), though it still synthesizes them
all for the schedule and the autoscaler.

PLANNER_BENCH_SCALE_ROWS, PLANNER_BENCH_SPARK_ROWS and PLANNER_BENCH_PLAN_ROWS (comma-separated)
choose the sizes.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import _timed  # noqa: E402
from synth import partitioned_parquet  # noqa: E402

WORK = Path(__file__).resolve().parent / "work"
SIZES = os.environ.get("PLANNER_BENCH_SCALE_ROWS", "1000000,10000000,100000000")
SPARK_SIZES = os.environ.get("PLANNER_BENCH_SPARK_ROWS", "1000000,10000000,100000000")
# At 1e8 rows a week's held-back day is ~14M requests; with the replay capped plan takes
# 29 s and 1.7 GiB there (2026-12-03; uncapped it was stopped after 12 min at 7 GiB).
PLAN_SIZES = os.environ.get("PLANNER_BENCH_PLAN_ROWS", "1000000,10000000,100000000")
MAP = "ts=t,input=input_tokens,output=output_tokens,model=model"
PLAN = ["--model", "llama-3.1-8b", "--slo", "ttft_p99=1000ms", "--slo", "tpot_p99=50ms"]


def _planner(*args: str | Path) -> list[str]:
    """A planner CLI command line run by this interpreter."""
    return [sys.executable, "-m", "cli", *map(str, args)]


def _size(rows: int, spark: bool, plan: bool, tmp: Path) -> dict:
    """Aggregate one size with DuckDB (and Spark), then time analyze, forecast and plan."""
    lake = partitioned_parquet(WORK / f"lake_{rows}", rows)
    glob = str(lake / "*" / "*.parquet")
    scan = f"SELECT count(*), sum(input_tokens), sum(output_tokens) FROM read_parquet('{glob}')"
    ref_s, _ = _timed([sys.executable, "-c", f"import duckdb; duckdb.sql({scan!r}).fetchall()"])
    db = tmp / f"duck_{rows}.duckdb"
    ingest = ["ingest", lake, "--name", "lake", "--aggregate", "--map", MAP, "--json"]
    duck_s, duck_rss = _timed(_planner(*ingest, "--db", db))
    tag = f"{rows:.0e}".replace("+0", "")
    out = {
        f"reference_scan_seconds@{tag}": round(ref_s, 1),
        f"duckdb_seconds@{tag}": round(duck_s, 1),
        f"duckdb_rows_per_s@{tag}": round(rows / duck_s),
        f"duckdb_vs_scan@{tag}": round(duck_s / ref_s, 2),
        f"duckdb_peak_rss_mib@{tag}": round(duck_rss),
    }
    if spark:
        spark_db = tmp / f"spark_{rows}.duckdb"
        spark_s, _ = _timed(_planner(*ingest, "--engine", "spark", "--db", spark_db))
        out[f"spark_local_seconds@{tag}"] = round(spark_s, 1)
        out[f"spark_rows_per_s@{tag}"] = round(rows / spark_s)
        out[f"spark_vs_duckdb@{tag}"] = round(spark_s / duck_s, 2)
    steps = [
        ("analyze", ["analyze", "lake"]),
        ("forecast", ["forecast", "lake", "--horizon", "1d"]),
    ]
    if plan:
        steps.append(("plan", ["plan", "lake", *PLAN, "--accelerators", "h100"]))
    for step, args in steps:
        seconds, peak = _timed(_planner(*args, "--db", db, "--json"))
        out[f"{step}_seconds@{tag}"] = round(seconds, 1)
        out[f"{step}_peak_rss_mib@{tag}"] = round(peak)
    print(json.dumps(out), file=sys.stderr, flush=True)  # each size as it ends
    return out


def run() -> dict:
    """Every size, DuckDB then Spark local, then the downstream steps on the aggregates."""
    result: dict = {
        "name": "scale: aggregate a partitioned Parquet trace (SYNTHETIC replay of Azure 2023 "
        "over a week) with DuckDB and Spark local; analyze/forecast/plan on the aggregates",
        "reference": "DuckDB count + two sums over the same Parquet files (child process)",
    }
    spark_sizes = {int(s) for s in SPARK_SIZES.split(",") if s}
    plan_sizes = {int(s) for s in PLAN_SIZES.split(",") if s}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (int(s) for s in SIZES.split(",") if s):
            result.update(_size(rows, rows in spark_sizes, rows in plan_sizes, Path(tmp)))
    result["target"] = (
        "DuckDB peak RSS <= 2048 MiB at 1e8 rows; analyze/forecast seconds flat in rows"
    )
    return result
