"""Forecast backtest of every real ServeGen m-large and m-mid client vs seasonal naive alone.

Both folders (real data, 14 days of 10-minute windows: 162 + 109 clients) are ingested into a
temporary store; then, in the same run and on the same process pool, we time:

- reference: `backtest_trace` with seasonal naive (one-day season) only: the same series,
  origins (2 scored + 1 for selection, one day apart, horizon one day) and conformal
  calibration, with the cheapest possible method;
- ours: `backtest_trace` with every method (snaive_day, snaive_week, ets, stl_ar, profile,
  combo) and the nested auto-selection.

series_per_s counts series with a non-zero history (all-zero clients are skipped in both).
fit_seconds_max is the slowest single fit (with its 7 calibration re-fits) of any method on
any series: the "under one second per series of 2,016 points" budget.
"""

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.forecast import backtest_trace  # noqa: E402
from planner.forecast.pool import default_workers  # noqa: E402
from planner.ingest import ingest_path  # noqa: E402
from planner.store import open_store  # noqa: E402

SERVEGEN = ROOT.parent / "shared" / "data" / "traces" / "alibaba_servegen" / "data" / "language"
TRACES = ("m-large", "m-mid")


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
            fit_max = max(m["fit_seconds_max"] for m in ours["methods"].values())
            summary[name] = (ours["selected"], fit_max, ref["series"])
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
    for name, (sel, fit_max, _) in summary.items():
        result[f"{name}_selected_rel_mase"] = round(sel["rel_mase_median"], 3)
        result[f"{name}_selected_coverage_80"] = round(sel["coverage_80"], 3)
        result[f"{name}_selected_coverage_95"] = round(sel["coverage_95"], 3)
        result[f"{name}_fit_seconds_max"] = round(fit_max, 3)
    result["target"] = "every fit (with calibration) < 1 s per series of 2,016 points"
    return result


if __name__ == "__main__":
    print(run())
