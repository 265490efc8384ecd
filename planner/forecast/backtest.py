"""The forecast backtest: rolling origins, MASE, relative MASE, pinball loss, interval coverage.

Origins are one day apart and end `horizon` before the end of the trace; at each origin every
method sees only the history before it. Per series, MASE is the mean over origins of
MAE ÷ (in-sample one-day seasonal naive MAE); relative MASE divides it by the seasonal-naive-day
MASE on the same windows; pinball losses are scaled the same way. Where the history's days repeat
exactly (seasonal naive MAE 0, as in bench/synth.py's replayed trace) every scaled metric falls
back to the same non-seasonal scale (`insample_scale`), so scores stay finite; relative MASE is
then undefined when seasonal naive was exact on the scored windows and another method was not
(reported as null, with a note). Coverage is pooled over all held-back points of all scored
series. Scored series had requests in at least half the intervals of the week before the first
origin: on near-empty clients an interval of [0, 0] "covers" most points by construction, so
they are reported apart (`all_nonzero_series`).
Auto-selection is nested: the method used at an origin is the one with the lowest mean MASE
at the earlier origins (whose windows end before it), so the "selected" row never chooses
with hindsight; another method replaces the default (our `combo`) only when it is at least
30 % better there, since one or two days of scores are noisy (on the ServeGen tuning origins,
days 9-11, a 30 % margin beat 10 % and 20 %, and never switching).
`fit_seconds_max` is the slowest marginal fit: point paths are cached by history
(`point_path`), so a fit whose histories were already seen costs almost nothing.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np

from planner.errors import PlannerError
from planner.forecast.methods import (
    BASELINE,
    CALIBRATION_DAYS,
    DEFAULT_METHOD,
    FALLBACK_METHOD,
    LEVELS,
    MEDIAN,
    METHODS,
    MethodUnavailable,
    pinball_loss,
    quantile_forecast,
)
from planner.forecast.pool import parallel_map
from planner.forecast.series import (
    DAY_S,
    describe_span,
    format_duration,
    parse_duration,
    parse_freq,
    read_series,
)

PINBALL_LEVELS = (0.1, 0.5, 0.9, 0.95, 0.99)
EXACT_RTOL = 1e-9
INTERVALS = {"coverage_80": (0.1, 0.9), "coverage_95": (0.025, 0.975)}
SELECTION_ORIGINS = 1
SELECTION_MARGIN = 0.7
MIN_ACTIVE_SHARE = 0.5
ACTIVE_DAYS = 7


def insample_scale(history: np.ndarray, period: int) -> float:
    """The error scale of MASE and of the scaled pinball losses, from the history (gaps skipped).

    The first of these that is positive, i.e. above `EXACT_RTOL` × the mean absolute level (so
    float noise in an exactly repeating series counts as zero: rates stored per second and
    multiplied back by the window differ from day to day in the last bits):

    1. mean |y[t] - y[t - period]|, the in-sample one-day seasonal naive MAE: the MASE scale;
    2. mean |y[t] - y[t - 1]|, the one-step naive MAE: when every day repeats the one before
       exactly (or the history is not longer than a day);
    3. mean |y|, the mean absolute level: when the history is constant as well.

    NaN only when the history has no nonzero value (such series are not scored), so a scaled
    error is never a division by zero, inf or NaN for a series that has any demand.
    """
    x = np.asarray(history, dtype=np.float64)
    values = np.abs(x[~np.isnan(x)])
    level = float(values.mean()) if len(values) else 0.0
    for lag in (period, 1):
        if len(x) > lag:
            diff = np.abs(x[lag:] - x[:-lag])
            diff = diff[~np.isnan(diff)]
            if len(diff) and float(diff.mean()) > EXACT_RTOL * level:
                return float(diff.mean())
    return level if level > 0 else float("nan")


def scaled(error: float, scale: float) -> float:
    """`error` ÷ `scale`, 0 below `EXACT_RTOL` (float noise: an exact forecast); NaN where
    there is no positive scale (an all-zero history)."""
    if not (scale > 0 and np.isfinite(error)):
        return float("nan")
    ratio = float(error / scale)
    return ratio if ratio >= EXACT_RTOL else 0.0


def mase(actual: np.ndarray, point: np.ndarray, scale: float) -> float:
    """Mean absolute error of `point` over `actual`, divided by `scale`."""
    if len(actual) == 0:
        return float("nan")
    return scaled(float(np.mean(np.abs(actual - point))), scale)


def coverage(actual: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of `actual` inside [lo, hi]."""
    return float(np.mean((actual >= lo) & (actual <= hi)))


def rolling_origins(n: int, day: int, h: int, count: int) -> list[int]:
    """`count` origins one day apart, the last `h` before the end, oldest first (≥ 1 only)."""
    return [o for o in (n - h - i * day for i in range(count - 1, -1, -1)) if o >= 1]


def active_share(history: np.ndarray, day: int) -> float:
    """Share of the last `ACTIVE_DAYS` days' intervals with any requests (gaps skipped)."""
    recent = history[-ACTIVE_DAYS * day :]
    recent = recent[~np.isnan(recent)]
    return float(np.mean(recent > 0)) if len(recent) else 0.0


@dataclass(frozen=True)
class SeriesTask:
    """One series to score: its values and the origins, horizon and methods to try."""

    id: str
    y: np.ndarray
    day: int
    h: int
    origins: tuple[int, ...]
    methods: tuple[str, ...]
    calibration_days: int = CALIBRATION_DAYS


def score_series(task: SeriesTask) -> dict:
    """Every method's scores at every origin of one series (None where it cannot fit)."""
    y, day, h = task.y, task.day, task.h
    first = task.origins[0] if task.origins else len(y)
    out: dict = {"id": task.id, "active": active_share(y[:first], day), "scores": {}}
    if not np.nansum(np.abs(y[:first])) > 0:
        out["skipped"] = "all-zero history"
        return out
    for name in task.methods:
        method, per_origin = METHODS[name], []
        for origin in task.origins:
            history, actual = y[:origin], y[origin : origin + h]
            try:
                started = time.perf_counter()
                q = quantile_forecast(method, history, len(actual), day, task.calibration_days)
                seconds = time.perf_counter() - started
            except MethodUnavailable:
                per_origin.append(None)
                continue
            per_origin.append(score_forecast(actual, q, insample_scale(history, day), seconds))
        out["scores"][name] = per_origin
    return out


def score_forecast(actual: np.ndarray, q: np.ndarray, scale: float, seconds: float) -> dict:
    """Raw scores of one quantile forecast against the held-back values (gaps skipped).

    A value within `EXACT_RTOL` × scale of an interval bound counts as inside (float noise).
    """
    ok = ~np.isnan(actual)
    a, q = actual[ok], q[:, ok]
    tol = EXACT_RTOL * scale if scale > 0 else 0.0
    rec = {
        "n": int(ok.sum()),
        "scale": scale,
        "mase": mase(a, q[MEDIAN], scale),
        "pinball": [
            scaled(pinball_loss(a, q[LEVELS.index(t)], t), scale) if len(a) else float("nan")
            for t in PINBALL_LEVELS
        ],
        "seconds": seconds,
    }
    for key, (lo, hi) in INTERVALS.items():
        inside = (a >= q[LEVELS.index(lo)] - tol) & (a <= q[LEVELS.index(hi)] + tol)
        rec[key] = int(np.sum(inside))
    return rec


def select_method(scores: dict[str, list[dict | None]], upto: list[int]) -> str:
    """Lowest mean MASE at origins `upto`; the default unless beaten by `SELECTION_MARGIN`."""

    def mean_mase(name: str) -> float:
        recs = [scores[name][i] for i in upto]
        if not upto or any(r is None or not np.isfinite(r["mase"]) for r in recs):
            return np.inf
        return float(np.mean([r["mase"] for r in recs]))

    default = DEFAULT_METHOD if DEFAULT_METHOD in scores else BASELINE
    best = min(scores, key=mean_mase)
    if mean_mase(best) < SELECTION_MARGIN * mean_mase(default):
        return best
    return default


def summarize(
    results: list[dict],
    origins: list[int],
    n_eval: int,
    h: int,
    min_active: float = MIN_ACTIVE_SHARE,
) -> dict:
    """Per-method and selected-method summaries over the evaluated (last `n_eval`) origins."""
    eval_idx = list(range(len(origins) - n_eval, len(origins)))
    pooled: dict[str, list[tuple[dict, list[dict]]]] = {}
    per_series, excluded = [], {"all-zero history": 0, "inactive": 0, "unscorable": 0}
    exact_baseline = 0
    for res in results:
        if "skipped" in res:
            excluded[res["skipped"]] += 1
            continue
        scores = res["scores"]
        picks = [
            select_method(scores, [j for j in range(i) if origins[j] + h <= origins[i]])
            for i in eval_idx
        ]
        chosen = {name: [per[i] for i in eval_idx] for name, per in scores.items()}
        chosen["selected"] = [scores[p][i] for p, i in zip(picks, eval_idx, strict=True)]
        base = chosen.get(BASELINE)
        if base is None or any(r is None or not np.isfinite(r["mase"]) for r in base):
            excluded["unscorable"] += 1
            continue
        if res["active"] < min_active:
            excluded["inactive"] += 1
            continue
        entry = {"id": res["id"], "active": round(res["active"], 4), "picked": picks}
        exact_baseline += float(np.mean([r["mase"] for r in base])) == 0
        for name, recs in chosen.items():
            if any(r is None for r in recs):
                continue
            entry[name] = _series_metrics(recs, base)
            pooled.setdefault(name, []).append((entry[name], recs))
        per_series.append(entry)
    methods = {name: _pool(items) for name, items in pooled.items()}
    selected = methods.pop("selected", {})
    return {
        "methods": methods,
        "selected": selected,
        "per_series": per_series,
        "excluded": excluded,
        "exact_baseline": exact_baseline,
    }


def _series_metrics(recs: list[dict], base: list[dict]) -> dict:
    """One series' metrics for one method: means over origins.

    Relative MASE is 1 when both this method and seasonal naive were exact, and None (null in
    JSON, left out of the medians) when only seasonal naive was: a ratio to zero is undefined.
    """
    m = float(np.mean([r["mase"] for r in recs]))
    b = float(np.mean([r["mase"] for r in base]))
    rel = m / b if b > 0 else (1.0 if m == 0 else None)
    out = {"mase": m, "rel_mase": rel}
    for k, tau in enumerate(PINBALL_LEVELS):
        out[f"pinball_p{round(tau * 100)}"] = float(np.mean([r["pinball"][k] for r in recs]))
    return {k: v if v is not None and np.isfinite(v) else None for k, v in out.items()}


def _pool(items: list[tuple[dict, list[dict]]]) -> dict:
    """Medians over series of MASE, relative MASE and pinball; coverage pooled over points.

    A metric with no finite value over the series is None (null in JSON), never NaN.
    """
    metrics = [m for m, _ in items]
    flat = [r for _, recs in items for r in recs]
    n = sum(r["n"] for r in flat)
    out: dict = {"series": len(items), "points": n}
    for key in metrics[0]:
        finite = [m[key] for m in metrics if m[key] is not None]
        out[f"{key}_median" if "mase" in key else key] = (
            float(np.median(finite)) if finite else None
        )
    for key in INTERVALS:
        out[key] = sum(r[key] for r in flat) / n if n else None
    out["fit_seconds_max"] = max(r["seconds"] for r in flat)
    return out


def backtest_trace(
    con: duckdb.DuckDBPyConnection,
    trace_name: str,
    freq: str = "10min",
    origins: int = 2,
    horizon: str = "1d",
    series: str | Sequence[str] | None = None,
    total: bool = False,
    methods: Sequence[str] | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Rolling-origin backtest of every method on every selected series of a trace
    (`progress` hears "backtesting series k/n")."""
    if origins < 1:
        raise PlannerError(f"--origins {origins}: need at least 1")
    names = _method_names(methods)
    parse_freq(freq)
    data = read_series(con, trace_name, freq, series, total)
    day, n = data.steps_per_day, data.requests.shape[1]
    h = horizon_steps(horizon, data.freq_s)
    all_origins = rolling_origins(n, day, h, origins + SELECTION_ORIGINS)
    if len(all_origins) < origins + SELECTION_ORIGINS or all_origins[0] < 2 * day:
        raise PlannerError(_too_short(trace_name, n, data.freq_s, origins, h))
    tasks = [
        SeriesTask(sid, data.requests[i], day, h, tuple(all_origins), names)
        for i, sid in enumerate(data.ids)
    ]
    started = time.perf_counter()
    results = parallel_map(score_series, tasks, workers, progress, "backtesting series")
    summary = summarize(results, all_origins, origins, h)
    unfiltered = summarize(results, all_origins, origins, h, min_active=0.0)
    return {
        "trace": data.trace,
        "freq": format_duration(data.freq_s),
        "horizon": format_duration(h * data.freq_s),
        "unit": f"requests per {format_duration(data.freq_s)} interval",
        "origins_s": [o * data.freq_s for o in all_origins[-origins:]],
        "series": len(summary["per_series"]),
        "seconds": round(time.perf_counter() - started, 3),
        **summary,
        "all_nonzero_series": {
            "series": len(unfiltered["per_series"]),
            "methods": unfiltered["methods"],
            "selected": unfiltered["selected"],
        },
        "notes": [
            *_notes(data.gaps, summary["excluded"], summary["exact_baseline"]),
            *_unfit_notes(summary, names, all_origins[-origins], day, data.freq_s),
        ],
    }


def _unfit_notes(summary: dict, names: Sequence[str], first: int, day: int, freq_s: int) -> list:
    """A note for each requested method that no scored series could be scored with."""
    if not summary["per_series"]:
        return []
    notes = []
    for name in (m for m in names if m not in summary["methods"]):
        need = METHODS[name].min_intervals(day)
        why = (
            f"it needs {need} intervals ({describe_span(need * freq_s)}) of history before "
            f"each origin and the first scored origin has {first}"
            if need > first
            else "it could not fit the history at every origin"
        )
        notes.append(f"{name}: not scored; {why}")
    return notes


def _too_short(trace: str, n: int, freq_s: int, origins: int, h: int) -> str:
    """Why a trace of `n` intervals cannot be backtested, and what would make it fit."""
    day = DAY_S // freq_s
    need = (2 + origins) * day + h
    freq, horizon, span = format_duration(freq_s), format_duration(h * freq_s), n * freq_s
    fix = []
    fewer = (n - h) // day - 2
    if 1 <= fewer < origins:
        fix.append(f"--origins {fewer}")
    shorter = n - (2 + origins) * day
    if 1 <= shorter < h:
        fix.append(f"--horizon {format_duration(shorter * freq_s)} or shorter")
    if not fix:
        fix.append("a longer trace")
    return (
        f"trace {trace!r} has {n} interval{'s' * (n != 1)} of {freq} ({describe_span(span)}): a "
        f"backtest with {origins} origin(s) one day apart and horizon {horizon} "
        f"needs at least {need} ({describe_span(need * freq_s)}: two days of history before "
        f"a first origin that chooses the method, {origins} more one day apart, then the "
        "horizon); use " + " or ".join(fix)
    )


def _method_names(methods: Sequence[str] | None) -> tuple[str, ...]:
    """Validated method names (all but the short-history fallback by default)."""
    names = [m for m in METHODS if m != FALLBACK_METHOD] if methods is None else list(methods)
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise PlannerError(f"unknown method {unknown[0]!r}; methods: {', '.join(METHODS)}")
    if BASELINE not in names:
        names.insert(0, BASELINE)
    return tuple(names)


def horizon_steps(horizon: str, freq_s: int) -> int:
    """Intervals in the horizon (it must be a whole number of intervals)."""
    seconds = parse_duration(horizon, "--horizon")
    if seconds % freq_s:
        raise PlannerError(f"--horizon {horizon}: not a whole number of {freq_s} s intervals")
    return seconds // freq_s


def _notes(gaps: int, excluded: dict[str, int], exact_baseline: int = 0) -> list[str]:
    """Plain-language notes on what was left out of the scores, and why."""
    notes = [
        "coverage is pooled over all held-back points of all scored series; MASE, relative "
        "MASE and pinball (scaled like MASE) are medians over series"
    ]
    if gaps:
        notes.append(f"{gaps} interval(s) are collection gaps (every series zero): not scored")
    if excluded["all-zero history"]:
        notes.append(f"{excluded['all-zero history']} series with all-zero history: not scored")
    if excluded["inactive"]:
        notes.append(
            f"{excluded['inactive']} series with requests in under {MIN_ACTIVE_SHARE:.0%} of "
            f"the intervals of the last {ACTIVE_DAYS} days before the first origin: not scored "
            "(all_nonzero_series scores them too)"
        )
    if excluded["unscorable"]:
        notes.append(f"{excluded['unscorable']} series with no error to score: not scored")
    if exact_baseline:
        notes.append(
            f"{exact_baseline} series whose days repeat exactly: seasonal naive has zero error "
            "there, so MASE and pinball use the one-step naive (or mean level) scale, and "
            "relative MASE is undefined (null) for methods that were not exact"
        )
    return notes


BACKTEST_COLUMNS = [
    "method",
    "series",
    "mase_median",
    "rel_mase_median",
    "pinball_p10",
    "pinball_p50",
    "pinball_p90",
    "pinball_p95",
    "pinball_p99",
    "coverage_80",
    "coverage_95",
]


def backtest_rows(result: dict) -> list[list]:
    """One row per method, then the auto-selected row, in `BACKTEST_COLUMNS` order."""
    table = [*result["methods"].items(), ("selected (auto)", result["selected"])]
    return [[name, *(m.get(c) for c in BACKTEST_COLUMNS[1:])] for name, m in table if m]
