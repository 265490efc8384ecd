"""Reactive baseline: the Kubernetes Horizontal Pod Autoscaler's rule on a request-rate metric.

The metric is the arrival rate (requests/s over the last METRIC_WINDOW_S, what a Prometheus
`rate(...[1m])` external metric gives) with an AverageValue target per replica, so HPA's rule
desired = ceil(current x metric_per_replica / target) reads desired = ceil(rate / target). As in
the HPA controller (kubernetes/pkg/controller/podautoscaler, default behaviour): a sync every
15 s; no change while |rate / (target x current) - 1| <= 0.1 (tolerance); scale-down
stabilisation of 300 s (the highest recommendation of the last 300 s wins); scale-up without
stabilisation but at most max(4 replicas, +100 %) per 15 s; min and max replicas. A new replica
only serves after the provisioning delay (applied by the replay).

With an `offset` (the hybrid policy, as NVIDIA Dynamo's planner pairs throughput-based
predictive scaling with load-based scaling for bursts), the metric is what the replicas already
serving (the forecast schedule's) do not cover: the HPA sizes only the burst capacity above
them, from zero.
"""

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SYNC_S = 15.0
SCALE_DOWN_WINDOW_S = 300.0
TOLERANCE = 0.1
METRIC_WINDOW_S = 60.0
SCALE_UP_PODS = 4
SCALE_UP_PERCENT = 100


@dataclass(frozen=True)
class HpaConfig:
    """One HorizontalPodAutoscaler: target requests/s per replica and its limits."""

    target_rps: float
    min_replicas: int = 1
    max_replicas: int | None = None
    sync_s: float = SYNC_S
    scale_down_window_s: float = SCALE_DOWN_WINDOW_S
    tolerance: float = TOLERANCE
    metric_window_s: float = METRIC_WINDOW_S


def observed_rate(
    arrivals: np.ndarray, times: np.ndarray, window_s: float, weights: np.ndarray | None = None
) -> np.ndarray:
    """Arrivals (or their `weights`, e.g. tokens) per second in (t - window, t] at each time."""
    order = np.argsort(arrivals, kind="stable")
    ordered = arrivals[order]
    hi = np.searchsorted(ordered, times, side="right")
    lo = np.searchsorted(ordered, times - window_s, side="right")
    if weights is None:
        return (hi - lo) / window_s
    total = np.r_[0.0, np.cumsum(np.asarray(weights, dtype=float)[order])]
    return (total[hi] - total[lo]) / window_s


def hpa_replicas(
    arrivals: np.ndarray,
    start_s: float,
    end_s: float,
    config: HpaConfig,
    initial: int,
    weights: np.ndarray | None = None,
    offset: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(sync times, replicas requested after each sync) of an HPA watching `arrivals` (their
    `weights` per second when given: the target is then in the same unit), less the `offset`
    (the metric's share that other capacity serves at given times) when there is one."""
    times = np.arange(start_s, end_s, config.sync_s)
    metric = observed_rate(arrivals, times, config.metric_window_s, weights)
    if offset is not None:
        metric = np.maximum(metric - offset(times), 0.0)
    proposals = np.ceil(metric / config.target_rps - 1e-9).astype(int)
    upper = config.max_replicas if config.max_replicas is not None else np.iinfo(np.int64).max
    keep = int(np.ceil(config.scale_down_window_s / config.sync_s)) + 1
    recent: deque[int] = deque(maxlen=keep)
    current = max(initial, config.min_replicas)
    out = np.empty(len(times), dtype=int)
    for k, (rate, proposal) in enumerate(zip(metric.tolist(), proposals.tolist(), strict=True)):
        ratio = rate / (config.target_rps * current) if current else np.inf
        wanted = current if abs(ratio - 1.0) <= config.tolerance else int(proposal)
        wanted = min(max(wanted, config.min_replicas), upper)
        recent.append(wanted)
        if wanted > current:
            current = min(wanted, current + max(SCALE_UP_PODS, current * SCALE_UP_PERCENT // 100))
        elif current > max(recent):
            current = max(recent)
        out[k] = current
    return times, out


@dataclass(frozen=True)
class KpaConfig:
    """One Knative Pod Autoscaler on a request-rate metric (`autoscaling.knative.dev/metric:
    rps`), with Knative Serving's defaults (config-autoscaler: a 2 s tick, a 60 s stable window,
    a panic window of 10 % of it, a 200 % panic threshold, scale-down at most halving per tick;
    scale to zero off, as an LLM replica's start-up is minutes)."""

    target_rps: float
    min_replicas: int = 1
    max_replicas: int | None = None
    tick_s: float = 2.0
    stable_window_s: float = 60.0
    panic_window_s: float = 6.0
    panic_threshold: float = 2.0
    max_scale_down_rate: float = 2.0


def kpa_replicas(
    arrivals: np.ndarray,
    start_s: float,
    end_s: float,
    config: KpaConfig,
    initial: int,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(ticks, replicas requested after each tick) of a KPA watching `arrivals`: the stable
    window's rate sets the count; when the panic window's rate asks for the panic threshold
    times the current count, it panics: scales up to the panic count and never down until a
    stable window passes without panic."""
    times = np.arange(start_s, end_s, config.tick_s)
    stable = observed_rate(arrivals, times, config.stable_window_s, weights)
    panic = observed_rate(arrivals, times, config.panic_window_s, weights)
    want_stable = np.ceil(stable / config.target_rps - 1e-9).astype(int)
    want_panic = np.ceil(panic / config.target_rps - 1e-9).astype(int)
    upper = config.max_replicas if config.max_replicas is not None else np.iinfo(np.int64).max
    current, calm_at = max(initial, config.min_replicas), -np.inf
    out = np.empty(len(times), dtype=int)
    for k, t in enumerate(times.tolist()):
        if want_panic[k] >= config.panic_threshold * max(current, 1):
            calm_at = t + config.stable_window_s
        if t < calm_at:
            wanted = max(current, int(want_panic[k]))
        else:
            floor_down = int(np.ceil(current / config.max_scale_down_rate))
            wanted = max(int(want_stable[k]), floor_down)
        current = min(max(wanted, config.min_replicas), upper)
        out[k] = current
    return times, out
