"""Costing: US$ per hour, per month and per 1M tokens, and savings, one definition each.

A month is HOURS_PER_MONTH hours everywhere (budgets, PLAN.json, the report). Prices are per
GPU-hour (datasets/accelerators.toml or --prices); a fleet's cost per hour is the sum of its
replicas' prices.
"""

import numpy as np

HOURS_PER_MONTH = 730.0


def per_month(cost_per_hour: float) -> float:
    """US$ per month of a cost per hour."""
    return cost_per_hour * HOURS_PER_MONTH


def per_mtok(cost_per_hour: float, rps: float, tokens: float) -> float:
    """US$ per 1M tokens at a cost per hour and a served rate (NaN when nothing is served)."""
    return cost_per_hour / (rps * tokens * 3600.0 / 1e6) if rps > 0 and tokens > 0 else float("nan")


def mean_cost(cost_per_hour: np.ndarray) -> float:
    """Mean of a cost per hour over intervals (0 over none)."""
    return float(cost_per_hour.mean()) if len(cost_per_hour) else 0.0


def saving(base: float, cost: float) -> tuple[float, float]:
    """What `cost` saves against `base` (same unit): in dollars and as a share of `base`
    (NaN when `base` is 0)."""
    delta = base - cost
    return delta, delta / base if base else float("nan")


def rounded(value: float | None, digits: int = 4) -> float | None:
    """A PLAN.json figure (a cost, rate or latency) rounded; None for missing or non-finite."""
    return round(float(value), digits) if value is not None and np.isfinite(value) else None
