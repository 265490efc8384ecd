"""Goodput: the highest arrival-rate scale at which SLO attainment holds, by bisection."""

from collections.abc import Iterable
from typing import Any

from planner.errors import PlannerError
from planner.simulate.metrics import Slo
from planner.simulate.simulator import simulate
from planner.simulate.steps import StepTable, StepTimes, step_table
from planner.simulate.workload import Workload

LOWEST_SCALE = 1.0 / 256.0
HIGHEST_SCALE = 4096.0


def goodput(
    workload: Workload,
    step_model: StepTimes | StepTable,
    slos: Iterable[Slo],
    attainment: float = 0.99,
    tolerance: float = 0.02,
    **plan: Any,
) -> tuple[float, float]:
    """(rate scale, requests/s) of the fastest replay of `workload` that keeps `attainment`.

    Attainment falls as the rate scale grows, so the scale is bracketed by doubling or halving
    from 1 and then bisected geometrically until the bracket is within `tolerance`. Returns
    (0, 0) when even a 256x slower replay misses the target (the SLO is out of reach of the
    plan, e.g. a TTFT limit below the longest prompts' prefill time). A replay holds only if
    the replicas kept pace with it (SimResult.kept_pace): squeezed into less time than serving
    it takes, a finite sample meets any TTFT limit the whole sample at once meets, and the
    goodput would grow without bound.
    """
    chosen = list(slos)
    if not chosen:
        raise PlannerError("goodput needs at least one SLO, e.g. ttft_p99=1000ms")
    if not 0 < attainment <= 1:
        raise PlannerError(f"attainment target must be in (0, 1], not {attainment}")
    table = step_table(step_model)

    def holds(scale: float) -> bool:
        """Whether the replay at `scale` meets the attainment target."""
        result = simulate(workload.scaled(scale), table, slos=chosen, stop_below=attainment, **plan)
        return result is not None and result.attainment() >= attainment and result.kept_pace()

    lo, hi = 1.0, 1.0
    if holds(1.0):
        while hi < HIGHEST_SCALE and holds(hi * 2.0):
            hi *= 2.0
        lo, hi = hi, hi * 2.0
        if lo >= HIGHEST_SCALE:
            return lo, lo * workload.rate_rps
    else:
        while lo > LOWEST_SCALE and not holds(lo / 2.0):
            lo /= 2.0
        lo, hi = lo / 2.0, lo
        if lo < LOWEST_SCALE:
            return 0.0, 0.0
    while hi / lo > 1.0 + tolerance:
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if holds(mid) else (lo, mid)
    return lo, lo * workload.rate_rps
