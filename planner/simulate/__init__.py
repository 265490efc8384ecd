"""Serving simulation (SPEC 8): continuous batching, P/D disaggregation, SLOs and goodput."""

from planner.simulate.benchmark import Benchmark, BenchmarkRun, run_benchmark
from planner.simulate.disagg import parse_disagg
from planner.simulate.goodput import Goodput, goodput_search
from planner.simulate.metrics import SLO_FORM, SimResult, Slo, parse_slo, parse_slos
from planner.simulate.prefix import PrefixCache, check_reuse
from planner.simulate.replica import Scheduling
from planner.simulate.router import ROUTERS
from planner.simulate.run import simulate_trace
from planner.simulate.simulator import engine_scheduling, simulate
from planner.simulate.steps import StepTable, StepTimes
from planner.simulate.workload import (
    Workload,
    concatenate,
    load_workload,
    over_context,
    over_text,
    synthetic_workload,
)

__all__ = [
    "ROUTERS",
    "Benchmark",
    "BenchmarkRun",
    "PrefixCache",
    "Scheduling",
    "engine_scheduling",
    "run_benchmark",
    "SLO_FORM",
    "SimResult",
    "Slo",
    "StepTable",
    "StepTimes",
    "Workload",
    "check_reuse",
    "concatenate",
    "Goodput",
    "goodput_search",
    "load_workload",
    "over_context",
    "over_text",
    "parse_disagg",
    "parse_slo",
    "parse_slos",
    "simulate",
    "simulate_trace",
    "synthetic_workload",
]
