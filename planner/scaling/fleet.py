"""The fleet a plan recommends: the mix's replica groups, their scaling schedule and costs.

A fleet is the mix's deployments, each with a capacity curve (goodput per replica at a few
fleet sizes) up to its peak count, and the schedule that sizes them per interval; a group the
schedule never runs is dropped. The fleet of its busiest interval is the one PLAN.json
recommends (with the most of each group the schedule runs, where that is more), and its monthly
bill is the schedule's mean cost per hour × 730 h.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from planner.optimize.candidates import Candidate
from planner.optimize.costing import mean_cost, per_month, per_mtok, rounded
from planner.optimize.goodput import MAX_POOL, GoodputEvaluator
from planner.optimize.mix import Mix, MixOption
from planner.optimize.refine import own_size_count
from planner.scaling.demand import DemandForecast
from planner.scaling.schedule import Deployment, Schedule, build_schedule, deployments_of

MEDIAN_OPTIONS = 4


def schedule_cost(schedule: Schedule) -> float:
    """Mean fleet cost per hour over the schedule."""
    return mean_cost(schedule.cost_per_hour()) if len(schedule.times) else 0.0


def demand_by_bucket(level: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """(intervals, buckets) demand from a total rate and the bucket shares."""
    return np.nan_to_num(level)[:, None] * shares[None, :]


def replica_group(
    cand: Candidate, label: str, bucket_name: str, count: int, goodput: float
) -> dict:
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


@dataclass(frozen=True)
class Fleet:
    """The replica groups a schedule runs (with capacity curves) and that schedule."""

    deployments: tuple[Deployment, ...]
    schedule: Schedule

    @property
    def peak_counts(self) -> np.ndarray:
        """Replicas per deployment in the schedule's busiest interval: the fleet recommended."""
        return self.schedule.peak_counts

    @property
    def accelerators(self) -> set[str]:
        """Accelerator types the schedule runs (groups it never runs were dropped)."""
        return {acc for d in self.deployments for acc in d.option.gpus_on()}

    @property
    def peak_cost_per_hour(self) -> float:
        """Cost per hour of the peak fleet (the schedule's busiest interval)."""
        return float(self.peak_counts @ [d.option.cost_per_hour for d in self.deployments])

    @property
    def scheduled_cost_per_hour(self) -> float:
        """Mean fleet cost per hour over the schedule."""
        return schedule_cost(self.schedule)

    def costs(self, served_rps: float, tokens: float) -> dict:
        """PLAN.json cost keys: peak fleet and scheduled $/hour, $/month and $/1M tokens."""
        scheduled = self.scheduled_cost_per_hour
        return {
            "cost_per_hour": round(self.peak_cost_per_hour, 4),
            "scheduled_cost_per_hour": round(scheduled, 4),
            "cost_per_month": round(per_month(scheduled), 2),
            "cost_per_mtok": rounded(per_mtok(scheduled, served_rps, tokens)),
        }

    @property
    def runs(self) -> tuple[str, ...]:
        """'3 x h100-tp1-agg-b128' per group in the busiest interval ('0 x ...' for a group
        only run off the peak)."""
        counts = zip(self.deployments, self.peak_counts.tolist(), strict=True)
        return tuple(f"{count} x {d.label}" for d, count in counts)

    @property
    def key(self) -> tuple:
        """What two fleets must share to be one: their groups and whole schedule."""
        return (tuple(d.label for d in self.deployments), self.schedule.counts.tobytes())

    def compared(self, how: str, chosen: bool) -> dict:
        """PLAN.json's row for this fleet among those the plan scheduled (`how` it was made)."""
        scheduled = self.scheduled_cost_per_hour
        return {
            "fleet": how,
            "replicas": list(self.runs),
            "cost_per_hour": round(self.peak_cost_per_hour, 4),
            "scheduled_cost_per_hour": round(scheduled, 4),
            "cost_per_month": round(per_month(scheduled), 2),
            "chosen": chosen,
        }

    def groups(self, cands: dict[str, Candidate], evaluator: GoodputEvaluator) -> list[dict]:
        """PLAN.json replica groups of the peak fleet, goodput measured at each group's size;
        a group the schedule runs more of elsewhere says so (`max_count`), one it runs only off
        the peak has count 0."""
        rows = []
        most = self.schedule.counts.max(axis=0).tolist()
        for d, count, top in sorted(
            zip(self.deployments, self.peak_counts.tolist(), most, strict=True),
            key=lambda dc: (dc[0].bucket, dc[0].option.cost_per_hour, dc[0].option.key),
        ):
            cand = cands[d.option.key]
            size = min(count or top, MAX_POOL)
            rate = evaluator.evaluate(cand, d.bucket, size, d.goodput).goodput_rps
            group = replica_group(cand, d.label, d.bucket_name, count, rate)
            rows.append(group | ({"max_count": top} if top > count else {}))
        return rows


def build_fleet(
    mix: Mix,
    cands: dict[str, Candidate],
    evaluator: GoodputEvaluator,
    names: Sequence[str],
    forecast: DemandForecast,
    demand: np.ndarray,
    delay_s: float,
    limits: Mapping[str, int] | None,
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


def median_cost(
    fleets: Sequence[Fleet],
    fleet_of: Callable[..., Fleet],
    options: Sequence[MixOption],
    cands: dict[str, Candidate],
    evaluator: GoodputEvaluator,
    median: np.ndarray,
    shares: np.ndarray,
    limits: Mapping[str, int] | None,
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
    demand = demand_by_bucket(median, shares)
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
        costs.append(schedule_cost(on_median))
    if len(peak) == 1 and peak[0] > 0:
        one_plan = one_plan_mixes(options, cands, evaluator, float(peak[0]), limits)
        costs += [fleet_of(mix, demand=demand).scheduled_cost_per_hour for mix in one_plan]
    return min(costs)


def one_plan_mixes(
    options: Sequence[MixOption],
    cands: dict[str, Candidate],
    evaluator: GoodputEvaluator,
    peak: float,
    limits: Mapping[str, int] | None,
) -> Iterator[Mix]:
    """One-plan mixes of the MEDIAN_OPTIONS plans cheapest per request/s, each sized for `peak`
    on goodput measured at its own count and within `limits` (one bucket).

    A generator, so each is measured just before its fleet is: the evaluator keeps the first
    measurement of a size, seeded by the goodput it was asked with, so the order counts."""
    cheapest = sorted(
        (o for o in options if o.goodput[0] > 0), key=lambda o: o.cost_per_hour / o.goodput[0]
    )[:MEDIAN_OPTIONS]
    for option in cheapest:
        sized = own_size_count(option, 0, cands[option.key], evaluator, peak)
        if sized is None or any(
            sized[0] * gpus > (limits or {}).get(acc, np.inf)
            for acc, gpus in option.gpus_on().items()
        ):
            continue
        counts = np.array([[sized[0]]])
        yield Mix((replace(option, goodput=(sized[1],)),), counts, sized[0] * option.cost_per_hour)
