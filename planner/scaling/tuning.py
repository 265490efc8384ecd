"""The hybrid policy's settings, chosen by replay on the history rather than fixed.

The TUNING_WINDOWS windows just before the held-back tail, each as long as it, are each forecast
from what came before them and replayed under the hybrid at candidate settings: the forecast
quantile of its floor (FLOOR_QUANTILES up to the plan's), the HPA's target as a multiple of one
replica's goodput measured alone (UTILISATIONS; pooled replicas serve more each, so above 1 is
no overload; down to 0.2, as bursts that outrun the start-up delay need replicas held in
reserve: with 0.4 the lowest, 9 of the 24 ServeGen sweep cells chose it; up to 4, an HPA that
acts only on bursts several times what the floor serves: with 2 the highest, the HPA above the
p95 floor of the diurnal ServeGen m-large chunk-49 started replicas on token spikes the floor
absorbed alone, 13 % and 16 % over the schedule's cost at 4 and 16 req/s; with 4, 9 % and 7 %)
and its scale-down window (SCALE_DOWN_WINDOWS_S). Each floor is tried as the schedule and as the
schedule's peak held all window (static provisioning at the forecast's peak): a spiky client's
bursts come at times no day-ahead forecast places, and only replicas already running serve them
within a 1 s TTFT (ServeGen m-large chunk-95 at 4 and 16 req/s: static provisioning at the p95
schedule's peak held 100 % of the held-back day, the best hybrid on schedule floors 98.0 % and
87.5 %; with flat floors the tuning chose the p90 and p95 peaks held flat and held 100 %, at
1.09 x static peak's cost). A floor below the plan's quantile takes a target below 1
(`admissible`): it leaves the load above its forecast to the burst HPA, which adds a replica
once the load passes the target share of what the floor serves within the SLO, and that replica
serves only after the metric window and the start-up delay, so at 1 or more every rise above
such a floor is served late (ServeGen m-large chunk-56, a diurnal client, at 16 and 64 req/s: a
p50 floor at 2x and a p90 floor at 1x held every tuning window and then 95.2 % and 90.2 % of the
held-back day). A floor at the plan's quantile already provisions for the forecast the user
chose, so above 1 its HPA only meets what that forecast missed. The cheapest setting that held
the attainment target with a margin (at most MISS_SHARE of the misses the target allows) on
every window is the one the held-back replay uses; if none did, the one whose worst window held
the most (the cheaper of equals). One quiet day does not show a spiky client's bursts: tuned on
the one day before, the hybrid held 0.3 % of ServeGen m-large chunk-80's held-back day at 4
req/s.

A setting's cost is known from its timelines before any simulation, so the settings are
simulated cheapest first and the search stops at the first that holds (and any of the same
cost); a setting's windows are replayed from the one the last setting missed, and stop at its
first miss. That miss bounds its worst window from above; where no setting held, the settings
that can still have the best worst window get their other windows replayed, so the fallback
compares true worst windows (comparing first misses chose a setting whose untried window held
88 % over one that held 99.2 % on every window: ServeGen m-large chunk-80 at 4 req/s). Settings
that give the same timeline are simulated once. A window is used only if the history before it
is at least as long as it; without any, the defaults: the floor at the plan's quantile,
Kubernetes' 300 s window, a target of 80 % of one replica's goodput.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import product

import duckdb
import numpy as np

from planner.scaling.autoscaler import SCALE_DOWN_WINDOW_S
from planner.scaling.demand import DemandForecast
from planner.scaling.holdout import (
    HeldBack,
    HybridParams,
    Scene,
    Window,
    forecast_schedule,
    mean_tokens_by_bucket,
    quantile_value,
    replay_window,
    window_requests,
)
from planner.scaling.replay import ReplicaPlan, Timeline, timeline_cost
from planner.scaling.schedule import Deployment

FLOOR_QUANTILES = ("p50", "p90", "p95", "p99")
UTILISATIONS = (4.0, 3.0, 2.0, 1.5, 1.0, 0.8, 0.6, 0.4, 0.3, 0.2)
MISS_SHARE = 0.5
SCALE_DOWN_WINDOWS_S = (SCALE_DOWN_WINDOW_S, 900.0)
TUNING_WINDOWS = 3
BY_REPLAY = "replay of the windows before the held-back tail"
DEFAULT = "default: too little history"


@dataclass(frozen=True)
class _Stage:
    """One tuning window: its requests, what its policies are built from, and the floor's
    timeline at each floor quantile tried, as the schedule and held flat at its peak."""

    window: Window
    scene: Scene
    floors: dict[tuple[str, bool], Timeline]


def covered(tail: HeldBack, forecast: DemandForecast) -> tuple[int, int]:
    """The intervals (first, last exclusive) of the tail's demand series `forecast` covers."""
    first = round(forecast.origin_s / tail.demand.interval_s)
    return first, first + len(forecast.times)


def has_requests(tail: HeldBack, forecast: DemandForecast) -> bool:
    """Whether the window `forecast` covers saw any request (an idle day judges nothing)."""
    first, last = covered(tail, forecast)
    return bool(np.nansum(tail.demand.rps[first:last]) > 0)


def _stage(
    con: duckdb.DuckDBPyConnection,
    tail: HeldBack,
    forecast: DemandForecast,
    quantile: str,
    deployments: Sequence[Deployment],
    delay_s: float,
    available: Mapping[str, int] | None,
) -> _Stage:
    """The tuning window `forecast` covers."""
    window = window_requests(con, tail, *covered(tail, forecast))
    sched = forecast_schedule(forecast, quantile, tail.shares, deployments, delay_s, available)
    scene = Scene(sched, window, mean_tokens_by_bucket(tail.sized, tail.edges), available)
    floors = {}
    for q in floor_quantiles(forecast, quantile):
        floor = forecast_schedule(forecast, q, tail.shares, deployments, delay_s, available)
        for flat in (False, True):
            floors[q, flat] = scene.floor_timeline(floor, flat)
    return _Stage(window, scene, floors)


def tune_hybrid(
    con: duckdb.DuckDBPyConnection,
    tail: HeldBack,
    forecasts: Sequence[DemandForecast],
    quantile: str,
    deployments: Sequence[Deployment],
    replicas: Sequence[ReplicaPlan],
    delay_s: float,
    available: Mapping[str, int] | None,
) -> HybridParams:
    """The hybrid's settings for the held-back replay, chosen on the windows `forecasts` cover
    (those just before the tail; none: too little history, the defaults)."""
    busy = [f for f in forecasts if has_requests(tail, f)]
    if not busy:
        params = HybridParams(quantile)
        why = (
            "the defaults, as the trace has too little history (or none with requests) before "
            "the held-back part to choose them by replay"
        )
        return replace(params, tuning={"chosen_by": DEFAULT, "sentence": _sentence(params, why)})
    stages = [_stage(con, tail, f, quantile, deployments, delay_s, available) for f in busy]
    grid = [
        HybridParams(q, u, w, flat)
        for (q, flat), u, w in product(stages[0].floors, UTILISATIONS, SCALE_DOWN_WINDOWS_S)
        if admissible(q, u, quantile)
    ]
    timelines = [
        [st.scene.hybrid(st.floors[p.floor_quantile, p.flat_floor], p) for st in stages]
        for p in grid
    ]
    costed = sorted(
        (sum(timeline_cost(tl, deployments) for tl in tls), i) for i, tls in enumerate(timelines)
    )
    needed, order = required(tail.attainment), list(range(len(stages)))
    replayed: dict[tuple[int, bytes], float] = {}

    def worst(i: int, stop_below: float) -> float:
        """Setting i's worst window, replayed hardest first; once one is below `stop_below`,
        that one (the hardest known is then tried first for the next setting)."""
        low = 1.0
        for w in list(order):
            key = (w, timelines[i][w].requested.tobytes())
            if key not in replayed:
                results, _, _ = replay_window(
                    stages[w].window, {"hybrid": timelines[i][w]}, deployments, replicas, tail.slos
                )
                replayed[key] = results["hybrid"].slo_attainment
            low = min(low, replayed[key])
            if low < stop_below:
                order.remove(w)
                order.insert(0, w)
                break
        return low

    rows: list[tuple[HybridParams, float, float]] = []
    held_at = None
    for cost, i in costed:
        if held_at is not None and cost > held_at:
            break
        rows.append((grid[i], worst(i, needed), cost))
        if held_at is None and rows[-1][1] >= needed:
            held_at = cost
    if held_at is None:
        rows = true_worst(rows, [i for _, i in costed], lambda i: worst(i, -1.0))
    return _chosen(stages, rows, needed, len(grid), len(replayed))


def true_worst(
    rows: list[tuple[HybridParams, float, float]],
    index: list[int],
    full: Callable[[int], float],
) -> list[tuple[HybridParams, float, float]]:
    """Where no setting held: each row's attainment stopped at its first missed window, an upper
    bound on its worst; the rows that can still have the best worst window (highest bound first,
    until the bound is below the best found) get every window replayed (`full`, by grid index),
    so the fallback compares true worst windows."""
    out, best = list(rows), -1.0
    for r in sorted(range(len(rows)), key=lambda r: (-rows[r][1], rows[r][2])):
        if rows[r][1] < best:
            break
        low = full(index[r])
        out[r] = (rows[r][0], low, rows[r][2])
        best = max(best, low)
    return out


def _chosen(
    stages: Sequence[_Stage],
    rows: list[tuple[HybridParams, float, float]],
    needed: float,
    candidates: int,
    simulated: int,
) -> HybridParams:
    """The rule's choice over the replayed settings, with how it was chosen."""
    best, attained, cost = tuning_choice(rows, needed)
    length = stages[0].window.end_s - stages[0].window.start_s
    span = f"the {len(stages)} window(s) of {length:,.0f} s before the held-back part"
    tried = (
        f"worst window {attained:.2%}, ${cost:,.2f} over them; {len(rows)} of {candidates} "
        "settings replayed"
    )
    why = (
        f"the cheapest setting that held the SLO, with at most half the misses the target "
        f"allows, on replays of each of {span} ({tried})"
        if attained >= needed
        else f"no setting held the SLO with that margin on every one of {span}; this one's "
        f"worst window held the most ({tried})"
    )
    tuning = {
        "chosen_by": BY_REPLAY,
        "sentence": _sentence(best, why),
        "windows": [{"start_s": st.window.start_s, "end_s": st.window.end_s} for st in stages],
        "slo_attainment": round(attained, 5),
        "cost": round(cost, 2),
        "candidates": candidates,
        "replayed": len(rows),
        "simulated": simulated,
    }
    return replace(best, tuning=tuning)


def floor_quantiles(forecast: DemandForecast, quantile: str) -> list[str]:
    """The floor quantiles tried: those of FLOOR_QUANTILES the forecast has, up to the plan's
    (the quantile the user chose to provision for; a floor above it would buy the forecast's
    far tail for every interval, 35x the cost on a spiky ServeGen client)."""
    top = quantile_value(quantile)
    return [q for q in FLOOR_QUANTILES if q in forecast.quantiles and quantile_value(q) <= top]


def admissible(floor_quantile: str, utilisation: float, quantile: str) -> bool:
    """Whether the grid holds this floor and target: a floor below the plan's `quantile` needs
    a target below 1, so that burst replicas start before the floor runs out of SLO capacity."""
    return utilisation < 1.0 or quantile_value(floor_quantile) >= quantile_value(quantile)


def required(attainment: float) -> float:
    """The attainment a setting must reach on each tuning window: at most MISS_SHARE of the
    misses the target allows (one day's replay is a noisy estimate of the next; a setting that
    barely held the day before held 95 % on the held-back day of a spiky ServeGen client)."""
    return attainment + MISS_SHARE * (1.0 - attainment)


def _sentence(params: HybridParams, why: str) -> str:
    """The hybrid's settings and why they were chosen, in one sentence."""
    floor = f"the {params.floor_quantile} forecast schedule"
    if params.flat_floor:
        floor += "'s peak, held all day"
    return (
        f"The hybrid's floor is {floor} and its HPA on "
        f"tokens/s targets {params.utilisation:g}x one replica's goodput (measured alone) with a "
        f"{params.scale_down_window_s:,.0f} s scale-down window: {why}."
    )


def tuning_choice(
    rows: list[tuple[HybridParams, float, float]], target: float
) -> tuple[HybridParams, float, float]:
    """The cheapest (params, attainment, cost) that reached `target` (the higher attainment of
    equal costs), else the one with the highest attainment (the cheaper of equals)."""
    held = [r for r in rows if r[1] >= target]
    if held:
        return min(held, key=lambda r: (r[2], -r[1]))
    return max(rows, key=lambda r: (r[1], -r[2]))
