"""Optimizer (SPEC 9): candidate plans, goodput search, Pareto frontier, accelerator mix, plan file.

`make_plan` (plan.py) also drives planner.scaling, which itself uses the mix solver, so it is
imported on first use to keep `import planner.scaling` free of an import cycle.
"""

from typing import Any

from planner.optimize.candidates import Candidate, Targets, enumerate_candidates
from planner.optimize.frontier import pareto_mask
from planner.optimize.mix import Mix, MixOption, best_single_accelerator, brute_force_mix, solve_mix
from planner.optimize.planfile import PLAN_VERSION, read_plan, validate_plan, write_plan

__all__ = [
    "DEFAULT_ACCELERATORS",
    "PLAN_VERSION",
    "Candidate",
    "Mix",
    "MixOption",
    "Targets",
    "best_single_accelerator",
    "brute_force_mix",
    "enumerate_candidates",
    "make_plan",
    "pareto_mask",
    "read_plan",
    "solve_mix",
    "validate_plan",
    "write_plan",
]


def __getattr__(name: str) -> Any:
    """Lazily provide make_plan and DEFAULT_ACCELERATORS from planner.optimize.plan."""
    if name in ("make_plan", "DEFAULT_ACCELERATORS"):
        from planner.optimize import plan

        return getattr(plan, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
