"""Scaling schedule: replicas per interval that cover a forecast quantile of demand.

Per interval the least-cost mix (restricted to the plans of the peak mix, so the fleet keeps
its shape) covers that interval's demand. Per-replica goodput depends on the fleet size
(bursts pool across replicas), so each deployment carries a capacity curve, goodput per replica
measured at a few fleet sizes; the mix is solved with the peak goodput, then again with each
deployment's goodput at the count the first pass gave (smaller fleets get less per replica).
Scale-ups are requested one provisioning delay before the interval starts, so replicas are
ready when the demand arrives. Scale-down hysteresis: demand drops only to the most the next
`hold_s` seconds need, so a dip shorter than that keeps the fleet sized before it and never
releases replicas that would have to cold-start again (scale-ups are not advanced by the hold:
the provisioning lead already does that). The demand is held, not each plan's count: where the
least-cost fleet swaps plans as demand moves, holding counts would run both fleets at once. By
default `hold_s` is the provisioning delay (the ski-rental break-even: releasing a replica for a
gap longer than the delay saves more GPU-seconds than restarting it costs, since a replica is
billed from the moment it is requested), rounded up to whole intervals.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from planner.optimize.mix import MixOption, max_servable_scale, solve_mix

QUANTUM_PER_REPLICA = 32


@dataclass(frozen=True)
class Deployment:
    """One plan serving one length bucket: what the schedule sizes and the replay routes to."""

    option: MixOption
    bucket: int
    bucket_name: str
    curve: tuple[tuple[int, float], ...] = ()

    @property
    def label(self) -> str:
        """The plan id, with the bucket when requests are split by length."""
        return (
            self.option.key
            if self.bucket_name == "all"
            else f"{self.option.key}@{self.bucket_name}"
        )

    @property
    def goodput(self) -> float:
        """Requests/s one replica serves within the SLO on this bucket's requests (at peak)."""
        return self.option.goodput[self.bucket]

    def goodput_at(self, replicas: int) -> float:
        """Per-replica goodput in a fleet of `replicas` (interpolated on the capacity curve)."""
        return float(self._per_replica(np.asarray(replicas, dtype=float)))

    def capacity(self, replicas: np.ndarray) -> np.ndarray:
        """Requests/s that fleets of `replicas` replicas serve within the SLO, each pooled."""
        counts = np.asarray(replicas, dtype=float)
        return counts * self._per_replica(counts)

    def _per_replica(self, counts: np.ndarray) -> np.ndarray:
        """Per-replica goodput in fleets of `counts` replicas."""
        if not self.curve:
            return np.full_like(counts, self.goodput)
        sizes, rates = zip(*self.curve, strict=True)
        return np.interp(counts, sizes, rates)


@dataclass(frozen=True)
class Schedule:
    """Ready replica counts per interval (rows) and deployment (columns)."""

    times: np.ndarray
    interval_s: float
    delay_s: float
    deployments: tuple[Deployment, ...]
    counts: np.ndarray
    demand: np.ndarray

    def actions(self) -> np.ndarray:
        """Per interval and deployment: 'start', 'scale-up', 'scale-down' or 'hold'."""
        prev = np.vstack([np.zeros((1, self.counts.shape[1]), dtype=int), self.counts[:-1]])
        first = np.zeros_like(self.counts, dtype=bool)
        first[0] = True
        return np.select(
            [first & (self.counts > 0), self.counts > prev, self.counts < prev],
            ["start", "scale-up", "scale-down"],
            "hold",
        )

    def rows(self, changes_only: bool = False) -> list[dict]:
        """The schedule table: (t, plan, replicas, action, start_at, demand_rps) rows."""
        actions = self.actions()
        out = []
        for k, t in enumerate(self.times):
            for j, dep in enumerate(self.deployments):
                if changes_only and actions[k, j] == "hold":
                    continue
                up = actions[k, j] in ("start", "scale-up")
                out.append(
                    {
                        "t": float(t),
                        "plan": dep.label,
                        "replicas": int(self.counts[k, j]),
                        "action": str(actions[k, j]),
                        "start_at": float(t - self.delay_s) if up else float(t),
                        "demand_rps": round(float(self.demand[k, dep.bucket]), 4),
                    }
                )
        return out

    def cost_per_hour(self) -> np.ndarray:
        """Fleet cost per hour in each interval (ready replicas)."""
        prices = np.array([d.option.cost_per_hour for d in self.deployments])
        return self.counts @ prices

    @property
    def peak_counts(self) -> np.ndarray:
        """Replicas per deployment in the busiest interval (the highest total demand; the
        dearest fleet among ties): the fleet that serves the peak. Each group's own maximum
        (`counts.max(axis=0)`) can be more than any interval runs at once, where the schedule
        swaps one plan for another as demand moves."""
        if not len(self.times):
            return np.zeros(len(self.deployments), dtype=int)
        total = self.demand.sum(axis=1)
        busiest = np.flatnonzero(total >= total.max())
        return self.counts[busiest[np.argmax(self.cost_per_hour()[busiest])]]


def deployments_of(
    options: Sequence[MixOption], counts: np.ndarray, bucket_names: Sequence[str]
) -> tuple[Deployment, ...]:
    """The (plan, bucket) pairs a peak mix uses."""
    return tuple(
        Deployment(options[o], int(b), bucket_names[b])
        for o, b in zip(*np.nonzero(counts), strict=True)
    )


def _level_options(
    deployments: Sequence[Deployment], rates: np.ndarray, n_b: int
) -> list[MixOption]:
    """The deployments as mix options with goodput `rates`, each on its own bucket only."""
    return [
        MixOption(
            d.label,
            d.option.accelerator,
            d.option.gpus,
            d.option.cost_per_hour,
            tuple(float(r) if b == d.bucket else 0.0 for b in range(n_b)),
            d.option.power_kw,
        )
        for d, r in zip(deployments, rates, strict=True)
    ]


def _solve_levels(
    deployments: Sequence[Deployment],
    goodput: np.ndarray,
    levels: np.ndarray,
    available: Mapping[str, int] | None,
) -> np.ndarray:
    """Least-cost counts (levels, deployments) with per-level, per-deployment goodput."""
    n_b = levels.shape[1]
    out = []
    for level, rates in zip(levels, goodput, strict=True):
        mix = solve_mix(_level_options(deployments, rates, n_b), level, available)
        out.append(mix.counts.sum(axis=1) if mix is not None else np.full(len(rates), -1))
    return np.array(out, dtype=int).reshape(len(levels), len(deployments))


def _most_allowed(
    deployments: Sequence[Deployment],
    rates: np.ndarray,
    peak: np.ndarray,
    available: Mapping[str, int] | None,
) -> np.ndarray:
    """Counts serving the largest share of `peak` the limits allow (scarce inventory)."""
    options = _level_options(deployments, rates, len(peak))
    scale = min(max_servable_scale(options, peak, available), 1.0)
    mix = solve_mix(options, peak * scale * (1 - 1e-6), available) if scale > 0 else None
    return mix.counts.sum(axis=1) if mix is not None else np.zeros(len(rates), dtype=int)


def need_per_interval(
    deployments: Sequence[Deployment],
    demand: np.ndarray,
    available: Mapping[str, int] | None = None,
) -> np.ndarray:
    """Least-cost ready counts per interval covering each row of `demand` (intervals, buckets).

    Demand is rounded up to 1/QUANTUM_PER_REPLICA of the smallest replica's goodput (capped at
    the horizon peak) so that the MILP is solved once per distinct level, not per interval;
    every bucket with any demand keeps at least one replica. A level the limits cannot serve
    gets the peak fleet, or the most the limits allow when they cannot serve the peak either.
    """
    demand = np.atleast_2d(np.asarray(demand, dtype=float))
    n_b = demand.shape[1]
    quantum = (
        np.array(
            [
                min((d.goodput for d in deployments if d.bucket == b), default=1.0)
                for b in range(n_b)
            ]
        )
        / QUANTUM_PER_REPLICA
    )
    peak = demand.max(axis=0)
    served = peak > 0
    levels = np.minimum(np.ceil(demand / quantum) * quantum, peak)
    levels = np.where(served, np.maximum(levels, quantum), 0.0)
    unique, inverse = np.unique(levels, axis=0, return_inverse=True)
    at_peak = np.tile([d.goodput for d in deployments], (len(unique), 1))
    first = _solve_levels(deployments, at_peak, unique, available)
    scaled = np.array(
        [
            [d.goodput_at(max(int(c), 1)) for d, c in zip(deployments, row, strict=True)]
            for row in first
        ]
    )
    counts = _solve_levels(deployments, scaled, unique, available)
    fleet = _solve_levels(deployments, at_peak[:1], peak[None, :], available)[0]
    if (fleet < 0).any():
        fleet = _most_allowed(deployments, at_peak[0], peak, available)
    counts = np.where((counts < 0).any(axis=1, keepdims=True), fleet, counts)
    return counts[np.ravel(inverse)]


def hold_levels(levels: np.ndarray, hold_intervals: int) -> np.ndarray:
    """Scale-down hysteresis on demand (intervals, buckets): a dip of at most `hold_intervals`
    keeps the level before it, so the fleet sized for it is kept through the dip.

    A level drops at interval k only to the most the next `hold_intervals` intervals need;
    rises are never advanced (the provisioning lead does that). Held on demand, not on replica
    counts: where the least-cost fleet swaps one plan for another as demand moves, holding
    counts would run both at once, dearer than the fleet for either level.
    """
    held = levels.copy()
    for k in range(1, len(levels)):
        ahead = levels[k + 1 : k + 1 + hold_intervals].max(axis=0, initial=0)
        held[k] = np.maximum(levels[k], np.minimum(held[k - 1], ahead))
    return held


def build_schedule(
    times: np.ndarray,
    demand: np.ndarray,
    deployments: Sequence[Deployment],
    interval_s: float,
    delay_s: float,
    available: Mapping[str, int] | None = None,
    hold_s: float | None = None,
) -> Schedule:
    """Replica counts per interval covering `demand` (intervals, buckets), with hysteresis
    (`hold_s`, default the provisioning delay)."""
    demand = np.asarray(demand, dtype=float).reshape(len(times), -1)
    hold = delay_s if hold_s is None else hold_s
    held = hold_levels(demand, int(np.ceil(hold / interval_s)))
    counts = need_per_interval(deployments, held, available)
    return Schedule(
        times=np.asarray(times, dtype=float),
        interval_s=float(interval_s),
        delay_s=float(delay_s),
        deployments=tuple(deployments),
        counts=counts,
        demand=demand,
    )
