"""Brute-force oracle for the accelerator mix (planner/optimize/mix.py), written apart from it.

It solves the same problem as `solve_mix` by enumeration, with none of the solver's code: the
least-cost replica counts x[o][b] (plan option o serving length bucket b) such that every bucket
is covered, sum_o goodput[o][b] * x[o][b] >= demand[b] (a rate below MIN_DEMAND req/s counts
as none, as mix.py documents), GPUs per accelerator stay within `available` and the cost per
hour within the budget.

Its own bounds: since cost, GPUs and budget only grow with the counts, some optimum covers each
bucket with a minimal vector (no single replica can be removed without leaving the bucket
short), and a minimal vector holds at most ceil(demand / goodput) replicas of an option.
So it enumerates, per bucket, the minimal covering vectors, then every combination across
buckets, and keeps the cheapest that meets the limits. Small instances only.

For `solve_day_mix` (one bucket, demand levels over a day) it enumerates every mix that serves
the highest level within the limits and, for each level, every fleet the mix can scale down to.
"""

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from planner.optimize.mix import MIN_DEMAND, MixOption

COVER_RTOL = 1e-9
LIMIT_ATOL = 1e-9


@dataclass(frozen=True)
class OracleMix:
    """The cheapest counts found: counts[o][b] and their cost per hour."""

    counts: tuple[tuple[int, ...], ...]
    cost_per_hour: float


def _minimal_covers(rates: Sequence[float], need: float) -> list[tuple[int, ...]]:
    """Every count vector over the options that covers `need` at `rates` per replica and
    loses that cover when any one replica is removed (only the zero vector when nothing is
    needed)."""
    if need < MIN_DEMAND:
        return [tuple(0 for _ in rates)]
    ranges = [range(math.ceil(need / r) + 1) if r > 0 else range(1) for r in rates]
    floor = need * (1 - COVER_RTOL)
    covers = []
    for counts in itertools.product(*ranges):
        served = sum(c * r for c, r in zip(counts, rates, strict=True))
        if served < floor:
            continue
        if all(served - r < floor for c, r in zip(counts, rates, strict=True) if c > 0):
            covers.append(counts)
    return covers


def _within(
    options: Sequence[MixOption], replicas: Sequence[int], available: Mapping[str, int] | None
) -> bool:
    """Whether `replicas` of each option use no more GPUs of any type than `available`."""
    gpus: dict[str, int] = {}
    for n, o in zip(replicas, options, strict=True):
        gpus[o.accelerator] = gpus.get(o.accelerator, 0) + n * o.gpus
    return all(used <= (available or {}).get(acc, used) for acc, used in gpus.items())


def brute_force_mix(
    options: Sequence[MixOption],
    demand: Sequence[float],
    available: Mapping[str, int] | None = None,
    budget_per_hour: float | None = None,
) -> OracleMix | None:
    """The least-cost mix by enumeration, or None when no mix meets the demand and limits."""
    demand = [float(d) for d in demand]
    per_bucket = [
        _minimal_covers([float(o.goodput[b]) for o in options], need)
        for b, need in enumerate(demand)
    ]
    best: OracleMix | None = None
    for choice in itertools.product(*per_bucket):
        replicas = [sum(bucket[o] for bucket in choice) for o in range(len(options))]
        cost = sum(n * o.cost_per_hour for n, o in zip(replicas, options, strict=True))
        if budget_per_hour is not None and cost > budget_per_hour + LIMIT_ATOL:
            continue
        if not _within(options, replicas, available):
            continue
        if best is None or cost < best.cost_per_hour:
            counts = tuple(tuple(bucket[o] for bucket in choice) for o in range(len(options)))
            best = OracleMix(counts, cost)
    return best


def _cheapest_within(options: Sequence[MixOption], mix: Sequence[int], need: float) -> float:
    """The least cost per hour of replicas, at most `mix`'s of each option, serving `need`
    (none below MIN_DEMAND)."""
    if need < MIN_DEMAND:
        return 0.0
    best = math.inf
    floor = need * (1 - COVER_RTOL)
    for counts in itertools.product(*(range(n + 1) for n in mix)):
        served = sum(c * o.goodput[0] for c, o in zip(counts, options, strict=True))
        if served >= floor:
            best = min(best, sum(c * o.cost_per_hour for c, o in zip(counts, options, strict=True)))
    return best


def day_cost(
    options: Sequence[MixOption],
    mix: Sequence[int],
    levels: Sequence[float],
    weights: Sequence[float],
) -> float:
    """Mean cost per hour of `mix` scaled to each demand level (weights: share of the day)."""
    return sum(w * _cheapest_within(options, mix, d) for d, w in zip(levels, weights, strict=True))


def brute_force_day_mix(
    options: Sequence[MixOption],
    levels: Sequence[float],
    weights: Sequence[float],
    available: Mapping[str, int] | None = None,
    plans: int = 2,
) -> tuple[float, float] | None:
    """(least day cost, least cost of a mix at that day cost) by enumerating every mix of at
    most `plans` plans that serves the highest level within `available` (one bucket), or None
    when none does."""
    peak = max(levels)
    if peak < MIN_DEMAND:
        return None
    ranges = [
        range(math.ceil(peak / o.goodput[0]) + 1) if o.goodput[0] > 0 else range(1) for o in options
    ]
    best: tuple[float, float] | None = None
    for mix in itertools.product(*ranges):
        if sum(n > 0 for n in mix) > plans:
            continue
        if not _within(options, mix, available):
            continue
        cost = day_cost(options, mix, levels, weights)
        if math.isinf(cost):
            continue
        own = sum(n * o.cost_per_hour for n, o in zip(mix, options, strict=True))
        if (
            best is None
            or cost < best[0] - LIMIT_ATOL
            or (cost <= best[0] + LIMIT_ATOL and own < best[1])
        ):
            best = (cost, own)
    return best
