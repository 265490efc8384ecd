"""Replay of the trace's held-back tail: the plan judged on demand it was not sized on.

The tail (the last horizon of the trace, at most half of it) is forecast from the history
before it and replayed through the simulator under six policies: the plan's schedule, static
provisioning at that schedule's peak, three reactive autoscalers (Kubernetes HPA on request
rate and on tokens/s, Knative's KPA with its stable and panic windows), and the hybrid (the
schedule as a floor, the HPA on tokens/s adding burst capacity above it). The verdict says whether
the schedule held the SLO and, if not, the lowest higher forecast quantile that would add
replicas; the diagnosis names what made the schedule miss, if it did (length drift, a burst
above the forecast band, capacity: planner/scaling/diagnose.py); the timeline is the ready
replicas per policy beside the observed demand.

Every policy's timeline, cost and replica counts cover the whole tail, but the simulator
replays at most MAX_REPLAY_REQUESTS requests: whole intervals, the busiest first (where an SLO
is missed), so a tail of 10^7 requests costs what 2 x 10^5 do; PLAN.json's `replay.window`
says how many requests and intervals were replayed.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

import duckdb
import numpy as np

from planner.optimize.goodput import scaled_workload
from planner.scaling.demand import DemandForecast, DemandSeries
from planner.scaling.diagnose import diagnose
from planner.scaling.fleet import demand_by_bucket
from planner.scaling.replay import (
    Controller,
    ReplicaPlan,
    Timeline,
    reactive_timeline,
    replay,
    replay_verdict,
    schedule_timeline,
    static_timeline,
)
from planner.scaling.schedule import Deployment, Schedule, build_schedule
from planner.simulate import Slo, Workload

MAX_REPLAY_REQUESTS = 200_000


@dataclass(frozen=True)
class HeldBack:
    """The held-back tail of a trace's demand (from interval `cutoff` on), the request mix the
    plan was sized on and how it splits into length buckets, the SLO the tail is judged on, and
    the model's context (requests over it are left out, as an engine refuses them; 0: no
    limit)."""

    trace: str
    demand: DemandSeries
    cutoff: int
    rate_scale: float
    sized: Workload
    edges: np.ndarray
    shares: np.ndarray
    slos: list[Slo]
    attainment: float
    max_context: int = 0
    prefix_reuse: float | None = None


def replay_holdout(
    con: duckdb.DuckDBPyConnection,
    tail: HeldBack,
    forecast: DemandForecast,
    quantile: str,
    deployments: Sequence[Deployment],
    replicas: Sequence[ReplicaPlan],
    delay_s: float,
    available: Mapping[str, int] | None,
) -> tuple[dict, Workload]:
    """Replay the held-back tail under every policy (PLAN.json's `replay` block), and the
    tail's requests."""
    interval = tail.demand.interval_s
    start_s, end_s = tail.cutoff * interval, len(tail.demand.rps) * interval
    work = _tail_requests(con, tail, start_s, end_s)
    bucket = np.searchsorted(tail.edges, work.input_tokens, side="left")
    level = demand_by_bucket(forecast.level(quantile), tail.shares)
    sched = build_schedule(forecast.times, level, deployments, interval, delay_s, available)
    mean_tokens = mean_tokens_by_bucket(tail.sized, tail.edges)
    timelines = policy_timelines(sched, work, bucket, mean_tokens, start_s, end_s, available)
    edges = start_s + interval * np.arange(len(forecast.times) + 1)
    counts = np.histogram(work.arrival_s, bins=edges)[0]
    observed = counts / interval
    chosen = replayed_intervals(counts, MAX_REPLAY_REQUESTS)
    picked, rows = _replayed(work.arrival_s, edges, chosen, next(iter(timelines.values())))
    sample = work.take(picked)
    results = {
        name: replay(sample, bucket[picked], deployments, replicas, tl, tail.slos, rows)
        for name, tl in timelines.items()
    }
    out: dict = {name: result.to_dict() for name, result in results.items()}
    band, meets = forecast.level(quantile), results["schedule"].meets
    diagnosis = diagnose(
        tail.sized, sample, meets, edges, observed, band, tail.attainment, quantile
    )
    out["verdict"] = replay_verdict(
        out,
        tail.attainment,
        higher_quantile(forecast, quantile, sched, delay_s, available),
        diagnosis["sentence"],
    )
    out["diagnosis"] = diagnosis
    out["busy_share"] = {
        d.label: round(float(x), 4)
        for d, x in zip(deployments, results["schedule"].busy_share, strict=True)
    }
    out["timeline"] = timeline_rows(timelines, edges, observed, band)
    out["window"] = {
        "start_s": start_s,
        "end_s": end_s,
        "requests": work.requests,
        "replayed_requests": sample.requests,
        "replayed_intervals": int(chosen.sum()),
        "forecast_method": forecast.method,
    }
    return out, work


def replayed_intervals(counts: np.ndarray, budget: int) -> np.ndarray:
    """Which intervals of the tail the simulator replays: all while their requests fit in
    `budget`, else the busiest that fit (the busiest always; where an SLO is missed), so the
    replay's time and memory stay bounded on traces of 10^8 requests."""
    order = np.argsort(-np.asarray(counts), kind="stable")
    fits = np.cumsum(np.asarray(counts)[order]) <= budget
    fits[0] = True
    chosen = np.zeros(len(counts), dtype=bool)
    chosen[order[fits]] = True
    return chosen


def _replayed(
    arrivals: np.ndarray, edges: np.ndarray, chosen: np.ndarray, grid: Timeline
) -> tuple[np.ndarray, np.ndarray]:
    """The requests in the `chosen` intervals (between `edges`), and the grid rows in them."""
    last = len(chosen) - 1
    picked = chosen[np.clip(np.searchsorted(edges, arrivals, side="right") - 1, 0, last)]
    times = grid.start_s + grid.step_s * np.arange(len(grid.ready))
    rows = chosen[np.clip(np.searchsorted(edges, times, side="right") - 1, 0, last)]
    return picked, rows


def policy_timelines(
    sched: Schedule,
    work: Workload,
    bucket: np.ndarray,
    mean_tokens: np.ndarray,
    start_s: float,
    end_s: float,
    available: Mapping[str, int] | None,
) -> dict[str, Timeline]:
    """Every policy's timeline, all with the schedule's delay: the schedule, its peak always
    on, three reactive autoscalers starting from the schedule's first counts (HPA on request
    rate, HPA on tokens/s, Knative's KPA on request rate), and the hybrid: the schedule as a
    floor with the HPA on tokens/s above it. `mean_tokens`: per length bucket, the mean tokens
    per request of the mix the goodput was measured on (the token targets' unit)."""
    peak = sched.counts.max(axis=0)
    scheduled = schedule_timeline(sched, start_s, end_s)
    tokens = work.input_tokens + work.output_tokens
    reactive = partial(
        reactive_timeline,
        work.arrival_s,
        bucket,
        sched.deployments,
        peak,
        sched.counts[0],
        sched.delay_s,
        start_s,
        end_s,
        available=available,
    )
    on_tokens = Controller(tokens=tokens, mean_tokens=mean_tokens)
    return {
        "schedule": scheduled,
        "static_peak": static_timeline(peak, start_s, end_s),
        "reactive": reactive(),
        "reactive_tokens": reactive(controller=on_tokens),
        "kpa": reactive(controller=Controller(kind="kpa")),
        "hybrid": reactive(controller=replace(on_tokens, floor=scheduled)),
    }


def mean_tokens_by_bucket(sized: Workload, edges: np.ndarray) -> np.ndarray:
    """Mean input + output tokens per request of each length bucket of the sized mix (the
    whole mix's for an empty bucket)."""
    which = np.searchsorted(edges, sized.input_tokens, side="left")
    tokens = (sized.input_tokens + sized.output_tokens).astype(float)
    overall = float(tokens.mean()) if len(tokens) else 1.0
    return np.array(
        [
            float(tokens[which == b].mean()) if (which == b).any() else overall
            for b in range(len(edges) + 1)
        ]
    )


def _tail_requests(
    con: duckdb.DuckDBPyConnection, tail: HeldBack, start_s: float, end_s: float
) -> Workload:
    """The tail's requests (within the model's context) at their times in the trace."""
    work = scaled_workload(con, tail.trace, start_s, end_s, tail.rate_scale)
    work = work.within_context(tail.max_context).with_prefix_reuse(tail.prefix_reuse)
    return work.shifted(start_s)


def timeline_rows(
    timelines: dict[str, Timeline], edges: np.ndarray, observed: np.ndarray, forecast: np.ndarray
) -> list[dict]:
    """Ready replicas per policy as a step series: a row at each interval edge and each change."""
    grid = next(iter(timelines.values()))
    ready = np.column_stack([tl.ready.sum(axis=1) for tl in timelines.values()])
    changes = np.flatnonzero((np.diff(ready, axis=0) != 0).any(axis=1)) + 1
    times = np.union1d(edges, grid.start_s + grid.step_s * changes)
    rows = grid.index(times)
    interval = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, len(observed) - 1)
    return [
        {"t": float(t)}
        | {name: int(ready[r, i]) for i, name in enumerate(timelines)}
        | {"demand_rps": round(float(observed[k]), 4), "forecast_rps": round(float(forecast[k]), 4)}
        for t, r, k in zip(times.tolist(), rows.tolist(), interval.tolist(), strict=True)
    ]


def higher_quantile(
    forecast: DemandForecast,
    quantile: str,
    sched: Schedule,
    delay_s: float,
    available: Mapping[str, int] | None,
) -> str | None:
    """The lowest forecast quantile above `quantile` whose schedule adds replicas, if any
    (the only higher --quantile worth advising: the others would give the same plan)."""
    shares = sched.demand.sum(axis=0) / max(float(sched.demand.sum()), 1e-12)
    higher = sorted(
        (q for q in forecast.quantiles if quantile_value(q) > quantile_value(quantile)),
        key=quantile_value,
    )
    for q in higher:
        level = demand_by_bucket(forecast.level(q), shares)
        counts = build_schedule(
            sched.times, level, sched.deployments, sched.interval_s, delay_s, available
        ).counts
        if (counts > sched.counts).any():
            return q
    return None


def quantile_value(name: str) -> float:
    """'p95' -> 95.0 (the order of forecast quantiles)."""
    return float(name.lstrip("p"))
