"""What `planner plan` is asked and what it plans on: the options, resolved and checked (SLOs,
trace, prices, limits, model card, engine, context, power, energy price), and the demand: the
trace's rate per interval with the forecast after it and of its held-back tail."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np

from planner.costmodel import Accelerator, get_accelerator, load_card, load_catalog
from planner.costmodel.cards import ModelCard
from planner.costmodel.engine import DEFAULT_ENGINE, EngineProfile, load_engine
from planner.errors import PlannerError
from planner.forecast.series import parse_duration
from planner.forecast.tokens import LengthDrift, length_drift
from planner.optimize.candidates import Targets
from planner.optimize.energy import parse_energy_price, parse_power_budget
from planner.optimize.goodput import RECENT_S
from planner.optimize.limits import parse_available, parse_budget
from planner.scaling.demand import (
    MIN_HISTORY,
    DemandForecast,
    DemandSeries,
    demand_series,
    forecast_demand,
)
from planner.scaling.tuning import TUNING_WINDOWS
from planner.simulate import Slo, check_reuse, over_context, over_text, parse_slos
from planner.store import TraceInfo, get_trace, trace_read_options

DEFAULT_ACCELERATORS = ("h100", "a100", "l4")


@dataclass(frozen=True)
class PlanOptions:
    """What `planner plan` is asked: its CLI options, make_plan's one options object.

    `db` is the store's path as PLAN.json records it (and the store `plan_to_artefacts`
    opens; "" for the default store). `strict` refuses a trace with requests longer than the
    model's context instead of planning without them, and --available GPUs too few for the
    peak instead of planning the best they allow. `energy_price` is US$ per kWh (default:
    planner/optimize/energy.py), `power_budget` the kW the peak fleet may draw at TDP.
    `prefix_reuse` is the share of every prompt assumed shared by all requests, for a trace
    without prefix-block hashes; `prefix_cache` False plans as if the engine cached nothing.
    `elastic_moe` (mixture-of-experts models) plans scale-ups that add accelerators to the
    running deployment, ElasticMoE-style (planner/scaling/delay.py), instead of cold starts.
    `mixed_pd` also searches disaggregated replicas whose prefill instances run on another
    accelerator or layout than their decode ones (opt-in: such a deployment needs a KV transfer
    path between two pools, e.g. NIXL over RDMA, that not every cluster has).
    """

    trace: str
    model: str
    slos: Sequence[str | Slo]
    attainment: float = 0.99
    accelerators: Sequence[str] | None = None
    prices: str | None = None
    available: str | None = None
    budget: str | None = None
    buckets: bool = False
    horizon: str = "1d"
    interval: str = "10min"
    quantile: str = "p95"
    cold_starts: str | None = None
    rate_scale: float = 1.0
    db: str = ""
    engine: str = DEFAULT_ENGINE
    strict: bool = False
    energy_price: float | None = None
    power_budget: float | None = None
    prefix_reuse: float | None = None
    prefix_cache: bool = True
    elastic_moe: bool = False
    mixed_pd: bool = False


@dataclass(frozen=True)
class Setting:
    """The options resolved: SLOs, trace (and how it was read), prices, limits, model card,
    engine, requests over its context, power budget and energy price."""

    slos: list[Slo]
    targets: Targets
    info: TraceInfo
    catalog: dict[str, Accelerator]
    accelerators: list[Accelerator]
    limits: dict[str, int] | None
    budget_per_hour: float | None
    card: ModelCard
    profile: EngineProfile
    read_options: dict | None
    over_context: dict | None
    power_kw: float | None
    energy_price: tuple[float, str]


@dataclass(frozen=True)
class Horizon:
    """The trace's demand, the forecast after it, the forecast of its held-back tail and of the
    windows as long as the tail before it (where the hybrid's settings are chosen: those with
    at least their own length of history before them), and the drift of its token mix from
    the history before the tail to the tail and the horizon (request traces)."""

    demand: DemandSeries
    steps: int
    cutoff: int
    forward: DemandForecast
    held: DemandForecast
    level: np.ndarray
    tuning: tuple[DemandForecast, ...] = ()
    lengths: LengthDrift | None = None


def say(progress: Callable[[str], None] | None, message: str) -> None:
    """Report a step to the caller's progress callback, if any."""
    if progress:
        progress(message)


def _slo_list(slos: Sequence[str | Slo], attainment: float) -> list[Slo]:
    """Parsed SLOs (at least one) after checking the attainment target."""
    if not 0 < attainment <= 1:
        raise PlannerError(f"--attainment {attainment}: must be in (0, 1], e.g. 0.99")
    parsed = [s for s in slos if isinstance(s, Slo)]
    parsed += parse_slos([s for s in slos if not isinstance(s, Slo)])
    if not parsed:
        raise PlannerError("give at least one --slo, e.g. --slo ttft_p99=1000ms")
    return parsed


def resolve(con: duckdb.DuckDBPyConnection, opts: PlanOptions) -> Setting:
    """The options resolved and checked (SLOs first, then the trace, prices and limits)."""
    slo_list = _slo_list(opts.slos, opts.attainment)
    targets = Targets.of(slo_list, opts.attainment)
    info = get_trace(con, opts.trace)
    catalog = load_catalog(opts.prices)
    accs = [get_accelerator(a, catalog) for a in (opts.accelerators or DEFAULT_ACCELERATORS)]
    limits = parse_available(opts.available, catalog)
    budget_per_hour = parse_budget(opts.budget)
    power_kw = parse_power_budget(opts.power_budget)
    energy_price = parse_energy_price(opts.energy_price)
    check_reuse(opts.prefix_reuse)
    card = load_card(opts.model)
    if opts.elastic_moe and not card.is_moe:
        raise PlannerError(
            f"--elastic-moe: {card.id} is not a mixture-of-experts model; elastic scale-up adds "
            "experts' accelerators to a running MoE deployment"
        )
    profile = load_engine(opts.engine)
    if not opts.prefix_cache:
        profile = profile.with_flags(prefix_caching=0)
    read = trace_read_options(con, info.id)
    over = over_context(con, info, card.max_context)
    if over and opts.strict:
        raise PlannerError(
            f"trace {info.name!r}: {over_text(over)} exceed {card.id}'s "
            f"{card.max_context:,}-token context; without --strict the plan leaves them out, as "
            "a serving engine refuses them"
        )
    return Setting(
        slo_list,
        targets,
        info,
        catalog,
        accs,
        limits,
        budget_per_hour,
        card,
        profile,
        read,
        over,
        power_kw,
        energy_price,
    )


def forecast_horizon(con: duckdb.DuckDBPyConnection, opts: PlanOptions) -> Horizon:
    """Demand per --interval, the forecast for --horizon after it and for its held-back tail."""
    demand = demand_series(con, opts.trace, opts.interval, opts.rate_scale)
    steps = parse_duration(opts.horizon, "--horizon") // demand.interval_s
    if steps < 1:
        raise PlannerError(
            f"--horizon {opts.horizon} is shorter than one --interval {opts.interval}"
        )
    holdout = min(steps, len(demand.rps) // 2)
    if holdout < 1:
        raise PlannerError(
            f"trace {opts.trace!r} spans less than two {opts.interval} intervals; too short to plan"
        )
    cutoff = len(demand.rps) - holdout
    forward = forecast_demand(con, demand, len(demand.rps), steps)
    held = forecast_demand(con, demand, cutoff, holdout)
    tuning = tuple(
        forecast_demand(con, demand, cutoff - k * holdout, holdout)
        for k in range(1, TUNING_WINDOWS + 1)
        if cutoff - k * holdout >= max(holdout, MIN_HISTORY)
    )
    interval_s = demand.interval_s
    info = get_trace(con, opts.trace)
    lengths = None
    if info.kind == "requests":
        cut_s, end_s = cutoff * interval_s, (len(demand.rps) + steps) * interval_s
        lengths = length_drift(con, info.id, cut_s, (cut_s, end_s), RECENT_S)
    level = forward.level(opts.quantile)
    if not np.nanmax(level, initial=0.0) > 0:
        recent = demand.rps[cutoff:]
        raise PlannerError(
            f"nothing to schedule: the {opts.quantile} forecast of trace {opts.trace!r} is 0 "
            f"req/s in every {opts.interval} interval of the {opts.horizon} horizon (requests "
            f"came in {int((recent > 0).sum())} of its last {len(recent)} intervals); plan a "
            "trace with recent traffic"
        )
    return Horizon(demand, steps, cutoff, forward, held, level, tuning, lengths)
