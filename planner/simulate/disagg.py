"""Prefill/decode disaggregation: P prefill and D decode instances, KV shipped in between.

Prefill instances run prompts only (the first token comes from them); each request's KV cache
then crosses the interconnect (or a network bandwidth the user sets) to a decode instance,
which admits it straight into its decode batch. Both sides have their own batch limits.
"""

import re

import numpy as np

from planner.errors import PlannerError
from planner.simulate.replica import Replica, Requests, Scheduling
from planner.simulate.router import route
from planner.simulate.steps import StepTable

_RATIO = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_disagg(text: str) -> tuple[int, int]:
    """Parse a P:D instance ratio such as ``1:2`` (both sides at least 1)."""
    match = _RATIO.match(text)
    if not match:
        raise PlannerError(f"cannot parse --disagg {text!r}; expected P:D such as 1:1 or 2:3")
    return check_ratio((int(match.group(1)), int(match.group(2))))


def check_ratio(ratio: tuple[int, int]) -> tuple[int, int]:
    """Reject a P:D ratio with no instance on either side."""
    prefill, decode = ratio
    if prefill < 1 or decode < 1:
        raise PlannerError(
            f"P:D ratio {prefill}:{decode} needs at least one prefill and one decode instance"
        )
    return prefill, decode


def run_disaggregated(
    reqs: Requests,
    table: StepTable,
    arrivals: np.ndarray,
    ratio: tuple[int, int],
    replicas: int,
    rules: Scheduling,
    prefill_rules: Scheduling,
    router: str,
    bandwidth_gb_s: float | None,
) -> tuple[list[Replica], np.ndarray]:
    """Simulate `replicas` copies of a P:D group; the instances and each request's prefill one."""
    prefills = [
        Replica(reqs, table, prefill_rules, prefill_only=True) for _ in range(ratio[0] * replicas)
    ]
    rids = np.arange(len(arrivals))
    chosen = route(prefills, rids, arrivals, router)
    first = np.asarray(reqs.first)
    prompt = np.asarray(reqs.prompt)
    moving = np.flatnonzero(np.isfinite(first) & (np.asarray(reqs.target) > 1))
    transfer = np.asarray(table.model.kv_transfer_ms(prompt[moving], bandwidth_gb_s), dtype=float)
    ready = first[moving] + transfer / 1000.0
    order = np.argsort(ready, kind="stable")
    for rid in moving.tolist():
        reqs.kv_ready[rid] = True
    decodes = [Replica(reqs, table, rules) for _ in range(ratio[1] * replicas)]
    route(decodes, moving[order], ready[order], router)
    return prefills + decodes, chosen
