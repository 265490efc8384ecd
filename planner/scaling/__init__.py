"""Scaling (SPEC 9.3): provisioning delay, forecast-driven schedule, HPA baseline, trace replay;
the plan's fleet (fleet.py), the replay of its held-back tail (holdout.py) and the hybrid
policy's settings chosen by replay (tuning.py)."""

from planner.scaling.autoscaler import HpaConfig, hpa_replicas
from planner.scaling.delay import (
    Instance,
    ProvisioningDelay,
    default_delay,
    measured_delay,
    provisioning_delay,
)
from planner.scaling.demand import DemandForecast, DemandSeries, demand_series, forecast_demand
from planner.scaling.replay import ReplayResult, ReplicaPlan, Timeline, replay
from planner.scaling.schedule import Deployment, Schedule, build_schedule

__all__ = [
    "Deployment",
    "DemandForecast",
    "DemandSeries",
    "ReplicaPlan",
    "HpaConfig",
    "Instance",
    "ProvisioningDelay",
    "ReplayResult",
    "Schedule",
    "Timeline",
    "build_schedule",
    "default_delay",
    "demand_series",
    "forecast_demand",
    "hpa_replicas",
    "measured_delay",
    "provisioning_delay",
    "replay",
]
