"""Explanations for requests no plan can meet: which constraint binds, and by how much.

Five kinds, each a one-line PlannerError (exit code 1 on the CLI):
- model too big: no parallel plan fits in the allowed accelerators' memory;
- SLO unreachable: even an idle replica of the fastest plan misses the latency target, or
  every simulated plan misses it at a trickle of the trace's rate;
- availability too low: the allowed GPUs cannot serve the peak demand;
- budget too low: the cheapest plan serving the peak costs more, with that cheapest budget;
- power budget too low: below one replica of any plan, or below what serving the peak draws.
"""

from collections.abc import Mapping, Sequence

import numpy as np

from planner.costmodel import Accelerator
from planner.errors import PlannerError
from planner.optimize.candidates import PP_DEGREES, TP_DEGREES, Bounds, Candidate, Targets
from planner.optimize.costing import HOURS_PER_MONTH
from planner.optimize.goodput import Evaluation
from planner.optimize.limits import gpus_text
from planner.optimize.mix import Mix, MixOption, max_servable_scale, solve_mix


def check_model_fits(
    model: str,
    candidates: Sequence[Candidate],
    unfit: Sequence[str],
    accelerators: Sequence[Accelerator],
) -> None:
    """Model too big: no plan fits on any allowed accelerator (names the closest miss)."""
    if candidates:
        return
    ids = ", ".join(a.id for a in accelerators)
    closest = min(unfit, key=_shortfall, default="no parallel plan to try")
    raise PlannerError(
        f"model too big: {model} does not fit on {ids} at any plan up to "
        f"tp={max(TP_DEGREES)} pp={max(PP_DEGREES)}; closest: {closest}"
    )


def _shortfall(reason: str) -> float:
    """GB a no-fit reason says the plan is short by (to pick the closest plan)."""
    try:
        return float(reason.rsplit("short by ", 1)[1].split()[0])
    except (IndexError, ValueError):
        return np.inf


def check_latency_reachable(
    candidates: Sequence[Candidate], bounds: Sequence[Bounds], targets: Targets
) -> None:
    """SLO unreachable: no candidate meets the latency targets even on an idle replica."""
    if any(b.latency_share >= targets.attainment for b in bounds):
        return
    share = f"p{targets.attainment * 100:g}"
    parts = []
    for name, limit, floor in (
        ("TTFT", targets.ttft_ms, lambda b: b.ttft_floor_ms),
        ("TPOT", targets.tpot_ms, lambda b: b.tpot_floor_ms),
    ):
        if limit is None:
            continue
        best = int(np.argmin([floor(b) for b in bounds]))
        if floor(bounds[best]) > limit:
            parts.append(
                f"{name} {share} <= {limit:g} ms is below what any allowed accelerator reaches "
                f"at any tp: the fastest plan, {candidates[best].id}, needs "
                f"{floor(bounds[best]):,.0f} ms on an idle replica"
            )
    if not parts:
        best = int(np.argmax([b.latency_share for b in bounds]))
        parts.append(
            f"TTFT and TPOT together: the best plan, {candidates[best].id}, meets both for only "
            f"{bounds[best].latency_share:.1%} of requests on an idle replica "
            f"(need {targets.attainment:.1%})"
        )
    raise PlannerError("SLO unreachable: " + "; ".join(parts))


def check_mix(
    options: Sequence[MixOption],
    demand: np.ndarray,
    available: Mapping[str, int] | None,
    budget_per_hour: float | None,
    power_kw: float | None = None,
) -> None:
    """Availability, budget or power budget too low for the peak demand (with the cheapest
    feasible budget, or the power the cheapest plan draws)."""
    demand = np.asarray(demand, dtype=float)
    total = float(demand.sum())
    free = solve_mix(options, demand)
    if free is None:
        raise PlannerError(f"no evaluated plan can serve {total:.3g} req/s under the SLO")
    limited = solve_mix(options, demand, available)
    if limited is None:
        scale = max_servable_scale(options, demand, available)
        given, need = gpus_text(dict(available or {})), gpus_text(free.gpus_by_accelerator())
        raise PlannerError(
            f"availability too low for the peak: {given} GPUs serve at most "
            f"{scale * total:.3g} of the {total:.3g} req/s peak demand; the cheapest plan "
            f"without limits uses {need} GPUs"
        )
    if budget_per_hour is not None and limited.cost_per_hour > budget_per_hour + 1e-9:
        groups = ", ".join(f"{c} x {o.key}" for o, _, c in limited.groups())
        raise PlannerError(
            f"budget too low: ${budget_per_hour * HOURS_PER_MONTH:,.0f}/month is below the "
            f"cheapest plan holding the SLO at the {total:.3g} req/s peak, "
            f"${limited.cost_per_hour * HOURS_PER_MONTH:,.0f}/month ({groups}); the cheapest "
            f"feasible budget is ${np.ceil(limited.cost_per_hour * HOURS_PER_MONTH):,.0f}/month"
        )
    if power_kw is not None:
        check_power(options, demand, available, power_kw, limited)


def check_power(
    options: Sequence[MixOption],
    demand: np.ndarray,
    available: Mapping[str, int] | None,
    power_kw: float,
    cheapest: Mix,
) -> None:
    """Power budget below one replica of any plan, or too low for the peak demand."""
    lightest = min(options, key=lambda o: o.power_kw)
    if power_kw < lightest.power_kw:
        raise PlannerError(
            f"power budget too low: {power_kw:g} kW is below one replica of any plan; the "
            f"lightest, {lightest.key}, draws {lightest.power_kw:.3g} kW at TDP"
        )
    if solve_mix(options, demand, available, power_kw=power_kw) is None:
        total = float(np.sum(demand))
        scale = max_servable_scale(options, demand, available, power_kw=power_kw)
        raise PlannerError(
            f"power budget too low for the peak: {power_kw:g} kW at TDP serve at most "
            f"{scale * total:.3g} of the {total:.3g} req/s peak demand; the cheapest plan "
            f"holding the SLO there draws {cheapest.power_kw():.3g} kW"
        )


def check_simulated(
    evaluations: Sequence[Evaluation], targets: Targets, accelerators: Sequence[Accelerator]
) -> None:
    """SLO unreachable under load: every simulated candidate misses it even at a trickle."""
    if any(ev.goodput_rps > 0 for ev in evaluations):
        return
    raise PlannerError(
        f"SLO unreachable: no simulated plan holds {targets.describe()} for "
        f"{targets.attainment:.1%} of requests even at 1/256 of the trace's rate "
        f"({len(evaluations)} plans simulated on {', '.join(a.id for a in accelerators)})"
    )
