"""`forecast_trace`: quantile forecasts of requests per interval (and the token mix) per series."""

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np

from planner.errors import PlannerError
from planner.forecast.backtest import (
    SeriesTask,
    horizon_steps,
    rolling_origins,
    score_series,
    select_method,
)
from planner.forecast.methods import (
    AUTO_CANDIDATES,
    FALLBACK_METHOD,
    METHODS,
    QUANTILE_NAMES,
    quantile_forecast,
)
from planner.forecast.pool import parallel_map
from planner.forecast.series import format_duration, read_series
from planner.forecast.tokens import token_mix

AUTO = "auto"
SELECTION_ORIGINS = 2


@dataclass(frozen=True)
class ForecastTask:
    """One series to forecast: its history, the daily season, the horizon and the method."""

    id: str
    y: np.ndarray
    day: int
    h: int
    method: str


def forecast_series(task: ForecastTask) -> dict:
    """Method used, quantile matrix (levels × h) and notes for one series."""
    y, day, h = task.y, task.day, task.h
    n, notes = len(y), []
    if not np.nansum(np.abs(y)) > 0:
        notes.append(f"{task.id}: all-zero history; forecast is zero with zero-width intervals")
        return {
            "id": task.id,
            "method": "zero",
            "q": np.zeros((len(QUANTILE_NAMES), h)),
            "notes": notes,
        }
    name = task.method
    if name == AUTO:
        name, note = _auto(task)
        notes.extend([note] if note else [])
    if not METHODS[name].available(n, day):
        need = METHODS[name].min_history(day) + day
        notes.append(
            f"{task.id}: {name} needs {need} intervals (history has {n}, {n / day:.2f} days; "
            f"seasonal methods need two daily seasons plus one day to calibrate); "
            f"fell back to {FALLBACK_METHOD} ({METHODS[FALLBACK_METHOD].description})"
        )
        name = FALLBACK_METHOD
    q = quantile_forecast(METHODS[name], y, h, day)
    return {"id": task.id, "method": name, "q": q, "notes": notes}


def _auto(task: ForecastTask) -> tuple[str, str | None]:
    """The method with the lowest mean MASE over the last day-apart origins of the history."""
    origins = rolling_origins(len(task.y), task.day, task.h, SELECTION_ORIGINS)
    origins = [o for o in origins if o >= 2 * task.day]
    if not origins:
        return AUTO_CANDIDATES[0], None
    scored = score_series(
        SeriesTask(task.id, task.y, task.day, task.h, tuple(origins), AUTO_CANDIDATES)
    )
    if "skipped" in scored:
        return AUTO_CANDIDATES[0], f"{task.id}: auto: {scored['skipped']} before the backtest"
    picked = select_method(scored["scores"], list(range(len(origins))))
    recs = scored["scores"][picked]
    value = np.mean([r["mase"] for r in recs]) if all(recs) else float("nan")
    return picked, (
        f"{task.id}: auto picked {picked} (MASE {value:.3f} over {len(origins)} backtest origin(s))"
    )


def forecast_trace(
    con: duckdb.DuckDBPyConnection,
    trace_name: str,
    freq: str = "10min",
    horizon: str = "1d",
    method: str = AUTO,
    series: str | Sequence[str] | None = None,
    total: bool = False,
    workers: int | None = None,
    end: float | None = None,
) -> dict:
    """Quantile forecasts of requests per interval for each selected series, JSON-ready.

    With `end` (s from trace start) the forecast starts there and sees only the intervals that
    end by it, auto-selection and token mix included; it is rounded down to an interval boundary.
    """
    if method != AUTO and method not in METHODS:
        raise PlannerError(f"unknown method {method!r}; methods: auto, {', '.join(METHODS)}")
    data = read_series(con, trace_name, freq, series, total)
    if end is not None:
        data = data.before(end)
    day, n = data.steps_per_day, data.requests.shape[1]
    h = horizon_steps(horizon, data.freq_s)
    tasks = [ForecastTask(sid, data.requests[i], day, h, method) for i, sid in enumerate(data.ids)]
    results = parallel_map(forecast_series, tasks, workers)
    tokens = token_mix(con, data, h)
    times = (n + np.arange(h)) * data.freq_s
    out_series, notes = [], []
    for res in results:
        q = np.round(res["q"], 3)
        points = [
            {"t": float(t), **{k: float(v) for k, v in zip(QUANTILE_NAMES, q[:, i], strict=True)}}
            for i, t in enumerate(times)
        ]
        out_series.append(
            {
                "id": res["id"],
                "method": res["method"],
                "freq": format_duration(data.freq_s),
                "points": points,
                "tokens": tokens.get(res["id"]),
            }
        )
        notes.extend(res["notes"])
    if end is not None and end != n * data.freq_s:
        notes.append(f"end {end:g} s rounded down to the interval boundary {n * data.freq_s} s")
    missing = [s["id"] for s in out_series if s["tokens"] is None]
    if missing:
        notes.append(f"no token lengths in the store for {len(missing)} series: tokens is null")
    if data.gaps:
        notes.append(f"{data.gaps} collection-gap interval(s) in the history were filled")
    return {
        "trace": data.trace,
        "freq": format_duration(data.freq_s),
        "horizon": format_duration(h * data.freq_s),
        "unit": f"requests per {format_duration(data.freq_s)} interval",
        "origin_s": float(n * data.freq_s),
        "quantiles": list(QUANTILE_NAMES),
        "series": out_series,
        "notes": notes,
    }


def forecast_rows(result: dict) -> list[list]:
    """One summary row per series: method, horizon total at p50, peaks, median token lengths."""
    rows = []
    for s in result["series"]:
        pts = s["points"]
        tok = s["tokens"] or {}
        rows.append(
            [
                s["id"],
                s["method"],
                sum(p["p50"] for p in pts),
                max(p["p50"] for p in pts),
                max(p["p90"] for p in pts),
                max(p["p99"] for p in pts),
                tok["input"][0]["p50"] if tok else None,
                tok["output"][0]["p50"] if tok else None,
            ]
        )
    return rows


FORECAST_COLUMNS = [
    "series",
    "method",
    "p50 total",
    "peak p50",
    "peak p90",
    "peak p99",
    "in tok p50",
    "out tok p50",
]
