"""Goodput: the highest arrival-rate scale at which SLO attainment holds, by bisection."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from planner.errors import PlannerError
from planner.simulate.metrics import SimResult, Slo
from planner.simulate.simulator import simulate
from planner.simulate.steps import StepTable, StepTimes, step_table
from planner.simulate.workload import Workload

LOWEST_SCALE = 1.0 / 256.0
HIGHEST_SCALE = 4096.0


@dataclass(frozen=True)
class Goodput:
    """The fastest replay that held: its rate scale, requests/s, and the replay itself (None
    when no replay held)."""

    scale: float
    rps: float
    result: SimResult | None


def goodput_search(
    workload: Workload,
    step_model: StepTimes | StepTable,
    slos: Iterable[Slo],
    attainment: float = 0.99,
    tolerance: float = 0.02,
    first_step: float = 2.0,
    **plan: Any,
) -> Goodput:
    """The fastest replay of `workload` that keeps `attainment`, with that replay's latencies.

    Attainment falls as the rate scale grows, so the scale is bracketed by stepping up or down
    from 1 (first by `first_step`, each further step the square of the one before, at most a
    doubling: a caller whose workload is already scaled near the answer saves replays with a
    small first step, down to 1 + tolerance, which settles an unchanged answer in two replays)
    and then bisected geometrically until the bracket is within `tolerance`. Returns scale 0
    when even a 256x slower replay misses the target (the SLO is out of reach of the plan, e.g.
    a TTFT limit below the longest prompts' prefill time). A replay holds only if the replicas
    kept pace with it (SimResult.kept_pace): squeezed into less time than serving it takes, a
    finite sample meets any TTFT limit the whole sample at once meets, and the goodput would
    grow without bound.
    """
    chosen = list(slos)
    if not chosen:
        raise PlannerError("goodput needs at least one SLO, e.g. ttft_p99=1000ms")
    if not 0 < attainment <= 1:
        raise PlannerError(f"attainment target must be in (0, 1], not {attainment}")
    if first_step <= 1.0:
        raise PlannerError(f"the first step must exceed 1, not {first_step}")
    table = step_table(step_model)
    held: dict[float, SimResult] = {}

    def holds(scale: float) -> bool:
        """Whether the replay at `scale` meets the attainment target (kept when it does)."""
        result = simulate(workload.scaled(scale), table, slos=chosen, stop_below=attainment, **plan)
        ok = result is not None and result.attainment() >= attainment and result.kept_pace()
        if ok:
            held[scale] = result
        return ok

    lo, hi, step = 1.0, 1.0, first_step
    if holds(1.0):
        while hi < HIGHEST_SCALE and holds(hi * step):
            hi, step = hi * step, min(step * step, 2.0)
        lo, hi = hi, hi * step
    else:
        while lo > LOWEST_SCALE and not holds(lo / step):
            lo, step = lo / step, min(step * step, 2.0)
        lo, hi = lo / step, lo
        if lo < LOWEST_SCALE:
            return Goodput(0.0, 0.0, None)
    while lo < HIGHEST_SCALE and hi / lo > 1.0 + tolerance:
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if holds(mid) else (lo, mid)
    return Goodput(lo, lo * workload.rate_rps, held[lo])
