"""The candidate search: bounds for all, simulation for the few that can matter.

Per length bucket:
1. analytic bounds for every candidate (planner.optimize.candidates); latency-infeasible
   candidates are dropped;
2. max-batch dominance: raising the max batch beyond the batch at which decode steps reach the
   TPOT target (or the KV cache fills) cannot raise goodput, so of a plan's max-batch variants
   only those up to the first one at or above that batch are kept;
3. ratio choice: of a disaggregated plan's P:D ratios, the KEPT_RATIOS whose fleet for the
   bucket's peak demand costs least are kept (replicas at FIRST_SHARE of the ceiling, whole
   replicas; ties by cost floor): the ratios nearest the balance of the plan's prefill and
   decode work on this request mix, with the fleet's whole replicas counted (two 2:1 replicas
   can beat one 5:1);
4. the rest are simulated in order of their cost-per-goodput floor. Simulated goodput falls
   short of the analytic ceiling by a factor that depends mostly on the traffic (bursts), not
   the plan, so the best ratio seen so far turns each ceiling into an optimistic estimate; a
   candidate is skipped when even that estimate cannot beat, by PRUNE_SLACK, the best $/req/s
   already simulated on its accelerator (a mixed-hardware one: on any, since it is kept for
   its price alone, never for inventory). The FAST_CANDIDATES plans with the lowest latency
   floors are always simulated, so the frontier has its fast end.
Goodput is measured at the fleet size the bucket's peak demand needs (pooling, see goodput.py):
first at the size the estimate implies, then, if the measured goodput implies another size, at
that size from the first measurement, whose search first steps by only REFINE_STEP (1 + the
search tolerance: an unchanged goodput settles in two replays).
"""

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from planner.optimize.candidates import (
    Bounds,
    Candidate,
    Phases,
    Targets,
    bounds,
    mixed_candidates,
    phases,
)
from planner.optimize.goodput import MAX_POOL, TOLERANCE, Evaluation, GoodputEvaluator

PRUNE_SLACK = 1.5
FAST_CANDIDATES = 3
TPOT_BINDING = 0.9
KEPT_RATIOS = 2
FIRST_SHARE = 0.5
REFINE_STEP = 1.0 + TOLERANCE


@dataclass
class SearchResult:
    """What the search found and how much it pruned."""

    evaluations: list[Evaluation] = field(default_factory=list)
    bounds: dict[tuple[str, int], Bounds] = field(default_factory=dict)
    latency_feasible: int = 0
    mixed: int = 0
    batch_pruned: int = 0
    ratio_pruned: int = 0
    bound_pruned: int = 0
    seconds: float = 0.0


def pool_size(demand: float, per_replica: float) -> int:
    """Replicas a demand needs at a per-replica rate (1..MAX_POOL)."""
    if per_replica <= 0 or demand <= 0:
        return 1
    return int(min(max(math.ceil(demand / per_replica), 1), MAX_POOL))


def _plan_key(c: Candidate) -> tuple:
    """A candidate's parallel plans and mode: what its max-batch variants share (the ratio
    last)."""
    return (c.prefill, c.accelerator.id, c.tp, c.pp, c.ep, c.pd)


def _kept_ratios(
    walks: list[list[int]], cands: Sequence[Candidate], bnds: Sequence[Bounds], demand: float
) -> tuple[list[list[int]], int]:
    """The walks of aggregated plans, and of each disaggregated plan's KEPT_RATIOS ratios with
    the cheapest fleet for `demand` (module docstring); and how many candidates the others held.
    """
    kept, by_plan = [], {}
    for walk in walks:
        c = cands[walk[0]]
        if c.pd is None:
            kept.append(walk)
        else:
            by_plan.setdefault(_plan_key(c)[:-1], []).append(walk)
    dropped = 0
    for ratios in by_plan.values():
        ratios.sort(key=lambda w: _fleet_estimate(cands[w[0]], bnds[w[0]], demand))
        kept += ratios[:KEPT_RATIOS]
        dropped += sum(len(w) for w in ratios[KEPT_RATIOS:])
    return kept, dropped


def _fleet_estimate(cand: Candidate, bd: Bounds, demand: float) -> tuple[float, float]:
    """(cost per hour of the fleet for `demand` at FIRST_SHARE of the ceiling, cost floor)."""
    replicas = pool_size(demand, bd.goodput_ceiling * FIRST_SHARE)
    return replicas * cand.cost_per_hour, bd.cost_floor(cand.cost_per_hour)


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
    mixed: bool = False,
) -> SearchResult:
    """Simulated goodput of the candidates worth simulating, per bucket with demand; with
    `mixed`, also of disaggregated replicas whose prefill side runs another parallel plan
    (candidates.mixed_candidates, built per bucket from its request mix)."""
    started = time.perf_counter()
    out = SearchResult()
    per_plan: dict[tuple[int, bool], Phases] = {}
    for b, work in enumerate(evaluator.workloads):
        if peak_demand[b] <= 0 or not work.requests:
            continue
        inputs = work.input_tokens.astype(float)
        outputs = work.output_tokens.astype(float)
        per_plan.clear()
        bnds = []
        for c in candidates:
            key = (id(c.model), c.pd is not None)
            if key not in per_plan:
                per_plan[key] = phases(c.model, inputs, outputs, targets, c.pd is not None)
            bnds.append(bounds(c, per_plan[key]))
        cands = list(candidates)
        if mixed:
            split = {k: ph for (k, disagg), ph in per_plan.items() if disagg}
            for cand, decode, prefill in mixed_candidates(cands, split, inputs, targets):
                cands.append(cand)
                bnds.append(bounds(cand, decode, prefill))
            out.mixed = max(out.mixed, len(cands) - len(candidates))
        for c, bd in zip(cands, bnds, strict=True):
            out.bounds[(c.id, b)] = bd
        feasible = np.array([bd.latency_share >= targets.attainment for bd in bnds])
        out.latency_feasible = max(out.latency_feasible, int(feasible.sum()))
        chosen = np.flatnonzero(feasible)
        groups: dict[tuple, list[int]] = {}
        for i in chosen.tolist():
            groups.setdefault(_plan_key(cands[i]), []).append(i)
        walks = [_variant_walk(m, cands, bnds[m[0]].batch_limit) for m in groups.values()]
        walks, dropped = _kept_ratios(walks, cands, bnds, float(peak_demand[b]))
        out.ratio_pruned += dropped
        walks.sort(key=lambda w: bnds[w[0]].cost_floor(cands[w[0]].cost_per_hour))
        by_floor = sorted(chosen.tolist(), key=lambda i: bnds[i].ttft_floor_ms)
        fast = {_plan_key(cands[i]) for i in by_floor[:FAST_CANDIDATES]}
        out.evaluations += _evaluate(
            cands, bnds, walks, fast, evaluator, b, float(peak_demand[b]), out, progress
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
    the smaller batch keeps improving goodput. A plan's goodput search starts from its ceiling
    times the median share of the ceiling simulated plans reached so far (the prune uses the
    largest: optimistic), a smaller batch's from the variant before it, stepping REFINE_STEP.
    """
    best: dict[str, float] = {}
    ratio = 0.0
    shares: list[float] = []
    done = []
    tpot = evaluator.tpot_limit()
    for k, walk in enumerate(walks, 1):
        first = candidates[walk[0]]
        estimate = bnds[walk[0]].goodput_ceiling * (ratio or 1.0)
        best_here = (
            min(best.values(), default=np.inf)
            if first.prefill is not None
            else best.get(first.accelerator_label, np.inf)
        )
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
            if previous is not None and previous.goodput_rps > 0:
                guess, step = previous.goodput_rps, REFINE_STEP
            else:
                guess = bd.goodput_ceiling * (float(np.median(shares)) if shares else FIRST_SHARE)
                step = 2.0
            ev = evaluator.evaluate(cand, bucket, pool_size(demand, guess), guess, step)
            refined = pool_size(demand, ev.goodput_rps)
            if ev.goodput_rps > 0 and refined != ev.replicas:
                ev = evaluator.evaluate(cand, bucket, refined, ev.goodput_rps, REFINE_STEP)
            done.append(ev)
            previous = ev
            if ev.goodput_rps > 0:
                shares.append(ev.goodput_rps / bd.goodput_ceiling)
                ratio = max(ratio, shares[-1])
                best[cand.accelerator_label] = min(
                    best.get(cand.accelerator_label, np.inf), cand.cost_per_hour / ev.goodput_rps
                )
    return done
