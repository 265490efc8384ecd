"""Optimizer (SPEC 9): candidate plans, goodput search, Pareto frontier, accelerator mix (and its
refinement at each group's own size), costing ($/hour, $/month, $/1M tokens), plan file.

The whole planning run (optimizer, then scaling schedule and replay) is `planner.planning`
(a package: setting, sizing, assemble).
"""

from planner.optimize.candidates import Candidate, Targets, enumerate_candidates
from planner.optimize.frontier import pareto_mask
from planner.optimize.mix import Mix, MixOption, best_single_accelerator, solve_mix
from planner.optimize.planfile import PLAN_VERSION, read_plan, validate_plan, write_plan

__all__ = [
    "PLAN_VERSION",
    "Candidate",
    "Mix",
    "MixOption",
    "Targets",
    "best_single_accelerator",
    "enumerate_candidates",
    "pareto_mask",
    "read_plan",
    "solve_mix",
    "validate_plan",
    "write_plan",
]
