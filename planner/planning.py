"""make_plan: the whole `planner plan` pipeline, from a stored trace to the PLAN.json dict.

1. Candidates (accelerator x tp x pp x ep x mode x P:D x max batch) that fit in memory.
2. Demand: the trace's request rate per interval; forecast quantiles for the horizon after
   the trace, and for a held-back tail of the trace (the last horizon, at most half of it).
3. Search: simulated per-replica goodput of the candidates that can matter
   (planner/optimize/search.py).
4. Mix: the least-cost replica counts serving the forecast peak (MILP), within availability
   and budget; otherwise an explanation of the binding constraint.
5. Schedule: replicas per interval for the forecast quantile, started a provisioning delay
   ahead, with scale-down hysteresis; for the peak mix and for the best single-accelerator
   mix alike, and the one that costs less on its schedule is recommended (so the two monthly
   figures the sentence and the report compare are on the same basis, planner/optimize/planfile.py).
6. Replay: the held-back tail through the simulator under the schedule (forecast from the
   history before it), static provisioning at its forecast peak, and a reactive HPA.
"""

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

import duckdb
import numpy as np

from planner.costmodel import Accelerator, get_accelerator, load_card, load_catalog
from planner.costmodel.cards import dtype_bytes
from planner.costmodel.engine import DEFAULT_ENGINE, load_engine
from planner.errors import PlannerError
from planner.forecast.series import format_duration, parse_duration
from planner.optimize.candidates import Candidate, Targets, enumerate_candidates
from planner.optimize.frontier import pareto_mask
from planner.optimize.goodput import (
    MAX_POOL,
    Evaluation,
    GoodputEvaluator,
    representative_slice,
    scaled_workload,
    split_buckets,
)
from planner.optimize.infeasible import (
    HOURS_PER_MONTH,
    check_latency_reachable,
    check_mix,
    check_model_fits,
)
from planner.optimize.limits import parse_available, parse_budget
from planner.optimize.mix import Mix, MixOption, best_single_accelerator, solve_mix
from planner.optimize.planfile import PLAN_VERSION, validate_plan
from planner.optimize.search import SearchResult, search
from planner.scaling.delay import provisioning_delay
from planner.scaling.demand import DemandForecast, DemandSeries, demand_series, forecast_demand
from planner.scaling.replay import (
    ReplicaPlan,
    Timeline,
    reactive_timeline,
    replay,
    replay_verdict,
    schedule_timeline,
    static_timeline,
)
from planner.scaling.schedule import Deployment, Schedule, build_schedule, deployments_of
from planner.simulate import Slo, Workload, parse_slos
from planner.store import TraceInfo, get_trace

DEFAULT_ACCELERATORS = ("h100", "a100", "l4")
BUCKET_QUANTILES = (0.5, 0.9)
BUCKET_NAMES = ("short", "medium", "long")
REFINE_ROUNDS = 6
TOP_UP_LIMIT = 64
MEDIAN_OPTIONS = 4


@dataclass(frozen=True)
class Context:
    """What the later stages share: the trace, SLO, accelerators, demand and buckets."""

    info: TraceInfo
    slos: list[Slo]
    targets: Targets
    accelerators: list[Accelerator]
    demand: DemandSeries
    cutoff: int
    edges: np.ndarray
    shares: np.ndarray
    bucket_names: tuple[str, ...]
    rate_scale: float


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


def _bucket_edges(work: Workload, split: bool) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Input-length bucket edges (p50, p90 of the trace), request shares and names."""
    if not split:
        return np.zeros(0), np.ones(1), ("all",)
    edges = np.unique(np.quantile(work.input_tokens, BUCKET_QUANTILES).round())
    which = np.searchsorted(edges, work.input_tokens, side="left")
    shares = np.bincount(which, minlength=len(edges) + 1) / max(work.requests, 1)
    names = BUCKET_NAMES if len(edges) == 2 else BUCKET_NAMES[: len(edges) + 1]
    return edges, shares, names


def _options(
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
        MixOption(key, c.accelerator.id, c.gpus, c.cost_per_hour, tuple(goodput[key]))
        for key, c in cands.items()
    ]
    return options, cands, pools


Solver = Callable[[list[MixOption]], Mix | None]


def _refined_mix(
    solver: Solver,
    options: list[MixOption],
    cands: dict[str, Candidate],
    pools: dict[tuple[str, int], int],
    evaluator: GoodputEvaluator,
    demand: np.ndarray,
) -> Mix | None:
    """The solver's mix with every group's goodput measured at the fleet size it got.

    Search measured each plan at the fleet size serving the whole peak alone; inside a mix a
    plan may run fewer replicas, which pool bursts less, so its per-replica goodput is lower.
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
    return _top_up(mix, cands, evaluator, demand)


def _top_up(
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
        for _ in range(TOP_UP_LIMIT):
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


def _own_size_count(
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


def _check_simulated(found: SearchResult, ctx: Context) -> None:
    """SLO unreachable under load: every simulated candidate misses it even at a trickle."""
    if any(ev.goodput_rps > 0 for ev in found.evaluations):
        return
    raise PlannerError(
        f"SLO unreachable: no simulated plan holds {ctx.targets.describe()} for "
        f"{ctx.targets.attainment:.1%} of requests even at 1/256 of the trace's rate "
        f"({len(found.evaluations)} plans simulated on {', '.join(a.id for a in ctx.accelerators)})"
    )


def _group(cand: Candidate, label: str, bucket_name: str, count: int, goodput: float) -> dict:
    """One PLAN.json replica group; `label` is its plan name in the schedule."""
    group = (
        {"plan": label}
        | cand.describe()
        | {
            "count": count,
            "gpus": cand.gpus * count,
            "goodput_rps": round(goodput, 4),
        }
    )
    return group | ({"bucket": bucket_name} if bucket_name != "all" else {})


def _mix_solver(
    demand: np.ndarray, limits: dict[str, int] | None, budget_per_hour: float | None
) -> Solver:
    """The least-cost mix for `demand`; an infeasible one raises the binding constraint."""

    def solve(options: list[MixOption]) -> Mix | None:
        """Explain infeasibility (availability, budget) first, then solve."""
        check_mix(options, demand, limits, budget_per_hour)
        return solve_mix(options, demand, limits, budget_per_hour)

    return solve


def _label(group: dict) -> str:
    """'3 x H100 (TP1, aggregated)' for the sentence."""
    mode = (
        "aggregated" if group["mode"] == "aggregated" else f"P:D {group['pd'][0]}:{group['pd'][1]}"
    )
    pp = f" PP{group['pp']}" if group["pp"] > 1 else ""
    ep = f" EP{group['ep']}" if group["ep"] > 1 else ""
    where = f" for {group['bucket']} requests" if "bucket" in group else ""
    acc = group["accelerator"].upper()
    return f"{group['count']} x {acc} (TP{group['tp']}{pp}{ep}, {mode}){where}"


def _tokens_per_request(work: Workload) -> float:
    """Mean input + output tokens per request."""
    return float(np.mean(work.input_tokens) + np.mean(work.output_tokens))


def _per_mtok(cost_per_hour: float, rps: float, tokens: float) -> float:
    """US$ per 1M tokens at a cost per hour and a served rate."""
    return cost_per_hour / (rps * tokens * 3600.0 / 1e6) if rps > 0 and tokens > 0 else float("nan")


def _schedule_cost(schedule: Schedule) -> float:
    """Mean fleet cost per hour over the schedule."""
    return float(schedule.cost_per_hour().mean()) if len(schedule.times) else 0.0


def _demand_by_bucket(level: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """(intervals, buckets) demand from a total rate and the bucket shares."""
    return np.nan_to_num(level)[:, None] * shares[None, :]


def _frontier(
    evaluations: Sequence[Evaluation],
    chosen_plans: Sequence[Deployment],
    tokens: np.ndarray,
    names: Sequence[str],
) -> list[dict]:
    """Every simulated candidate with its cost per 1M tokens, latency and Pareto flag.

    The flag is computed on the rounded figures PLAN.json and the chart show, so a point the
    reader sees on the frontier is flagged on it.
    """
    chosen = {(d.option.key, d.bucket) for d in chosen_plans}
    rows = []
    for ev in evaluations:
        cand = ev.candidate
        rows.append(
            {"id": cand.id}
            | cand.describe()
            | {
                "goodput_rps": round(ev.goodput_rps, 4),
                "cost_per_hour": round(cand.cost_per_hour, 4),
                "cost_per_mtok": _round(
                    _per_mtok(cand.cost_per_hour, ev.goodput_rps, tokens[ev.bucket])
                ),
                "ttft_p99_ms": _round(ev.ttft_p99_ms),
                "tpot_p99_ms": _round(ev.tpot_p99_ms),
                "pooled_replicas": ev.replicas,
                "chosen": (cand.id, ev.bucket) in chosen,
            }
            | ({"bucket": names[ev.bucket]} if names[ev.bucket] != "all" else {})
        )
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


def _round(value: float | None, digits: int = 4) -> float | None:
    """Round a float for JSON; None for missing or non-finite."""
    return round(float(value), digits) if value is not None and np.isfinite(value) else None


def _timeline(
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


def _higher_quantile(
    forecast: DemandForecast,
    quantile: str,
    sched: Schedule,
    delay_s: float,
    available: dict[str, int] | None,
) -> str | None:
    """The lowest forecast quantile above `quantile` whose schedule adds replicas, if any
    (the only higher --quantile worth advising: the others would give the same plan)."""
    shares = sched.demand.sum(axis=0) / max(float(sched.demand.sum()), 1e-12)
    higher = sorted(
        (q for q in forecast.quantiles if _quantile_value(q) > _quantile_value(quantile)),
        key=_quantile_value,
    )
    for q in higher:
        level = _demand_by_bucket(forecast.level(q), shares)
        counts = build_schedule(
            sched.times, level, sched.deployments, sched.interval_s, delay_s, available
        ).counts
        if (counts > sched.counts).any():
            return q
    return None


def _quantile_value(name: str) -> float:
    """'p95' -> 95.0 (the order of forecast quantiles)."""
    return float(name.lstrip("p"))


def _replay_all(
    con: duckdb.DuckDBPyConnection,
    ctx: Context,
    forecast: DemandForecast,
    quantile: str,
    deployments: Sequence[Deployment],
    replicas: Sequence[ReplicaPlan],
    delay_s: float,
    available: dict[str, int] | None,
) -> tuple[dict, Workload]:
    """Replay the held-back tail under the schedule, static peak and the reactive autoscaler."""
    interval = ctx.demand.interval_s
    start_s, end_s = ctx.cutoff * interval, len(ctx.demand.rps) * interval
    work = scaled_workload(con, ctx.info.name, start_s, end_s, ctx.rate_scale)
    arrivals = work.arrival_s + start_s
    work = Workload(arrivals, work.input_tokens, work.output_tokens, name=work.name)
    bucket = np.searchsorted(ctx.edges, work.input_tokens, side="left")
    level = _demand_by_bucket(forecast.level(quantile), ctx.shares)
    sched = build_schedule(forecast.times, level, deployments, interval, delay_s, available)
    peak = sched.counts.max(axis=0)
    timelines: dict[str, Timeline] = {
        "schedule": schedule_timeline(sched, start_s, end_s),
        "static_peak": static_timeline(peak, start_s, end_s),
        "reactive": reactive_timeline(
            arrivals, bucket, deployments, peak, sched.counts[0], delay_s, start_s, end_s
        ),
    }
    out: dict = {
        name: replay(work, bucket, deployments, replicas, tl, ctx.slos).to_dict()
        for name, tl in timelines.items()
    }
    edges = start_s + interval * np.arange(len(forecast.times) + 1)
    observed = np.histogram(arrivals, bins=edges)[0] / interval
    out["verdict"] = replay_verdict(
        out, ctx.targets.attainment, _higher_quantile(forecast, quantile, sched, delay_s, available)
    )
    out["timeline"] = _timeline(timelines, edges, observed, forecast.level(quantile))
    out["window"] = {
        "start_s": start_s,
        "end_s": end_s,
        "requests": work.requests,
        "forecast_method": forecast.method,
    }
    return out, work


def _sentence(
    model: str,
    engine: str,
    groups: list[dict],
    cost: dict,
    targets: Targets,
    single: dict | None,
) -> str:
    """The one-sentence recommendation finance reads first (`cost`: the recommended block)."""
    fleet = " + ".join(_label(g) for g in groups)
    slo = targets.describe().replace("<=", "≤")
    text = (
        f"Run {fleet} for {model} on {engine} at the forecast peak, scaled by the schedule: "
        f"${cost['cost_per_month']:,.0f}/month, ${cost['cost_per_mtok']:,.2f} per 1M tokens, "
        f"holding {slo} for {targets.attainment:.0%} of requests."
    )
    accs = ", ".join(sorted({g["accelerator"] for g in groups}))
    if single is None:
        return text
    if "," not in accs:
        return text + " A single accelerator type is cheapest here: mixing types would not save."
    saved = single["cost_per_month"] - cost["cost_per_month"]
    if saved > 0:
        return text + (
            f" Mixing {accs} saves ${saved:,.0f}/month ({saved / single['cost_per_month']:.1%}) "
            f"against the best single accelerator ({single['accelerator']}, "
            f"${single['cost_per_month']:,.0f}/month on the same schedule)."
        )
    return text + (
        f" On the schedule mixing {accs} costs the same as the best single accelerator "
        f"({single['accelerator']}); it is chosen for its cheaper peak fleet "
        f"(${cost['cost_per_hour']:,.2f} vs ${single['cost_per_hour']:,.2f} per hour)."
    )


@dataclass(frozen=True)
class Fleet:
    """The replica groups a schedule runs (with capacity curves) and that schedule."""

    deployments: tuple[Deployment, ...]
    schedule: Schedule

    @property
    def peak_counts(self) -> np.ndarray:
        """Replicas per deployment at its busiest interval: the fleet the plan recommends."""
        return self.schedule.counts.max(axis=0)

    @property
    def peak_cost_per_hour(self) -> float:
        """Cost per hour of the peak fleet (every group at its scheduled maximum)."""
        return float(self.peak_counts @ [d.option.cost_per_hour for d in self.deployments])

    @property
    def scheduled_cost_per_hour(self) -> float:
        """Mean fleet cost per hour over the schedule."""
        return _schedule_cost(self.schedule)

    def costs(self, served_rps: float, tokens: float) -> dict:
        """PLAN.json cost keys: peak fleet and scheduled $/hour, $/month and $/1M tokens."""
        scheduled = self.scheduled_cost_per_hour
        return {
            "cost_per_hour": round(self.peak_cost_per_hour, 4),
            "scheduled_cost_per_hour": round(scheduled, 4),
            "cost_per_month": round(scheduled * HOURS_PER_MONTH, 2),
            "cost_per_mtok": _round(_per_mtok(scheduled, served_rps, tokens)),
        }

    def groups(self, cands: dict[str, Candidate], evaluator: GoodputEvaluator) -> list[dict]:
        """PLAN.json replica groups of the peak fleet, goodput measured at each group's size."""
        rows = []
        for d, count in sorted(
            zip(self.deployments, self.peak_counts.tolist(), strict=True),
            key=lambda dc: (dc[0].bucket, dc[0].option.cost_per_hour, dc[0].option.key),
        ):
            cand = cands[d.option.key]
            size = min(count, MAX_POOL)
            rate = evaluator.evaluate(cand, d.bucket, size, d.goodput).goodput_rps
            rows.append(_group(cand, d.label, d.bucket_name, count, rate))
        return rows


def _fleet(
    mix: Mix,
    cands: dict[str, Candidate],
    evaluator: GoodputEvaluator,
    names: Sequence[str],
    forecast: DemandForecast,
    demand: np.ndarray,
    delay_s: float,
    limits: dict[str, int] | None,
) -> Fleet:
    """The mix's deployments with capacity curves up to their peak counts, and their schedule;
    a deployment the schedule never runs is dropped (it would be billed in no interval)."""
    deployments = [
        replace(
            d,
            curve=evaluator.capacity_curve(
                cands[d.option.key],
                d.bucket,
                int(mix.counts[mix.options.index(d.option), d.bucket]),
                d.goodput,
            ),
        )
        for d in deployments_of(mix.options, mix.counts, names)
    ]
    schedule = build_schedule(
        forecast.times, demand, deployments, forecast.interval_s, delay_s, limits
    )
    run = schedule.counts.max(axis=0) > 0
    kept = tuple(d for d, on in zip(deployments, run, strict=True) if on)
    return Fleet(kept, replace(schedule, deployments=kept, counts=schedule.counts[:, run]))


def _median_cost(
    fleets: Sequence[Fleet],
    fleet_of: Callable[..., Fleet],
    options: Sequence[MixOption],
    cands: dict[str, Candidate],
    evaluator: GoodputEvaluator,
    median: np.ndarray,
    shares: np.ndarray,
    limits: dict[str, int] | None,
) -> float:
    """Mean $/hour of serving the median (p50) forecast (the low end of the cost band): the
    cheapest of the fleets planned (the recommended one first) on their p50 schedules and of
    one-plan fleets sized for the p50 peak on goodput measured at their own count (the
    MEDIAN_OPTIONS plans cheapest per request/s, within `limits`; unbucketed plans only, as a
    one-plan fleet cannot serve several length buckets).

    The recommended fleet alone can give a degenerate band (its replicas too coarse to shrink
    between p50 and the planning quantile); a fleet made for the median can use smaller ones.
    It never exceeds the recommended schedule's cost, which also serves the median.
    """
    demand = _demand_by_bucket(median, shares)
    peak = float(np.nanmax(median)) * shares
    costs = [fleets[0].scheduled_cost_per_hour]
    for fleet in fleets:
        on_median = build_schedule(
            fleet.schedule.times,
            demand,
            fleet.deployments,
            fleet.schedule.interval_s,
            fleet.schedule.delay_s,
            limits,
        )
        costs.append(_schedule_cost(on_median))
    if len(peak) == 1 and peak[0] > 0:
        cheapest = sorted(
            (o for o in options if o.goodput[0] > 0), key=lambda o: o.cost_per_hour / o.goodput[0]
        )[:MEDIAN_OPTIONS]
        for option in cheapest:
            sized = _own_size_count(option, 0, cands[option.key], evaluator, float(peak[0]))
            limit = (limits or {}).get(option.accelerator)
            if sized is None or (limit is not None and sized[0] * option.gpus > limit):
                continue
            counts = np.array([[sized[0]]])
            mix = Mix(
                (replace(option, goodput=(sized[1],)),), counts, sized[0] * option.cost_per_hour
            )
            costs.append(fleet_of(mix, demand=demand).scheduled_cost_per_hour)
    return min(costs)


def make_plan(
    con: duckdb.DuckDBPyConnection,
    trace: str,
    model: str,
    slos: Sequence[str | Slo],
    attainment: float = 0.99,
    accelerators: Sequence[str] | None = None,
    prices: str | None = None,
    available: str | None = None,
    budget: str | None = None,
    buckets: bool = False,
    horizon: str = "1d",
    interval: str = "10min",
    quantile: str = "p95",
    cold_starts: str | None = None,
    rate_scale: float = 1.0,
    db: str = "",
    progress: Callable[[str], None] | None = None,
    engine: str = DEFAULT_ENGINE,
) -> dict:
    """The cheapest plan holding the SLO for `trace`, its schedule and replay (PLAN.json dict).

    Every replica is simulated as `engine` serves (its batching, memory share and host costs).
    """
    started = time.perf_counter()
    slo_list = _slo_list(slos, attainment)
    targets = Targets.of(slo_list, attainment)
    info = get_trace(con, trace)
    catalog = load_catalog(prices)
    accs = [get_accelerator(a, catalog) for a in (accelerators or DEFAULT_ACCELERATORS)]
    limits = parse_available(available, catalog)
    budget_per_hour = parse_budget(budget)
    card = load_card(model)
    profile = load_engine(engine)

    _say(progress, "enumerating candidate plans")
    enum = enumerate_candidates(card.id, accs, catalog, profile)
    check_model_fits(card.id, enum.candidates, enum.unfit, accs)

    _say(progress, "forecasting demand")
    demand = demand_series(con, trace, interval, rate_scale)
    interval_s = demand.interval_s
    steps = parse_duration(horizon, "--horizon") // interval_s
    if steps < 1:
        raise PlannerError(f"--horizon {horizon} is shorter than one --interval {interval}")
    holdout = min(steps, len(demand.rps) // 2)
    if holdout < 1:
        raise PlannerError(
            f"trace {trace!r} spans less than two {interval} intervals; too short to plan"
        )
    cutoff = len(demand.rps) - holdout
    forward = forecast_demand(con, demand, len(demand.rps), steps)
    held = forecast_demand(con, demand, cutoff, holdout)
    level = forward.level(quantile)

    _say(progress, "sampling the request mix")
    sample = representative_slice(con, info, interval_s, cutoff * interval_s)
    edges, shares, names = _bucket_edges(sample, buckets)
    ctx = Context(info, slo_list, targets, accs, demand, cutoff, edges, shares, names, rate_scale)
    workloads = split_buckets(sample, edges)
    peak = float(max(np.nanmax(level), np.nanmax(held.level(quantile))))
    evaluator = GoodputEvaluator(workloads, slo_list, attainment)
    found = search(enum.candidates, evaluator, targets, peak * shares, progress)
    if not found.latency_feasible:
        check_latency_reachable(
            enum.candidates, [found.bounds[(c.id, 0)] for c in enum.candidates], targets
        )
    _check_simulated(found, ctx)

    _say(progress, "choosing the accelerator mix")
    options, cands, pools = _options(found.evaluations, len(names))
    refine = partial(_refined_mix, options=options, cands=cands, pools=pools, evaluator=evaluator)
    mix = refine(_mix_solver(peak * shares, limits, budget_per_hour), demand=peak * shares)
    if mix is None:
        raise PlannerError(f"no mix serves the forecast peak of {peak:.3g} req/s")
    single = refine(
        partial(
            best_single_accelerator,
            demand=peak * shares,
            available=limits,
            budget_per_hour=budget_per_hour,
        ),
        demand=peak * shares,
    )

    _say(progress, "building the scaling schedule")
    weights_gb = card.total_params() * dtype_bytes(card.dtype) / 1e9
    delay = provisioning_delay(con, card.id, weights_gb, cold_starts)
    fleet_of = partial(
        _fleet,
        cands=cands,
        evaluator=evaluator,
        names=names,
        forecast=forward,
        demand=_demand_by_bucket(level, shares),
        delay_s=delay.seconds,
        limits=limits,
    )
    fleet = mix_fleet = fleet_of(mix)
    single_fleet = None
    if single is not None:
        single_fleet = fleet if len(mix.gpus_by_accelerator()) == 1 else fleet_of(single)
        if single_fleet.scheduled_cost_per_hour < fleet.scheduled_cost_per_hour:
            fleet = single_fleet
    deployments, schedule = fleet.deployments, fleet.schedule
    planned = [f for f in (fleet, mix_fleet, single_fleet) if f is not None]
    median_cost = _median_cost(
        planned, fleet_of, options, cands, evaluator, forward.level("p50"), shares, limits
    )

    _say(progress, "replaying the held-back trace")
    replicas = [
        ReplicaPlan(
            evaluator.table(cands[d.option.key]),
            cands[d.option.key].max_batch,
            cands[d.option.key].pd,
        )
        for d in deployments
    ]
    replayed, tail = _replay_all(
        con, ctx, held, quantile, deployments, replicas, delay.seconds, limits
    )

    tokens = _tokens_per_request(tail)
    bucket_tokens = np.array([_tokens_per_request(w) if w.requests else tokens for w in workloads])
    mean_p50 = float(np.nanmean(forward.level("p50")))
    groups = fleet.groups(cands, evaluator)
    costs = fleet.costs(mean_p50, tokens)
    single_block = None
    if single_fleet is not None:
        single_groups = single_fleet.groups(cands, evaluator)
        single_block = {
            "accelerator": single_groups[0]["accelerator"],
            "replicas": single_groups,
        } | single_fleet.costs(mean_p50, tokens)
    plan = {
        "version": PLAN_VERSION,
        "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "db": db,
        "trace": {
            "name": info.name,
            "format": info.format,
            "table": info.kind,
            "requests": int(info.rows),
            "span_s": float(info.span_s or 0.0),
            "rate_scale": rate_scale,
        },
        "model": card.id,
        "engine": {
            "id": profile.id,
            "release": profile.release,
            "name": profile.name,
            "version": profile.version,
        },
        "slo": {f"{s.metric}_p{s.percentile:g}_ms": s.limit_ms for s in slo_list}
        | {"attainment": attainment},
        "accelerators": [
            {
                "id": a.id,
                "name": a.name,
                "price_per_hour": a.price_per_hour,
                "price_source": a.price_source,
            }
            for a in accs
        ],
        "horizon_s": float(steps * interval_s),
        "interval_s": float(interval_s),
        "quantile": quantile,
        "demand": {
            "unit": "requests/s",
            "mean_in_tokens": round(float(np.mean(tail.input_tokens)), 2),
            "mean_out_tokens": round(float(np.mean(tail.output_tokens)), 2),
            "peak_rps": round(float(np.nanmax(demand.rps)), 4),
            "mean_rps": round(float(np.nanmean(demand.rps)), 4),
            "forecast_peak_rps": round(float(np.nanmax(level)), 4),
            "forecast_mean_rps": round(mean_p50, 4),
            "sized_for_rps": round(peak, 4),
            "buckets": [
                {
                    "name": n,
                    "share": round(float(s), 4),
                    "max_input_tokens": int(edges[i]) if i < len(edges) else None,
                }
                for i, (n, s) in enumerate(zip(names, shares, strict=True))
            ],
        },
        "recommended": {
            "sentence": _sentence(card.id, profile.name, groups, costs, targets, single_block),
            "replicas": groups,
        }
        | costs,
        "alternatives": {
            "static_peak": {
                "cost_per_hour": costs["cost_per_hour"],
                "cost_per_month": round(fleet.peak_cost_per_hour * HOURS_PER_MONTH, 2),
                "cost_per_mtok": _round(_per_mtok(fleet.peak_cost_per_hour, mean_p50, tokens)),
                "replicas": groups,
            },
        }
        | ({"best_single_accelerator": single_block} if single_block else {}),
        "cost_band": {
            "p50_cost_per_month": round(median_cost * HOURS_PER_MONTH, 2),
            f"{quantile}_cost_per_month": costs["cost_per_month"],
        },
        "frontier": _frontier(found.evaluations, deployments, bucket_tokens, names),
        "forecast": {
            "series": "total",
            "method": forward.method,
            "freq": format_duration(interval_s),
            "history": [
                {"t": float(k * interval_s), "rps": round(float(v), 5)}
                for k, v in enumerate(demand.rps)
                if np.isfinite(v)
            ],
            "points": forward.points(),
        },
        "schedule": schedule.rows(),
        "provisioning_delay_s": delay.seconds,
        "provisioning_source": delay.source,
        "replay": replayed,
        "search": {
            "candidates": enum.enumerated,
            "fitting": len(enum.candidates),
            "latency_feasible": found.latency_feasible,
            "batch_pruned": found.batch_pruned,
            "bound_pruned": found.bound_pruned,
            "simulated": len(found.evaluations),
            "feasible": len(options),
            "search_seconds": round(found.seconds, 2),
            "seconds": round(time.perf_counter() - started, 2),
        },
    }
    return validate_plan(plan)
