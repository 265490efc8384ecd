"""Forecast backtest of every real ServeGen m-large and m-mid client vs seasonal naive alone.

Both folders (real data, 14 days of 10-minute windows: 162 + 109 clients) are ingested into a
temporary store; then, in the same run and on the same process pool, we time:

- reference: `backtest_trace` with seasonal naive (one-day season) only: the same series,
  origins (2 scored + 1 for selection, one day apart, horizon one day) and conformal
  calibration, with the cheapest possible method;
- ours: `backtest_trace` with every method (snaive_day, snaive_week, ets, stl_ar, profile,
  combo) and the nested auto-selection.

series_per_s counts series with a non-zero history (all-zero clients are skipped in both).
Point paths are cached by history (the combo reuses its members' fits, and the calibration
re-fits of one origin are the forecasts of the earlier origins), so the backtest's own fit
times are marginal costs. The "under one second per series of 2,016 points" budget is timed
cold instead: every method's quantile forecast (its point fit and its 7 calibration re-fits)
on the busiest m-large client's whole 14 days, with the cache cleared before each.
"""

import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.forecast import backtest_trace, read_series  # noqa: E402
from planner.forecast.methods import (  # noqa: E402
    FALLBACK_METHOD,
    METHODS,
    clear_point_cache,
    quantile_forecast,
)
from planner.forecast.pool import default_workers  # noqa: E402
from planner.ingest import ingest_path  # noqa: E402
from planner.store import open_store  # noqa: E402

SERVEGEN = ROOT.parent / "shared" / "data" / "traces" / "alibaba_servegen" / "data" / "language"
TRACES = ("m-large", "m-mid")


def cold_fit_seconds(con: duckdb.DuckDBPyConnection, trace: str) -> dict[str, float]:
    """Seconds of one uncached quantile forecast per method on the trace's busiest series."""
    data = read_series(con, trace, "10min")
    y = data.requests[int(np.nanargmax(np.nansum(data.requests, axis=1)))]
    day = data.steps_per_day
    names = [name for name in METHODS if name != FALLBACK_METHOD]
    for name in names:  # warm-up: statsmodels is imported on a method's first call
        quantile_forecast(METHODS[name], y, 1, day)
    out = {}
    for name in names:
        method = METHODS[name]
        clear_point_cache()
        start = time.perf_counter()
        quantile_forecast(method, y, day, day)
        out[name] = round(time.perf_counter() - start, 3)
    return out


def run() -> dict:
    """Time the full backtest against the seasonal-naive-only backtest on the same series."""
    with tempfile.TemporaryDirectory() as tmp:
        con = open_store(Path(tmp) / "bench.duckdb")
        for name in TRACES:
            ingest_path(con, SERVEGEN / name, name=name)
        ours_s = ref_s = 0.0
        scored = series = 0
        summary = {}
        for name in TRACES:
            start = time.perf_counter()
            ref = backtest_trace(con, name, methods=["snaive_day"])
            ref_s += time.perf_counter() - start
            start = time.perf_counter()
            ours = backtest_trace(con, name)
            ours_s += time.perf_counter() - start
            skipped = ours["excluded"]["all-zero history"]
            series += len(ours["per_series"]) + sum(ours["excluded"].values()) - skipped
            scored += ours["series"]
            summary[name] = (ours["selected"], ref["series"])
        cold = cold_fit_seconds(con, TRACES[0])
        con.close()
    result = {
        "name": "forecast backtest: all ServeGen m-large + m-mid clients (real, 14 days, 10 min)",
        "series": series,
        "scored_series": scored,
        "workers": default_workers(),
        "seconds": round(ours_s, 2),
        "reference": "same backtest with seasonal naive (day) only",
        "reference_seconds": round(ref_s, 2),
        "ratio": round(ours_s / ref_s, 2),
        "series_per_s": round(series / ours_s, 2),
        "reference_series_per_s": round(series / ref_s, 2),
    }
    for name, (sel, _) in summary.items():
        result[f"{name}_selected_rel_mase"] = round(sel["rel_mase_median"], 3)
        result[f"{name}_selected_coverage_80"] = round(sel["coverage_80"], 3)
        result[f"{name}_selected_coverage_95"] = round(sel["coverage_95"], 3)
    result["cold_fit_seconds"] = cold
    result["cold_fit_seconds_max"] = max(cold.values())
    result["target"] = "every fit (with calibration) < 1 s per series of 2,016 points"
    return result


if __name__ == "__main__":
    print(run())
