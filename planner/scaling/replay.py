"""Replay a trace through the simulator under a provisioning policy whose replica count varies.

Design: every policy becomes a Timeline, replica counts per deployment on a regular time grid,
both *requested* (billed: from the moment a replica is asked for) and *ready* (serving: a
replica requested at t serves from t + provisioning delay; a release takes effect at once).
Each request is routed when it arrives, among the replicas ready then, with a weight equal to
their goodput (a deterministic low-discrepancy sequence, so the split is even without per-request
state); a released replica takes no new requests but finishes what it holds. Routing fixes
every replica's request stream up front, so each replica is simulated once, independently, with
the simulator's one-replica model: a replica idle while released simply sees no arrivals. The
per-request latencies of all replicas then give the SLO attainment; the timeline gives
GPU-hours, cost, replica starts (cold starts) and scaling actions.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from planner.scaling.autoscaler import (
    SCALE_DOWN_WINDOW_S,
    HpaConfig,
    KpaConfig,
    hpa_replicas,
    kpa_replicas,
)
from planner.scaling.schedule import Deployment, Schedule
from planner.simulate import SimResult, Slo, StepTable, Workload, engine_scheduling, simulate

GRID_S = 5.0
ALONE_GAP_S = 1e6
GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class Timeline:
    """Requested (billed) and ready (serving) replicas per grid step and deployment."""

    start_s: float
    step_s: float
    requested: np.ndarray
    ready: np.ndarray

    def index(self, t: np.ndarray) -> np.ndarray:
        """Grid rows of times `t` (clipped to the grid)."""
        rows = np.floor((np.asarray(t) - self.start_s) / self.step_s).astype(np.int64)
        return np.clip(rows, 0, len(self.requested) - 1)


def _grid(start_s: float, end_s: float, step_s: float) -> np.ndarray:
    """Grid times from start to end."""
    return start_s + step_s * np.arange(max(int(np.ceil((end_s - start_s) / step_s)), 1))


def _window(values: np.ndarray, width: int, reduce: str, ahead: bool) -> np.ndarray:
    """Rolling min/max over `width` rows behind (or ahead of) each row, edge-padded."""
    if width <= 0:
        return values.copy()
    pad = ((0, width), (0, 0)) if ahead else ((width, 0), (0, 0))
    padded = np.pad(values, pad, mode="edge")
    view = sliding_window_view(padded, width + 1, axis=0)
    return view.max(axis=-1) if reduce == "max" else view.min(axis=-1)


def ready_from_requested(requested: np.ndarray, delay_s: float, step_s: float) -> np.ndarray:
    """Replicas serving: a slot counts once it has been requested for the whole delay (LIFO)."""
    return _window(requested, int(np.ceil(delay_s / step_s)), "min", ahead=False)


def static_timeline(
    counts: np.ndarray, start_s: float, end_s: float, step_s: float = GRID_S
) -> Timeline:
    """A fixed fleet, provisioned before the window starts."""
    grid = _grid(start_s, end_s, step_s)
    fleet = np.tile(np.asarray(counts, dtype=np.int64), (len(grid), 1))
    return Timeline(start_s, step_s, fleet, fleet)


def schedule_timeline(
    schedule: Schedule, start_s: float, end_s: float, step_s: float = GRID_S
) -> Timeline:
    """The schedule's ready counts, each scale-up requested one delay ahead."""
    grid = _grid(start_s, end_s, step_s)
    rows = np.clip(
        np.searchsorted(schedule.times, grid, side="right") - 1, 0, len(schedule.times) - 1
    )
    ready = schedule.counts[rows].astype(np.int64)
    requested = _window(ready, int(np.ceil(schedule.delay_s / step_s)), "max", ahead=True)
    return Timeline(
        start_s, step_s, requested, ready_from_requested(requested, schedule.delay_s, step_s)
    )


def capacity_shares(deployments: Sequence[Deployment], counts: np.ndarray) -> np.ndarray:
    """Each deployment's share of its bucket's traffic at the peak fleet (by goodput)."""
    capacity = np.array([d.goodput for d in deployments]) * np.asarray(counts, dtype=float)
    buckets = np.array([d.bucket for d in deployments])
    totals = np.array([capacity[buckets == b].sum() for b in buckets])
    return np.divide(capacity, totals, out=np.zeros_like(capacity), where=totals > 0)


@dataclass(frozen=True)
class Controller:
    """A reactive autoscaler: Kubernetes' HPA or Knative's KPA (`kind`), on request rate or,
    given each arrival's `tokens` and the sized mix's mean tokens per request of each bucket
    (`mean_tokens`), on tokens/s. `scale_down_window_s`: the HPA's scale-down stabilisation
    window."""

    kind: str = "hpa"
    tokens: np.ndarray | None = None
    mean_tokens: np.ndarray | None = None
    scale_down_window_s: float = SCALE_DOWN_WINDOW_S

    def unit(self, bucket: int) -> float:
        """The metric per request of `bucket`'s sized mix: its mean tokens on tokens/s, else 1."""
        if self.tokens is None or self.mean_tokens is None:
            return 1.0
        return float(self.mean_tokens[bucket])

    def counts(
        self,
        dep: Deployment,
        arrivals: np.ndarray,
        mask: np.ndarray,
        window: tuple,
        offset: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(times, replicas requested) of `dep` watching `arrivals[mask]`; `window`: (start_s,
        end_s, initial replicas, target req/s per replica, max replicas); `offset`: the metric
        other replicas serve (an HPA then sizes only the rest, from zero)."""
        start_s, end_s, initial, target, ceiling = window
        weights = None if self.tokens is None else self.tokens[mask]
        target *= self.unit(dep.bucket)
        if self.kind == "kpa":
            config = KpaConfig(target_rps=target, max_replicas=ceiling)
            return kpa_replicas(arrivals[mask], start_s, end_s, config, initial, weights)
        hpa = HpaConfig(
            target_rps=target,
            min_replicas=0 if offset is not None else 1,
            max_replicas=ceiling,
            scale_down_window_s=self.scale_down_window_s,
        )
        return hpa_replicas(arrivals[mask], start_s, end_s, hpa, initial, weights, offset)


def reactive_timeline(
    arrivals: np.ndarray,
    bucket: np.ndarray,
    deployments: Sequence[Deployment],
    peak_counts: np.ndarray,
    initial: np.ndarray,
    delay_s: float,
    start_s: float,
    end_s: float,
    utilisation: float = 0.8,
    step_s: float = GRID_S,
    available: Mapping[str, int] | None = None,
    controller: Controller = Controller(),
) -> Timeline:
    """One autoscaler (`controller`: HPA on request rate by default) per deployment on its
    share of its bucket's traffic, with the delay; with `available` GPUs per accelerator, each
    one's maxReplicas keeps its share of them (its share of that accelerator's GPUs in the peak
    fleet, never below its peak count).

    The per-replica target is `utilisation` × one replica's goodput: what a single-pod load
    test measures, the usual way an AverageValue target is set. (The peak fleet's per-replica
    goodput assumes the pooling of the whole fleet, which the one to three replicas an HPA runs
    off-peak do not have: on a spiky ServeGen client, m-large chunk-95 at 69× its rate, that
    target held 3.7 % of requests within the SLO, this one 78.7 %.)
    """
    grid = _grid(start_s, end_s, step_s)
    shares = capacity_shares(deployments, peak_counts)
    requested = np.zeros((len(grid), len(deployments)), dtype=np.int64)
    ceiling = max_replicas(deployments, peak_counts, available)
    for j, dep in enumerate(deployments):
        if shares[j] <= 0:
            continue
        target = dep.goodput_at(1) * utilisation / shares[j]
        window = (start_s, end_s, int(initial[j]), target, ceiling[j])
        times, counts = controller.counts(dep, arrivals, bucket == dep.bucket, window)
        requested[:, j] = _on_grid(times, counts, grid)
    return Timeline(start_s, step_s, requested, ready_from_requested(requested, delay_s, step_s))


def _on_grid(times: np.ndarray, counts: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """An autoscaler's counts (set at `times`) held over the grid."""
    return counts[np.clip(np.searchsorted(times, grid, side="right") - 1, 0, len(times) - 1)]


def burst_deployments(deployments: Sequence[Deployment]) -> dict[int, int]:
    """Per length bucket, the deployment whose one replica serves a request/s cheapest."""

    def price(j: int) -> float:
        """$/hour per request/s of one replica of deployment `j`."""
        dep = deployments[j]
        return dep.option.cost_per_hour / max(dep.goodput_at(1), 1e-12)

    buckets = sorted({d.bucket for d in deployments})
    return {
        b: min((j for j, d in enumerate(deployments) if d.bucket == b), key=price) for b in buckets
    }


def hybrid_timeline(
    arrivals: np.ndarray,
    bucket: np.ndarray,
    deployments: Sequence[Deployment],
    floor: Timeline,
    peak_counts: np.ndarray,
    delay_s: float,
    utilisation: float,
    controller: Controller,
    available: Mapping[str, int] | None = None,
) -> Timeline:
    """The hybrid: the `floor` timeline (a forecast schedule) plus burst replicas, per length
    bucket one HPA adding replicas of the bucket's cheapest deployment per request/s for the
    load the floor's serving replicas do not cover at `utilisation` (each at its pooled
    goodput); burst replicas pay the delay, and with `available` GPUs they fill only what the
    floor leaves of their deployment's share.

    One burst pool rather than an HPA per deployment: on a fleet of several accelerator types,
    an HPA per type keeps a replica of every type whenever traffic comes (ServeGen m-large
    chunk-49 at 1 req/s: $359 for the day, against the forecast schedule's $203; one pool:
    $212)."""
    grid = floor.start_s + floor.step_s * np.arange(len(floor.requested))
    end_s = float(grid[-1] + floor.step_s)
    burst = np.zeros_like(floor.requested)
    ceiling = max_replicas(deployments, peak_counts, available)
    for b, j in burst_deployments(deployments).items():
        dep = deployments[j]
        served = sum(
            d.capacity(floor.ready[:, k]) for k, d in enumerate(deployments) if d.bucket == b
        )
        covered = np.asarray(served, dtype=float) * utilisation * controller.unit(b)
        window = (floor.start_s, end_s, 0, dep.goodput_at(1) * utilisation, None)
        times, counts = controller.counts(
            dep, arrivals, bucket == b, window, lambda t, c=covered: c[floor.index(t)]
        )
        burst[:, j] = _on_grid(times, counts, grid)
        if ceiling[j] is not None:
            burst[:, j] = np.minimum(burst[:, j], np.maximum(ceiling[j] - floor.requested[:, j], 0))
    return Timeline(
        floor.start_s,
        floor.step_s,
        floor.requested + burst,
        floor.ready + ready_from_requested(burst, delay_s, floor.step_s),
    )


def max_replicas(
    deployments: Sequence[Deployment],
    peak_counts: np.ndarray,
    available: Mapping[str, int] | None,
) -> list[int | None]:
    """Each deployment's HPA maxReplicas within `available` GPUs per accelerator (None: no
    limit): on each limited accelerator it spans, its share of that accelerator's GPUs in the
    peak fleet; the least of those, at least its peak count."""
    spans = [d.option.gpus_on() for d in deployments]
    peak = np.asarray(peak_counts)
    out: list[int | None] = []
    for j, mine in enumerate(spans):
        caps = []
        for acc, gpus in mine.items():
            limit = (available or {}).get(acc)
            if limit is None:
                continue
            same = sum(g.get(acc, 0) * n for g, n in zip(spans, peak, strict=True))
            share = gpus * peak[j] / same if same > 0 else 0.0
            caps.append(int(limit * share // gpus))
        out.append(max(min(caps), int(peak[j])) if caps else None)
    return out


def route(
    arrivals: np.ndarray, bucket: np.ndarray, deployments: Sequence[Deployment], timeline: Timeline
) -> tuple[np.ndarray, np.ndarray]:
    """(deployment, replica slot) per request among replicas ready at its arrival; -1 if none."""
    ready = timeline.ready[timeline.index(arrivals)].astype(float)
    goodput = np.array([d.goodput for d in deployments])
    serves = bucket[:, None] == np.array([d.bucket for d in deployments])[None, :]
    capacity = np.where(serves, ready * goodput[None, :], 0.0)
    cum = np.cumsum(capacity, axis=1)
    total = cum[:, -1]
    u = (np.arange(len(arrivals)) * GOLDEN % 1.0) * total
    dep = np.minimum((cum <= u[:, None]).sum(axis=1), len(deployments) - 1)
    offset = np.take_along_axis(cum - capacity, dep[:, None], axis=1)[:, 0]
    slot = np.floor((u - offset) / goodput[dep]).astype(np.int64)
    slot = np.minimum(slot, ready[np.arange(len(arrivals)), dep].astype(np.int64) - 1)
    routed = total > 0
    return np.where(routed, dep, -1), np.where(routed, slot, -1)


@dataclass(frozen=True)
class ReplicaPlan:
    """How to simulate one replica of a deployment: its step table, max batch and P:D split,
    and its prefill side's step table when that runs on other hardware."""

    table: StepTable
    max_batch: int
    disagg: tuple[int, int] | None
    prefill_table: StepTable | None = None


@dataclass(frozen=True)
class ReplayResult:
    """One policy's replay: SLO attainment and what the fleet cost; which requests met the SLO
    (in the workload's order; what the replay's diagnosis splits by interval), and per
    deployment the share of its ready GPU-time spent stepping (what its power draw follows);
    the share of prompt tokens a prefix cache spared from prefill."""

    slo_attainment: float
    gpu_hours: float
    cost: float
    replica_starts: int
    scaling_actions: int
    meets: np.ndarray
    busy_share: np.ndarray
    prefix_saved: float = 0.0

    def to_dict(self) -> dict:
        """The PLAN.json replay entry."""
        return {
            "slo_attainment": round(self.slo_attainment, 5),
            "gpu_hours": round(self.gpu_hours, 3),
            "cost": round(self.cost, 2),
            "replica_starts": self.replica_starts,
            "scaling_actions": self.scaling_actions,
            "prefix_cache_saved_share": round(self.prefix_saved, 5),
        }


def replay(
    work: Workload,
    bucket: np.ndarray,
    deployments: Sequence[Deployment],
    replicas: Sequence[ReplicaPlan],
    timeline: Timeline,
    slos: list[Slo],
    replayed_rows: np.ndarray | None = None,
) -> ReplayResult:
    """Simulate every replica's routed requests and total the policy's cost (`replayed_rows`: the
    timeline's grid rows the requests were drawn from, when only some intervals are replayed;
    busy shares are of those rows' ready time)."""
    dep, slot = route(work.arrival_s, bucket, deployments, timeline)
    meets = np.zeros(work.requests, dtype=bool)
    busy = np.zeros(len(deployments))
    prompt = np.zeros(2, dtype=np.int64)
    key = np.where(dep >= 0, dep * (slot.max(initial=0) + 1) + slot, -1)
    order = np.argsort(key, kind="stable")
    keys, first = np.unique(key[order], return_index=True)
    bounds = np.r_[first, len(order)]
    for k, lo, hi in zip(keys.tolist(), bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if k < 0:
            continue
        rows = order[lo:hi]
        d = int(dep[rows[0]])
        plan = replicas[d]
        result = served_by(plan, work.take(rows))
        meets[rows] = result.meets(slos)
        busy[d] += result.busy_s * deployments[d].option.gpus / sum(plan.disagg or (1,))
        prompt += (result.cached_tokens, result.prefilled_tokens)
    totals = _totals(meets, busy, deployments, timeline, replayed_rows)
    return replace(totals, prefix_saved=float(prompt[0] / max(prompt.sum(), 1)))


def missed_alone(
    work: Workload,
    bucket: np.ndarray,
    deployments: Sequence[Deployment],
    replicas: Sequence[ReplicaPlan],
    slos: list[Slo],
    suspects: np.ndarray,
) -> np.ndarray:
    """Which of the `suspects` (a mask over `work`) miss the SLO even served one at a time on
    an idle replica of every deployment of their length bucket: requests no fleet of these
    deployments serves in time, whatever the policy. Each is replayed alone, ALONE_GAP_S after
    the one before (a prefix cache keeps what the ones before left)."""
    lost = np.asarray(suspects, dtype=bool).copy()
    for dep, plan in zip(deployments, replicas, strict=True):
        rows = np.flatnonzero(lost & (bucket == dep.bucket))
        if not len(rows):
            continue
        sub = work.take(rows)
        sub = sub.shifted(ALONE_GAP_S * np.arange(len(rows)) - sub.arrival_s)
        lost[rows] = ~served_by(plan, sub).meets(slos)
    return lost


def served_by(plan: ReplicaPlan, work: Workload) -> SimResult:
    """What the requests of `work` experience on one replica of `plan`."""
    rules = engine_scheduling(plan.table, plan.max_batch)
    result = simulate(work, plan.table, rules, disagg=plan.disagg, prefill_model=plan.prefill_table)
    assert result is not None  # simulate returns None only when given stop_below
    return result


def missed_while_starting(timeline: Timeline, arrivals: np.ndarray, meets: np.ndarray) -> dict:
    """How many requests a policy missed, and how many of those arrived while replicas it had
    asked for were still starting (requested, not yet ready): misses a faster reaction cannot
    avoid, only replicas already running or a shorter start-up."""
    rows = timeline.index(arrivals)
    starting = (timeline.requested[rows] > timeline.ready[rows]).any(axis=1)
    missed = ~np.asarray(meets, dtype=bool)
    return {"missed": int(missed.sum()), "while_starting": int((missed & starting).sum())}


def timeline_cost(timeline: Timeline, deployments: Sequence[Deployment]) -> float:
    """What a timeline bills: every requested replica at its $/hour (known before simulating)."""
    prices = np.array([d.option.cost_per_hour for d in deployments])
    return float((timeline.requested @ prices).sum() * timeline.step_s / 3600.0)


def _totals(
    meets: np.ndarray,
    busy: np.ndarray,
    deployments: Sequence[Deployment],
    timeline: Timeline,
    replayed_rows: np.ndarray | None = None,
) -> ReplayResult:
    """Attainment from the per-request mask; GPU-hours, cost, starts, actions from the timeline;
    busy shares from the busy GPU-seconds per deployment over its ready GPU-seconds."""
    hours = timeline.step_s / 3600.0
    gpus = np.array([d.option.gpus for d in deployments])
    req = timeline.requested
    steps = np.diff(req, axis=0)
    rows = replayed_rows if replayed_rows is not None else slice(None)
    ready = timeline.ready[rows].sum(axis=0) * gpus * timeline.step_s
    return ReplayResult(
        slo_attainment=float(meets.mean()) if len(meets) else 1.0,
        gpu_hours=float((req @ gpus).sum() * hours),
        cost=timeline_cost(timeline, deployments),
        replica_starts=int(req[0].sum() + np.clip(steps, 0, None).sum()),
        scaling_actions=int((steps != 0).sum()),
        meets=meets,
        busy_share=np.clip(np.divide(busy, ready, out=np.zeros_like(busy), where=ready > 0), 0, 1),
    )


POLICY_NAMES = {
    "schedule": "the forecast schedule",
    "static_peak": "static peak provisioning",
    "reactive": "the reactive autoscaler (HPA)",
    "reactive_tokens": "the HPA on tokens/s",
    "kpa": "Knative's KPA",
    "hybrid": "the hybrid (forecast schedule as a floor, HPA on tokens/s above it)",
}


def replay_verdict(
    results: dict[str, dict],
    attainment: float,
    higher: str | None = None,
    cause: str = "",
    ceiling: float = 1.0,
    starting: dict | None = None,
) -> dict:
    """Which replayed policy held the attainment target at the least cost, in one sentence.

    The replay is the only place the policies meet the same traffic, so the plan says
    plainly when the schedule is not the cheapest way to hold the SLO (on spiky clients whose
    bursts a day-ahead forecast cannot place, the reactive autoscaler often is). `higher` is
    the lowest forecast quantile whose schedule would add replicas; a higher --quantile is
    advised only then, since any other would give the same plan. `cause`: why the schedule
    missed the target, as the replay's diagnosis measured it (planner/scaling/diagnose.py);
    `ceiling`: the most any policy could hold with these deployments (below the target, no
    quantile is advised: more replicas would not help); `starting`: the hybrid's misses and how
    many came while its replicas were starting (`missed_while_starting` and the start-up
    seconds), said when the hybrid missed the target.
    """
    why = f" Why the schedule missed: {cause}." if cause else ""
    hybrid = results.get("hybrid")
    if starting and starting["missed"] and hybrid and hybrid["slo_attainment"] < attainment:
        share = starting["while_starting"] / starting["missed"]
        why += (
            f" Of the hybrid's misses, {share:.0%} arrived while replicas it had asked for were "
            f"still starting ({starting['start_up_s']:,.0f} s start-up)."
        )
    policies = [k for k in POLICY_NAMES if k in results]
    held = [k for k in policies if results[k]["slo_attainment"] >= attainment]
    if not held:
        best = max(policies, key=lambda k: results[k]["slo_attainment"])
        if ceiling < attainment:
            advice = (
                f"; {ceiling:.2%} is the most any policy holds with these deployments (the "
                "rest miss the SLO even alone on an idle replica)"
            )
        elif higher:
            advice = (
                f"; --quantile {higher} provisions more replicas in the intervals it forecasts "
                "higher"
            )
        else:
            advice = "; no higher forecast quantile would add replicas"
        return {
            "policy": None,
            "sentence": (
                f"No policy held the SLO for {attainment:.1%} of requests on the held-back "
                f"replay; the best, {POLICY_NAMES[best]}, held "
                f"{results[best]['slo_attainment']:.2%}{advice}.{why}"
            ),
        }
    best = min(held, key=lambda k: results[k]["cost"])
    cost = results[best]["cost"]
    others = ", ".join(
        f"{POLICY_NAMES[k]} ${results[k]['cost']:,.2f} ({results[k]['slo_attainment']:.2%})"
        for k in policies
        if k != best
    )
    return {
        "policy": best,
        "sentence": (
            f"On the held-back replay {POLICY_NAMES[best]} held the SLO at the least cost: "
            f"${cost:,.2f} with {results[best]['slo_attainment']:.2%} of requests within it "
            f"(target {attainment:.1%}); {others}.{why}"
        ),
    }
