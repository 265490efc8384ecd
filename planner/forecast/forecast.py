"""`forecast_trace`: quantile forecasts of requests per interval (and the token mix) per series."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
    MethodUnavailable,
    quantile_forecast,
)
from planner.forecast.pool import parallel_map
from planner.forecast.series import (
    DAY_S,
    TraceSeries,
    describe_span,
    format_duration,
    parse_duration,
    parse_freq,
    read_series,
)
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
    """Method used, quantile matrix (levels × h) and notes for one series.

    With `auto`, a method that cannot fit this history (too short, or its fit fails) falls back
    to `level` with a note. A method the user named that cannot fit returns `error` (why) in
    place of the quantiles: `forecast_trace` turns it into a PlannerError.
    """
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
        need = METHODS[name].min_intervals(day)
        notes.append(
            f"{task.id}: {name} needs {need} intervals (history has {n}, {n / day:.2f} days; "
            f"seasonal methods need two daily seasons plus one day to calibrate); "
            f"fell back to {FALLBACK_METHOD} ({METHODS[FALLBACK_METHOD].description})"
        )
        name = FALLBACK_METHOD
    try:
        q = quantile_forecast(METHODS[name], y, h, day)
    except MethodUnavailable as exc:
        if task.method != AUTO or name == FALLBACK_METHOD:
            return {"id": task.id, "method": name, "error": str(exc), "notes": notes}
        notes.append(f"{task.id}: {exc}; fell back to {FALLBACK_METHOD}")
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


@dataclass(frozen=True)
class SeriesForecast:
    """One series' forecast: requests per interval at each quantile level, and its token mix."""

    id: str
    method: str
    quantiles: dict[str, np.ndarray]
    tokens: dict | None


@dataclass(frozen=True)
class TraceForecast:
    """The forecasts of a trace's series from `origin_s` for `steps` intervals of `freq_s`."""

    trace: str
    freq_s: int
    steps: int
    origin_s: float
    series: list[SeriesForecast]
    notes: list[str]

    def to_json(self) -> dict:
        """The forecast JSON: per series, one point per interval with every quantile."""
        freq = format_duration(self.freq_s)
        times = self.origin_s + np.arange(self.steps) * self.freq_s
        return {
            "trace": self.trace,
            "freq": freq,
            "horizon": format_duration(self.steps * self.freq_s),
            "unit": f"requests per {freq} interval",
            "origin_s": self.origin_s,
            "quantiles": list(QUANTILE_NAMES),
            "series": [
                {
                    "id": f.id,
                    "method": f.method,
                    "freq": freq,
                    "points": [
                        {"t": float(t), **{k: float(f.quantiles[k][i]) for k in QUANTILE_NAMES}}
                        for i, t in enumerate(times)
                    ],
                    "tokens": f.tokens,
                }
                for f in self.series
            ],
            "notes": self.notes,
        }


def forecast_model(
    con: duckdb.DuckDBPyConnection,
    trace_name: str,
    freq: str = "10min",
    horizon: str = "1d",
    method: str = AUTO,
    series: str | Sequence[str] | None = None,
    total: bool = False,
    workers: int | None = None,
    end: float | None = None,
    freq_option: str = "--freq",
    progress: Callable[[str], None] | None = None,
) -> "TraceForecast":
    """Quantile forecasts of requests per interval for each selected series, as arrays
    (`progress` hears "forecasting series k/n").

    With `end` (s from trace start) the forecast starts there and sees only the intervals that
    end by it, auto-selection and token mix included; it is rounded down to an interval boundary.
    `freq_option` is the flag `freq` came from, named in errors (`--interval` for plans).
    A history too short for the method (`level` under `auto`, needing two intervals), or a
    method the user named that cannot fit it, is a PlannerError saying what to change.
    """
    if method != AUTO and method not in METHODS:
        raise PlannerError(f"unknown method {method!r}; methods: auto, {', '.join(METHODS)}")
    parse_freq(freq, freq_option)
    data = read_series(con, trace_name, freq, series, total, freq_option=freq_option)
    if end is not None:
        data = data.before(end)
    day, n = data.steps_per_day, data.requests.shape[1]
    h = horizon_steps(horizon, data.freq_s)
    needed = FALLBACK_METHOD if method == AUTO else method
    if not METHODS[needed].available(n, day):
        raise PlannerError(_too_short(data, needed, method, end, freq_option))
    tasks = [ForecastTask(sid, data.requests[i], day, h, method) for i, sid in enumerate(data.ids)]
    results = parallel_map(forecast_series, tasks, workers, progress, "forecasting series")
    _check_fitted(results, method, data.trace)
    tokens = token_mix(con, data, h)
    series_out = [
        SeriesForecast(
            res["id"],
            res["method"],
            dict(zip(QUANTILE_NAMES, np.round(res["q"], 3), strict=True)),
            tokens.get(res["id"]),
        )
        for res in results
    ]
    notes = [note for res in results for note in res["notes"]]
    if end is not None and end != n * data.freq_s:
        notes.append(f"end {end:g} s rounded down to the interval boundary {n * data.freq_s} s")
    missing = [f.id for f in series_out if f.tokens is None]
    if missing:
        notes.append(f"no token lengths in the store for {len(missing)} series: tokens is null")
    if data.gaps:
        notes.append(f"{data.gaps} collection-gap interval(s) in the history were filled")
    return TraceForecast(data.trace, data.freq_s, h, float(n * data.freq_s), series_out, notes)


def forecast_trace(*args: Any, **kwargs: Any) -> dict:
    """`forecast_model` (same arguments) as JSON-ready data: what `planner forecast` prints."""
    return forecast_model(*args, **kwargs).to_json()


def _check_fitted(results: list[dict], method: str, trace: str) -> None:
    """A method the user named that could not fit a series is a PlannerError naming it."""
    failed = next((r for r in results if "error" in r), None)
    if failed is not None:
        raise PlannerError(
            f"--method {method}: cannot forecast series {failed['id']!r} of trace "
            f"{trace!r} ({failed['error']}); use --method auto, which falls back to "
            f"{FALLBACK_METHOD} where a method cannot fit"
        )


def _too_short(
    data: TraceSeries, name: str, method: str, end: float | None, freq_option: str
) -> str:
    """Why the history of `data` is too short for method `name`, and what to change."""
    n, freq_s, day = data.requests.shape[1], data.freq_s, data.steps_per_day
    fit = METHODS[name]
    need = fit.min_intervals(day)
    where = f" before --end {end:g}" if end is not None else ""
    have = (
        f"trace {data.trace!r} has {n} interval{'s' * (n != 1)} of {format_duration(freq_s)} "
        f"({describe_span(n * freq_s)}) of history{where}"
    )
    later = ["a later --end"] if end is not None else []
    if fit.min_days == 0:
        finer = _finer_freq(data, need)
        fix = [f"a finer {freq_option}, like {finer}"] if finer else []
        prefix = f"--method {name}: " if method != AUTO else ""
        return f"{prefix}{have}; a forecast needs at least {need}; use " + ", or ".join(
            [*fix, *later] or ["a longer trace"]
        )
    return (
        f"--method {name}: {have}; {name} needs {need} ({need * freq_s / DAY_S:.2f} days: "
        f"{fit.min_days:g} to fit, one more to calibrate its quantiles on); use --method auto, "
        f"which falls back to {FALLBACK_METHOD} on short histories, or "
        + " or ".join([*later, "a longer trace"])
    )


FINER_FREQS = ("1h", "30min", "15min", "10min", "5min", "1min", "30s", "10s", "1s")


def _finer_freq(data: TraceSeries, need: int) -> str | None:
    """The coarsest usual interval finer than the trace's that gives `need` intervals of history
    (and that the trace's native windows allow), if any."""
    span = data.requests.shape[1] * data.freq_s
    step = data.resolution_s or 1.0
    for freq in FINER_FREQS:
        s = parse_duration(freq, "--freq")
        if step <= s < data.freq_s and s % step == 0 and span // s >= need:
            return freq
    return None


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
