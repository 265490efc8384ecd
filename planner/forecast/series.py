"""Demand series from the store: requests (and token sums) per interval at a chosen frequency.

Request traces are bucketed by arrival time; rate-window traces (ServeGen clients, Huawei
per-function series) are summed from their native windows, which sets the finest frequency
they allow. In a rate-window trace of three or more series, a native window in which every
series reports zero is a collection gap (m-mid has 85 such windows, e.g. 1,896-1,906 and
1,920-1,930), not zero demand: its interval is returned as null and never scored.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import duckdb
import numpy as np
import polars as pl

from planner.errors import PlannerError
from planner.store import TraceInfo, get_trace

DAY_S = 86_400
TOTAL_ID = "total"
UNNAMED_ID = "all"
GAP_MIN_SERIES = 3
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|m|h|d|w)\s*$")
_UNIT_S = {"s": 1, "min": 60, "m": 60, "h": 3600, "d": DAY_S, "w": 7 * DAY_S}


def parse_duration(text: str, what: str) -> int:
    """Seconds in '10min', '1h', '1d', '30s' or '2w'; a PlannerError naming `what` otherwise."""
    match = _DURATION.match(str(text))
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)] if match else 0.0
    if seconds <= 0 or seconds != int(seconds):
        raise PlannerError(f"{what} {text!r}: expected a duration like 1min, 10min, 1h or 1d")
    return int(seconds)


def parse_freq(freq: str, option: str = "--freq") -> int:
    """Seconds in a forecast interval: a duration that divides one day (the daily season).

    `option` is the flag the user typed (`--freq`, or `--interval` for `planner plan`), so the
    error names it.
    """
    seconds = parse_duration(freq, option)
    if seconds > DAY_S:
        raise PlannerError(
            f"{option} {freq}: coarser than one day, the forecast's daily season; "
            "use 1d or finer, like 1h or 10min"
        )
    if DAY_S % seconds:
        near = _day_divisors_near(seconds, 1)
        raise PlannerError(
            f"{option} {freq}: a day is not a whole number of {freq} intervals (the forecast's "
            f"season is one day); use an interval that divides a day, like {' or '.join(near)}"
        )
    return seconds


def _day_divisors_near(seconds: int, step: int) -> list[str]:
    """The multiples of `step` s that divide a day and lie nearest below and above `seconds`."""
    fits = [k * step for k in range(1, DAY_S // step + 1) if DAY_S % (k * step) == 0]
    below = [f for f in fits if f < seconds][-1:]
    above = [f for f in fits if f > seconds][:1]
    return [format_duration(f) for f in below + above] or [format_duration(step)]


def describe_span(seconds: float) -> str:
    """A history length for messages: '2.50 days', '3.2 h' or '57 min'."""
    if seconds >= DAY_S:
        return f"{seconds / DAY_S:.2f} days"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def format_duration(seconds: int) -> str:
    """The shortest of '1d', '1h', '10min', '30s' that spells `seconds` exactly."""
    for unit, size in (("d", DAY_S), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class TraceSeries:
    """Per-interval request counts of the selected series of one trace (NaN marks a gap)."""

    trace: str
    kind: str
    freq_s: int
    resolution_s: float | None
    ids: list[str]
    requests: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    gaps: int

    @property
    def steps_per_day(self) -> int:
        """Intervals in one day (the daily season)."""
        return DAY_S // self.freq_s

    def before(self, end_s: float) -> "TraceSeries":
        """Only the intervals that end by `end_s` (s from trace start): the history to an origin."""
        k = int(end_s // self.freq_s)
        if not 1 <= k <= self.requests.shape[1]:
            span = self.requests.shape[1] * self.freq_s
            raise PlannerError(
                f"--end {end_s:g}: expected a time (s from trace start) between {self.freq_s} "
                f"(one {format_duration(self.freq_s)} interval) and the end of the trace ({span})"
            )
        req = self.requests[:, :k]
        gaps = int(np.isnan(req).all(axis=0).sum()) if len(self.ids) else 0
        cut = {"input_tokens": self.input_tokens[:, :k], "output_tokens": self.output_tokens[:, :k]}
        return replace(self, requests=req, gaps=gaps, **cut)

    def frame(self) -> pl.DataFrame:
        """Long form: series, t (s from trace start), requests, input_tokens, output_tokens."""
        k, n = self.requests.shape
        t = np.tile(np.arange(n, dtype=np.float64) * self.freq_s, k)
        return pl.DataFrame(
            {
                "series": np.repeat(np.array(self.ids, dtype=object), n).tolist(),
                "t": t,
                "requests": self.requests.ravel(),
                "input_tokens": self.input_tokens.ravel(),
                "output_tokens": self.output_tokens.ravel(),
            }
        ).with_columns(pl.col("requests", "input_tokens", "output_tokens").fill_nan(None))


@dataclass
class _Bins:
    """A trace's counts per (series, interval) with what reading them learned of the trace."""

    rows: dict[str, np.ndarray]
    span: float
    resolution: float | None
    tokens_known: tuple[bool, bool]
    gap_bins: np.ndarray


def _request_bins(con: duckdb.DuckDBPyConnection, info: TraceInfo, freq_s: int) -> _Bins:
    """Requests and tokens per series and interval of a request trace."""
    rows = _fetch(
        con,
        "SELECT coalesce(series, ?) AS series, CAST(floor(arrival_s / ?) AS BIGINT) AS k, "
        "count(*)::DOUBLE AS requests, sum(input_tokens)::DOUBLE AS input_tokens, "
        "sum(output_tokens)::DOUBLE AS output_tokens FROM requests WHERE trace_id = ? "
        "GROUP BY ALL",
        [UNNAMED_ID, freq_s, info.id],
    )
    known = _fetch(
        con,
        "SELECT count(input_tokens) > 0 AS i, count(output_tokens) > 0 AS o FROM requests "
        "WHERE trace_id = ?",
        [info.id],
    )
    tokens_known = (bool(known["i"][0]), bool(known["o"][0]))
    span = float(info.span_s or 0.0)
    return _Bins(rows, span, None, tokens_known, np.array([], dtype=np.int64))


def _rate_bins(
    con: duckdb.DuckDBPyConnection, info: TraceInfo, freq: str, freq_s: int, freq_option: str
) -> _Bins:
    """Requests per series and interval of a rate-window trace, and its all-zero intervals."""
    bounds = _fetch(
        con,
        "SELECT min(window_start_s) AS t0, max(window_start_s + window_s) AS t1, "
        "max(window_s) AS w, count(DISTINCT series) AS ns FROM rate_windows "
        "WHERE trace_id = ?",
        [info.id],
    )
    t0, resolution = float(bounds["t0"][0]), float(bounds["w"][0])
    _check_resolution(info.name, freq, freq_s, resolution, freq_option)
    rows = _fetch(
        con,
        "SELECT series, CAST(floor((window_start_s - ?) / ?) AS BIGINT) AS k, "
        "sum(coalesce(requests, rate_rps * window_s)) AS requests FROM rate_windows "
        "WHERE trace_id = ? GROUP BY ALL",
        [t0, freq_s, info.id],
    )
    gap_bins = np.array([], dtype=np.int64)
    if int(bounds["ns"][0]) >= GAP_MIN_SERIES:
        gaps = _fetch(
            con,
            "SELECT DISTINCT CAST(floor((window_start_s - ?) / ?) AS BIGINT) AS k FROM "
            "(SELECT window_start_s, sum(coalesce(requests, rate_rps * window_s)) AS r "
            "FROM rate_windows WHERE trace_id = ? GROUP BY 1) WHERE r = 0",
            [t0, freq_s, info.id],
        )
        gap_bins = gaps["k"].astype(np.int64)
    span = float(bounds["t1"][0]) - t0
    return _Bins(rows, span, resolution, (False, False), gap_bins)


def read_series(
    con: duckdb.DuckDBPyConnection,
    trace_name: str,
    freq: str = "10min",
    series: str | Sequence[str] | None = None,
    total: bool = False,
    freq_option: str = "--freq",
) -> TraceSeries:
    """The selected series of a trace as a matrix (series × interval) at `freq`.

    `freq_option` is the flag `freq` came from, named in errors (`--interval` for plans).
    """
    info = get_trace(con, trace_name)
    freq_s = parse_duration(freq, freq_option)
    if info.kind == "requests":
        bins = _request_bins(con, info, freq_s)
    elif info.kind == "rate_windows":
        bins = _rate_bins(con, info, freq, freq_s, freq_option)
    else:
        raise PlannerError(
            f"trace {trace_name!r} holds {info.kind.replace('_', ' ')}, not requests or rates; "
            "forecast a request or rate-window trace"
        )
    n = int(bins.span // freq_s)
    if n < 1 and not bins.span > 0:
        raise PlannerError(
            f"trace {trace_name!r} spans 0 s (every request at one instant): nothing to bucket "
            f"into {freq_option} {freq} intervals; ingest a trace that spans at least one"
        )
    if n < 1:
        raise PlannerError(
            f"{freq_option} {freq}: trace {trace_name!r} spans {bins.span:,.0f} s, shorter than "
            f"one {freq} interval; use a finer {freq_option}"
        )
    chosen = _select(trace_name, sorted(set(bins.rows["series"].tolist())), series)
    return _matrix(info, freq_s, n, bins, chosen, total)


def _check_resolution(trace: str, freq: str, freq_s: int, resolution: float, option: str) -> None:
    """A PlannerError unless `freq_s` is a whole number of the trace's native windows."""
    if not resolution > 0:
        return
    whole = resolution == int(resolution)
    res = format_duration(int(resolution)) if whole else f"{resolution:g}s"
    windows = f"trace {trace!r} has {res} windows"
    if freq_s < resolution:
        raise PlannerError(
            f"{option} {freq}: finer than the trace's resolution ({windows}, which cannot be "
            f"split); use {res} or a multiple of it"
        )
    if freq_s % resolution:
        step = int(resolution)
        near = _day_divisors_near(freq_s, step) if whole and DAY_S % step == 0 else [res]
        raise PlannerError(
            f"{option} {freq}: not a whole number of windows ({windows}); use a multiple of "
            f"{res}, like {' or '.join(near)}"
        )


def load_series(
    con: duckdb.DuckDBPyConnection,
    trace_name: str,
    freq: str = "10min",
    series: str | Sequence[str] | None = None,
    total: bool = False,
) -> pl.DataFrame:
    """Series, t (s from trace start), requests, input/output token sums (null where unknown)."""
    return read_series(con, trace_name, freq, series, total).frame()


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> dict[str, np.ndarray]:
    """Run one query and fetch it whole as numpy columns (SQL nulls as NaN in float columns)."""
    cols = con.execute(sql, params).fetchnumpy()
    return {
        k: np.ma.filled(v.astype(np.float64), np.nan) if np.ma.isMaskedArray(v) else np.asarray(v)
        for k, v in cols.items()
    }


def _select(trace: str, ids: list[str], series: str | Sequence[str] | None) -> list[str]:
    """The requested series ids (all by default), or a PlannerError naming unknown ones."""
    if series is None:
        return ids
    wanted = [s.strip() for s in ([series] if isinstance(series, str) else series)]
    wanted = [w for part in wanted for w in part.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in set(ids)]
    if unknown or not wanted:
        shown = ", ".join(ids[:8]) + (f", ... ({len(ids)} in all)" if len(ids) > 8 else "")
        raise PlannerError(
            f"unknown series {', '.join(unknown) or '(none given)'} in trace {trace!r}; "
            f"series: {shown}"
        )
    return list(dict.fromkeys(wanted))


def _matrix(
    info: TraceInfo, freq_s: int, n: int, bins: _Bins, chosen: list[str], total: bool
) -> TraceSeries:
    """Scatter the long query result into dense (series × interval) matrices."""
    rows, tokens_known = bins.rows, bins.tokens_known
    index = {s: i for i, s in enumerate(chosen)}
    keep = np.array([s in index for s in rows["series"]], dtype=bool) & (rows["k"] < n)
    row = np.array([index[s] for s in rows["series"][keep]], dtype=np.int64)
    col = rows["k"][keep].astype(np.int64)
    shape = (len(chosen), n)

    def scatter(values: np.ndarray | None, known: bool) -> np.ndarray:
        out = np.zeros(shape) if known else np.full(shape, np.nan)
        if known and values is not None:
            np.add.at(out, (row, col), np.nan_to_num(np.asarray(values, dtype=np.float64)[keep]))
        return out

    req = scatter(rows["requests"], True)
    tin = scatter(rows.get("input_tokens"), tokens_known[0])
    tout = scatter(rows.get("output_tokens"), tokens_known[1])
    ids = chosen
    if total:
        ids = [TOTAL_ID]
        req, tin, tout = (m.sum(axis=0, keepdims=True) for m in (req, tin, tout))
    gap_bins = bins.gap_bins[bins.gap_bins < n]
    req[:, gap_bins] = np.nan
    return TraceSeries(
        info.name, info.kind, freq_s, bins.resolution, ids, req, tin, tout, len(gap_bins)
    )
