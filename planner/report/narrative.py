"""The plan in words: the one-sentence recommendation finance reads first (PLAN.json's
`recommended.sentence`, repeated on the report's first page and by `planner plan`), and the
warnings the plan must not leave unsaid (PLAN.json's `warnings`, on stderr and page one)."""

from planner.optimize.candidates import Targets
from planner.optimize.costing import saving
from planner.optimize.limits import gpus_text
from planner.optimize.planfile import PrefillPlan, ReplicaGroup, SingleAccelerator
from planner.simulate import over_text

MISMATCH_POINTS = 1.0
HELD_BACK = "the held-back trace"


def percent(share: float) -> str:
    """0.99 -> '99%', 0.995 -> '99.5%': a target as the user gave it."""
    return f"{share * 100:g}%"


def label(group: ReplicaGroup) -> str:
    """'3 x H100 (TP1, aggregated)', '2 x A100 (TP1, P:D 2:1, prefill on H100 TP1)' for the
    sentence (`group`: a PLAN.json replica group)."""
    pd = group.pd or []
    mode = "aggregated" if group.mode == "aggregated" else f"P:D {pd[0]}:{pd[1]}"
    pp = f" PP{group.pp}" if group.pp > 1 else ""
    ep = f" EP{group.ep}" if group.ep > 1 else ""
    where = f" for {group.bucket} requests" if group.bucket is not None else ""
    acc = group.accelerator.upper()
    if group.prefill is not None:
        mode += f", prefill on {prefill_label(group.prefill)}"
    return f"{group.count} x {acc} (TP{group.tp}{pp}{ep}, {mode}){where}"


def prefill_label(side: PrefillPlan) -> str:
    """'H100 TP2' (with PP and EP above 1): the prefill side of a mixed-hardware replica."""
    more = "".join(f" {k}{v}" for k, v in (("PP", side.pp), ("EP", side.ep)) if v > 1)
    return f"{side.accelerator.upper()} TP{side.tp}{more}"


def sentence(
    model: str,
    engine: str,
    groups: list[ReplicaGroup],
    cost: dict,
    targets: Targets,
    single: SingleAccelerator | None,
    replayed: float,
    shortfall: dict | None = None,
    where: str = HELD_BACK,
) -> str:
    """The one-sentence recommendation finance reads first (`cost`: the recommended block,
    `single`: the best single-accelerator alternative, if any; `replayed`: the share of
    held-back requests the schedule kept within the SLO on the replay of `where`; `shortfall`:
    what the available GPUs fall short of, when they do)."""
    fleet = " + ".join(label(g) for g in groups if g.count)
    slo = targets.describe().replace("<=", "≤")
    target = f"{slo} for {percent(targets.attainment)} of requests"
    sized = f"sized to hold {target}"
    if shortfall:
        sized = (
            f"the most the available GPUs ({gpus_text(shortfall['available'])}) allow, serving "
            f"{shortfall['servable_rps']:.3g} of the {shortfall['peak_rps']:.3g} req/s peak, "
            f"short of {target}"
        )
    text = (
        f"Run {fleet} for {model} on {engine} at the forecast peak, scaled by the schedule"
        f"{_elsewhere(groups)}: "
        f"${cost['cost_per_month']:,.0f}/month, ${cost['cost_per_mtok']:,.2f} per 1M tokens, "
        f"{sized}; replayed on {where}, the schedule held {replayed:.1%}."
    )
    if single is None:
        return text
    return text + _against_single(groups, cost, single)


def _elsewhere(groups: list[ReplicaGroup]) -> str:
    """' (which runs up to 7 x L4 (TP2, P:D 1:1) off the peak)': groups the schedule runs more
    of in other intervals than in the busiest one, if any."""
    more = [label(g.model_copy(update={"count": g.max_count})) for g in groups if g.max_count]
    return f" (which runs up to {' + '.join(more)} off the peak)" if more else ""


def _against_single(groups: list[ReplicaGroup], cost: dict, single: SingleAccelerator) -> str:
    """The sentence's second half: what mixing accelerator types saves, if anything."""
    used = {g.accelerator for g in groups} | {g.prefill.accelerator for g in groups if g.prefill}
    accs = ", ".join(sorted(used))
    if "," not in accs:
        return " A single accelerator type is cheapest here: mixing types would not save."
    saved, share = saving(single.cost_per_month, cost["cost_per_month"])
    if saved > 0:
        return (
            f" Mixing {accs} saves ${saved:,.0f}/month ({share:.1%}) "
            f"against the best single accelerator ({single.accelerator}, "
            f"${single.cost_per_month:,.0f}/month on the same schedule)."
        )
    return (
        f" On the schedule mixing {accs} costs the same as the best single accelerator "
        f"({single.accelerator}); it is chosen for its cheaper peak fleet "
        f"(${cost['cost_per_hour']:,.2f} vs ${single.cost_per_hour:,.2f} per hour)."
    )


def replayed_where(window: dict) -> str:
    """What the replay simulated: the held-back trace, or its busiest intervals when it was
    too long to replay whole (`window`: PLAN.json's `replay.window`)."""
    done, total = window.get("replayed_requests", window["requests"]), window["requests"]
    if done >= total:
        return HELD_BACK
    return f"the busiest intervals of {HELD_BACK} ({done:,} of its {total:,} requests)"


def replay_warning(attainment: float, replayed: float, cause: str) -> str | None:
    """The warning when the replayed attainment is more than MISMATCH_POINTS from the target
    the plan was sized for, either way (`cause`: the replay's diagnosis, if it measured one)."""
    gap = round((replayed - attainment) * 100, 6)
    if abs(gap) <= MISMATCH_POINTS:
        return None
    text = (
        f"the schedule held {replayed:.1%} of requests within the SLO on the held-back replay, "
        f"{abs(gap):.1f} points {'above' if gap > 0 else 'below'} the {percent(attainment)} it was "
        "sized for"
    )
    if gap > 0:
        return text + ": the plan may run more replicas than the target needs"
    return text + (f": {cause}" if cause else "")


def context_warning(over: dict, model: str) -> str:
    """The warning for requests longer than the model's context (`over`: PLAN.json's
    `demand.over_context`)."""
    return (
        f"{over_text(over)} exceed {model}'s {over['max_context']:,}-token context: left out "
        "of sizing and replay, as a serving engine refuses them (--strict refuses the trace)"
    )


def shortfall_warning(shortfall: dict, attainment: float, replayed: float) -> str:
    """The warning when --available is too low for the peak and the plan is the best it
    allows: what it serves and what its schedule held on the replay."""
    return (
        f"availability too low for the peak: {gpus_text(shortfall['available'])} GPUs serve "
        "at most "
        f"{shortfall['servable_rps']:.3g} of the {shortfall['peak_rps']:.3g} req/s peak; the "
        f"plan is the best they allow and does not meet the target: its schedule held "
        f"{replayed:.1%} of requests within the SLO on the held-back replay (target "
        f"{percent(attainment)}); --strict refuses instead"
    )
