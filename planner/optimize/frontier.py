"""Pareto frontier of candidate plans: cost per 1M tokens against p99 latency (both minimised)."""

import numpy as np


def pareto_mask(cost: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """True for points no other point beats on both axes (NaN points are never on it)."""
    cost, latency = np.asarray(cost, dtype=float), np.asarray(latency, dtype=float)
    valid = np.isfinite(cost) & np.isfinite(latency)
    c, lat = cost[:, None], latency[:, None]
    dominated = (
        (cost[None, :] <= c)
        & (latency[None, :] <= lat)
        & ((cost[None, :] < c) | (latency[None, :] < lat))
        & valid[None, :]
    )
    return valid & ~dominated.any(axis=1)
