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
  k-th gap in time order) of that size. Per-window fits (default 10 min) do the same with at
  most 500 gaps per window and need at least 50 positive gaps; a gap belongs to the window
  of its later arrival.
"""

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


def load_arrivals(con: duckdb.DuckDBPyConnection, trace_id: int) -> np.ndarray:
    """A trace's arrival times in seconds, sorted ascending."""
    arrivals = con.execute(
        "SELECT arrival_s FROM requests WHERE trace_id = ?", [trace_id]
    ).fetchnumpy()["arrival_s"]
    arrivals = np.asarray(arrivals, dtype=float)
    if arrivals.size > 1 and not np.all(arrivals[1:] >= arrivals[:-1]):
        arrivals = np.sort(arrivals)
    return arrivals


def bin_counts(arrivals: np.ndarray, bin_s: float) -> np.ndarray:
    """Requests per whole bin of `bin_s` seconds from the first arrival (sorted arrivals)."""
    if arrivals.size == 0:
        return np.zeros(0, dtype=np.int64)
    bins = int((arrivals[-1] - arrivals[0]) // bin_s)
    edges = arrivals[0] + bin_s * np.arange(bins + 1)
    return np.diff(np.searchsorted(arrivals, edges, side="left"))


def arrival_counts(con: duckdb.DuckDBPyConnection, trace_id: int, bin_s: float) -> pl.DataFrame:
    """Requests per whole bin: columns t_s (bin start, s from trace start), requests, rate_rps."""
    arrivals = load_arrivals(con, trace_id)
    counts = bin_counts(arrivals, bin_s)
    start = arrivals[0] if arrivals.size else 0.0
    return pl.DataFrame(
        {
            "t_s": start + bin_s * np.arange(counts.size, dtype=float),
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


def rates(arrivals: np.ndarray, resolutions_s: tuple[float, ...] = RESOLUTIONS_S) -> list[dict]:
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


def interarrival_stats(arrivals: np.ndarray) -> dict:
    """Count, mean, CV and zero (tied) gaps of the inter-arrival times."""
    gaps = np.diff(arrivals)
    mean = gaps.mean()
    return {
        "gaps": int(gaps.size),
        "mean_s": num(mean),
        "cv": num(gaps.std(ddof=1) / mean) if mean > 0 and gaps.size > 1 else None,
        "zero_gaps": int(np.count_nonzero(gaps == 0)),
    }


def interarrival_fit(arrivals: np.ndarray, max_gaps: int = MAX_FIT_GAPS) -> list[dict]:
    """Gamma and Weibull MLE fits with KS of the positive inter-arrival gaps (module doc)."""
    gaps = np.diff(arrivals)
    gaps = gaps[gaps > 0]
    step = int(_systematic(np.array([gaps.size]), max_gaps)[0])
    sample = gaps[::step]
    out = fits.fit(sample, WINDOW_DISTS)
    for f in out:
        f["sampled"] = step > 1
    return out


def window_fits(
    arrivals: np.ndarray,
    window_s: float = 600.0,
    max_gaps: int = MAX_WINDOW_GAPS,
    min_gaps: int = MIN_WINDOW_GAPS,
) -> pl.DataFrame:
    """Per-window gap count, mean, CV and Gamma / Weibull fits with KS (one row per window)."""
    gaps = np.diff(arrivals)
    windows = int((arrivals[-1] - arrivals[0]) // window_s) + 1
    edges = arrivals[0] + window_s * np.arange(windows + 1)
    bounds = np.searchsorted(arrivals[1:], edges, side="left")
    bounds[-1] = gaps.size
    sizes = np.diff(bounds)
    ids = np.flatnonzero(sizes)
    starts, sizes = bounds[ids], sizes[ids]
    total = np.add.reduceat(gaps, starts)
    mean = total / sizes
    var = (np.add.reduceat(gaps * gaps, starts) - total * mean) / np.maximum(sizes - 1, 1)
    frame = pl.DataFrame(
        {
            "t_s": arrivals[0] + window_s * ids,
            "gaps": sizes,
            "mean_s": mean,
            "cv": np.where(sizes > 1, np.sqrt(np.maximum(var, 0.0)) / mean, np.nan),
        }
    )
    step = _systematic(sizes.astype(float), max_gaps)
    taken = -(-sizes // step)
    offsets = np.arange(taken.sum()) - np.repeat(np.cumsum(taken) - taken, taken)
    picked = gaps[np.repeat(starts, taken) + offsets * np.repeat(step, taken)]
    group = np.repeat(np.arange(ids.size), taken)
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


def diurnal_profile(arrivals: np.ndarray, start_epoch_s: float | None) -> dict | None:
    """Mean rate per hour of day (UTC when the absolute start is known) if the span is ≥ 2 days."""
    if arrivals.size < 2 or arrivals[-1] - arrivals[0] < 2 * 86400:
        return None
    offset = (start_epoch_s or 0.0) + arrivals[0]
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
    arrivals: np.ndarray, window_s: float = 600.0, start_epoch_s: float | None = None
) -> dict:
    """Rates, inter-arrival statistics and fits (overall and per window) of sorted arrivals."""
    if arrivals.size < 2:
        raise PlannerError(
            f"the trace has {arrivals.size} request(s); burstiness needs at least 2 arrivals"
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
    by_series = rows(
        con,
        """SELECT series, count(*), sum(requests), avg(rate_rps), max(rate_rps),
                  median(cv) FILTER (rate_rps > 0), mode(dist)
           FROM rate_windows WHERE trace_id = ?
           GROUP BY series ORDER BY sum(requests) DESC NULLS LAST, series LIMIT ?""",
        [trace_id, top],
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
        "top_series": [
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
        ],
    }
