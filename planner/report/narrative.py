"""The plan in words: the one-sentence recommendation finance reads first (PLAN.json's
`recommended.sentence`, repeated on the report's first page and by `planner plan`)."""

from planner.optimize.candidates import Targets
from planner.optimize.costing import saving
from planner.optimize.planfile import ReplicaGroup, SingleAccelerator


def label(group: ReplicaGroup) -> str:
    """'3 x H100 (TP1, aggregated)' for the sentence (`group`: a PLAN.json replica group)."""
    pd = group.pd or []
    mode = "aggregated" if group.mode == "aggregated" else f"P:D {pd[0]}:{pd[1]}"
    pp = f" PP{group.pp}" if group.pp > 1 else ""
    ep = f" EP{group.ep}" if group.ep > 1 else ""
    where = f" for {group.bucket} requests" if group.bucket is not None else ""
    acc = group.accelerator.upper()
    return f"{group.count} x {acc} (TP{group.tp}{pp}{ep}, {mode}){where}"


def sentence(
    model: str,
    engine: str,
    groups: list[ReplicaGroup],
    cost: dict,
    targets: Targets,
    single: SingleAccelerator | None,
) -> str:
    """The one-sentence recommendation finance reads first (`cost`: the recommended block,
    `single`: the best single-accelerator alternative, if any)."""
    fleet = " + ".join(label(g) for g in groups)
    slo = targets.describe().replace("<=", "≤")
    text = (
        f"Run {fleet} for {model} on {engine} at the forecast peak, scaled by the schedule: "
        f"${cost['cost_per_month']:,.0f}/month, ${cost['cost_per_mtok']:,.2f} per 1M tokens, "
        f"holding {slo} for {targets.attainment:.0%} of requests."
    )
    if single is None:
        return text
    return text + _against_single(groups, cost, single)


def _against_single(groups: list[ReplicaGroup], cost: dict, single: SingleAccelerator) -> str:
    """The sentence's second half: what mixing accelerator types saves, if anything."""
    accs = ", ".join(sorted({g.accelerator for g in groups}))
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
