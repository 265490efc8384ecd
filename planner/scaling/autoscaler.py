"""Reactive baseline: the Kubernetes Horizontal Pod Autoscaler's rule on a request-rate metric.

The metric is the arrival rate (requests/s over the last METRIC_WINDOW_S, what a Prometheus
`rate(...[1m])` external metric gives) with an AverageValue target per replica, so HPA's rule
desired = ceil(current x metric_per_replica / target) reads desired = ceil(rate / target). As in
the HPA controller (kubernetes/pkg/controller/podautoscaler, default behaviour): a sync every
15 s; no change while |rate / (target x current) - 1| <= 0.1 (tolerance); scale-down
stabilisation of 300 s (the highest recommendation of the last 300 s wins); scale-up without
stabilisation but at most max(4 replicas, +100 %) per 15 s; min and max replicas. A new replica
only serves after the provisioning delay (applied by the replay).

With a `floor` (the hybrid policy, as NVIDIA Dynamo's planner pairs throughput-based predictive
scaling with load-based scaling for bursts), the replicas never drop below the forecast
schedule's count at that time: the HPA acts only above it.
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


def observed_rate(arrivals: np.ndarray, times: np.ndarray, window_s: float) -> np.ndarray:
    """Arrivals per second in (t - window, t] at each time (arrivals sorted)."""
    hi = np.searchsorted(arrivals, times, side="right")
    lo = np.searchsorted(arrivals, times - window_s, side="right")
    return (hi - lo) / window_s


def hpa_replicas(
    arrivals: np.ndarray,
    start_s: float,
    end_s: float,
    config: HpaConfig,
    initial: int,
    floor: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(sync times, replicas requested after each sync) of an HPA watching `arrivals`, never
    below `floor` (replicas at given times) when there is one."""
    times = np.arange(start_s, end_s, config.sync_s)
    lows = np.zeros(len(times), dtype=int) if floor is None else floor(times)
    metric = observed_rate(np.sort(arrivals), times, config.metric_window_s)
    proposals = np.ceil(metric / config.target_rps - 1e-9).astype(int)
    upper = config.max_replicas if config.max_replicas is not None else np.iinfo(np.int64).max
    keep = int(np.ceil(config.scale_down_window_s / config.sync_s)) + 1
    recent: deque[int] = deque(maxlen=keep)
    current = max(initial, config.min_replicas)
    out = np.empty(len(times), dtype=int)
    for k, (rate, proposal, low) in enumerate(zip(metric, proposals, lows.tolist(), strict=True)):
        ratio = rate / (config.target_rps * current)
        wanted = current if abs(ratio - 1.0) <= config.tolerance else int(proposal)
        wanted = min(max(wanted, config.min_replicas), upper)
        recent.append(wanted)
        if wanted > current:
            current = min(wanted, current + max(SCALE_UP_PODS, current * SCALE_UP_PERCENT // 100))
        elif current > max(recent):
            current = max(recent)
        current = max(current, low)
        out[k] = current
    return times, out
