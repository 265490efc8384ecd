"""Token-mix forecast: per-request input / output token quantiles for each forecast interval.

Request traces: the token lengths of the requests in the same hour of day over the last
seven days (or of the whole trace when it spans under two days). ServeGen: the mixture of the
per-6-hour length PMFs of the same block of day over the last seven days, each weighted by
the requests in its window. Lengths, unlike rates, move little from day to day, so a seasonal
mixture of the recent past is the forecast.
"""

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
