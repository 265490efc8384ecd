"""Mix refinement: the accelerator mix with every group's goodput measured at its own size.

Search measures each plan at the fleet size that would serve the whole peak alone; inside a mix
a plan may run fewer replicas, which pool bursts less, so its per-replica goodput is lower.
`refined_mix` re-solves the mix on goodput re-measured at the counts it chose until they agree
(at most REFINE_ROUNDS), then tops up the last mix at its own sizes; `own_size_count` sizes a
one-plan fleet the same way.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from planner.errors import PlannerError
from planner.optimize.candidates import Candidate
from planner.optimize.goodput import MAX_POOL, Evaluation, GoodputEvaluator
from planner.optimize.infeasible import check_mix
from planner.optimize.mix import Mix, MixOption, max_servable_scale, solve_mix

REFINE_ROUNDS = 6
TOP_UP_LIMIT = 64

Solver = Callable[[list[MixOption]], Mix | None]


def mix_options(
    evaluations: Sequence[Evaluation], buckets: int
) -> tuple[list[MixOption], dict[str, Candidate], dict[tuple[str, int], int]]:
    """Mix options (goodput per bucket) of every candidate that holds the SLO somewhere,
    the candidates by id, and the fleet size each goodput was measured at."""
    goodput: dict[str, list[float]] = {}
    cands: dict[str, Candidate] = {}
    pools: dict[tuple[str, int], int] = {}
    for ev in evaluations:
        if ev.goodput_rps <= 0:
            continue
        cands[ev.candidate.id] = ev.candidate
        goodput.setdefault(ev.candidate.id, [0.0] * buckets)[ev.bucket] = ev.goodput_rps
        pools[(ev.candidate.id, ev.bucket)] = ev.replicas
    options = [
        MixOption(
            key,
            c.accelerator_label,
            c.gpus,
            c.cost_per_hour,
            tuple(goodput[key]),
            c.power_kw,
            tuple(c.gpus_on().items()) if c.prefill else (),
        )
        for key, c in cands.items()
    ]
    return options, cands, pools


def mix_solver(
    demand: np.ndarray,
    limits: Mapping[str, int] | None,
    budget_per_hour: float | None,
    power_kw: float | None = None,
) -> Solver:
    """The least-cost mix for `demand`; an infeasible one raises the binding constraint."""

    def solve(options: list[MixOption]) -> Mix | None:
        """Explain infeasibility (availability, budget, power) first, then solve."""
        check_mix(options, demand, limits, budget_per_hour, power_kw)
        return solve_mix(options, demand, limits, budget_per_hour, power_kw)

    return solve


def capped_solver(
    demand: np.ndarray,
    limits: Mapping[str, int] | None,
    budget_per_hour: float | None,
    power_kw: float | None = None,
) -> Solver:
    """The least-cost mix serving the largest share of `demand` the limits allow (scarce
    inventory: the best plan there is, short of the peak); None when they allow nothing."""

    def solve(options: list[MixOption]) -> Mix | None:
        """Solve for the servable share of the demand at these goodputs."""
        scale = min(max_servable_scale(options, demand, limits, budget_per_hour, power_kw), 1.0)
        if scale <= 0:
            return None
        return solve_mix(options, demand * scale * (1 - 1e-6), limits, budget_per_hour, power_kw)

    return solve


def served_share(mix: Mix, demand: np.ndarray) -> float:
    """The share of `demand` the mix serves in its tightest bucket (at most 1)."""
    need = np.asarray(demand, dtype=float)
    capacity = mix.capacity()
    shares = [capacity[b] / need[b] for b in range(len(need)) if need[b] > 0]
    return min(min(shares, default=1.0), 1.0)


def refined_mix(
    solver: Solver,
    options: list[MixOption],
    cands: dict[str, Candidate],
    pools: dict[tuple[str, int], int],
    evaluator: GoodputEvaluator,
    demand: np.ndarray,
) -> Mix | None:
    """The solver's mix with every group's goodput measured at the fleet size it got.

    The mix is re-solved on goodput re-measured at the counts it chose until they agree; if
    they still disagree after REFINE_ROUNDS, the last mix is topped up at its own sizes.
    `options` and `pools` are copied, so the caller's measurements are untouched.
    """
    options, pools = list(options), dict(pools)
    index = {o.key: i for i, o in enumerate(options)}
    mix = None
    for _ in range(REFINE_ROUNDS):
        mix = solver(options)
        if mix is None:
            return None
        stale = [
            (o, b, min(c, MAX_POOL))
            for o, b, c in mix.groups()
            if min(c, MAX_POOL) != pools.get((o.key, b))
        ]
        if not stale:
            return mix
        for option, b, size in stale:
            ev = evaluator.evaluate(cands[option.key], b, size, option.goodput[b])
            pools[(option.key, b)] = size
            current = options[index[option.key]]
            rates = list(current.goodput)
            rates[b] = ev.goodput_rps
            options[index[option.key]] = replace(current, goodput=tuple(rates))
    return top_up(mix, cands, evaluator, demand)


def top_up(
    mix: Mix, cands: dict[str, Candidate], evaluator: GoodputEvaluator, demand: np.ndarray
) -> Mix:
    """`mix` with replicas added until it covers `demand` at goodput measured at its own sizes."""
    counts = mix.counts.copy()
    options = list(mix.options)

    def rate(o: int, b: int) -> float:
        """Per-replica goodput of option o on bucket b at its current count."""
        size = min(max(int(counts[o, b]), 1), MAX_POOL)
        return evaluator.evaluate(cands[options[o].key], b, size, options[o].goodput[b]).goodput_rps

    for b in range(counts.shape[1]):
        used = [o for o in range(len(options)) if counts[o, b] > 0]
        for o in [o for o in used if rate(o, b) <= 0]:
            counts[o, b] = 0  # serves nothing at its size: billed for no requests
        used = [o for o in used if counts[o, b] > 0]
        for _ in range(TOP_UP_LIMIT if used else 0):
            if sum(counts[o, b] * rate(o, b) for o in used) >= demand[b] * (1 - 1e-9):
                break
            best = min(used, key=lambda o: options[o].cost_per_hour / max(rate(o, b), 1e-12))
            counts[best, b] += 1
        else:
            raise PlannerError(
                f"the mix does not settle: re-measured at its own fleet size it misses the "
                f"demand of {demand[b]:.3g} req/s; try --attainment lower or other --accelerators"
            )
        for o in used:
            rates = list(options[o].goodput)
            rates[b] = rate(o, b)
            options[o] = replace(options[o], goodput=tuple(rates))
    cost = float(sum(o.cost_per_hour * counts[i].sum() for i, o in enumerate(options)))
    return Mix(tuple(options), counts, cost)


def own_size_count(
    option: MixOption, bucket: int, cand: Candidate, evaluator: GoodputEvaluator, need: float
) -> tuple[int, float] | None:
    """Fewest replicas of one plan whose goodput, measured at that count, covers `need`."""
    count = max(int(np.ceil(need / max(option.goodput[bucket], 1e-9))), 1)
    for _ in range(TOP_UP_LIMIT):
        rate = evaluator.evaluate(cand, bucket, min(count, MAX_POOL), option.goodput[bucket])
        if count * rate.goodput_rps >= need * (1 - 1e-9):
            return count, rate.goodput_rps
        grown = np.ceil(need / rate.goodput_rps) if rate.goodput_rps > 0 else 2 * count
        count = count + 1 if count < MAX_POOL else max(count + 1, int(grown))
    return None
