"""The user's limits on the mix: GPUs available per accelerator type and a budget."""

import re

from planner.costmodel import Accelerator, get_accelerator
from planner.errors import PlannerError
from planner.optimize.costing import HOURS_PER_MONTH

HOURS = {
    "hour": 1.0,
    "h": 1.0,
    "day": 24.0,
    "d": 24.0,
    "month": HOURS_PER_MONTH,
    "mo": HOURS_PER_MONTH,
}
_BUDGET = re.compile(r"^\s*\$?\s*([\d,]*\.?\d+)\s*(?:/\s*([a-z]+))?\s*$")


def parse_available(spec: str | None, catalog: dict[str, Accelerator]) -> dict[str, int] | None:
    """'h100=16,a100=8' -> {'h100': 16, 'a100': 8} GPUs (accelerator aliases resolved)."""
    if not spec:
        return None
    out: dict[str, int] = {}
    for item in spec.split(","):
        key, _, value = item.partition("=")
        if not value.strip().isdigit():
            raise PlannerError(
                f"--available {spec!r}: expected ACCELERATOR=GPUS pairs like h100=16,a100=8"
            )
        out[get_accelerator(key, catalog).id] = int(value)
    return out


def gpus_text(gpus: dict[str, int] | None) -> str:
    """{'h100': 16, 'l4': 8} -> 'h100=16, l4=8' (as --available takes them)."""
    return ", ".join(f"{k}={v}" for k, v in (gpus or {}).items())


def parse_budget(spec: str | None) -> float | None:
    """'20000/month', '30/hour', '$500/day' -> US$ per hour (a bare number is per month)."""
    if not spec:
        return None
    match = _BUDGET.match(spec.lower())
    unit = (match.group(2) or "month") if match else ""
    if not match or unit not in HOURS:
        raise PlannerError(
            f"--budget {spec!r}: expected an amount per hour, day or month, e.g. 20000/month"
        )
    amount = float(match.group(1).replace(",", ""))
    if amount <= 0:
        raise PlannerError(f"--budget {spec!r}: the amount must be positive")
    return amount / HOURS[unit]
