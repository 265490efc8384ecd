"""Energy: what the recommended fleet draws and what its electricity costs, beside its $/month.

An accelerator's board power follows how busy it is: IDLE_SHARE of its TDP when its instance is
idle with the model resident, ACTIVE_SHARE while it steps, and in between in proportion to the
share of its ready time spent stepping, which the replay's simulator measures per deployment
(PLAN.json `replay.busy_share`). Both shares are stated assumptions, not measurements: LLM
serving steps are mostly memory-bound and draw well under TDP (Patel et al., "Characterizing
Power Management Opportunities for LLMs in the Cloud", ASPLOS 2024, found inference power
peaks below the provisioned TDP), and an idle GPU holding a model draws a small part of it.

kWh per month = sum over deployments of its mean scheduled GPUs x 730 h x TDP x (IDLE_SHARE +
(ACTIVE_SHARE - IDLE_SHARE) x busy share). Board power only: hosts, networking and cooling
(the site's PUE) are not in it. Cloud list prices already include power; this is the figure for
owned or colocated fleets. Peak power, what --power-budget limits, is the peak fleet at TDP.
"""

import numpy as np

from planner.errors import PlannerError
from planner.optimize.costing import HOURS_PER_MONTH

IDLE_SHARE = 0.2
ACTIVE_SHARE = 0.8
DEFAULT_PRICE_PER_KWH = 0.10
DEFAULT_PRICE_SOURCE = "default: a round US$0.10 per kWh, not a quoted tariff (--energy-price)"


def parse_energy_price(value: float | None) -> tuple[float, str]:
    """(US$ per kWh, where it came from): the user's --energy-price, or the default."""
    if value is None:
        return DEFAULT_PRICE_PER_KWH, DEFAULT_PRICE_SOURCE
    if not np.isfinite(value) or value < 0:
        raise PlannerError(f"--energy-price {value:g}: must be a US$ amount per kWh, 0 or more")
    return float(value), "--energy-price"


def parse_power_budget(value: float | None) -> float | None:
    """The --power-budget in kW (the peak fleet's power at TDP), checked."""
    if value is None:
        return None
    if not np.isfinite(value) or value <= 0:
        raise PlannerError(f"--power-budget {value:g}: must be a positive number of kW")
    return float(value)


def board_power_kw(tdp_w: float, busy_share: float) -> float:
    """Mean board power of one accelerator busy `busy_share` of the time."""
    return tdp_w / 1000.0 * (IDLE_SHARE + (ACTIVE_SHARE - IDLE_SHARE) * busy_share)


def energy_block(
    mean_gpus: np.ndarray,
    peak_gpus: np.ndarray,
    tdp_w: np.ndarray,
    busy_share: np.ndarray,
    price_per_kwh: float,
    price_source: str,
) -> dict:
    """PLAN.json's `energy`: kWh and $ per month, mean and peak power, from each deployment's
    mean scheduled GPUs, its GPUs in the interval that draws most (`peak_gpus`), TDP and
    replayed busy share."""
    mean_kw = sum(
        g * board_power_kw(t, b) for g, t, b in zip(mean_gpus, tdp_w, busy_share, strict=True)
    )
    kwh = mean_kw * HOURS_PER_MONTH
    gpus = float(np.sum(mean_gpus))
    return {
        "kwh_per_month": round(kwh, 1),
        "cost_per_month": round(kwh * price_per_kwh, 2),
        "price_per_kwh": price_per_kwh,
        "price_source": price_source,
        "mean_power_kw": round(mean_kw, 3),
        "peak_power_kw": round(float(np.dot(peak_gpus, tdp_w)) / 1000.0, 3),
        "busy_share": round(float(np.dot(mean_gpus, busy_share)) / gpus, 4) if gpus else 0.0,
        "idle_share_of_tdp": IDLE_SHARE,
        "active_share_of_tdp": ACTIVE_SHARE,
    }
