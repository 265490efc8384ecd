"""The plan file model assembled from the sized plan: header, demand, the recommendation with
its sentence and warnings, alternatives, cost band, energy, frontier, forecast, schedule, replay
and search size (PLAN.json's contents)."""

import datetime as dt
import time
from typing import Any

import numpy as np

from planner.forecast.series import format_duration
from planner.optimize.costing import per_month, per_mtok, rounded
from planner.optimize.energy import energy_block
from planner.optimize.frontier import frontier_rows
from planner.optimize.planfile import (
    PLAN_VERSION,
    AcceleratorRef,
    Alternative,
    Alternatives,
    Demand,
    EngineRef,
    ForecastBlock,
    PlanFile,
    PrefixCacheUse,
    Recommended,
    ReplicaGroup,
    Search,
    SingleAccelerator,
    SloSpec,
    TraceRef,
)
from planner.planning.setting import Horizon, PlanOptions, Setting
from planner.planning.sizing import Chosen, Searched
from planner.report.narrative import (
    context_warning,
    replay_warning,
    replayed_where,
    sentence,
    shortfall_warning,
)
from planner.simulate import Workload


def _tokens_per_request(work: Workload) -> float:
    """Mean input + output tokens per request."""
    return float(np.mean(work.input_tokens) + np.mean(work.output_tokens))


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
    s: Setting, h: Horizon, r: Searched, tail: Workload, mean_p50: float, replay: dict
) -> Demand:
    """PLAN.json's `demand`: observed, forecast and sized-for rates, token mix and buckets, the
    prefix reuse simulated, and the requests left out for exceeding the model's context (only
    when there are some)."""
    over = s.over_context
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
        length_forecast=h.lengths.to_dict() if h.lengths is not None else None,
        prefix_cache=PrefixCacheUse(
            enabled=s.profile.resolve().scheduler.prefix_caching,
            reuse=r.sample.reuse,
            saved_share=replay["schedule"]["prefix_cache_saved_share"],
        ),
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
    where = replayed_where(replay["window"])
    words = sentence(
        s.card.id, s.profile.name, groups, costs, s.targets, single, replayed, short, where
    )
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
        replicas=[g.model_copy(update={"max_count": None}) for g in groups if g.count],
    )
    best = {"best_single_accelerator": single} if single is not None else {}
    split = {"length_pools": pools} if pools else {}
    return {
        "recommended": Recommended(
            sentence=words, replicas=groups, **costs, **({"shortfall": short} if short else {})
        ),
        "warnings": warnings,
        "alternatives": Alternatives(
            static_peak=static_peak, **best, **split, fleets_compared=c.compared
        ),
        "cost_band": {
            "p50_cost_per_month": round(per_month(c.median_cost), 2),
            f"{opts.quantile}_cost_per_month": costs["cost_per_month"],
        },
    }


def _energy(s: Setting, c: Chosen, replay: dict) -> dict:
    """PLAN.json's `energy`: the recommended schedule's electricity, each deployment at the
    busy share its replay measured; peak power is the interval that draws most at TDP."""
    deps = c.fleet.deployments
    gpus = np.array([d.option.gpus for d in deps], dtype=float)
    counts = c.fleet.schedule.counts
    tdp_w = np.array([d.option.power_kw * 1000.0 / d.option.gpus for d in deps])
    busy = replay["busy_share"]
    price, source = s.energy_price
    return energy_block(
        mean_gpus=counts.mean(axis=0) * gpus,
        peak_gpus=counts[np.argmax(counts @ (gpus * tdp_w))] * gpus,
        tdp_w=tdp_w,
        busy_share=np.array([busy[d.label] for d in deps]),
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
        mixed_hardware=found.mixed,
        batch_pruned=found.batch_pruned,
        ratio_pruned=found.ratio_pruned,
        bound_pruned=found.bound_pruned,
        simulated=len(found.evaluations),
        feasible=len(c.options),
        search_seconds=round(found.seconds, 2),
        seconds=round(time.perf_counter() - started, 2),
    )


def plan_file(
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
        demand=_demand_block(s, h, r, tail, mean_p50, replay),
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
