"""Accelerator mix: integer replica counts per plan that serve the demand at least cost (MILP).

Variables x[o, b] = replicas of plan option o serving length bucket b (one bucket when requests
are not split). Minimise sum(cost_o * x[o, b]) subject to
  sum_o goodput[o, b] * x[o, b] >= demand[b]                 for every bucket b,
  sum_o gpus_{o,a} * x[o, b] <= available[a]              for every limited accelerator a,
  sum cost_o * x[o, b] <= budget per hour                    when a budget is given,
  sum power_o * x[o, b] <= power budget (kW at TDP)          when a power budget is given.
Among mixes of that least cost a second solve takes the one with the most capacity (greatest
sum(goodput[o, b] * x[o, b])): the same money buys the most headroom. On the Mooncake trace that
is 2 x H100 TP2 (6.3 req/s) over 2 x TP1 + 1 x TP2 (5.4 req/s), which held 99.9 % of the
held-back requests against 28.9 % when its prompts grew. (Without it the solver returned
either, by the options' order.)
Solved with scipy.optimize.milp (HiGHS); tests/mix_oracle.py solves small instances by
enumeration, apart from this code, and is the oracle the tests compare it with.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

DEMAND_RTOL = 1e-9
TIE_RTOL = 1e-9
MIN_DEMAND = 1e-3
DAY_LEVELS = 8
DAY_PLANS = 2
DAY_GAP = 1e-7
DAY_SECONDS = 10.0


@dataclass(frozen=True)
class MixOption:
    """A plan as the mix sees it: accelerator, GPUs and price per replica, goodput per bucket,
    one replica's power at TDP (kW), and its GPUs per accelerator type when it spans two
    (prefill and decode on mixed hardware; `accelerator` is then 'h100+a100')."""

    key: str
    accelerator: str
    gpus: int
    cost_per_hour: float
    goodput: tuple[float, ...]
    power_kw: float = 0.0
    spans: tuple[tuple[str, int], ...] = ()

    def gpus_on(self) -> dict[str, int]:
        """GPUs per replica on each accelerator type."""
        return dict(self.spans) if self.spans else {self.accelerator: self.gpus}


@dataclass(frozen=True)
class Mix:
    """A solved mix: replica counts per (option, bucket) and the hourly cost."""

    options: tuple[MixOption, ...]
    counts: np.ndarray
    cost_per_hour: float

    def groups(self) -> list[tuple[MixOption, int, int]]:
        """(option, bucket, count) for every non-zero count, cheapest option first."""
        rows = [
            (self.options[o], int(b), int(self.counts[o, b]))
            for o, b in zip(*np.nonzero(self.counts), strict=True)
        ]
        return sorted(rows, key=lambda r: (r[1], r[0].cost_per_hour, r[0].key))

    def replicas(self) -> list[tuple[str, int, int]]:
        """(plan, bucket, count) of every group: what two mixes must share to be one fleet."""
        return [(option.key, b, count) for option, b, count in self.groups()]

    def gpus_by_accelerator(self) -> dict[str, int]:
        """GPUs used per accelerator type."""
        used: dict[str, int] = {}
        for option, _, count in self.groups():
            for acc, gpus in option.gpus_on().items():
                used[acc] = used.get(acc, 0) + gpus * count
        return used

    def capacity(self) -> np.ndarray:
        """Requests/s the mix serves per bucket."""
        return (_goodput(self.options) * self.counts).sum(axis=0)

    def power_kw(self) -> float:
        """The mix's power with every replica at TDP."""
        return float((self.counts.sum(axis=1) * [o.power_kw for o in self.options]).sum())


def _demand(demand: Sequence[float] | np.ndarray) -> np.ndarray:
    """Demand per bucket as floats, with rates below MIN_DEMAND req/s treated as none."""
    values = np.asarray(demand, dtype=float).ravel()
    return np.where(values < MIN_DEMAND, 0.0, values)


def _goodput(options: Sequence[MixOption]) -> np.ndarray:
    """(options, buckets) goodput matrix."""
    return np.array([o.goodput for o in options], dtype=float).reshape(len(options), -1)


def _upper_bounds(goodput: np.ndarray, demand: np.ndarray) -> np.ndarray:
    """Most replicas of an option a bucket could usefully take: enough to serve it alone."""
    need = np.divide(demand[None, :], goodput, out=np.zeros_like(goodput), where=goodput > 0)
    return np.where(goodput > 0, np.ceil(need * (1 - DEMAND_RTOL)), 0)


def _limits(
    options: Sequence[MixOption],
    available: Mapping[str, int] | None,
    budget_per_hour: float | None,
    buckets: int,
    power_kw: float | None = None,
) -> tuple[list[np.ndarray], list[float]]:
    """Rows (over flattened x) and right-hand sides of the availability, budget and power
    limits."""
    rows, rhs = [], []
    for acc, limit in (available or {}).items():
        gpus = np.array([o.gpus_on().get(acc, 0) for o in options], dtype=float)
        if gpus.any():
            rows.append(np.repeat(gpus, buckets))
            rhs.append(float(limit))
    if budget_per_hour is not None:
        rows.append(np.repeat([o.cost_per_hour for o in options], buckets).astype(float))
        rhs.append(float(budget_per_hour))
    if power_kw is not None:
        rows.append(np.repeat([o.power_kw for o in options], buckets).astype(float))
        rhs.append(float(power_kw))
    return rows, rhs


def solve_mix(
    options: Sequence[MixOption],
    demand: Sequence[float] | np.ndarray,
    available: Mapping[str, int] | None = None,
    budget_per_hour: float | None = None,
    power_kw: float | None = None,
) -> Mix | None:
    """The least-cost mix serving `demand` (requests/s per bucket), or None if none exists."""
    options = tuple(options)
    demand = _demand(demand)
    goodput = _goodput(options)
    if not options or goodput.shape[1] != demand.size:
        return None if demand.any() else Mix(options, np.zeros((len(options), demand.size)), 0.0)
    n_opt, n_b = goodput.shape
    ub = _upper_bounds(goodput, demand)
    cost = np.repeat([o.cost_per_hour for o in options], n_b).astype(float)
    cover = np.zeros((n_b, n_opt * n_b))
    for b in range(n_b):
        cover[b, b::n_b] = goodput[:, b]
    constraints = [LinearConstraint(cover, lb=demand * (1 - DEMAND_RTOL), ub=np.inf)]
    rows, rhs = _limits(options, available, budget_per_hour, n_b, power_kw)
    if rows:
        constraints.append(LinearConstraint(np.array(rows), lb=-np.inf, ub=np.array(rhs)))
    solve = partial(
        milp, integrality=np.ones_like(cost), bounds=Bounds(np.zeros_like(cost), ub.ravel())
    )
    result = solve(cost, constraints=constraints)
    if result.status != 0 or result.x is None:
        return None
    least = float(cost @ np.rint(result.x))
    at_least = LinearConstraint(cost[None, :], lb=-np.inf, ub=least * (1 + TIE_RTOL))
    roomier = solve(-goodput.ravel(), constraints=[*constraints, at_least])
    if roomier.status == 0 and roomier.x is not None:
        result = roomier
    counts = np.rint(result.x).astype(int).reshape(n_opt, n_b)
    return Mix(
        options, counts, float((counts.sum(axis=1) * [o.cost_per_hour for o in options]).sum())
    )


def day_levels(demand: np.ndarray, count: int = DAY_LEVELS) -> tuple[np.ndarray, np.ndarray]:
    """The demand per interval (req/s, one bucket) as at most `count` levels and the share of
    intervals at each: the intervals sorted, cut into equal groups, each at its group's
    highest demand, groups at one level merged (the last level is the peak)."""
    ordered = np.sort(np.nan_to_num(np.asarray(demand, dtype=float)))
    groups = [g for g in np.array_split(ordered, min(count, len(ordered))) if len(g)]
    levels, at = np.unique([g[-1] for g in groups], return_inverse=True)
    return levels, np.bincount(at, weights=[len(g) for g in groups]) / len(ordered)


def solve_day_mix(
    options: Sequence[MixOption],
    levels: np.ndarray,
    weights: np.ndarray,
    available: Mapping[str, int] | None = None,
    budget_per_hour: float | None = None,
    power_kw: float | None = None,
    plans: int = DAY_PLANS,
) -> Mix | None:
    """The mix (one bucket, at most `plans` plans) whose fleet, scaled to each of the day's
    demand levels, bills the least on average: at level l it runs z[o, l] replicas serving
    levels[l], at most the mix's x[o], and the mix (every replica at once, within the limits)
    is the least that holds them all; minimise sum_l weights[l] * sum_o cost_o * z[o, l],
    then, at that cost, the mix's own cost (no replica that no level runs). A mix of small
    replicas that is dearer at the peak can bill less over the day than the least-cost mix at
    the peak, whose big replicas cannot shrink."""
    everything = tuple(options)
    levels = _demand(levels)
    if not everything or not levels.max() > 0:
        return None
    kept = undominated(everything)
    options = tuple(everything[i] for i in kept)
    goodput = _goodput(options)[:, 0]
    n_opt, n_lvl = len(options), len(levels)
    cost = np.array([o.cost_per_hour for o in options], dtype=float)
    ub = _upper_bounds(goodput[:, None], levels.max(keepdims=True)).ravel()
    eye, n_x = np.eye(n_opt), n_opt * (n_lvl + 2)  # x, z per level, then y: plan o is used
    cover = np.zeros((n_lvl, n_x))
    under = np.zeros((n_lvl * n_opt, n_x))
    for lvl in range(n_lvl):
        cols = slice((lvl + 1) * n_opt, (lvl + 2) * n_opt)
        cover[lvl, cols] = goodput
        under[lvl * n_opt : (lvl + 1) * n_opt, cols] = eye
        under[lvl * n_opt : (lvl + 1) * n_opt, :n_opt] = -eye
    used = np.hstack([eye, np.zeros((n_opt, n_opt * n_lvl)), -np.diag(ub)])
    at_most = np.concatenate([np.zeros(n_opt * (n_lvl + 1)), np.ones(n_opt)])
    constraints = [
        LinearConstraint(cover, lb=levels * (1 - DEMAND_RTOL), ub=np.inf),
        LinearConstraint(np.vstack([under, used]), lb=-np.inf, ub=0.0),
        LinearConstraint(at_most[None, :], lb=0, ub=plans),
    ]
    rows, rhs = _limits(options, available, budget_per_hour, 1, power_kw)
    if rows:
        on_mix = np.hstack([np.array(rows), np.zeros((len(rows), n_x - n_opt))])
        constraints.append(LinearConstraint(on_mix, lb=-np.inf, ub=np.array(rhs)))
    solve = partial(
        milp,
        integrality=np.ones(n_x),
        bounds=Bounds(0, np.concatenate([np.tile(ub, n_lvl + 1), np.ones(n_opt)])),
        options={"mip_rel_gap": DAY_GAP, "time_limit": DAY_SECONDS},
    )
    zeros = np.zeros(n_opt)
    day = np.concatenate([zeros, *(w * cost for w in weights), zeros])
    result = solve(day, constraints=constraints)
    if result.status != 0 or result.x is None:
        return None
    least = float(day @ np.rint(result.x))
    at_least = LinearConstraint(day[None, :], lb=-np.inf, ub=least * (1 + TIE_RTOL))
    own = np.concatenate([cost, np.zeros(n_x - n_opt)])
    leanest = solve(own, constraints=[*constraints, at_least])
    if leanest.status == 0 and leanest.x is not None:
        result = leanest
    counts = np.zeros((len(everything), 1), dtype=int)
    counts[kept, 0] = np.rint(result.x[:n_opt]).astype(int)
    return Mix(everything, counts, float(counts[kept, 0] @ cost))


def undominated(options: Sequence[MixOption]) -> list[int]:
    """Indices of the options (one bucket) that no other beats: one on the same accelerators
    with no more GPUs on each, no dearer, no more power and at least the goodput (the first of
    equals kept). A mix can swap a dominated option for its better one and lose nothing."""
    kept = []
    for i, o in enumerate(options):
        gpus = o.gpus_on()
        beaten = False
        for j, p in enumerate(options):
            other = p.gpus_on()
            if j == i or other.keys() != gpus.keys():
                continue
            no_worse = (
                all(other[a] <= gpus[a] for a in gpus)
                and p.cost_per_hour <= o.cost_per_hour
                and p.power_kw <= o.power_kw
                and p.goodput[0] >= o.goodput[0]
            )
            equal = (other, p.cost_per_hour, p.power_kw, p.goodput[0]) == (
                gpus,
                o.cost_per_hour,
                o.power_kw,
                o.goodput[0],
            )
            if no_worse and (not equal or j < i):
                beaten = True
                break
        if not beaten:
            kept.append(i)
    return kept


def max_servable_scale(
    options: Sequence[MixOption],
    demand: Sequence[float] | np.ndarray,
    available: Mapping[str, int] | None = None,
    budget_per_hour: float | None = None,
    power_kw: float | None = None,
) -> float:
    """Largest s such that s x demand can be served within the limits (how short they fall)."""
    options = tuple(options)
    demand = _demand(demand)
    goodput = _goodput(options)
    n_opt, n_b = goodput.shape
    if not options or not demand.any():
        return 0.0
    n_x = n_opt * n_b
    cover = np.zeros((n_b, n_x + 1))
    for b in range(n_b):
        cover[b, b:n_x:n_b] = goodput[:, b]
    cover[:, -1] = -demand
    constraints = [LinearConstraint(cover, lb=0.0, ub=np.inf)]
    rows, rhs = _limits(options, available, budget_per_hour, n_b, power_kw)
    if rows:
        limits = np.hstack([np.array(rows), np.zeros((len(rows), 1))])
        constraints.append(LinearConstraint(limits, lb=-np.inf, ub=np.array(rhs)))
    cap = 1e4 * max(1.0, float(demand.sum()))
    ub = np.append(np.where(goodput.ravel() > 0, cap, 0.0), np.inf)
    integrality = np.append(np.ones(n_x), 0)
    objective = np.append(np.zeros(n_x), -1.0)
    result = milp(objective, constraints=constraints, integrality=integrality, bounds=Bounds(0, ub))
    return float(result.x[-1]) if result.status == 0 and result.x is not None else 0.0


def best_single_accelerator(
    options: Sequence[MixOption],
    demand: Sequence[float] | np.ndarray,
    available: Mapping[str, int] | None = None,
    budget_per_hour: float | None = None,
    power_kw: float | None = None,
) -> Mix | None:
    """The cheapest mix that uses one accelerator type only (what heterogeneity is judged by;
    a replica whose prefill and decode run on two types is heterogeneous)."""
    mixes = [
        solve_mix(
            [o for o in options if o.accelerator == acc],
            demand,
            available,
            budget_per_hour,
            power_kw,
        )
        for acc in dict.fromkeys(o.accelerator for o in options if len(o.gpus_on()) == 1)
    ]
    feasible = [m for m in mixes if m is not None]
    return min(feasible, key=lambda m: m.cost_per_hour, default=None)
