"""Token-mix forecast: per-request input / output token quantiles for each forecast interval,
and the drift of the mix a plan is sized on.

Request traces: the token lengths of the requests in the same hour of day over the last
seven days (or of the whole trace when it spans under two days). ServeGen: the mixture of the
per-6-hour length PMFs of the same block of day over the last seven days, each weighted by
the requests in its window. Lengths, unlike rates, move little from day to day, so a seasonal
mixture of the recent past is the forecast.

Where they do move (prompts that grow as conversations lengthen), `length_drift` fits a trend
to each length quantile over the recent windows and keeps it only when it forecasts the last
windows better than the recent mix does (a backtest): the plan then sizes on the lengths the
trend forecasts for the window ahead.
"""

from dataclasses import dataclass

import duckdb
import numpy as np

from planner.forecast.series import DAY_S, TOTAL_ID, UNNAMED_ID, TraceSeries
from planner.store import get_trace

TOKEN_LEVELS = (0.1, 0.5, 0.9, 0.95, 0.99)
TOKEN_NAMES = ("p10", "p50", "p90", "p95", "p99")
HISTORY_DAYS = 7
HOUR_S = 3600


def token_mix(con: duckdb.DuckDBPyConnection, data: TraceSeries, h: int) -> dict[str, dict]:
    """Per series id: {unit, basis, input: [...], output: [...]} over the next `h` intervals."""
    info = get_trace(con, data.trace)
    n = data.requests.shape[1]
    end_s = n * data.freq_s
    times = (n + np.arange(h)) * data.freq_s
    if info.kind == "requests":
        rows, block_s, basis = _request_quantiles(con, info.id, data, end_s)
    else:
        rows, block_s, basis = _pmf_quantiles(con, info.id, data, end_s)
    out: dict[str, dict] = {}
    for sid in data.ids:
        per_which = {}
        for which in ("input", "output"):
            table = rows.get((sid, which))
            if not table:
                break
            per_which[which] = [_point(t, table, block_s) for t in times]
        if len(per_which) == 2:
            out[sid] = {"unit": "tokens per request", "basis": basis, **per_which}
    return out


def _point(t: float, table: dict[int, dict], block_s: int | None) -> dict:
    """The quantiles for the block of day holding `t` (or the only block), at time `t`."""
    if block_s is None:
        return {"t": float(t), **table[0]}
    block = int((t % DAY_S) // block_s)
    row = table.get(block) or table[min(table, key=lambda b: abs(b - block))]
    return {"t": float(t), **row}


def _request_quantiles(
    con: duckdb.DuckDBPyConnection, trace_id: int, data: TraceSeries, end_s: float
) -> tuple[dict, int | None, str]:
    """Quantiles of request token lengths per series and hour of day (or overall)."""
    by_hour = end_s >= 2 * DAY_S
    block = f"CAST(floor((arrival_s % {DAY_S}) / {HOUR_S}) AS INTEGER)" if by_hour else "0"
    sid = f"'{TOTAL_ID}'" if data.ids == [TOTAL_ID] else f"coalesce(series, '{UNNAMED_ID}')"
    start = end_s - HISTORY_DAYS * DAY_S if by_hour else 0.0
    levels = list(TOKEN_LEVELS)
    cur = con.execute(
        f"SELECT {sid} AS s, {block} AS b, "
        "quantile_cont(input_tokens, ?) AS qi, avg(input_tokens) AS mi, "
        "quantile_cont(output_tokens, ?) AS qo, avg(output_tokens) AS mo "
        "FROM requests WHERE trace_id = ? AND arrival_s >= ? AND arrival_s < ? GROUP BY ALL",
        [levels, levels, trace_id, start, end_s],
    )
    rows: dict = {}
    for s, b, qi, mi, qo, mo in cur.fetchall():
        for which, q, mean in (("input", qi, mi), ("output", qo, mo)):
            if q is not None and mean is not None:
                rows.setdefault((s, which), {})[b] = _entry(q, mean)
    if by_hour:
        return rows, HOUR_S, f"token lengths by hour of day over the last {HISTORY_DAYS} days"
    return rows, None, "token lengths over the whole trace (under two days: no daily profile)"


def _pmf_quantiles(
    con: duckdb.DuckDBPyConnection, trace_id: int, data: TraceSeries, end_s: float
) -> tuple[dict, int | None, str]:
    """Quantiles of the request-weighted mixture of recent length PMFs per block of day."""
    grp = f"'{TOTAL_ID}'" if data.ids == [TOTAL_ID] else "l.series"
    ids = None if data.ids == [TOTAL_ID] else data.ids
    window = con.execute(
        "SELECT max(window_s) FROM length_dists WHERE trace_id = ?", [trace_id]
    ).fetchall()[0][0]
    if window is None:
        return {}, None, ""
    quantiles = ", ".join(
        f"min(tokens) FILTER (WHERE cdf >= {q} - 1e-9) AS q{i}" for i, q in enumerate(TOKEN_LEVELS)
    )
    sql = f"""
        WITH w AS (
            SELECT series, floor(window_start_s / ?) AS pw,
                   sum(coalesce(requests, rate_rps * window_s)) AS reqs
            FROM rate_windows WHERE trace_id = ? GROUP BY ALL),
        d AS (
            SELECT {grp} AS s, CAST(floor((l.window_start_s % {DAY_S}) / ?) AS INTEGER) AS b,
                   l.which, l.tokens, sum(l.prob * greatest(coalesce(w.reqs, 0), 1e-9)) AS mass
            FROM length_dists l LEFT JOIN w
              ON w.series = l.series AND w.pw = floor(l.window_start_s / ?)
            WHERE l.trace_id = ? AND l.window_start_s >= ? AND l.window_start_s + l.window_s <= ?
              AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], l.series))
            GROUP BY ALL),
        c AS (
            SELECT *, sum(mass) OVER (PARTITION BY s, b, which ORDER BY tokens)
                      / sum(mass) OVER (PARTITION BY s, b, which) AS cdf
            FROM d WHERE mass > 0)
        SELECT s, b, which, {quantiles}, sum(tokens * mass) / sum(mass) AS mean
        FROM c GROUP BY ALL"""
    start = end_s - HISTORY_DAYS * DAY_S
    params = [window, trace_id, window, window, trace_id, start, end_s, ids, ids]
    rows: dict = {}
    for s, b, which, *qs, mean in con.execute(sql, params).fetchall():
        rows.setdefault((s, which.removesuffix("_tokens")), {})[b] = _entry(qs, mean)
    basis = (
        f"request-weighted mixture of the {window / HOUR_S:g}-hour length PMFs of the same "
        f"block of day over the last {HISTORY_DAYS} days"
    )
    return rows, int(window), basis


def _entry(quantiles: list[float], mean: float) -> dict:
    """One quantile row: p10 ... p99 and the mean, rounded to whole tokens."""
    row = {name: round(float(q), 1) for name, q in zip(TOKEN_NAMES, quantiles, strict=True)}
    return {**row, "mean": round(float(mean), 1)}


DRIFT_WINDOWS = 6  # recent history cut into this many windows, a quantile per level in each
DRIFT_WINDOWS_MIN = 4  # whole days of history from which the windows are days
DRIFT_TESTED = 2  # the last windows the backtest forecasts from the ones before
DRIFT_MIN_REQUESTS = 50  # fewer requests in a window: its quantiles are noise
DRIFT_GAIN = 0.7  # the trend must cut the recent mix's backtest error to at most this share
DRIFT_CAP = 4.0  # no quantile is forecast to move more than this factor either way
DRIFT_MIN_ERROR = 0.05  # the recent mix forecast within 5 % (mean log error): no trend needed
SIDES = ("input", "output")


@dataclass(frozen=True)
class LengthDrift:
    """The token mix forecast for a window ahead, per side (input, output): the method (a
    linear or exponential trend, or "recent" where no trend beat the recent mix on the
    backtest), the factor each TOKEN_LEVELS quantile of the recent mix moves by (all 1 for
    "recent"), and the backtest's mean absolute log error of the better trend and of the recent
    mix, which chose."""

    methods: dict[str, str]
    factors: dict[str, tuple[float, ...]]
    errors: dict[str, tuple[float, float]]
    windows: int

    def trending(self, side: str) -> bool:
        """Whether `side`'s lengths are forecast to move (a trend won its backtest)."""
        return self.methods[side] != "recent"

    def scale(self, side: str, lengths: np.ndarray) -> np.ndarray:
        """Lengths of the recent mix mapped onto the forecast one: each multiplied by the factor
        of its own quantile (interpolated in log between TOKEN_LEVELS, flat beyond)."""
        if not self.trending(side) or not len(lengths):
            return lengths
        rank = (np.argsort(np.argsort(lengths, kind="stable"), kind="stable") + 0.5) / len(lengths)
        log_factor = np.interp(rank, TOKEN_LEVELS, np.log(self.factors[side]))
        return np.maximum(np.rint(lengths * np.exp(log_factor)), 1).astype(lengths.dtype)

    def sentence(self) -> str:
        """What the plan sized on: the trending sides' median and p99 factors and why."""
        moved = [
            f"{'prompts' if side == 'input' else 'outputs'} p50 x{self.factors[side][1]:g}, "
            f"p99 x{self.factors[side][-1]:g} ({self.methods[side]} trend, backtest log error "
            f"{self.errors[side][0]:.2f} vs the recent mix's {self.errors[side][1]:.2f})"
            for side in SIDES
            if self.trending(side)
        ]
        if not moved:
            return "token mix: the recent mix (no length trend beat it on the backtest)"
        return (
            f"token mix: sized on the lengths a trend over {self.windows} recent windows "
            f"forecasts for the horizon: {'; '.join(moved)}"
        )

    def to_dict(self) -> dict:
        """PLAN.json's `demand.length_forecast`: per side the method, factors and errors."""
        return {
            side: {
                "method": self.methods[side],
                "factors": dict(zip(TOKEN_NAMES, self.factors[side], strict=True)),
                "backtest_log_error": {
                    "trend": round(self.errors[side][0], 4),
                    "recent": round(self.errors[side][1], 4),
                },
            }
            for side in SIDES
        } | {"windows": self.windows, "sentence": self.sentence()}


def length_drift(
    con: duckdb.DuckDBPyConnection,
    trace_id: int,
    end_s: float,
    ahead: tuple[float, float],
    recent_s: float,
) -> LengthDrift | None:
    """The drift of the request lengths before `end_s`, forecast for the window `ahead` (its
    start and end, s) against the mix of the last `recent_s` (what the plan samples); None when
    too few windows hold enough requests to tell.

    Windows: whole days when the history holds DRIFT_WINDOWS_MIN of them (up to DRIFT_WINDOWS,
    so a daily pattern is never taken for a trend), else DRIFT_WINDOWS equal parts of the
    recent history. Per side, each quantile level per window. Backtest: a linear and an
    exponential trend fitted to all but the last DRIFT_TESTED windows, and their mean (the
    recent mix), forecast those; the better trend is kept only if it cuts the recent mix's error
    to DRIFT_GAIN of it. A kept trend is refitted on every window and read at the end of `ahead`
    it makes longest (its start when lengths fall), as a factor on the recent mix's quantile,
    capped at DRIFT_CAP either way.
    """
    days = int(end_s // DAY_S)
    if days >= DRIFT_WINDOWS_MIN:
        width = float(DAY_S)
        start_s = end_s - min(days, DRIFT_WINDOWS) * width
    else:
        start_s = max(end_s - recent_s, 0.0)
        width = (end_s - start_s) / DRIFT_WINDOWS
    if width <= 0:
        return None
    levels = list(TOKEN_LEVELS)
    recent = f"FILTER (WHERE arrival_s >= {float(end_s - recent_s)!r})"
    rows = con.execute(
        "SELECT k, count(*), quantile_cont(input_tokens, ?), quantile_cont(output_tokens, ?), "
        f"quantile_cont(input_tokens, ?) {recent}, quantile_cont(output_tokens, ?) {recent} "
        "FROM (SELECT *, CAST(floor((arrival_s - ?) / ?) AS INTEGER) AS k FROM requests "
        "WHERE trace_id = ? AND arrival_s >= ? AND arrival_s < ? "
        "AND input_tokens IS NOT NULL AND output_tokens IS NOT NULL) "
        "GROUP BY GROUPING SETS ((k), ()) ORDER BY k NULLS FIRST",
        [levels] * 4 + [start_s, width, trace_id, start_s, end_s],
    ).fetchall()
    if not rows or rows[0][0] is not None or rows[0][4] is None:
        return None
    pooled, windows = rows[0][4:], [r for r in rows[1:] if r[1] >= DRIFT_MIN_REQUESTS]
    if len(windows) < DRIFT_TESTED + 2:
        return None
    t = np.array([start_s + (k + 0.5) * width for k, *_ in windows])
    methods, factors, errors = {}, {}, {}
    for i, side in enumerate(SIDES):
        q = np.maximum(np.array([w[2 + i] for w in windows], dtype=float), 1.0)
        error = _backtest(t, q)
        best = min(_TRENDS, key=error.__getitem__)
        errors[side] = (error[best], error["recent"])
        if error["recent"] < DRIFT_MIN_ERROR or error[best] > DRIFT_GAIN * error["recent"]:
            methods[side], factors[side] = "recent", (1.0,) * len(levels)
            continue
        ratio = _trend(t, q, best, np.array(ahead)).max(axis=0) / np.maximum(pooled[i], 1.0)
        methods[side] = best
        factors[side] = tuple(float(f) for f in np.clip(ratio, 1 / DRIFT_CAP, DRIFT_CAP).round(3))
    return LengthDrift(methods, factors, errors, len(windows))


# Trends a length quantile may follow: fitted as a line on (into(q), t), read back by back().
_TRENDS = {
    "linear": (lambda q: q, lambda y: np.maximum(y, 1.0)),
    "exponential": (np.log, np.exp),
}


def _trend(t: np.ndarray, q: np.ndarray, kind: str, at: np.ndarray) -> np.ndarray:
    """The quantiles (rows: the times `at`) a `kind` trend fitted to `q` (rows: times `t`,
    columns: levels) forecasts."""
    into, back = _TRENDS[kind]
    slope, icept = np.polyfit(t, into(q), 1)
    return back(icept + np.outer(at, slope))


def _backtest(t: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """Mean absolute log error of the last DRIFT_TESTED windows' quantiles forecast from the
    windows before by each trend, and by their mean ("recent": the mix as it was)."""
    fit, test = slice(None, -DRIFT_TESTED), slice(-DRIFT_TESTED, None)
    actual = np.log(q[test])
    errors = {
        kind: float(np.abs(np.log(_trend(t[fit], q[fit], kind, t[test])) - actual).mean())
        for kind in _TRENDS
    }
    errors["recent"] = float(np.abs(np.log(q[fit]).mean(axis=0) - actual).mean())
    return errors
