"""Analytics at scale: `analyze_trace` on a 10M-row trace vs a plain DuckDB aggregate query.

The trace is SYNTHETIC: bench/synth.py replays the real Azure LLM 2023 code + conv requests
(28,185 requests, one hour) hour after hour with time offsets into a BurstGPT-format CSV of
10,000,000 rows; arrival pattern within each hour and all token counts are real, the repetition
is not. It is ingested into a temporary store, then, on the same connection and in the same
run, we time:

- reference: one plain DuckDB query of the headline figures a capacity engineer would write by
  hand (per-second request counts: mean / p50 / p99 / max; input and output token p50 / p90 /
  p99 / max);
- ours: `analyze_trace` with its default sections (rates at 1 s / 1 min / 10 min, inter-arrival
  CV and Gamma / Weibull fits overall and per 10-minute window, token quantiles and LogNormal
  fits with KS, the input→output relation).

Each side runs `REPEATS` times alternately; the best time of each is compared (target ≤ 3×).
The keep-alive counterfactual (not a default section for LLM API traces) is timed separately
and reported for information.
"""

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from synth import burstgpt_csv  # noqa: E402

from planner.analytics import analyze_trace  # noqa: E402
from planner.ingest import ingest_path  # noqa: E402
from planner.store import get_trace, open_store  # noqa: E402

ROWS = int(os.environ.get("PLANNER_BENCH_ROWS", 10_000_000))
REPEATS = 3
WORK = Path(__file__).resolve().parent / "work"

REFERENCE_SQL = """
SELECT (SELECT [avg(c), quantile_cont(c, 0.5), quantile_cont(c, 0.99), max(c)]
        FROM (SELECT count(*) AS c FROM requests WHERE trace_id = $1 GROUP BY floor(arrival_s))),
       quantile_cont(input_tokens, [0.5, 0.9, 0.99]), max(input_tokens),
       quantile_cont(output_tokens, [0.5, 0.9, 0.99]), max(output_tokens)
FROM requests WHERE trace_id = $1
"""


def _timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run() -> dict:
    """Time analyze_trace against the plain aggregate query on the same 10M-row trace."""
    csv = burstgpt_csv(WORK / f"burstgpt_{ROWS}.csv", ROWS)
    with tempfile.TemporaryDirectory() as tmp:
        con = open_store(Path(tmp) / "bench.duckdb")
        con.execute("SET enable_progress_bar = false").fetchall()
        ingest_path(con, csv, name="bench")
        trace_id = get_trace(con, "bench").id
        ref_s = ours_s = float("inf")
        for _ in range(REPEATS):
            ref_s = min(ref_s, _timed(lambda: con.execute(REFERENCE_SQL, [trace_id]).fetchall()))
            ours_s = min(ours_s, _timed(lambda: analyze_trace(con, "bench")))
        keepalive_s = _timed(lambda: analyze_trace(con, "bench", sections=["keepalive"]))
        result = analyze_trace(con, "bench")
        con.close()
    return {
        "name": "analyze 10M-row BurstGPT trace (synthetic replay of Azure 2023)",
        "rows": ROWS,
        "seconds": round(ours_s, 2),
        "reference": "one DuckDB query: per-second counts mean/p50/p99/max + token quantiles",
        "reference_seconds": round(ref_s, 2),
        "ratio": round(ours_s / ref_s, 2),
        "keepalive_seconds": round(keepalive_s, 2),
        "windows_fitted": result["fits"]["interarrival_windows"]["fitted"],
        "target": "ratio <= 3",
    }


if __name__ == "__main__":
    print(run())
