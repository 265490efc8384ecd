"""Pareto frontier of candidate plans: cost per 1M tokens against p99 latency (both minimised)."""

from collections.abc import Collection, Sequence

import numpy as np

from planner.optimize.costing import per_mtok, rounded
from planner.optimize.goodput import Evaluation


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


def frontier_rows(
    evaluations: Sequence[Evaluation],
    chosen: Collection[tuple[str, int]],
    tokens: np.ndarray,
    names: Sequence[str],
) -> list[dict]:
    """PLAN.json's frontier: every simulated candidate with its cost per 1M tokens, latency and
    Pareto flag; `chosen` holds the (plan id, bucket) pairs the recommended fleet runs.

    The flag is computed on the rounded figures PLAN.json and the chart show, so a point the
    reader sees on the frontier is flagged on it.
    """
    rows = [_row(ev, chosen, tokens, names) for ev in evaluations]
    for b in range(len(names)):
        idx = [i for i, ev in enumerate(evaluations) if ev.bucket == b]
        cost = np.array([rows[i]["cost_per_mtok"] or np.nan for i in idx], dtype=float)
        lat = np.array([rows[i]["ttft_p99_ms"] or np.nan for i in idx], dtype=float)
        for i, on in zip(idx, pareto_mask(cost, lat), strict=True):
            rows[i]["pareto"] = bool(on)
    return sorted(
        rows,
        key=lambda r: (r.get("bucket", ""), r["cost_per_mtok"] is None, r["cost_per_mtok"] or 0),
    )


def _row(
    ev: Evaluation, chosen: Collection[tuple[str, int]], tokens: np.ndarray, names: Sequence[str]
) -> dict:
    """One frontier point (before its Pareto flag)."""
    cand = ev.candidate
    return (
        {"id": cand.id}
        | cand.describe()
        | {
            "goodput_rps": round(ev.goodput_rps, 4),
            "cost_per_hour": round(cand.cost_per_hour, 4),
            "cost_per_mtok": rounded(
                per_mtok(cand.cost_per_hour, ev.goodput_rps, tokens[ev.bucket])
            ),
            "ttft_p99_ms": rounded(ev.ttft_p99_ms),
            "tpot_p99_ms": rounded(ev.tpot_p99_ms),
            "pooled_replicas": ev.replicas,
            "chosen": (cand.id, ev.bucket) in chosen,
        }
        | ({"bucket": names[ev.bucket]} if names[ev.bucket] != "all" else {})
    )
