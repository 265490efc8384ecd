"""Forecasting: demand series, methods with calibrated quantiles, and the rolling-origin backtest.

- ``series.py``   requests (and token sums) per interval from the store: ``load_series``
- ``methods.py``  the methods (``METHODS``) and the shared conformal quantile step
- ``backtest.py`` the forecast backtest: rolling origins, MASE, pinball, coverage, auto-selection
- ``forecast.py`` ``forecast_model`` (arrays) / ``forecast_trace`` (JSON): quantile forecasts
  per series with the token mix
- ``tokens.py``   the token-mix forecast (per-request input / output length quantiles)
"""

from planner.forecast.backtest import backtest_trace
from planner.forecast.forecast import AUTO, TraceForecast, forecast_model, forecast_trace
from planner.forecast.methods import LEVELS, METHODS, QUANTILE_NAMES, Method
from planner.forecast.series import format_duration, load_series, read_series

__all__ = [
    "AUTO",
    "LEVELS",
    "METHODS",
    "QUANTILE_NAMES",
    "Method",
    "TraceForecast",
    "backtest_trace",
    "forecast_model",
    "forecast_trace",
    "format_duration",
    "load_series",
    "read_series",
]
