"""Sizing: the request mix sampled before the held-back tail, split into length pools, goodput
searched at the forecast peak, the least-cost mix (or the best scarce inventory allows) and its
schedule, and the held-back tail replayed under it. With --buckets every pool split is planned
and the cheapest on its schedule kept."""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import duckdb
import numpy as np

from planner.costmodel.cards import dtype_bytes
from planner.errors import PlannerError
from planner.optimize.candidates import Candidate, Enumeration
from planner.optimize.costing import per_month
from planner.optimize.goodput import (
    GoodputEvaluator,
    representative_slice,
    split_buckets,
)
from planner.optimize.infeasible import check_latency_reachable, check_simulated
from planner.optimize.mix import (
    Mix,
    MixOption,
    best_single_accelerator,
    day_levels,
    max_servable_scale,
    solve_day_mix,
)
from planner.optimize.refine import (
    capped_solver,
    mix_options,
    mix_solver,
    refined_mix,
    served_share,
)
from planner.optimize.search import SearchResult, search
from planner.planning.setting import Horizon, PlanOptions, Setting, say
from planner.scaling.delay import Instance, ProvisioningDelay, provisioning_delay
from planner.scaling.fleet import (
    Fleet,
    build_fleet,
    demand_by_bucket,
    median_cost,
    one_plan_mixes,
)
from planner.scaling.holdout import HeldBack, replay_holdout
from planner.scaling.replay import ReplicaPlan
from planner.scaling.tuning import tune_hybrid
from planner.simulate import Workload

POOL_QUANTILES = ((0.5,), (0.9,), (0.5, 0.9))
BUCKET_NAMES = {0: ("all",), 1: ("short", "long"), 2: ("short", "medium", "long")}


@dataclass(frozen=True)
class Searched:
    """The request mix (length buckets), the peak it is sized for and the goodput search."""

    enum: Enumeration
    sample: Workload
    workloads: list[Workload]
    edges: np.ndarray
    shares: np.ndarray
    names: tuple[str, ...]
    peak: float
    evaluator: GoodputEvaluator
    found: SearchResult


@dataclass(frozen=True)
class Chosen:
    """The recommended fleet, the best single-accelerator one, the cost band's low end, the
    provisioning delay, and the share of the forecast peak the fleet serves (below 1 only when
    --available is too low for the peak: the best plan the inventory allows)."""

    options: list[MixOption]
    cands: dict[str, Candidate]
    fleet: Fleet
    single: Fleet | None
    median_cost: float
    delay: ProvisioningDelay
    served: float = 1.0
    compared: list[dict] = field(default_factory=list)


def pool_edges(work: Workload, split: bool) -> list[np.ndarray]:
    """Input-length edges to plan for: none (one pool) and, with --buckets, each split at
    POOL_QUANTILES of the sample's prompt lengths; make_plan keeps the cheapest."""
    out = [np.zeros(0)]
    for levels in POOL_QUANTILES if split else ():
        edges = np.unique(np.quantile(work.input_tokens, levels).round())
        if not any(np.array_equal(edges, e) for e in out):
            out.append(edges)
    return out


def _bucket_shares(work: Workload, edges: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Request shares of the length buckets `edges` bound, and their names."""
    which = np.searchsorted(edges, work.input_tokens, side="left")
    shares = np.bincount(which, minlength=len(edges) + 1) / max(work.requests, 1)
    return shares, BUCKET_NAMES[len(edges)]


def _sample(con: duckdb.DuckDBPyConnection, opts: PlanOptions, s: Setting, h: Horizon) -> Workload:
    """The request mix the plan is sized on: sampled before the held-back tail, its lengths
    moved as forecast for the horizon, within the model's context, with any prefix reuse
    assumed."""
    interval_s = h.demand.interval_s
    sample = representative_slice(con, s.info, interval_s, h.cutoff * interval_s, drift=h.lengths)
    return sample.within_context(s.card.max_context).with_prefix_reuse(opts.prefix_reuse)


def _search(
    opts: PlanOptions,
    s: Setting,
    h: Horizon,
    enum: Enumeration,
    sample: Workload,
    edges: np.ndarray,
    progress: Callable[[str], None] | None,
) -> Searched:
    """Goodput searched at the forecast peak, the sample split into the length pools `edges`
    bound."""
    shares, names = _bucket_shares(sample, edges)
    workloads = split_buckets(sample, edges)
    peak = float(max(np.nanmax(h.level), np.nanmax(h.held.level(opts.quantile))))
    evaluator = GoodputEvaluator(workloads, s.slos, opts.attainment)
    found = search(enum.candidates, evaluator, s.targets, peak * shares, progress, opts.mixed_pd)
    if not found.latency_feasible:
        check_latency_reachable(
            enum.candidates, [found.bounds[(c.id, 0)] for c in enum.candidates], s.targets
        )
    check_simulated(found.evaluations, s.targets, s.accelerators)
    return Searched(enum, sample, workloads, edges, shares, names, peak, evaluator, found)


def _pools_text(edges: np.ndarray) -> str:
    """'one pool' or 'pools split at 1,020 and 4,096 input tokens'."""
    if not len(edges):
        return "one pool"
    return "pools split at " + " and ".join(f"{e:,.0f}" for e in edges) + " input tokens"


def plan_pools(
    con: duckdb.DuckDBPyConnection,
    opts: PlanOptions,
    s: Setting,
    h: Horizon,
    enum: Enumeration,
    progress: Callable[[str], None] | None,
) -> tuple[Searched, Chosen, list[dict]]:
    """The search and fleet of the cheapest length-pool split on its schedule (one pool
    unless --buckets finds a split that costs less; with too few GPUs, the split serving the
    most first), and every split's cost for PLAN.json."""
    sample = _sample(con, opts, s, h)
    planned: list[tuple[Searched, Chosen]] = []
    compared = []
    for edges in pool_edges(sample, opts.buckets):
        if opts.buckets:
            say(progress, f"planning {_pools_text(edges)}")
        try:
            r = _search(opts, s, h, enum, sample, edges, progress)
            c = _choose(con, opts, s, h, r, progress)
        except PlannerError as exc:
            if not len(edges):
                raise
            compared.append({"max_input_tokens": edges.tolist(), "infeasible": str(exc)})
            continue
        planned.append((r, c))
        compared.append(
            {
                "max_input_tokens": edges.tolist(),
                "pools": list(r.names),
                "cost_per_month": round(per_month(c.fleet.scheduled_cost_per_hour), 2),
            }
        )
    r, c = min(planned, key=lambda rc: (-rc[1].served, rc[1].fleet.scheduled_cost_per_hour))
    for row in compared:
        row["chosen"] = row.get("max_input_tokens") == r.edges.tolist()
    return r, c, compared if opts.buckets else []


LEAST_AT_PEAK = "least-cost mix at the peak"
LEAST_OVER_FORECAST = "least mean-cost mix over the forecast"
SINGLE_AT_PEAK = "best single-accelerator mix at the peak"
ONE_PLAN = "one plan"


def _choose(
    con: duckdb.DuckDBPyConnection,
    opts: PlanOptions,
    s: Setting,
    h: Horizon,
    r: Searched,
    progress: Callable[[str], None] | None,
) -> Chosen:
    """The least-cost mix at the peak, the best single-accelerator mix and, for one length pool
    served in full, the least mean-cost mix over the forecast's demand levels and one-plan
    fleets of the plans cheapest per request/s, each scheduled: the cheapest schedule wins (the
    bill is the schedule's: a fleet of smaller replicas that is dearer at the peak can cost less
    over the day, and the search's goodput was measured at another fleet size)."""
    say(progress, "choosing the accelerator mix")
    options, cands, pools = mix_options(r.found.evaluations, len(r.names))
    need = r.peak * r.shares
    refine = partial(refined_mix, options=options, cands=cands, pools=pools, evaluator=r.evaluator)
    servable = 1.0 if opts.strict else max_servable_scale(options, need, s.limits)
    if 0 < servable < 1:
        capped = capped_solver(need, s.limits, s.budget_per_hour, s.power_kw)
        mix = refine(capped, demand=need * servable)
    else:
        mix = refine(mix_solver(need, s.limits, s.budget_per_hour, s.power_kw), demand=need)
    if mix is None:
        raise PlannerError(f"no mix serves the forecast peak of {r.peak:.3g} req/s")
    single = refine(
        partial(
            best_single_accelerator,
            demand=need,
            available=s.limits,
            budget_per_hour=s.budget_per_hour,
            power_kw=s.power_kw,
        ),
        demand=need,
    )
    day_mix, one_plan = None, []
    if not 0 < servable < 1 and len(need) == 1:
        day_mix, one_plan = _other_mixes(s, h, r, refine, options, cands, need)
        mix, single = _cheapest_at_peak(mix, single, [day_mix, *one_plan])

    say(progress, "building the scaling schedule")
    mixes = [m for m in (mix, day_mix, single, *one_plan) if m is not None]
    delay = _delay(con, opts, s, cands, mixes)
    fleet_of = partial(
        build_fleet,
        cands=cands,
        evaluator=r.evaluator,
        names=r.names,
        forecast=h.forward,
        demand=demand_by_bucket(h.level, r.shares),
        delay_s=delay.seconds,
        limits=s.limits,
    )
    mix_fleet = fleet_of(mix)
    single_fleet = None
    if single is not None:
        single_fleet = mix_fleet if single.replicas() == mix.replicas() else fleet_of(single)
    scheduled = [(LEAST_AT_PEAK, mix_fleet)]
    if day_mix is not None:
        scheduled.append((LEAST_OVER_FORECAST, fleet_of(day_mix)))
    if single_fleet is not None:
        scheduled.append((SINGLE_AT_PEAK, single_fleet))
    scheduled += [(ONE_PLAN, fleet_of(m)) for m in one_plan]
    fleet, single_fleet, compared, fleets = _cheapest(scheduled, single_fleet)
    low = median_cost(
        [fleet, *(f for f in fleets if f is not fleet)],
        fleet_of,
        options,
        cands,
        r.evaluator,
        h.forward.level("p50"),
        r.shares,
        s.limits,
    )
    served = served_share(mix, need) if 0 < servable < 1 else 1.0
    return Chosen(options, cands, fleet, single_fleet, low, delay, served, compared)


def _other_mixes(
    s: Setting,
    h: Horizon,
    r: Searched,
    refine: Callable[..., Mix | None],
    options: list[MixOption],
    cands: dict[str, Candidate],
    need: np.ndarray,
) -> tuple[Mix | None, list[Mix]]:
    """For one pool served in full: the least mean-cost mix over the forecast's demand levels,
    and one-plan mixes of the plans cheapest per request/s sized on their own goodput, within
    the limits and budgets."""
    levels, weights = day_levels(np.maximum(h.level * r.shares[0], 0.0))
    levels[-1] = max(levels[-1], float(need[0]))
    day = partial(
        solve_day_mix,
        levels=levels,
        weights=weights,
        available=s.limits,
        budget_per_hour=s.budget_per_hour,
        power_kw=s.power_kw,
    )
    one_plan = [
        m
        for m in one_plan_mixes(options, cands, r.evaluator, float(need[0]), s.limits)
        if m.cost_per_hour <= (s.budget_per_hour or np.inf)
        and m.power_kw() <= (s.power_kw or np.inf)
    ]
    return refine(day, demand=need), one_plan


def _cheapest_at_peak(
    mix: Mix, single: Mix | None, others: list[Mix | None]
) -> tuple[Mix, Mix | None]:
    """The least-cost mix at the peak and the best single-accelerator one among the solver's and
    the other mixes sized to serve the peak (re-measuring goodput at the counts a solve chose can
    settle on a dearer mix than one solved over the day's levels); the solver's on a tie."""
    covering = [m for m in others if m is not None]
    one_type = [
        m for m in (single, *covering) if m is not None and len(m.gpus_by_accelerator()) == 1
    ]
    cheapest = min([mix, *covering], key=lambda m: m.cost_per_hour)
    return cheapest, min(one_type, key=lambda m: m.cost_per_hour, default=None)


def _cheapest(
    scheduled: list[tuple[str, Fleet]], single: Fleet | None
) -> tuple[Fleet, Fleet | None, list[dict], list[Fleet]]:
    """The fleet whose schedule bills least (the first on a tie), the best one-type fleet
    (`single` on a tie), PLAN.json's row for each distinct fleet compared (one made twice is
    listed as first made), and those fleets."""
    distinct: dict[tuple, tuple[str, Fleet]] = {}
    for how, f in scheduled:
        distinct.setdefault(f.key, (how, f))
    fleets = [f for _, f in distinct.values()]
    fleet = min(fleets, key=_billed)
    one_type = [f for f in (single, *fleets) if f is not None and len(f.accelerators) == 1]
    best_single = min(one_type, key=_billed) if one_type else None
    rows = [f.compared(how, f is fleet) for how, f in distinct.values()]
    return fleet, best_single, rows, fleets


def _billed(fleet: Fleet) -> float:
    """What a fleet is chosen on: its schedule's mean cost per hour."""
    return fleet.scheduled_cost_per_hour


def _delay(
    con: duckdb.DuckDBPyConnection,
    opts: PlanOptions,
    s: Setting,
    cands: dict[str, Candidate],
    mixes: list[Mix],
) -> ProvisioningDelay:
    """The start-up delay of the plan's slowest replica among the fleets it may run (the
    measured one with --cold-starts, an elastic MoE scale-up with --elastic-moe): its
    instances' shards load in parallel, then the engine warms up."""
    weights_gb = s.card.total_params() * dtype_bytes(s.card.dtype) / 1e9
    used = {option.key for m in mixes for option, _, _ in m.groups()}
    instances = [Instance(cands[k].accelerator, cands[k].instance_gpus) for k in sorted(used)]
    instances += [
        Instance(side.accelerator, side.gpus)
        for k in sorted(used)
        if (side := cands[k].prefill) is not None
    ]
    warmup_s = s.profile.resolve().runtime.warmup_s
    return provisioning_delay(
        con, s.card.id, weights_gb, opts.cold_starts, instances, warmup_s, opts.elastic_moe
    )


def replay_tail(
    con: duckdb.DuckDBPyConnection,
    opts: PlanOptions,
    s: Setting,
    h: Horizon,
    r: Searched,
    c: Chosen,
) -> tuple[dict, Workload]:
    """The held-back tail replayed under the recommended fleet's deployments."""
    replicas = [
        ReplicaPlan(
            r.evaluator.table(c.cands[d.option.key]),
            c.cands[d.option.key].max_batch,
            c.cands[d.option.key].pd,
            r.evaluator.prefill_table(c.cands[d.option.key]),
        )
        for d in c.fleet.deployments
    ]
    tail = HeldBack(
        s.info.name,
        h.demand,
        h.cutoff,
        opts.rate_scale,
        r.sample,
        r.edges,
        r.shares,
        s.slos,
        opts.attainment,
        s.card.max_context,
        opts.prefix_reuse,
    )
    fleet = (c.fleet.deployments, replicas, c.delay.seconds, s.limits)
    hybrid = tune_hybrid(con, tail, h.tuning, opts.quantile, *fleet)
    return replay_holdout(con, tail, h.held, opts.quantile, *fleet, hybrid=hybrid)
