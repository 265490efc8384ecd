"""Replay of the trace's held-back tail: the plan judged on demand it was not sized on.

The tail (the last horizon of the trace, at most half of it) is forecast from the history
before it and replayed through the simulator under six policies: the plan's schedule, static
provisioning at that schedule's peak, three reactive autoscalers (Kubernetes HPA on request
rate and on tokens/s, Knative's KPA with its stable and panic windows), and the hybrid (a
forecast schedule as a floor, the HPA on tokens/s adding burst capacity above it; its settings
chosen on the windows before the tail: planner/scaling/tuning.py). The verdict says whether
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
from dataclasses import dataclass, field, replace

import duckdb
import numpy as np

from planner.optimize.goodput import scaled_workload
from planner.scaling.autoscaler import SCALE_DOWN_WINDOW_S
from planner.scaling.demand import DemandForecast, DemandSeries
from planner.scaling.diagnose import diagnose
from planner.scaling.fleet import demand_by_bucket
from planner.scaling.replay import (
    Controller,
    ReplayResult,
    ReplicaPlan,
    Timeline,
    hybrid_timeline,
    missed_alone,
    missed_while_starting,
    reactive_timeline,
    replay,
    replay_verdict,
    schedule_timeline,
    static_timeline,
)
from planner.scaling.schedule import Deployment, Schedule, build_schedule
from planner.simulate import Slo, Workload

MAX_REPLAY_REQUESTS = 200_000
UTILISATION = 0.8


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


@dataclass(frozen=True)
class HybridParams:
    """The hybrid policy's settings: the forecast quantile its floor schedule provisions, the
    HPA's target as a share of one replica's goodput, the HPA's scale-down window, and whether
    the floor is that schedule's peak held all window (`flat_floor`: static provisioning at the
    forecast's peak, for bursts no day-ahead forecast places in time); `tuning`: how they were
    chosen (PLAN.json `replay.hybrid_tuning`)."""

    floor_quantile: str
    utilisation: float = UTILISATION
    scale_down_window_s: float = SCALE_DOWN_WINDOW_S
    flat_floor: bool = False
    tuning: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        """The settings and how they were chosen."""
        return {
            "floor_quantile": self.floor_quantile,
            "utilisation": self.utilisation,
            "scale_down_window_s": self.scale_down_window_s,
            "flat_floor": self.flat_floor,
        } | self.tuning


@dataclass(frozen=True)
class Window:
    """One replayed window of the trace: its requests, their length buckets, its interval edges
    and requests per interval, and the intervals the simulator replays (busiest first)."""

    work: Workload
    bucket: np.ndarray
    edges: np.ndarray
    counts: np.ndarray
    chosen: np.ndarray

    @property
    def start_s(self) -> float:
        """Where the window starts (seconds from the trace start)."""
        return float(self.edges[0])

    @property
    def end_s(self) -> float:
        """Where the window ends."""
        return float(self.edges[-1])


def window_requests(
    con: duckdb.DuckDBPyConnection, tail: HeldBack, first: int, last: int
) -> Window:
    """The requests of intervals `first` to `last` (exclusive) of the tail's demand series."""
    interval = tail.demand.interval_s
    edges = interval * np.arange(first, last + 1, dtype=float)
    work = _requests_between(con, tail, float(edges[0]), float(edges[-1]))
    bucket = np.searchsorted(tail.edges, work.input_tokens, side="left")
    counts = np.histogram(work.arrival_s, bins=edges)[0]
    return Window(work, bucket, edges, counts, replayed_intervals(counts, MAX_REPLAY_REQUESTS))


def replay_window(
    window: Window,
    timelines: dict[str, Timeline],
    deployments: Sequence[Deployment],
    replicas: Sequence[ReplicaPlan],
    slos: list[Slo],
) -> tuple[dict[str, ReplayResult], Workload, np.ndarray]:
    """Every timeline replayed on the window's replayed intervals, the requests replayed and
    their length buckets."""
    grid = next(iter(timelines.values()))
    picked, rows = _replayed(window.work.arrival_s, window.edges, window.chosen, grid)
    sample = window.work.take(picked)
    bucket = window.bucket[picked]
    results = {
        name: replay(sample, bucket, deployments, replicas, tl, slos, rows)
        for name, tl in timelines.items()
    }
    return results, sample, bucket


def forecast_schedule(
    forecast: DemandForecast,
    quantile: str,
    shares: np.ndarray,
    deployments: Sequence[Deployment],
    delay_s: float,
    available: Mapping[str, int] | None,
) -> Schedule:
    """The schedule covering the forecast at `quantile`, split over length buckets by `shares`."""
    level = demand_by_bucket(forecast.level(quantile), shares)
    return build_schedule(
        forecast.times, level, deployments, forecast.interval_s, delay_s, available
    )


def replay_holdout(
    con: duckdb.DuckDBPyConnection,
    tail: HeldBack,
    forecast: DemandForecast,
    quantile: str,
    deployments: Sequence[Deployment],
    replicas: Sequence[ReplicaPlan],
    delay_s: float,
    available: Mapping[str, int] | None,
    hybrid: HybridParams,
) -> tuple[dict, Workload]:
    """Replay the held-back tail under every policy (PLAN.json's `replay` block; `hybrid`: the
    hybrid's settings, planner/scaling/tuning.py), and the tail's requests."""
    window = window_requests(con, tail, tail.cutoff, len(tail.demand.rps))
    sched = forecast_schedule(forecast, quantile, tail.shares, deployments, delay_s, available)
    floor = forecast_schedule(
        forecast, hybrid.floor_quantile, tail.shares, deployments, delay_s, available
    )
    scene = Scene(sched, window, mean_tokens_by_bucket(tail.sized, tail.edges), available)
    below = scene.floor_timeline(floor, hybrid.flat_floor)
    timelines = scene.timelines(below, hybrid)
    results, sample, bucket = replay_window(window, timelines, deployments, replicas, tail.slos)
    out: dict = {name: result.to_dict() for name, result in results.items()}
    missed_by_all = ~np.logical_or.reduce([r.meets for r in results.values()])
    lost = missed_alone(sample, bucket, deployments, replicas, tail.slos, missed_by_all)
    out["ceiling"] = idle_ceiling(sample, lost, tail.sized)
    hybrid_misses = missed_while_starting(
        timelines["hybrid"], sample.arrival_s, results["hybrid"].meets
    )
    out["hybrid_misses"] = hybrid_misses | {"start_up_s": round(delay_s, 1)}
    observed = window.counts / tail.demand.interval_s
    band, meets = forecast.level(quantile), results["schedule"].meets
    diagnosis = diagnose(
        tail.sized, sample, meets, window.edges, observed, band, tail.attainment, quantile, lost
    )
    out["verdict"] = replay_verdict(
        out,
        tail.attainment,
        higher_quantile(forecast, quantile, sched, delay_s, available),
        diagnosis["sentence"],
        out["ceiling"]["slo_attainment"],
        out["hybrid_misses"],
    )
    out["diagnosis"] = diagnosis
    out["busy_share"] = {
        d.label: round(float(x), 4)
        for d, x in zip(deployments, results["schedule"].busy_share, strict=True)
    }
    out["hybrid_tuning"] = hybrid.to_dict()
    shown = timelines | {"hybrid_floor": below}
    out["timeline"] = timeline_rows(shown, window.edges, observed, band)
    out["window"] = {
        "start_s": window.start_s,
        "end_s": window.end_s,
        "requests": window.work.requests,
        "replayed_requests": sample.requests,
        "replayed_intervals": int(window.chosen.sum()),
        "forecast_method": forecast.method,
    }
    return out, window.work


def idle_ceiling(sample: Workload, lost: np.ndarray, sized: Workload) -> dict:
    """PLAN.json's `replay.ceiling`: the most any policy could hold on the replayed requests
    with these deployments (the `lost` ones miss the SLO even alone on an idle replica), and
    the prompts of the lost ones beside the longest the plan was sized on."""
    prompts = sample.input_tokens[lost]
    return {
        "slo_attainment": round(1.0 - float(lost.mean()), 5) if len(lost) else 1.0,
        "requests_lost": int(lost.sum()),
        "lost_input_p50": float(np.median(prompts)) if len(prompts) else None,
        "lost_input_max": int(prompts.max()) if len(prompts) else None,
        "sized_input_max": int(sized.input_tokens.max()) if sized.requests else None,
    }


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


@dataclass(frozen=True)
class Scene:
    """What every policy replayed on one window is built from: the plan's schedule over it, the
    window's requests, the sized mix's mean tokens per request of each length bucket (the token
    targets' unit) and the GPUs available. Every policy pays the schedule's delay; the reactive
    ones start from the schedule's first counts."""

    sched: Schedule
    window: Window
    mean_tokens: np.ndarray
    available: Mapping[str, int] | None

    def reactive(
        self, controller: Controller | None = None, utilisation: float = UTILISATION
    ) -> Timeline:
        """One reactive autoscaler per deployment (HPA on request rate by default)."""
        return reactive_timeline(
            self.window.work.arrival_s,
            self.window.bucket,
            self.sched.deployments,
            self.sched.counts.max(axis=0),
            self.sched.counts[0],
            self.sched.delay_s,
            self.window.start_s,
            self.window.end_s,
            utilisation,
            available=self.available,
            controller=controller or Controller(),
        )

    def on_tokens(self) -> Controller:
        """The HPA on tokens/s."""
        work = self.window.work
        return Controller(
            tokens=work.input_tokens + work.output_tokens, mean_tokens=self.mean_tokens
        )

    def floor_timeline(self, floor: Schedule, flat: bool = False) -> Timeline:
        """The hybrid's floor: the `floor` schedule over the window, or (`flat`) its peak
        provisioned all window."""
        start_s, end_s = self.window.start_s, self.window.end_s
        if flat:
            return static_timeline(floor.peak_counts, start_s, end_s)
        return schedule_timeline(floor, start_s, end_s)

    def hybrid(self, floor: Timeline, params: HybridParams) -> Timeline:
        """The hybrid: the `floor` (a schedule's timeline) with burst replicas of an HPA on
        tokens/s above it."""
        controller = replace(self.on_tokens(), scale_down_window_s=params.scale_down_window_s)
        return hybrid_timeline(
            self.window.work.arrival_s,
            self.window.bucket,
            self.sched.deployments,
            floor,
            self.sched.counts.max(axis=0),
            self.sched.delay_s,
            params.utilisation,
            controller,
            self.available,
        )

    def timelines(self, floor: Timeline, params: HybridParams) -> dict[str, Timeline]:
        """Every policy's timeline: the schedule, its peak always on, three reactive autoscalers
        (HPA on request rate, HPA on tokens/s, Knative's KPA on request rate) and the hybrid."""
        start_s, end_s = self.window.start_s, self.window.end_s
        return {
            "schedule": schedule_timeline(self.sched, start_s, end_s),
            "static_peak": static_timeline(self.sched.peak_counts, start_s, end_s),
            "reactive": self.reactive(),
            "reactive_tokens": self.reactive(self.on_tokens()),
            "kpa": self.reactive(Controller(kind="kpa")),
            "hybrid": self.hybrid(floor, params),
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


def _requests_between(
    con: duckdb.DuckDBPyConnection, tail: HeldBack, start_s: float, end_s: float
) -> Workload:
    """The requests (within the model's context) from `start_s` to `end_s`, at their times in
    the trace: the tail's or a tuning window's."""
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
