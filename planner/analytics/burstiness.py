"""Burstiness of a trace's arrivals: rates per bin, inter-arrival statistics and fits.

Arrivals of all series are merged (the load the serving fleet sees). Definitions:

- Rates per bin (1 s, 1 min, 10 min): bins start at the first arrival; only whole bins count
  (the last partial bin is left out), empty bins count as 0. A resolution whose span holds no
  whole bin is skipped. Rates are requests per second (count / bin_s); peak-to-mean is
  max / mean; the index of dispersion is var / mean of the per-bin *counts* (1 for Poisson).
- Inter-arrival gaps: differences of the sorted arrival times, ties included (CV = sample
  standard deviation / mean). Fits use the strictly positive gaps only (tied timestamps say
  nothing about the gap distribution); the number of zero gaps is reported.
- Overall fits use every positive gap up to 200,000 of them, else a systematic sample (every
  k-th gap in time order) of that size.
- Everything is computed in DuckDB over the stored arrivals (`Arrivals`); only per-bin counts,
  per-window sums and the fit samples come back to Python, so memory grows with the bins and
  windows, not with the requests. Per-window fits (default 10 min) do the same with at
  most 500 gaps per window and need at least 50 positive gaps; a gap belongs to the window
  of its later arrival.
"""

from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl

from planner.analytics import fits
from planner.analytics.stats import num, rows, summary
from planner.errors import PlannerError

RESOLUTIONS_S = (1.0, 60.0, 600.0)
MAX_FIT_GAPS = 200_000
MAX_WINDOW_GAPS = 500
MIN_WINDOW_GAPS = 50
WINDOW_DISTS = ("gamma", "weibull")


@dataclass(frozen=True)
class Arrivals:
    """A request trace's arrivals as the store holds them: queried, never loaded whole (memory
    grows with bins and windows, not with requests)."""

    con: duckdb.DuckDBPyConnection
    trace_id: int
    first: float
    last: float
    count: int

    def gaps_sql(self) -> str:
        """SQL of every arrival `t` with its gap to the previous one (NULL for the first)."""
        return (
            "SELECT arrival_s AS t, arrival_s - lag(arrival_s) OVER (ORDER BY arrival_s) AS gap "
            f"FROM requests WHERE trace_id = {int(self.trace_id)}"
        )

    def bin_of(self, bin_s: float, column: str = "t") -> str:
        """SQL for the bin of `column` among bins of `bin_s` from the first arrival: bin i holds
        first + bin_s * i <= t < first + bin_s * (i + 1), the edges computed as numpy would."""
        first, width = repr(float(self.first)), repr(float(bin_s))
        k = f"CAST(floor(({column} - {first}) / {width}) AS BIGINT)"
        return (
            f"({k} - CASE WHEN {column} < {first} + {width} * {k} THEN 1 ELSE 0 END "
            f"+ CASE WHEN {column} >= {first} + {width} * ({k} + 1) THEN 1 ELSE 0 END)"
        )


def arrivals_of(con: duckdb.DuckDBPyConnection, trace_id: int) -> Arrivals:
    """The arrivals of a request trace: its first and last time and how many."""
    first, last, count = con.execute(
        "SELECT min(arrival_s), max(arrival_s), count(*) FROM requests WHERE trace_id = ?",
        [trace_id],
    ).fetchall()[0]
    return Arrivals(con, trace_id, float(first or 0.0), float(last or 0.0), int(count))


def bin_counts(arrivals: Arrivals, bin_s: float) -> np.ndarray:
    """Requests per whole bin of `bin_s` seconds from the first arrival."""
    bins = int((arrivals.last - arrivals.first) // bin_s) if arrivals.count else 0
    counts = np.zeros(bins, dtype=np.int64)
    if bins:
        found = arrivals.con.execute(
            f"SELECT b, count(*) AS n FROM (SELECT {arrivals.bin_of(bin_s, 'arrival_s')} AS b "
            "FROM requests WHERE trace_id = ?) WHERE b >= 0 AND b < ? GROUP BY b",
            [arrivals.trace_id, bins],
        ).fetchnumpy()
        counts[np.asarray(found["b"], dtype=np.int64)] = found["n"]
    return counts


def arrival_counts(con: duckdb.DuckDBPyConnection, trace_id: int, bin_s: float) -> pl.DataFrame:
    """Requests per whole bin: columns t_s (bin start, s from trace start), requests, rate_rps."""
    arrivals = arrivals_of(con, trace_id)
    counts = bin_counts(arrivals, bin_s)
    return pl.DataFrame(
        {
            "t_s": arrivals.first + bin_s * np.arange(counts.size, dtype=float),
            "requests": counts,
            "rate_rps": counts / bin_s,
        }
    )


def rate_stats(counts: np.ndarray, bin_s: float) -> dict:
    """Rate summary of per-bin counts: mean/p50/p99/max req/s, peak-to-mean, CV, dispersion."""
    mean = counts.mean()
    out = {"bin_s": bin_s, "bins": int(counts.size), **summary(counts / bin_s)}
    out["peak_to_mean"] = num(counts.max() / mean) if mean > 0 else None
    out["cv"] = num(counts.std() / mean) if mean > 0 else None
    out["index_of_dispersion"] = num(counts.var() / mean) if mean > 0 else None
    return out


def rates(arrivals: Arrivals, resolutions_s: tuple[float, ...] = RESOLUTIONS_S) -> list[dict]:
    """rate_stats at each resolution the span allows."""
    out = []
    for bin_s in resolutions_s:
        counts = bin_counts(arrivals, bin_s)
        if counts.size:
            out.append(rate_stats(counts, bin_s))
    return out


def _systematic(n: np.ndarray, cap: int) -> np.ndarray:
    """Step per group so that every step-th value keeps at most `cap` of `n`."""
    return np.maximum(np.ceil(n / cap), 1).astype(np.int64)


def interarrival_stats(arrivals: Arrivals) -> dict:
    """Count, mean, CV and zero (tied) gaps of the inter-arrival times."""
    gaps, mean, sd, zero = arrivals.con.execute(
        "SELECT count(gap), avg(gap), stddev_samp(gap), count(*) FILTER (WHERE gap = 0) "
        f"FROM ({arrivals.gaps_sql()})"
    ).fetchall()[0]
    return {
        "gaps": int(gaps),
        "mean_s": num(mean),
        "cv": num(sd / mean) if mean and mean > 0 and gaps > 1 else None,
        "zero_gaps": int(zero),
    }


def positive_gaps(arrivals: Arrivals, max_gaps: int = MAX_FIT_GAPS) -> tuple[np.ndarray, int]:
    """The strictly positive gaps in time order, every step-th of them so that at most
    `max_gaps` are returned (a systematic sample), and the step."""
    ranked = (
        f"SELECT gap, row_number() OVER (ORDER BY t) AS r FROM ({arrivals.gaps_sql()}) "
        "WHERE gap > 0"
    )
    (n,) = arrivals.con.execute(f"SELECT count(*) FROM ({ranked})").fetchall()[0]
    step = int(_systematic(np.array([n]), max_gaps)[0])
    sample = arrivals.con.execute(
        f"SELECT gap FROM ({ranked}) WHERE (r - 1) % {step} = 0 ORDER BY r"
    ).fetchnumpy()["gap"]
    return np.asarray(sample, dtype=float), step


def interarrival_fit(arrivals: Arrivals, max_gaps: int = MAX_FIT_GAPS) -> list[dict]:
    """Gamma and Weibull MLE fits with KS of the positive inter-arrival gaps (module doc)."""
    sample, step = positive_gaps(arrivals, max_gaps)
    out = fits.fit(sample, WINDOW_DISTS)
    for f in out:
        f["sampled"] = step > 1
    return out


def window_fits(
    arrivals: Arrivals,
    window_s: float = 600.0,
    max_gaps: int = MAX_WINDOW_GAPS,
    min_gaps: int = MIN_WINDOW_GAPS,
) -> pl.DataFrame:
    """Per-window gap count, mean, CV and Gamma / Weibull fits with KS (one row per window)."""
    windows = int((arrivals.last - arrivals.first) // window_s) + 1
    placed = (
        f"SELECT gap, t, least(greatest({arrivals.bin_of(window_s)}, 0), {windows - 1}) AS w "
        f"FROM ({arrivals.gaps_sql()}) WHERE gap IS NOT NULL"
    )
    per = arrivals.con.execute(
        f"SELECT w, count(*) AS n, sum(gap) AS total, sum(gap * gap) AS squares FROM ({placed}) "
        "GROUP BY w ORDER BY w"
    ).fetchnumpy()
    ids = np.asarray(per["w"], dtype=np.int64)
    sizes = np.asarray(per["n"], dtype=np.int64)
    total = np.asarray(per["total"], dtype=float)
    mean = total / sizes
    var = (np.asarray(per["squares"], dtype=float) - total * mean) / np.maximum(sizes - 1, 1)
    frame = pl.DataFrame(
        {
            "t_s": arrivals.first + window_s * ids,
            "gaps": sizes,
            "mean_s": mean,
            "cv": np.where(sizes > 1, np.sqrt(np.maximum(var, 0.0)) / mean, np.nan),
        }
    )
    step = _systematic(sizes.astype(float), max_gaps)
    arrivals.con.register("planner_window_steps", {"w": ids, "step": step})
    try:
        picked = arrivals.con.execute(
            "SELECT p.w, p.gap FROM (SELECT w, gap, row_number() OVER (PARTITION BY w "
            f"ORDER BY t, gap DESC) AS r FROM ({placed})) p JOIN planner_window_steps s USING (w) "
            "WHERE (p.r - 1) % s.step = 0 ORDER BY p.w, p.r"
        ).fetchnumpy()
    finally:
        arrivals.con.unregister("planner_window_steps")
    group = np.searchsorted(ids, np.asarray(picked["w"], dtype=np.int64))
    picked = np.asarray(picked["gap"], dtype=float)
    positive = picked > 0
    enough = np.bincount(group[positive], minlength=ids.size) >= min_gaps
    keep = positive & enough[group]
    if not keep.any():
        return frame
    res = fits.fit_groups(picked[keep], group[keep], WINDOW_DISTS)
    columns = {"fitted_gaps": np.full(ids.size, np.nan)}
    columns["fitted_gaps"][res["group"]] = res["n"]
    for d in WINDOW_DISTS:
        for key, name in (
            ("p1", fits.PARAM_NAMES[d][0]),
            ("p2", fits.PARAM_NAMES[d][1]),
            ("ks", "ks"),
        ):
            col = np.full(ids.size, np.nan)
            col[res["group"]] = res[f"{d}_{key}"]
            columns[f"{d}_{name}"] = col
    return frame.with_columns(pl.Series(k, v).fill_nan(None) for k, v in columns.items())


def window_fit_summary(frame: pl.DataFrame, window_s: float) -> dict:
    """Medians and spread of the per-window fits, and which distribution fits better how often."""
    out: dict = {"window_s": window_s, "windows": frame.height}
    if "gamma_ks" not in frame.columns:
        return {**out, "fitted": 0}
    done = frame.filter(pl.col("gamma_ks").is_not_null())
    out["fitted"] = done.height
    out["cv"] = _pcts(done["cv"])
    for d in WINDOW_DISTS:
        out[d] = {"shape": _pcts(done[f"{d}_shape"]), "ks": _pcts(done[f"{d}_ks"])}
    out["better_fit"] = {
        "gamma": int((done["gamma_ks"] <= done["weibull_ks"]).sum()),
        "weibull": int((done["gamma_ks"] > done["weibull_ks"]).sum()),
    }
    return out


def _pcts(series: pl.Series) -> dict:
    """p10 / p50 / p90 of a column (linear interpolation; nulls and NaN ignored)."""
    values = series.drop_nulls().drop_nans().to_numpy()
    if values.size == 0:
        return {"p10": None, "p50": None, "p90": None}
    qs = np.quantile(values, (0.1, 0.5, 0.9))
    return {"p10": num(qs[0]), "p50": num(qs[1]), "p90": num(qs[2])}


def diurnal_profile(arrivals: Arrivals, start_epoch_s: float | None) -> dict | None:
    """Mean rate per hour of day (UTC when the absolute start is known) if the span is ≥ 2 days."""
    if arrivals.count < 2 or arrivals.last - arrivals.first < 2 * 86400:
        return None
    offset = (start_epoch_s or 0.0) + arrivals.first
    counts = bin_counts(arrivals, 3600.0)
    hours = ((offset // 3600 + np.arange(counts.size)) % 24).astype(np.int64)
    by_hour = np.bincount(hours, weights=counts, minlength=24) / np.maximum(
        np.bincount(hours, minlength=24), 1
    )
    by_hour = by_hour / 3600.0
    return {
        "clock": "UTC" if start_epoch_s is not None else "hours from trace start",
        "rate_rps_by_hour": [num(v) for v in by_hour],
        "peak_hour": int(by_hour.argmax()),
        "trough_hour": int(by_hour.argmin()),
        "peak_to_trough": num(by_hour.max() / by_hour.min()) if by_hour.min() > 0 else None,
    }


def burstiness(
    arrivals: Arrivals, window_s: float = 600.0, start_epoch_s: float | None = None
) -> dict:
    """Rates, inter-arrival statistics and fits (overall and per window) of a trace's arrivals."""
    if arrivals.count < 2:
        raise PlannerError(
            f"the trace has {arrivals.count} request(s); burstiness needs at least 2 arrivals"
        )
    per_bin = rates(arrivals)
    gaps = interarrival_stats(arrivals)
    return {
        "rate_per_s": next((r for r in per_bin if r["bin_s"] == 1.0), None),
        "rates": per_bin,
        "interarrival_cv": gaps["cv"],
        "interarrival": gaps,
        "interarrival_fits": interarrival_fit(arrivals),
        "interarrival_windows": window_fit_summary(window_fits(arrivals, window_s), window_s),
        "diurnal": diurnal_profile(arrivals, start_epoch_s),
    }


def rate_window_summary(con: duckdb.DuckDBPyConnection, trace_id: int, top: int = 10) -> dict:
    """Summary of a pre-aggregated (ServeGen-style) trace: total rate, given CVs and fits.

    The rate is the sum over series per window start (req/s). CV figures cover windows with
    traffic (rate > 0); ``weighted_mean`` weights each window's CV by its requests.
    """
    total = con.execute(
        "SELECT sum(rate_rps) AS r FROM rate_windows WHERE trace_id = ? "
        "GROUP BY window_start_s ORDER BY window_start_s",
        [trace_id],
    ).fetchnumpy()["r"]
    if total.size == 0:
        raise PlannerError("the trace has no rate windows")
    (series, windows, window_s, cv_p10, cv_p50, cv_p90, cv_wmean) = rows(
        con,
        """SELECT count(DISTINCT series), count(*), min(window_s),
                  quantile_cont(cv, 0.1) FILTER (rate_rps > 0),
                  quantile_cont(cv, 0.5) FILTER (rate_rps > 0),
                  quantile_cont(cv, 0.9) FILTER (rate_rps > 0),
                  sum(cv * requests) FILTER (rate_rps > 0) / sum(requests) FILTER (rate_rps > 0)
           FROM rate_windows WHERE trace_id = ?""",
        [trace_id],
    )[0]
    dists = rows(
        con,
        """SELECT coalesce(dist, 'none'), count(*), median(p1), median(p2)
           FROM rate_windows WHERE trace_id = ? AND rate_rps > 0
           GROUP BY 1 ORDER BY 2 DESC""",
        [trace_id],
    )
    rate = summary(np.asarray(total, dtype=float))
    return {
        "series": series,
        "windows": windows,
        "window_s": window_s,
        "rate_per_window": {**rate, "peak_to_mean": num(rate["max"] / rate["mean"])},
        "cv": {
            "p10": num(cv_p10),
            "p50": num(cv_p50),
            "p90": num(cv_p90),
            "weighted_mean": num(cv_wmean),
        },
        "dists": [
            {"dist": d, "windows": n, "p1_median": num(p1), "p2_median": num(p2)}
            for d, n, p1, p2 in dists
        ],
        "top_series": _top_series(con, trace_id, top),
    }


def _top_series(con: duckdb.DuckDBPyConnection, trace_id: int, top: int) -> list[dict]:
    """The `top` series of a rate-window trace by requests, with their rates and CV."""
    by_series = rows(
        con,
        """SELECT series, count(*), sum(requests), avg(rate_rps), max(rate_rps),
                  median(cv) FILTER (rate_rps > 0), mode(dist)
           FROM rate_windows WHERE trace_id = ?
           GROUP BY series ORDER BY sum(requests) DESC NULLS LAST, series LIMIT ?""",
        [trace_id, top],
    )
    return [
        {
            "series": s,
            "windows": w,
            "requests": num(r),
            "mean_rps": num(m),
            "max_rps": num(x),
            "cv_p50": num(c),
            "dist": d,
        }
        for s, w, r, m, x, c, d in by_series
    ]
