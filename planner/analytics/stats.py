"""Small shared pieces of the analytics: quantile summaries and JSON-safe numbers."""

import math

import duckdb
import numpy as np
import polars as pl

from planner.errors import PlannerError

QUANTILES = (0.5, 0.9, 0.99)


def num(value: float | int | None, digits: int = 6) -> float | None:
    """A JSON-safe float rounded to `digits` significant digits (None for NaN / missing)."""
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    if value == 0:
        return 0.0
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def summary(values: np.ndarray, quantiles: tuple[float, ...] = (0.5, 0.99)) -> dict:
    """mean, pNN (linear interpolation, as numpy and DuckDB quantile_cont) and max of values."""
    out = {"mean": num(values.mean())}
    qs = np.quantile(values, quantiles)
    out.update({f"p{round(q * 100)}": num(v) for q, v in zip(quantiles, qs, strict=True)})
    out["max"] = num(values.max())
    return out


def weighted_quantiles(
    values: np.ndarray, weights: np.ndarray, quantiles: tuple[float, ...] = QUANTILES
) -> np.ndarray:
    """Quantiles of a weighted discrete distribution (inverted CDF, as DuckDB quantile_disc).

    `values` must be sorted ascending; the q-quantile is the smallest value whose cumulative
    weight share reaches q.
    """
    cum = np.cumsum(weights)
    share = cum / cum[-1]
    idx = np.searchsorted(share, np.asarray(quantiles) - 1e-12, side="left")
    return values[np.minimum(idx, values.size - 1)]


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    """All rows of a query (always fully consumed, so the connection is free afterwards)."""
    try:
        return con.execute(sql, params or []).fetchall()
    except duckdb.Error as exc:
        raise PlannerError(f"analysis query failed: {str(exc).splitlines()[0]}") from None


def frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    """A query's result as a polars DataFrame (fully consumed)."""
    try:
        return con.sql(sql, params=params or []).pl()
    except duckdb.Error as exc:
        raise PlannerError(f"analysis query failed: {str(exc).splitlines()[0]}") from None
