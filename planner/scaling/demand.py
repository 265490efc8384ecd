"""Demand to plan for: the trace's request rate per interval and its forecast quantiles.

The forecast comes from planner.forecast's methods (a point path plus conformal quantiles):
the robust seasonal profile when the history holds the two days it needs, else the recent
level. A forecast can start at any interval of the trace, which is what the held-back replay
needs: forecast the last part of the trace from what came before it, then replay that part.
"""

from dataclasses import dataclass

import duckdb
import numpy as np

from planner.errors import PlannerError
from planner.forecast.methods import (
    DEFAULT_METHOD,
    FALLBACK_METHOD,
    METHODS,
    QUANTILE_NAMES,
    quantile_forecast,
)
from planner.forecast.series import read_series

REPORTED = ("p10", "p50", "p90", "p95", "p99")


@dataclass(frozen=True)
class DemandSeries:
    """Requests/s per interval of a trace (NaN where the source has a collection gap)."""

    interval_s: int
    rps: np.ndarray

    @property
    def steps_per_day(self) -> int:
        """Intervals in one day."""
        return max(86_400 // self.interval_s, 1)


@dataclass(frozen=True)
class DemandForecast:
    """Forecast requests/s per interval from `origin_s` (seconds from the trace start)."""

    origin_s: float
    interval_s: int
    method: str
    quantiles: dict[str, np.ndarray]

    @property
    def times(self) -> np.ndarray:
        """Start of each forecast interval."""
        steps = len(next(iter(self.quantiles.values())))
        return self.origin_s + self.interval_s * np.arange(steps, dtype=float)

    def level(self, quantile: str) -> np.ndarray:
        """The forecast at one quantile ('p95')."""
        if quantile not in self.quantiles:
            known = ", ".join(self.quantiles)
            raise PlannerError(f"--quantile {quantile!r}: choose one of {known}")
        return self.quantiles[quantile]

    def points(self) -> list[dict[str, float]]:
        """PLAN.json forecast points: t and the reported quantiles (requests/s)."""
        return [
            {"t": float(t)} | {q: round(float(self.quantiles[q][i]), 5) for q in REPORTED}
            for i, t in enumerate(self.times)
        ]


def demand_series(
    con: duckdb.DuckDBPyConnection, trace: str, interval: str, rate_scale: float = 1.0
) -> DemandSeries:
    """The trace's total requests/s per interval, times `rate_scale`."""
    if not rate_scale > 0:
        raise PlannerError(f"--rate-scale {rate_scale}: must be positive")
    series = read_series(con, trace, interval, total=True)
    return DemandSeries(series.freq_s, series.requests[0] / series.freq_s * rate_scale)


def forecast_demand(demand: DemandSeries, upto: int, steps: int) -> DemandForecast:
    """Quantile forecast of `steps` intervals after the first `upto` intervals of `demand`."""
    history = demand.rps[:upto]
    period = demand.steps_per_day
    method = METHODS[DEFAULT_METHOD]
    if not method.available(len(history), period):
        method = METHODS[FALLBACK_METHOD]
    if not method.available(len(history), period):
        raise PlannerError(
            f"the trace has {len(history)} interval(s) of {demand.interval_s} s before the "
            "forecast origin; planning needs at least two"
        )
    q = quantile_forecast(method, history, steps, period)
    return DemandForecast(
        origin_s=float(upto * demand.interval_s),
        interval_s=demand.interval_s,
        method=method.name,
        quantiles={name: q[i] for i, name in enumerate(QUANTILE_NAMES)},
    )
