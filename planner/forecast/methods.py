"""Forecast methods behind one interface: history → point path → calibrated quantiles.

Every method only supplies a point (median) path for the next `h` intervals from the history it
is given. Quantiles come from one shared, conformal-style step: the same method is re-run at
the last `CALIBRATION_DAYS` daily origins inside the history, and the empirical quantiles of
its day-ahead errors on a variance-stabilising scale are widened by a factor per level
(`CALIBRATION_WIDEN`) and added to the point path. The scale is chosen per series among
`SCALES` (log(y + c) and sqrt(y + c), c a multiple of the recent mean): the one whose
quantiles, calibrated on all but one of those origins, lose least pinball at `SCALE_LEVELS`
on the one left out, over every origin in turn. A fixed log scale made errors relative
everywhere, so intervals were widest in absolute terms at traffic peaks, where pinball and
money are made; on ServeGen m-large and m-mid (6 origins, days 8-13) the chosen scales cut the
p99 pinball loss 27-30 % and p90's 7-26 % at the same coverage, sharper than
statsforecast's MSTL + AutoARIMA there (BENCHMARKS.md, `bench/bench_quantiles.py`).
The widening factors were chosen on the ServeGen origins of days 8-11 as the sharpest that keep
coverage in the targets there: 1.0 for the 80 % interval and 1.2 for the 95 % one (seven
days of errors understate the tails more than the body).
The models' own Gaussian intervals are not used: these traces are bursty and zero-inflated, and
those intervals are badly miscalibrated on them.
"""

import hashlib
import math
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LEVELS = (0.025, 0.1, 0.5, 0.9, 0.95, 0.975, 0.99)
QUANTILE_NAMES = ("p2.5", "p10", "p50", "p90", "p95", "p97.5", "p99")
MEDIAN = LEVELS.index(0.5)
CALIBRATION_DAYS = 7
CALIBRATION_WIDEN = (1.2, 1.0, 1.0, 1.0, 1.1, 1.2, 1.2)
SCALE_LEVELS = (0.1, 0.9, 0.95, 0.99)
RECENT_DAYS = 7
PROFILE_DAYS = 7
PROFILE_DECAY = 0.85
PROFILE_SMOOTH = 1
PROFILE_LAST_DAY = 0.5
PROFILE_RECENT_DAYS = 0.25
PROFILE_FADE_PER_DAY = 0.235
LEVEL_WINDOW = 12
PATH_CACHE_SIZE = 512

PointFn = Callable[[np.ndarray, int, int], np.ndarray]


class MethodUnavailable(Exception):
    """This method cannot forecast this history (too short or degenerate)."""


@dataclass(frozen=True)
class Method:
    """A forecast method: its point path and the history it needs, in days (daily seasons)."""

    name: str
    description: str
    point: PointFn
    min_days: float

    def min_history(self, period: int) -> int:
        """Intervals of history needed to fit, at `period` intervals per day."""
        return max(1, math.ceil(self.min_days * period))

    def min_intervals(self, period: int) -> int:
        """Intervals of history needed to fit and to calibrate on at least one earlier origin:
        two for the non-seasonal `level`, else `min_history` plus one day."""
        return 2 if self.min_days == 0 else self.min_history(period) + period

    def available(self, n: int, period: int) -> bool:
        """Whether `n` intervals are enough to fit and to calibrate on at least one day."""
        return n >= self.min_intervals(period)


def seasonal_naive(y: np.ndarray, h: int, season: int) -> np.ndarray:
    """Repeat the last season: forecast for t is y[t - season] (or a multiple of it)."""
    if len(y) < season:
        raise MethodUnavailable(f"needs {season} intervals of history")
    return y[-season:][np.arange(h) % season].astype(np.float64)


def snaive_day(y: np.ndarray, h: int, period: int) -> np.ndarray:
    """Seasonal naive with a one-day season."""
    return seasonal_naive(y, h, period)


def snaive_week(y: np.ndarray, h: int, period: int) -> np.ndarray:
    """Seasonal naive with a one-week season."""
    return seasonal_naive(y, h, 7 * period)


def _on_log_scale(
    name: str, y: np.ndarray, h: int, period: int, fit: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Run a statsmodels forecaster `fit(x) -> path` on log1p of the last 8 days."""
    x = np.log1p(y[-8 * period :])
    if np.ptp(x) == 0:
        return np.full(h, y[-1], dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            path = fit(x)
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise MethodUnavailable(f"{name}: {exc}") from None
    return np.expm1(np.asarray(path)).clip(0)


def ets(y: np.ndarray, h: int, period: int) -> np.ndarray:
    """Holt-Winters (additive level + daily season, no trend) on log1p of the last 8 days."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    def fit(x: np.ndarray) -> np.ndarray:
        model = ExponentialSmoothing(
            x, seasonal="add", seasonal_periods=period, initialization_method="heuristic"
        )
        return model.fit().forecast(h)

    return _on_log_scale("ets", y, h, period, fit)


def stl_ar(y: np.ndarray, h: int, period: int) -> np.ndarray:
    """STL (daily season) of log1p over the last 8 days, AR(1) with constant on the rest."""
    from statsmodels.tsa.ar_model import AutoReg
    from statsmodels.tsa.forecasting.stl import STLForecast

    def fit(x: np.ndarray) -> np.ndarray:
        model = STLForecast(x, AutoReg, model_kwargs={"lags": 1, "trend": "c"}, period=period)
        return model.fit(inner_iter=1, outer_iter=0).forecast(h)

    return _on_log_scale("stl_ar", y, h, period, fit)


def profile(y: np.ndarray, h: int, period: int) -> np.ndarray:
    """Robust seasonal profile × level: the median day shape, at a blend of recent levels.

    Our own method, in log1p space. Each of the last `PROFILE_DAYS` days is split into its
    level (median) and shape; the shape is the weighted median of each slot and its neighbours
    over the days (older days weigh less). The forecast level blends the last day's level with
    the weighted mean level, plus the offset of the last quarter day from that forecast,
    fading to `PROFILE_FADE_PER_DAY` of itself over a day.
    """
    days = min(PROFILE_DAYS, len(y) // period)
    if days < 1:
        raise MethodUnavailable(f"needs {period} intervals of history")
    x = np.log1p(y[len(y) - days * period :]).reshape(days, period)
    day_level = np.median(x, axis=1)
    shifts = range(-PROFILE_SMOOTH, PROFILE_SMOOTH + 1)
    z = x - day_level[:, None]
    stack = np.concatenate([np.roll(z, s, axis=1) for s in shifts], axis=0)
    day_w = PROFILE_DECAY ** np.arange(days - 1, -1, -1, dtype=np.float64)
    shape = _weighted_median(stack, np.tile(day_w, len(shifts)))
    lvl = PROFILE_LAST_DAY * day_level[-1] + (1 - PROFILE_LAST_DAY) * np.average(
        day_level, weights=day_w
    )
    tail = max(1, round(PROFILE_RECENT_DAYS * period))
    recent = float(np.median(x[-1, -tail:] - shape[-tail:] - lvl))
    steps = np.arange(h)
    fade = PROFILE_FADE_PER_DAY ** (steps / period)
    return np.expm1(shape[steps % period] + lvl + recent * fade).clip(0)


def _fit_path(name: str, y: np.ndarray, h: int, period: int) -> np.ndarray | str:
    """One method's point path as a read-only array, or why it cannot fit."""
    try:
        path = np.asarray(METHODS[name].point(y, h, period), dtype=np.float64)
    except MethodUnavailable as exc:
        return str(exc)
    path.flags.writeable = False
    return path


_PATHS: OrderedDict[tuple, np.ndarray | str] = OrderedDict()


def clear_point_cache() -> None:
    """Forget every cached point path (benchmarks clear it to time cold fits)."""
    _PATHS.clear()


def point_path(name: str, y: np.ndarray, h: int, period: int) -> np.ndarray:
    """A method's point path, cached by a digest of the history (read-only array).

    The backtest, the calibration and auto-selection run every method at the same origins,
    and `combo` runs its members there again: with the cache a combo costs a median, not five
    more fits. The key is a 128-bit digest of the history, so the cache holds `PATH_CACHE_SIZE`
    paths of `h` values, never the histories themselves (which can be long).
    """
    history = np.ascontiguousarray(y, dtype=np.float64)
    digest = hashlib.blake2b(history.tobytes(), digest_size=16).digest()
    key = (name, digest, len(history), h, period)
    path = _PATHS.get(key)
    if path is None:
        path = _PATHS[key] = _fit_path(name, history, h, period)
        if len(_PATHS) > PATH_CACHE_SIZE:
            _PATHS.popitem(last=False)
    else:
        _PATHS.move_to_end(key)
    if isinstance(path, str):
        raise MethodUnavailable(path)
    return path


def combo(y: np.ndarray, h: int, period: int) -> np.ndarray:
    """Median, in log1p space, of the point paths of `COMBO_MEMBERS` that can fit the history.

    A forecast combination: on the ServeGen tuning days (origins 8-11) it scores as well as
    `profile`, the best single method, and it is less exposed to any one method's bad days.
    """
    paths = []
    for name in COMBO_MEMBERS:
        try:
            paths.append(np.log1p(point_path(name, y, h, period).clip(0)))
        except MethodUnavailable:
            continue
    if not paths:
        raise MethodUnavailable("combo: no member method can fit this history")
    return np.expm1(np.median(paths, axis=0))


def level(y: np.ndarray, h: int, period: int) -> np.ndarray:
    """Flat median of the last few intervals: the fallback for histories under two days."""
    return np.full(h, float(np.median(y[-LEVEL_WINDOW:])), dtype=np.float64)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Column-wise weighted median of `values` (rows weighted by `weights`)."""
    order = np.argsort(values, axis=0)
    sorted_vals = np.take_along_axis(values, order, axis=0)
    cum = np.cumsum(weights[order], axis=0)
    idx = np.argmax(cum >= 0.5 * cum[-1], axis=0)
    return sorted_vals[idx, np.arange(values.shape[1])]


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("snaive_day", "seasonal naive, one-day season", snaive_day, 1),
        Method("snaive_week", "seasonal naive, one-week season", snaive_week, 7),
        Method("ets", "Holt-Winters ETS on log1p (statsmodels)", ets, 2),
        Method("stl_ar", "STL + AR(1) on log1p (statsmodels)", stl_ar, 2),
        Method("profile", "robust seasonal profile × level (ours)", profile, 2),
        Method("combo", "median of profile, ets, stl_ar and both seasonal naives", combo, 2),
        Method("level", "recent median (fallback under two days)", level, 0),
    )
}
BASELINE = "snaive_day"
DEFAULT_METHOD = "combo"
FALLBACK_METHOD = "level"
COMBO_MEMBERS = ("profile", "ets", "stl_ar", "snaive_week", "snaive_day")
AUTO_CANDIDATES = (DEFAULT_METHOD, *COMBO_MEMBERS)


def fill_gaps(y: np.ndarray, period: int) -> np.ndarray:
    """Replace NaN (collection gaps) by the value a day earlier, else a day later, else 0."""
    out = np.array(y, dtype=np.float64)
    for _ in range(2):
        for lag in (period, -period):
            missing = np.flatnonzero(np.isnan(out))
            src = missing - lag
            ok = (src >= 0) & (src < len(out))
            out[missing[ok]] = out[src[ok]]
    return np.nan_to_num(out, nan=0.0)


@dataclass(frozen=True)
class Scale:
    """A variance-stabilising scale for forecast errors: log(y + c) or sqrt(y + c), with
    c = `shift` × the series' recent mean (at least 1 on the log scale)."""

    kind: str
    shift: float

    def offset(self, mean: float) -> float:
        """The c of this scale for a series whose recent mean is `mean`."""
        c = self.shift * mean
        return max(1.0, c) if self.kind == "log" else c

    def forward(self, y: np.ndarray, mean: float) -> np.ndarray:
        """Values on this scale."""
        c = self.offset(mean)
        return np.log(y + c) if self.kind == "log" else np.sqrt(y + c)

    def inverse(self, z: np.ndarray, mean: float) -> np.ndarray:
        """Values back from this scale."""
        c = self.offset(mean)
        return np.exp(z) - c if self.kind == "log" else np.maximum(z, 0) ** 2 - c


SCALES = (
    Scale("log", 0.5),
    Scale("log", 2.0),
    Scale("log", 10.0),
    Scale("sqrt", 0.0),
    Scale("sqrt", 1.0),
)

Pairs = list[tuple[np.ndarray, np.ndarray]]


def recent_mean(y: np.ndarray, period: int) -> float:
    """Mean of the last `RECENT_DAYS` days (gaps skipped; 0 when there are none)."""
    recent = y[-RECENT_DAYS * period :]
    recent = recent[~np.isnan(recent)]
    return float(recent.mean()) if len(recent) else 0.0


def calibration_pairs(
    method: Method, y: np.ndarray, h: int, period: int, days: int = CALIBRATION_DAYS
) -> Pairs:
    """(actual, predicted) of the method re-run at daily origins inside `y`, same horizon
    (gaps dropped); one pair per origin."""
    n, filled = len(y), fill_gaps(y, period)
    if method.min_days == 0:
        origins = [(o, 1) for o in range(max(1, n - period), n)]
    else:
        origins = [
            (n - k * period, min(h, k * period))
            for k in range(1, days + 1)
            if n - k * period >= method.min_history(period)
        ]
    pairs = []
    for origin, steps in origins:
        actual = y[origin : origin + steps]
        try:
            pred = point_path(method.name, filled[:origin], len(actual), period)
        except MethodUnavailable:
            continue
        ok = ~np.isnan(actual)
        if ok.any():
            pairs.append((actual[ok], pred[ok]))
    return pairs


def scale_errors(pairs: Pairs, scale: Scale, mean: float) -> np.ndarray:
    """The pairs' errors (actual - predicted) on `scale`."""
    if not pairs:
        return np.zeros(0)
    return np.concatenate([scale.forward(a, mean) - scale.forward(p, mean) for a, p in pairs])


def calibrated(point: np.ndarray, errors: np.ndarray, scale: Scale, mean: float) -> np.ndarray:
    """Quantiles (len(LEVELS) × len(point)): `point` plus the widened conformal offsets of
    `errors`, on `scale`; monotone across levels, non-negative, the median the point."""
    offsets = np.array(CALIBRATION_WIDEN) * conformal_offsets(errors)
    offsets = np.where(np.array(LEVELS) < 0.5, np.minimum(offsets, 0), np.maximum(offsets, 0))
    z = scale.forward(point, mean)
    q = scale.inverse(z[None, :] + offsets[:, None], mean).clip(0)
    q[MEDIAN] = point
    return np.maximum.accumulate(q, axis=0)


def pinball_loss(actual: np.ndarray, q: np.ndarray, tau: float) -> float:
    """Mean pinball (quantile) loss of quantile forecast `q` at level `tau`."""
    diff = actual - q
    return float(np.mean(np.maximum(tau * diff, (tau - 1) * diff)))


def held_out_loss(pairs: Pairs, scale: Scale, mean: float) -> float:
    """Pinball loss at `SCALE_LEVELS` of each pair's quantiles calibrated on the other pairs."""
    loss = 0.0
    for i, (actual, pred) in enumerate(pairs):
        errors = scale_errors(pairs[:i] + pairs[i + 1 :], scale, mean)
        q = calibrated(pred, errors, scale, mean)
        for tau in SCALE_LEVELS:
            loss += len(actual) * pinball_loss(actual, q[LEVELS.index(tau)], tau)
    return loss


def choose_scale(pairs: Pairs, mean: float) -> Scale:
    """The scale in `SCALES` with the least held-out pinball loss (the first with one pair)."""
    if len(pairs) < 2:
        return SCALES[0]
    return min(SCALES, key=lambda scale: held_out_loss(pairs, scale, mean))


def conformal_offsets(errors: np.ndarray) -> np.ndarray:
    """Finite-sample conformal quantiles of the errors at each level (0 at the median)."""
    if len(errors) == 0:
        return np.zeros(len(LEVELS))
    e = np.sort(errors)
    m = len(e)
    out = np.zeros(len(LEVELS))
    for i, tau in enumerate(LEVELS):
        if tau > 0.5:
            out[i] = e[min(m, math.ceil((m + 1) * tau)) - 1]
        elif tau < 0.5:
            out[i] = e[max(1, math.floor((m + 1) * tau)) - 1]
    return out


def quantile_forecast(
    method: Method, y: np.ndarray, h: int, period: int, days: int = CALIBRATION_DAYS
) -> np.ndarray:
    """Quantiles (len(LEVELS) × h) of the next `h` intervals after history `y` (NaN = gap)."""
    if not method.available(len(y), period):
        raise MethodUnavailable(
            f"{method.name} needs {method.min_intervals(period)} intervals, history has {len(y)}"
        )
    point = point_path(method.name, fill_gaps(y, period), h, period)
    pairs = calibration_pairs(method, y, h, period, days)
    if not pairs:
        raise MethodUnavailable(f"{method.name}: no earlier origin to calibrate the quantiles on")
    mean = recent_mean(y, period)
    scale = choose_scale(pairs, mean)
    return calibrated(point, scale_errors(pairs, scale, mean), scale, mean)
