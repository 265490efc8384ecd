"""Token lengths: quantiles, LogNormal fits, the input→output relation and prefix-cache reuse.

Token figures cover successful requests (``ok``; BurstGPT marks failures with 0 response
tokens). Quantiles are those of the discrete distribution (inverted CDF, DuckDB
``quantile_disc``), computed exactly from the per-value histogram that one GROUP BY yields.
LogNormal fits are the MLE over requests with at least one token, and their KS statistic is
exact, taken over the histogram (sup over every observed value of |Fₙ − F| on both sides).
For rate-window traces the lengths come from the source's PMFs (ServeGen ``dataset.json``),
each (series, 6-hour window) weighted by its requests in that window.
"""

import duckdb
import numpy as np
import polars as pl

from planner.analytics.fits import cdf, lognormal_mle, moments
from planner.analytics.stats import QUANTILES, frame, num, rows, weighted_quantiles
from planner.errors import PlannerError

WHICH = ("input", "output")


def token_histogram(con: duckdb.DuckDBPyConnection, trace_id: int) -> pl.DataFrame:
    """Successful requests per token count: columns which (input/output), tokens, requests."""
    hist = frame(
        con,
        """SELECT 'input' AS which, input_tokens AS tokens, count(*) AS requests
           FROM requests WHERE trace_id = $1 AND ok AND input_tokens IS NOT NULL GROUP BY ALL
           UNION ALL
           SELECT 'output', output_tokens, count(*)
           FROM requests WHERE trace_id = $1 AND ok AND output_tokens IS NOT NULL GROUP BY ALL""",
        [trace_id],
    )
    return hist.sort("which", "tokens")


def pmf_histogram(con: duckdb.DuckDBPyConnection, trace_id: int) -> pl.DataFrame:
    """Request-weighted mixture of a rate-window trace's length PMFs (columns as above)."""
    return frame(
        con,
        """WITH w AS (
               SELECT series, floor(window_start_s / 21600) AS slot, sum(requests) AS n
               FROM rate_windows WHERE trace_id = $1 GROUP BY ALL)
           SELECT replace(which, '_tokens', '') AS which, tokens,
                  sum(prob * coalesce(w.n, 0)) AS requests
           FROM length_dists d
           LEFT JOIN w ON w.series = d.series AND w.slot = floor(d.window_start_s / 21600)
           WHERE d.trace_id = $1 GROUP BY ALL HAVING sum(prob * coalesce(w.n, 0)) > 0
           ORDER BY which, tokens""",
        [trace_id],
    )


def ks_histogram(values: np.ndarray, weights: np.ndarray, dist: str, p1: float, p2: float) -> float:
    """Exact KS statistic of a weighted sample (sorted distinct values) against a fitted CDF."""
    cum = np.cumsum(weights) / weights.sum()
    f = cdf(dist, values, np.full(values.size, p1), np.full(values.size, p2))
    return float(np.max(np.maximum(cum - f, f - np.r_[0.0, cum[:-1]])))


def lognormal_fit(values: np.ndarray, weights: np.ndarray) -> dict | None:
    """LogNormal MLE with exact KS of a weighted positive sample; None when fewer than 2 values."""
    keep = values > 0
    values, weights = values[keep].astype(float), weights[keep].astype(float)
    if weights.sum() < 2:
        return None
    logs = np.log(values)
    n = weights.sum()
    mu, sigma = lognormal_mle(
        np.array([n]), np.array([(weights * logs).sum()]), np.array([(weights * logs**2).sum()])
    )[0]
    mean, sd = moments("lognormal", mu, sigma)
    return {
        "dist": "lognormal",
        "params": {"mu": float(mu), "sigma": float(sigma)},
        "ks": ks_histogram(values, weights, "lognormal", mu, sigma),
        "n": num(n),
        "mean": mean,
        "sd": sd,
    }


def length_summary(hist: pl.DataFrame) -> dict:
    """Per which (input/output): quantiles, mean, max, count and a LogNormal fit."""
    out: dict = {}
    for which in WHICH:
        part = hist.filter(pl.col("which") == which)
        if part.is_empty():
            out[f"{which}_tokens"] = None
            continue
        values = part["tokens"].to_numpy().astype(float)
        weights = part["requests"].to_numpy().astype(float)
        qs = weighted_quantiles(values, weights, QUANTILES)
        out[f"{which}_tokens"] = {
            **{f"p{round(q * 100)}": num(v) for q, v in zip(QUANTILES, qs, strict=True)},
            "max": num(values.max()),
            "mean": num((values * weights).sum() / weights.sum()),
            "requests": num(weights.sum()),
            "fit": lognormal_fit(values, weights),
        }
    return out


def length_quantiles(con: duckdb.DuckDBPyConnection, trace_id: int, kind: str = "requests") -> dict:
    """Token-length summary of a trace; a PlannerError when it has no token counts."""
    hist = token_histogram(con, trace_id) if kind == "requests" else pmf_histogram(con, trace_id)
    if hist.is_empty():
        raise PlannerError("the trace has no token counts (no input/output token columns)")
    return length_summary(hist)


def io_relation(con: duckdb.DuckDBPyConnection, trace_id: int) -> list[dict]:
    """Output tokens against input tokens: per power-of-two input bin, requests, mean input
    and output p50 / p90 (discrete quantiles, from one (bin, output) histogram)."""
    hist = frame(
        con,
        """SELECT floor(log2(greatest(input_tokens, 1)))::INTEGER AS b, output_tokens AS o,
                  count(*) AS n, sum(input_tokens) AS i
           FROM requests
           WHERE trace_id = ? AND ok AND input_tokens IS NOT NULL AND output_tokens IS NOT NULL
           GROUP BY ALL""",
        [trace_id],
    )
    if hist.is_empty():
        return []
    share = pl.col("n").cum_sum().over("b") / pl.col("n").sum().over("b")
    bins = (
        hist.sort("b", "o")
        .with_columns(share.alias("share"))
        .group_by("b")
        .agg(
            pl.col("n").sum().alias("requests"),
            (pl.col("i").sum() / pl.col("n").sum()).alias("input_mean"),
            pl.col("o").filter(pl.col("share") >= 0.5 - 1e-12).first().alias("output_p50"),
            pl.col("o").filter(pl.col("share") >= 0.9 - 1e-12).first().alias("output_p90"),
        )
        .sort("b")
    )
    return [
        {
            "input_from": 0 if r["b"] == 0 else 2 ** r["b"],
            "input_to": 2 ** (r["b"] + 1),
            "requests": r["requests"],
            "input_mean": num(r["input_mean"]),
            "output_p50": num(r["output_p50"]),
            "output_p90": num(r["output_p90"]),
        }
        for r in bins.iter_rows(named=True)
    ]


def prefix_reuse(
    con: duckdb.DuckDBPyConnection, trace_id: int, block_tokens: int = 512
) -> dict | None:
    """Share of prefix blocks that repeat an earlier request's block (None without hashes).

    Every distinct block hash is new exactly once; every later occurrence is a reuse, so the
    reuse share is 1 − distinct / total, the hit ratio of an unbounded prefix cache.
    """
    total, distinct, with_blocks = rows(
        con,
        """SELECT count(*), count(DISTINCT h), count(DISTINCT rid) FROM (
               SELECT row_number() OVER () AS rid, unnest(prefix_blocks) AS h
               FROM requests WHERE trace_id = ? AND prefix_blocks IS NOT NULL)""",
        [trace_id],
    )[0]
    if not total:
        return None
    return {
        "requests_with_blocks": with_blocks,
        "blocks": total,
        "distinct_blocks": distinct,
        "reused_blocks": total - distinct,
        "reuse_share": num((total - distinct) / total),
        "block_tokens": block_tokens,
        "reused_tokens_approx": (total - distinct) * block_tokens,
    }
