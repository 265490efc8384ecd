"""The candidate search: bounds for all, simulation for the few that can matter.

Per length bucket:
1. analytic bounds for every candidate (planner.optimize.candidates); latency-infeasible
   candidates are dropped;
2. max-batch dominance: raising the max batch beyond the batch at which decode steps reach the
   TPOT target (or the KV cache fills) cannot raise goodput, so of a plan's max-batch variants
   only those up to the first one at or above that batch are kept;
3. the rest are simulated in order of their cost-per-goodput floor. Simulated goodput falls
   short of the analytic ceiling by a factor that depends mostly on the traffic (bursts), not
   the plan, so the best ratio seen so far turns each ceiling into an optimistic estimate; a
   candidate is skipped when even that estimate cannot beat, by PRUNE_SLACK, the best $/req/s
   already simulated on its accelerator. The FAST_CANDIDATES plans with the lowest latency
   floors are always simulated, so the frontier has its fast end.
Goodput is measured at the fleet size the bucket's peak demand needs (pooling, see goodput.py).
"""

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from planner.optimize.candidates import Bounds, Candidate, Floors, Targets, bounds, latency_floors
from planner.optimize.goodput import MAX_POOL, Evaluation, GoodputEvaluator

PRUNE_SLACK = 1.5
FAST_CANDIDATES = 3
TPOT_BINDING = 0.9


@dataclass
class SearchResult:
    """What the search found and how much it pruned."""

    evaluations: list[Evaluation] = field(default_factory=list)
    bounds: dict[tuple[str, int], Bounds] = field(default_factory=dict)
    latency_feasible: int = 0
    batch_pruned: int = 0
    bound_pruned: int = 0
    seconds: float = 0.0


def pool_size(demand: float, per_replica: float) -> int:
    """Replicas a demand needs at a per-replica rate (1..MAX_POOL)."""
    if per_replica <= 0 or demand <= 0:
        return 1
    return int(min(max(math.ceil(demand / per_replica), 1), MAX_POOL))


def _plan_key(c: Candidate) -> tuple:
    """A candidate's parallel plan and mode: what its max-batch variants share."""
    return (c.accelerator.id, c.tp, c.pp, c.ep, c.pd)


def _variant_walk(members: list[int], cands: Sequence[Candidate], limit: int) -> list[int]:
    """Max-batch variants to try, in order: the first at or above the batch limit, then smaller."""
    members = sorted(members, key=lambda i: cands[i].max_batch)
    above = [i for i in members if cands[i].max_batch >= limit]
    start = members.index(above[0]) if above else len(members) - 1
    return members[start::-1]


def search(
    candidates: Sequence[Candidate],
    evaluator: GoodputEvaluator,
    targets: Targets,
    peak_demand: Sequence[float],
    progress: Callable[[str], None] | None = None,
) -> SearchResult:
    """Simulated goodput of the candidates worth simulating, per bucket with demand."""
    started = time.perf_counter()
    out = SearchResult()
    floors: dict[tuple[int, bool], Floors] = {}
    for b, work in enumerate(evaluator.workloads):
        if peak_demand[b] <= 0 or not work.requests:
            continue
        inputs = work.input_tokens.astype(float)
        outputs = work.output_tokens.astype(float)
        floors.clear()
        bnds = []
        for c in candidates:
            key = (id(c.model), c.pd is not None)
            if key not in floors:
                floors[key] = latency_floors(c.model, inputs, outputs, c.pd is not None)
            bnds.append(bounds(c, floors[key], inputs, outputs, targets))
        for c, bd in zip(candidates, bnds, strict=True):
            out.bounds[(c.id, b)] = bd
        feasible = np.array([bd.latency_share >= targets.attainment for bd in bnds])
        out.latency_feasible = max(out.latency_feasible, int(feasible.sum()))
        chosen = np.flatnonzero(feasible)
        groups: dict[tuple, list[int]] = {}
        for i in chosen.tolist():
            groups.setdefault(_plan_key(candidates[i]), []).append(i)
        walks = [_variant_walk(m, candidates, bnds[m[0]].batch_limit) for m in groups.values()]
        walks.sort(key=lambda w: bnds[w[0]].cost_floor(candidates[w[0]].cost_per_hour))
        by_floor = sorted(chosen.tolist(), key=lambda i: bnds[i].ttft_floor_ms)
        fast = {_plan_key(candidates[i]) for i in by_floor[:FAST_CANDIDATES]}
        out.evaluations += _evaluate(
            candidates, bnds, walks, fast, evaluator, b, float(peak_demand[b]), out, progress
        )
    out.seconds = time.perf_counter() - started
    return out


def _evaluate(
    candidates: Sequence[Candidate],
    bnds: Sequence[Bounds],
    walks: Sequence[list[int]],
    fast: set[tuple],
    evaluator: GoodputEvaluator,
    bucket: int,
    demand: float,
    out: SearchResult,
    progress: Callable[[str], None] | None,
) -> list[Evaluation]:
    """Simulate plan by plan in floor order with the calibrated-ceiling prune (module docstring).

    Within a plan, the max-batch variant at the batch limit comes first; a smaller one is tried
    only while TPOT binds (the last variant's TPOT p99 within TPOT_BINDING of the target) and
    the smaller batch keeps improving goodput.
    """
    best: dict[str, float] = {}
    ratio = 0.0
    done = []
    tpot = evaluator.tpot_limit()
    for k, walk in enumerate(walks, 1):
        first = candidates[walk[0]]
        estimate = bnds[walk[0]].goodput_ceiling * (ratio or 1.0)
        best_here = best.get(first.accelerator.id, np.inf)
        if (
            _plan_key(first) not in fast
            and first.cost_per_hour / estimate > PRUNE_SLACK * best_here
        ):
            out.bound_pruned += len(walk)
            continue
        previous = None
        for n, i in enumerate(walk):
            cand, bd = candidates[i], bnds[i]
            binding = previous is not None and previous.tpot_p99_ms is not None and tpot is not None
            if previous is not None and not (
                binding
                and previous.tpot_p99_ms >= TPOT_BINDING * tpot
                and (n < 2 or previous.goodput_rps > done[-2].goodput_rps)
            ):
                out.batch_pruned += len(walk) - n
                break
            if progress:
                progress(f"simulating {cand.id}, plan {k}/{len(walks)}")
            guess = bd.goodput_ceiling * (ratio or 0.5)
            ev = evaluator.evaluate(cand, bucket, pool_size(demand, guess), guess)
            refined = pool_size(demand, ev.goodput_rps)
            if ev.goodput_rps > 0 and refined != ev.replicas:
                ev = evaluator.evaluate(cand, bucket, refined, ev.goodput_rps)
            done.append(ev)
            previous = ev
            if ev.goodput_rps > 0:
                ratio = max(ratio, ev.goodput_rps / bd.goodput_ceiling)
                best[cand.accelerator.id] = min(
                    best.get(cand.accelerator.id, np.inf), cand.cost_per_hour / ev.goodput_rps
                )
    return done
