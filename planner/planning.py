"""make_plan: the whole `planner plan` pipeline, from a stored trace to the plan file model.

1. Candidates (accelerator x tp x pp x ep x mode x P:D x max batch) that fit in memory
   (planner/optimize/candidates.py).
2. Demand: the trace's request rate per interval; forecast quantiles for the horizon after
   the trace, and for a held-back tail of the trace (the last horizon, at most half of it).
3. Search: simulated per-replica goodput of the candidates that can matter
   (planner/optimize/search.py).
4. Mix: the least-cost replica counts serving the forecast peak (MILP), within availability
   and budget, each group's goodput measured at its own size (planner/optimize/refine.py);
   otherwise an explanation of the binding constraint (planner/optimize/infeasible.py).
5. Schedule: replicas per interval for the forecast quantile, started a provisioning delay
   ahead, with scale-down hysteresis; for the peak mix and for the best single-accelerator
   mix alike, and the one that costs less on its schedule is recommended (so the two monthly
   figures the sentence and the report compare are on the same basis,
   planner/scaling/fleet.py, priced by planner/optimize/costing.py).
6. Replay: the held-back tail through the simulator under the schedule (forecast from the
   history before it), static provisioning at its forecast peak, and a reactive HPA
   (planner/scaling/holdout.py).
7. PLAN.json: the figures above, with the one-sentence recommendation quoting the replayed
   attainment beside the target, and the warnings (replay more than a point off the target,
   requests over the context) (planner/report/narrative.py), as the plan file model of
   planner/optimize/planfile.py.

`plan_to_artefacts` is `planner plan` and `planner demo` alike: plan, then write PLAN.json,
its tables and the report (planner/report/artefacts.py).
"""

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import duckdb
import numpy as np

from planner.costmodel import Accelerator, get_accelerator, load_card, load_catalog
from planner.costmodel.cards import ModelCard, dtype_bytes
from planner.costmodel.engine import DEFAULT_ENGINE, EngineProfile, load_engine
from planner.errors import PlannerError
from planner.forecast.series import format_duration, parse_duration
from planner.optimize.candidates import Candidate, Enumeration, Targets, enumerate_candidates
from planner.optimize.costing import per_month, per_mtok, rounded
from planner.optimize.energy import energy_block, parse_energy_price, parse_power_budget
from planner.optimize.frontier import frontier_rows
from planner.optimize.goodput import (
    GoodputEvaluator,
    representative_slice,
    split_buckets,
)
from planner.optimize.infeasible import check_latency_reachable, check_model_fits, check_simulated
from planner.optimize.limits import parse_available, parse_budget
from planner.optimize.mix import MixOption, best_single_accelerator, max_servable_scale
from planner.optimize.planfile import (
    PLAN_VERSION,
    AcceleratorRef,
    Alternative,
    Alternatives,
    Demand,
    EngineRef,
    ForecastBlock,
    PlanFile,
    Recommended,
    ReplicaGroup,
    Search,
    SingleAccelerator,
    SloSpec,
    TraceRef,
)
from planner.optimize.refine import (
    capped_solver,
    mix_options,
    mix_solver,
    refined_mix,
    served_share,
)
from planner.optimize.search import SearchResult, search
from planner.report.artefacts import Artefacts, Written
from planner.report.narrative import (
    context_warning,
    replay_warning,
    sentence,
    shortfall_warning,
)
from planner.scaling.delay import ProvisioningDelay, provisioning_delay
from planner.scaling.demand import DemandForecast, DemandSeries, demand_series, forecast_demand
from planner.scaling.fleet import Fleet, build_fleet, demand_by_bucket, median_cost
from planner.scaling.holdout import HeldBack, replay_holdout
from planner.scaling.replay import ReplicaPlan
from planner.simulate import Slo, Workload, over_context, over_text, parse_slos
from planner.store import TraceInfo, get_trace, open_store, trace_read_options

DEFAULT_ACCELERATORS = ("h100", "a100", "l4")
POOL_QUANTILES = ((0.5,), (0.9,), (0.5, 0.9))
BUCKET_NAMES = {0: ("all",), 1: ("short", "long"), 2: ("short", "medium", "long")}
WRITING = "writing the plan and the report"


@dataclass(frozen=True)
class PlanOptions:
    """What `planner plan` is asked: its CLI options, make_plan's one options object.

    `db` is the store's path as PLAN.json records it (and the store `plan_to_artefacts`
    opens; "" for the default store). `strict` refuses a trace with requests longer than the
    model's context instead of planning without them, and --available GPUs too few for the
    peak instead of planning the best they allow. `energy_price` is US$ per kWh (default:
    planner/optimize/energy.py), `power_budget` the kW the peak fleet may draw at TDP.
    """

    trace: str
    model: str
    slos: Sequence[str | Slo]
    attainment: float = 0.99
    accelerators: Sequence[str] | None = None
    prices: str | None = None
    available: str | None = None
    budget: str | None = None
    buckets: bool = False
    horizon: str = "1d"
    interval: str = "10min"
    quantile: str = "p95"
    cold_starts: str | None = None
    rate_scale: float = 1.0
    db: str = ""
    engine: str = DEFAULT_ENGINE
    strict: bool = False
    energy_price: float | None = None
    power_budget: float | None = None


@dataclass(frozen=True)
class Setting:
    """The options resolved: SLOs, trace (and how it was read), prices, limits, model card,
    engine, requests over its context, power budget and energy price."""

    slos: list[Slo]
    targets: Targets
    info: TraceInfo
    catalog: dict[str, Accelerator]
    accelerators: list[Accelerator]
    limits: dict[str, int] | None
    budget_per_hour: float | None
    card: ModelCard
    profile: EngineProfile
    read_options: dict | None
    over_context: dict | None
    power_kw: float | None
    energy_price: tuple[float, str]


@dataclass(frozen=True)
class Horizon:
    """The trace's demand, the forecast after it and the forecast of its held-back tail."""

    demand: DemandSeries
    steps: int
    cutoff: int
    forward: DemandForecast
    held: DemandForecast
    level: np.ndarray


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


def _say(progress: Callable[[str], None] | None, message: str) -> None:
    """Report a step to the caller's progress callback, if any."""
    if progress:
        progress(message)


def _slo_list(slos: Sequence[str | Slo], attainment: float) -> list[Slo]:
    """Parsed SLOs (at least one) after checking the attainment target."""
    if not 0 < attainment <= 1:
        raise PlannerError(f"--attainment {attainment}: must be in (0, 1], e.g. 0.99")
    parsed = [s for s in slos if isinstance(s, Slo)]
    parsed += parse_slos([s for s in slos if not isinstance(s, Slo)])
    if not parsed:
        raise PlannerError("give at least one --slo, e.g. --slo ttft_p99=1000ms")
    return parsed


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


def _tokens_per_request(work: Workload) -> float:
    """Mean input + output tokens per request."""
    return float(np.mean(work.input_tokens) + np.mean(work.output_tokens))


def _setting(con: duckdb.DuckDBPyConnection, opts: PlanOptions) -> Setting:
    """The options resolved and checked (SLOs first, then the trace, prices and limits)."""
    slo_list = _slo_list(opts.slos, opts.attainment)
    targets = Targets.of(slo_list, opts.attainment)
    info = get_trace(con, opts.trace)
    catalog = load_catalog(opts.prices)
    accs = [get_accelerator(a, catalog) for a in (opts.accelerators or DEFAULT_ACCELERATORS)]
    limits = parse_available(opts.available, catalog)
    budget_per_hour = parse_budget(opts.budget)
    power_kw = parse_power_budget(opts.power_budget)
    energy_price = parse_energy_price(opts.energy_price)
    card = load_card(opts.model)
    profile = load_engine(opts.engine)
    read = trace_read_options(con, info.id)
    over = over_context(con, info, card.max_context)
    if over and opts.strict:
        raise PlannerError(
            f"trace {info.name!r}: {over_text(over)} exceed {card.id}'s "
            f"{card.max_context:,}-token context; without --strict the plan leaves them out, as "
            "a serving engine refuses them"
        )
    return Setting(
        slo_list,
        targets,
        info,
        catalog,
        accs,
        limits,
        budget_per_hour,
        card,
        profile,
        read,
        over,
        power_kw,
        energy_price,
    )


def _horizon(con: duckdb.DuckDBPyConnection, opts: PlanOptions) -> Horizon:
    """Demand per --interval, the forecast for --horizon after it and for its held-back tail."""
    demand = demand_series(con, opts.trace, opts.interval, opts.rate_scale)
    steps = parse_duration(opts.horizon, "--horizon") // demand.interval_s
    if steps < 1:
        raise PlannerError(
            f"--horizon {opts.horizon} is shorter than one --interval {opts.interval}"
        )
    holdout = min(steps, len(demand.rps) // 2)
    if holdout < 1:
        raise PlannerError(
            f"trace {opts.trace!r} spans less than two {opts.interval} intervals; too short to plan"
        )
    cutoff = len(demand.rps) - holdout
    forward = forecast_demand(con, demand, len(demand.rps), steps)
    held = forecast_demand(con, demand, cutoff, holdout)
    return Horizon(demand, steps, cutoff, forward, held, forward.level(opts.quantile))


def _sample(con: duckdb.DuckDBPyConnection, s: Setting, h: Horizon) -> Workload:
    """The request mix the plan is sized on: sampled before the held-back tail, within the
    model's context."""
    interval_s = h.demand.interval_s
    sample = representative_slice(con, s.info, interval_s, h.cutoff * interval_s)
    return sample.within_context(s.card.max_context)


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
    found = search(enum.candidates, evaluator, s.targets, peak * shares, progress)
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


def _plan_pools(
    con: duckdb.DuckDBPyConnection,
    opts: PlanOptions,
    s: Setting,
    h: Horizon,
    enum: Enumeration,
    progress: Callable[[str], None] | None,
) -> tuple[Searched, Chosen, list[dict]]:
    """The search and fleet of the cheapest length-pool split on its schedule (one pool
    unless --buckets finds a split that costs less), and every split's cost for PLAN.json."""
    sample = _sample(con, s, h)
    planned: list[tuple[Searched, Chosen]] = []
    compared = []
    for edges in pool_edges(sample, opts.buckets):
        if opts.buckets:
            _say(progress, f"planning {_pools_text(edges)}")
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
    r, c = min(planned, key=lambda rc: rc[1].fleet.scheduled_cost_per_hour)
    for row in compared:
        row["chosen"] = row.get("max_input_tokens") == r.edges.tolist()
    return r, c, compared if opts.buckets else []


def _choose(
    con: duckdb.DuckDBPyConnection,
    opts: PlanOptions,
    s: Setting,
    h: Horizon,
    r: Searched,
    progress: Callable[[str], None] | None,
) -> Chosen:
    """The least-cost mix and best single-accelerator mix, scheduled; the cheaper schedule wins."""
    _say(progress, "choosing the accelerator mix")
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

    _say(progress, "building the scaling schedule")
    weights_gb = s.card.total_params() * dtype_bytes(s.card.dtype) / 1e9
    delay = provisioning_delay(con, s.card.id, weights_gb, opts.cold_starts)
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
    fleet = mix_fleet = fleet_of(mix)
    single_fleet = None
    if single is not None:
        single_fleet = fleet if len(mix.gpus_by_accelerator()) == 1 else fleet_of(single)
        if single_fleet.scheduled_cost_per_hour < fleet.scheduled_cost_per_hour:
            fleet = single_fleet
    planned = [f for f in (fleet, mix_fleet, single_fleet) if f is not None]
    low = median_cost(
        planned, fleet_of, options, cands, r.evaluator, h.forward.level("p50"), r.shares, s.limits
    )
    served = served_share(mix, need) if 0 < servable < 1 else 1.0
    return Chosen(options, cands, fleet, single_fleet, low, delay, served)


def _replay(
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
    )
    return replay_holdout(
        con, tail, h.held, opts.quantile, c.fleet.deployments, replicas, c.delay.seconds, s.limits
    )


def _borrowed_lengths(s: Setting) -> dict[str, str]:
    """{"lengths_from": TRACE} when the trace's token lengths were borrowed at ingest."""
    borrowed = (s.read_options or {}).get("lengths")
    return {"lengths_from": borrowed} if borrowed else {}


def _header(opts: PlanOptions, s: Setting, h: Horizon) -> dict[str, Any]:
    """PLAN.json's first keys: what was planned, for which SLO, on which accelerators."""
    info, profile = s.info, s.profile
    return {
        "version": PLAN_VERSION,
        "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "db": opts.db,
        "trace": TraceRef(
            name=info.name,
            format=info.format,
            table=info.kind,
            requests=int(info.rows),
            span_s=float(info.span_s or 0.0),
            rate_scale=opts.rate_scale,
            **_borrowed_lengths(s),
        ),
        "model": s.card.id,
        "engine": EngineRef(
            id=profile.id, release=profile.release, name=profile.name, version=profile.version
        ),
        "slo": SloSpec(
            **{f"{x.metric}_p{x.percentile:g}_ms": x.limit_ms for x in s.slos},
            attainment=opts.attainment,
        ),
        "accelerators": [
            AcceleratorRef(
                id=a.id, name=a.name, price_per_hour=a.price_per_hour, price_source=a.price_source
            )
            for a in s.accelerators
        ],
        "horizon_s": float(h.steps * h.demand.interval_s),
        "interval_s": float(h.demand.interval_s),
        "quantile": opts.quantile,
    }


def _demand_block(
    h: Horizon, r: Searched, tail: Workload, mean_p50: float, over: dict | None
) -> Demand:
    """PLAN.json's `demand`: observed, forecast and sized-for rates, token mix and buckets, and
    the requests left out for exceeding the model's context (only when there are some)."""
    return Demand(
        **({"over_context": over} if over else {}),
        unit="requests/s",
        mean_in_tokens=round(float(np.mean(tail.input_tokens)), 2),
        mean_out_tokens=round(float(np.mean(tail.output_tokens)), 2),
        peak_rps=round(float(np.nanmax(h.demand.rps)), 4),
        mean_rps=round(float(np.nanmean(h.demand.rps)), 4),
        forecast_peak_rps=round(float(np.nanmax(h.level)), 4),
        forecast_mean_rps=round(mean_p50, 4),
        sized_for_rps=round(r.peak, 4),
        buckets=[
            {
                "name": n,
                "share": round(float(x), 4),
                "max_input_tokens": int(r.edges[i]) if i < len(r.edges) else None,
            }
            for i, (n, x) in enumerate(zip(r.names, r.shares, strict=True))
        ],
    )


def _shortfall(s: Setting, r: Searched, c: Chosen) -> dict | None:
    """PLAN.json's `recommended.shortfall` when --available is too low for the forecast peak:
    the GPUs given and the share of the peak the best fleet they allow serves."""
    if c.served >= 1:
        return None
    return {
        "available": dict(s.limits or {}),
        "peak_rps": round(r.peak, 4),
        "servable_rps": round(r.peak * c.served, 4),
        "served_share": round(c.served, 4),
    }


def _cost_blocks(
    opts: PlanOptions,
    s: Setting,
    r: Searched,
    c: Chosen,
    replay: dict,
    pools: list[dict],
    mean_p50: float,
    tokens: float,
) -> dict[str, Any]:
    """PLAN.json's `recommended`, `warnings`, `alternatives` and `cost_band`: the sentence
    quotes the attainment the schedule held on the replay beside the one it was sized for."""
    groups = [ReplicaGroup(**g) for g in c.fleet.groups(c.cands, r.evaluator)]
    costs = c.fleet.costs(mean_p50, tokens)
    single = None
    if c.single is not None:
        single_groups = c.single.groups(c.cands, r.evaluator)
        single = SingleAccelerator(
            accelerator=single_groups[0]["accelerator"],
            replicas=single_groups,
            **c.single.costs(mean_p50, tokens),
        )
    replayed = replay["schedule"]["slo_attainment"]
    short = _shortfall(s, r, c)
    words = sentence(s.card.id, s.profile.name, groups, costs, s.targets, single, replayed, short)
    cause = replay["diagnosis"]["sentence"]
    warnings = [
        w
        for w in (
            shortfall_warning(short, opts.attainment, replayed)
            if short
            else replay_warning(opts.attainment, replayed, cause),
            context_warning(s.over_context, s.card.id) if s.over_context else None,
        )
        if w
    ]
    peak_hour = c.fleet.peak_cost_per_hour
    static_peak = Alternative(
        cost_per_hour=costs["cost_per_hour"],
        cost_per_month=round(per_month(peak_hour), 2),
        cost_per_mtok=rounded(per_mtok(peak_hour, mean_p50, tokens)),
        replicas=groups,
    )
    best = {"best_single_accelerator": single} if single is not None else {}
    split = {"length_pools": pools} if pools else {}
    return {
        "recommended": Recommended(
            sentence=words, replicas=groups, **costs, **({"shortfall": short} if short else {})
        ),
        "warnings": warnings,
        "alternatives": Alternatives(static_peak=static_peak, **best, **split),
        "cost_band": {
            "p50_cost_per_month": round(per_month(c.median_cost), 2),
            f"{opts.quantile}_cost_per_month": costs["cost_per_month"],
        },
    }


def _energy(s: Setting, c: Chosen, replay: dict) -> dict:
    """PLAN.json's `energy`: the recommended schedule's electricity, each deployment at the
    busy share its replay measured."""
    deps = c.fleet.deployments
    gpus = np.array([d.option.gpus for d in deps], dtype=float)
    counts = c.fleet.schedule.counts
    busy = replay.get("busy_share", {})
    price, source = s.energy_price
    return energy_block(
        mean_gpus=counts.mean(axis=0) * gpus,
        peak_gpus=counts.max(axis=0) * gpus,
        tdp_w=np.array([s.catalog[d.option.accelerator].tdp_w for d in deps]),
        busy_share=np.array([busy.get(d.label, 0.0) for d in deps]),
        price_per_kwh=price,
        price_source=source,
    ) | ({"power_budget_kw": s.power_kw} if s.power_kw is not None else {})


def _forecast_block(h: Horizon) -> ForecastBlock:
    """PLAN.json's `forecast`: the trace's rate history and the forecast after it."""
    interval_s = h.demand.interval_s
    return ForecastBlock(
        series="total",
        method=h.forward.method,
        freq=format_duration(interval_s),
        history=[
            {"t": float(k * interval_s), "rps": round(float(v), 5)}
            for k, v in enumerate(h.demand.rps)
            if np.isfinite(v)
        ],
        points=h.forward.points(),
    )


def _search_block(r: Searched, c: Chosen, started: float) -> Search:
    """PLAN.json's `search`: how many plans were enumerated, pruned and simulated, and timings."""
    found = r.found
    return Search(
        candidates=r.enum.enumerated,
        fitting=len(r.enum.candidates),
        latency_feasible=found.latency_feasible,
        batch_pruned=found.batch_pruned,
        bound_pruned=found.bound_pruned,
        simulated=len(found.evaluations),
        feasible=len(c.options),
        search_seconds=round(found.seconds, 2),
        seconds=round(time.perf_counter() - started, 2),
    )


def _plan_file(
    opts: PlanOptions,
    s: Setting,
    h: Horizon,
    r: Searched,
    c: Chosen,
    replayed: tuple[dict, Workload],
    pools: list[dict],
    started: float,
) -> PlanFile:
    """The plan file model (PLAN.json's contents); `pools`: each length-pool split's cost,
    with --buckets."""
    replay, tail = replayed
    tokens = _tokens_per_request(tail)
    bucket_tokens = np.array(
        [_tokens_per_request(w) if w.requests else tokens for w in r.workloads]
    )
    mean_p50 = float(np.nanmean(h.forward.level("p50")))
    chosen = {(d.option.key, d.bucket) for d in c.fleet.deployments}
    return PlanFile(
        **_header(opts, s, h),
        demand=_demand_block(h, r, tail, mean_p50, s.over_context),
        **_cost_blocks(opts, s, r, c, replay, pools, mean_p50, tokens),
        energy=_energy(s, c, replay),
        frontier=frontier_rows(r.found.evaluations, chosen, bucket_tokens, r.names),
        forecast=_forecast_block(h),
        schedule=c.fleet.schedule.rows(),
        provisioning_delay_s=c.delay.seconds,
        provisioning_source=c.delay.source,
        replay=replay,
        search=_search_block(r, c, started),
    )


def make_plan(
    con: duckdb.DuckDBPyConnection,
    opts: PlanOptions,
    progress: Callable[[str], None] | None = None,
) -> PlanFile:
    """The cheapest plan holding the SLO for `opts.trace`, its schedule and replay (PLAN.json).

    Every replica is simulated as `opts.engine` serves (its batching, memory share and host
    costs).
    """
    started = time.perf_counter()
    s = _setting(con, opts)
    _say(progress, "enumerating candidate plans")
    enum = enumerate_candidates(s.card.id, s.accelerators, s.catalog, s.profile)
    check_model_fits(s.card.id, enum.candidates, enum.unfit, s.accelerators)
    _say(progress, "forecasting demand")
    h = _horizon(con, opts)
    _say(progress, "sampling the request mix")
    r, c, pools = _plan_pools(con, opts, s, h, enum, progress)
    _say(progress, "replaying the held-back trace")
    replayed = _replay(con, opts, s, h, r, c)
    return _plan_file(opts, s, h, r, c, replayed, pools, started)


def plan_to_artefacts(
    opts: PlanOptions, artefacts: Artefacts, progress: Callable[[str], None] | None = None
) -> tuple[PlanFile, Written]:
    """`planner plan` and `planner demo`: plan on the store `opts.db`, then write the outputs.

    The outputs are checked before the search (a path that cannot be written fails in a second,
    not after minutes of simulation), and written once the store is closed again (the report
    reads it).
    """
    artefacts.check()
    con = open_store(opts.db or None, read_only=True)
    try:
        planned = make_plan(con, opts, progress)
    finally:
        con.close()
    _say(progress, WRITING)
    return planned, artefacts.write(planned)
