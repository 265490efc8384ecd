"""Demand to plan for: the trace's request rate per interval and its forecast quantiles.

The forecast is planner.forecast's public `forecast_model` on the trace's total series with
method auto-selection (the method with the best backtest over the history's last origins; the
recent level when the history is shorter than the seasonal methods need). `end=` starts it at
any interval of the trace, which is what the held-back replay needs: forecast the last part of
the trace from what came before it, then replay that part.
"""

from dataclasses import dataclass

import duckdb
import numpy as np

from planner.errors import PlannerError
from planner.forecast import AUTO, forecast_model, format_duration, read_series

REPORTED = ("p10", "p50", "p90", "p95", "p99")
MIN_HISTORY = 2


@dataclass(frozen=True)
class DemandSeries:
    """Requests/s per interval of a trace, times `rate_scale` (NaN where the source has a gap)."""

    trace: str
    interval_s: int
    rps: np.ndarray
    rate_scale: float = 1.0


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
    series = read_series(con, trace, interval, total=True, freq_option="--interval")
    rps = series.requests[0] / series.freq_s * rate_scale
    return DemandSeries(series.trace, series.freq_s, rps, rate_scale)


def forecast_demand(
    con: duckdb.DuckDBPyConnection,
    demand: DemandSeries,
    upto: int,
    steps: int,
    method: str = AUTO,
) -> DemandForecast:
    """Quantile forecast (requests/s) of `steps` intervals after the first `upto` of `demand`."""
    if upto < MIN_HISTORY:
        raise PlannerError(
            f"the trace has {upto} interval(s) of {demand.interval_s} s before the "
            f"forecast origin; planning needs at least {MIN_HISTORY}"
        )
    result = forecast_model(
        con,
        demand.trace,
        freq=format_duration(demand.interval_s),
        horizon=format_duration(steps * demand.interval_s),
        method=method,
        total=True,
        end=upto * demand.interval_s,
        freq_option="--interval",
    )
    (series,) = result.series
    per_s = demand.rate_scale / demand.interval_s
    return DemandForecast(
        origin_s=result.origin_s,
        interval_s=demand.interval_s,
        method=series.method,
        quantiles={q: values * per_s for q, values in series.quantiles.items()},
    )
