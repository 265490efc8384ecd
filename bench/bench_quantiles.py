"""Quantile sharpness: our forecast's calibrated quantiles vs statsforecast's MSTL + AutoARIMA.

Real data: every scored client of ServeGen m-large and m-mid (14 days of 10-minute windows),
ingested into a temporary store. At `ORIGINS` daily origins (days 8-13, horizon one day), on
the series `planner backtest` scores (requests in at least half the intervals of the week
before the first origin), each model sees only the history before the origin:

- ours: the backtest's selected row (`--method auto`: `combo` unless another method was 30 %
  better at the earlier origins; one more origin before the scored ones feeds that choice)
  with the conformal quantiles of `quantile_forecast` (the scale of the errors chosen per
  series, planner/forecast/methods.py), and `combo` alone;
- reference: statsforecast's MSTL (daily season) with an AutoARIMA trend and its own
  prediction intervals (levels 80, 90, 95, 98 give p10/p90, p95, p2.5/p97.5, p99), clipped
  at 0, gaps filled as ours are.

Both are scored by the backtest's own code (`score_forecast`, `summarize`): pinball loss at
p10, p50, p90, p95, p99 scaled like MASE (median over series), and pooled 80 % / 95 % interval
coverage. Seconds are the wall time of each model's forecasts on the same process pool.
statsforecast is optional (`pip install -e ".[peers]"`); without it only ours is reported.
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_forecast import SERVEGEN, TRACES  # noqa: E402

from planner.forecast import read_series  # noqa: E402
from planner.forecast.backtest import (  # noqa: E402
    PINBALL_LEVELS,
    SELECTION_ORIGINS,
    SeriesTask,
    insample_scale,
    rolling_origins,
    score_forecast,
    score_series,
    summarize,
)
from planner.forecast.methods import (  # noqa: E402
    AUTO_CANDIDATES,
    BASELINE,
    DEFAULT_METHOD,
    LEVELS,
    fill_gaps,
)
from planner.forecast.pool import parallel_map  # noqa: E402
from planner.ingest import ingest_path  # noqa: E402
from planner.store import open_store  # noqa: E402

ORIGINS = 6
PEER = "mstl_autoarima"
PEER_LEVELS = {0.025: "lo-95", 0.1: "lo-80", 0.9: "hi-80", 0.95: "hi-90", 0.975: "hi-95"}
PEER_LEVELS[0.99] = "hi-98"


def peer_quantiles(history: np.ndarray, h: int, day: int) -> np.ndarray:
    """MSTL + AutoARIMA quantiles (len(LEVELS) x h) from its own prediction intervals."""
    from statsforecast.models import MSTL, AutoARIMA

    model = MSTL(season_length=[day], trend_forecaster=AutoARIMA())
    fc = model.forecast(y=fill_gaps(history, day), h=h, level=[80, 90, 95, 98])
    rows = [fc[PEER_LEVELS[t]] if t != 0.5 else fc["mean"] for t in LEVELS]
    return np.maximum.accumulate(np.vstack(rows).clip(0), axis=0)


def score_peer(task: SeriesTask) -> dict:
    """The reference's scores at every origin of one series (the backtest's record shape)."""
    recs = []
    for origin in task.origins:
        history, actual = task.y[:origin], task.y[origin : origin + task.h]
        started = time.perf_counter()
        q = peer_quantiles(history, len(actual), task.day)
        seconds = time.perf_counter() - started
        recs.append(score_forecast(actual, q, insample_scale(history, task.day), seconds))
    return {"id": task.id, "scores": {PEER: recs}}


def has_peer() -> bool:
    """Whether statsforecast is installed."""
    try:
        import statsforecast  # noqa: F401
    except ImportError:
        return False
    return True


def run_trace(con, trace: str, peer: bool) -> tuple[dict, float, float]:
    """Pooled scores on one trace (our methods, the selected row, the reference) and each
    side's seconds."""
    data = read_series(con, trace, "10min")
    day, n = data.steps_per_day, data.requests.shape[1]
    origins = tuple(rolling_origins(n, day, day, ORIGINS + SELECTION_ORIGINS))
    tasks = [
        SeriesTask(s, data.requests[i], day, day, origins, AUTO_CANDIDATES)
        for i, s in enumerate(data.ids)
    ]
    started = time.perf_counter()
    results = parallel_map(score_series, tasks, None, None, "series")
    ours_s = time.perf_counter() - started
    ours = summarize(results, list(origins), ORIGINS, day)
    scored = {e["id"] for e in ours["per_series"]}
    pooled = {**ours["methods"], "selected": ours["selected"]}
    peer_s = 0.0
    if peer:
        started = time.perf_counter()
        mine = [r for r in results if r["id"] in scored]
        theirs = parallel_map(score_peer, [t for t in tasks if t.id in scored], None, None, "")
        peer_s = time.perf_counter() - started
        both = [
            {**r, "scores": {BASELINE: r["scores"][BASELINE], **t["scores"]}}
            for r, t in zip(mine, theirs, strict=True)
        ]
        pooled[PEER] = summarize(both, list(origins), ORIGINS, day)["methods"][PEER]
    return pooled, ours_s, peer_s


def run() -> dict:
    """Score ours and the reference on both traces; figures per trace, ratios ours / reference."""
    peer = has_peer()
    keys = [f"pinball_p{round(t * 100)}" for t in PINBALL_LEVELS] + ["coverage_80", "coverage_95"]
    name = f"forecast quantiles vs MSTL + AutoARIMA: ServeGen m-large + m-mid, {ORIGINS} origins"
    result: dict = {"name": name}
    ours_s = peer_s = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        con = open_store(Path(tmp) / "bench.duckdb")
        for trace in TRACES:
            ingest_path(con, SERVEGEN / trace, name=trace)
            methods, s_ours, s_peer = run_trace(con, trace, peer)
            ours_s, peer_s = ours_s + s_ours, peer_s + s_peer
            result[f"{trace}_series"] = methods["selected"]["series"]
            for key in keys:
                result[f"{trace}_{key}"] = round(methods["selected"][key], 4)
                result[f"{trace}_{key}_{DEFAULT_METHOD}"] = round(methods[DEFAULT_METHOD][key], 4)
                if peer:
                    result[f"{trace}_{key}_reference"] = round(methods[PEER][key], 4)
        con.close()
    result["seconds"] = round(ours_s, 1)
    if peer:
        result["reference"] = "statsforecast MSTL (daily season) + AutoARIMA, its own intervals"
        result["reference_seconds"] = round(peer_s, 1)
        result["ratio"] = round(ours_s / peer_s, 3)
    else:
        result["reference"] = 'not run: statsforecast is not installed (pip install -e ".[peers]")'
    return result


if __name__ == "__main__":
    print(run())
