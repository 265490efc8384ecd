"""PLAN.json: the plan file `planner plan --out` writes and `planner report` reads (schema v1).

All money in US dollars, all times in seconds unless the key says ``_ms``. The schema (the
contract between planner/optimize and planner/report) is::

    {
      "version": 1,
      "created_at": "2026-11-22T21:00:00Z",
      "db": "/abs/path/planner.duckdb",       // the store the plan was made from
      "trace": {"name": "azure-code", "format": "azure-llm", "table": "requests",
                "requests": 8819, "span_s": 3436.0},
      "model": "llama-3.1-8b",
      "engine": {"id": "vllm", "release": null,        // the engine every replica was simulated
                 "name": "vLLM (V1 engine, vllm serve)", "version": "0.12.0 - 0.18.0"},
      "slo": {"ttft_p99_ms": 1000.0, "tpot_p99_ms": 50.0, "attainment": 0.99},  // SLOs given
      "accelerators": [{"id": "h100", "name": "NVIDIA H100 SXM 80GB", "price_per_hour": 2.99,
                        "price_source": "..."}],
      "horizon_s": 86400, "interval_s": 600, "quantile": "p95",
      "demand": {"unit": "requests/s", "mean_in_tokens": 2048.0, "mean_out_tokens": 28.0,
                 "mean_rps": 2.6, "peak_rps": 3.6,      // observed: the trace's requests/s per
                                                        // interval_s interval (x rate_scale)
                 "forecast_mean_rps": 2.7,              // mean of the forecast p50 over the horizon
                 "forecast_peak_rps": 4.4,              // peak of the forecast `quantile`
                 "sized_for_rps": 5.2,                  // the peak the mix was solved for: the
                                                        // higher `quantile` forecast peak of the
                                                        // horizon and of the replay window
                 "prefix_cache": {"enabled": true,      // the engine's prefix cache simulated
                                  "reuse": "the trace's prefix-block hashes",  // or "assumed:
                                                        // 60% of every prompt ..." (--prefix-
                                                        // reuse) or "none"
                                  "saved_share": 0.21},  // prompt tokens the cache spared from
                                                        // prefill on the schedule's replay
                 "length_forecast": {                   // request traces: the token mix sized on
                   "input": {"method": "linear",        // or "exponential"; "recent": the mix
                                                        // as it was (no trend beat it)
                             "factors": {"p10": 1.8, "p50": 2.1, ...},  // each quantile of
                                                        // the recent mix x this for the horizon
                             "backtest_log_error": {"trend": 0.04, "recent": 0.31}},
                   "output": {"method": "recent", ...},
                   "windows": 6, "sentence": "token mix: sized on ..."}},
      "recommended": {
        "sentence": "Run 3 × H100 (TP1, aggregated) for llama-3.1-8b: ...",
        "replicas": [{"accelerator": "h100", "tp": 1, "pp": 1, "ep": 1, "mode": "aggregated",
                      "pd": null,                   // [P, D] when disaggregated
                      "prefill": null,              // disaggregated on mixed hardware: the
                                                    // prefill instances' {"accelerator", "tp",
                                                    // "pp", "ep"}; the fields above are then
                                                    // the decode instances'
                      "max_batch": 128, "count": 3, "gpus": 3,
                      "max_count": 4,               // only where the schedule runs more of
                                                    // the group off the peak (count may be 0)
                      "goodput_rps": 4.1,           // per replica, measured at `count`
                      "plan": "h100-tp1-agg-b128"}],  // its name in "schedule"
                                                    // the peak fleet: the schedule's busiest
                                                    // interval (most demand; dearest on a
                                                    // tie; a group it never runs is dropped)
        "cost_per_hour": 8.97,                      // peak fleet: every replica above running
        "scheduled_cost_per_hour": 7.1,             // mean over the horizon under the schedule
        "cost_per_month": 5183.0,                   // scheduled_cost_per_hour x 730: the bill
        "cost_per_mtok": 0.41,                      // scheduled cost / tokens at forecast_mean_rps
        "shortfall": {"available": {"h100": 2},     // only when --available is too low for the
                      "peak_rps": 5.2,              // peak (without --strict): the plan is the
                      "servable_rps": 3.1,          // best fleet the GPUs allow, short of the
                      "served_share": 0.596}        // target; a warning says so
      },
      "warnings": [                            // what the plan must not leave unsaid (printed
                                               // on stderr, shown on the report's first page):
        "the schedule held 90.5% of requests within the SLO on the held-back replay, 8.5
         points below the 99% it was sized for: length drift: ..."   // more than 1 point
      ],                                       // either way; requests over the context
      "alternatives": {                        // same cost keys, same basis as "recommended"
        "static_peak": {"cost_per_hour": 8.97, "cost_per_month": 6548.1, "cost_per_mtok": 0.6,
                        "replicas": [...]},    // the peak fleet always on: cost_per_hour x 730
        "best_single_accelerator": {"accelerator": "a100", "cost_per_hour": 9.5,
                                    "scheduled_cost_per_hour": 7.6, "cost_per_month": 5548.0,
                                    "cost_per_mtok": 0.45, "replicas": [...]},
        "length_pools": [                      // only with --buckets: every split planned, one
                                               // pool first; the cheapest on its schedule is
                                               // recommended (one pool on a tie)
          {"max_input_tokens": [], "pools": ["all"], "cost_per_month": 5183.0, "chosen": true},
          {"max_input_tokens": [1020.0], "pools": ["short", "long"], "cost_per_month": 8650.0,
           "chosen": false},
          {"max_input_tokens": [1020.0, 4096.0], "infeasible": "no mix serves ...",
           "chosen": false}
        ],
        "fleets_compared": [                   // every fleet scheduled for the recommended
                                               // pools; the cheapest schedule is recommended
          {"fleet": "least-cost mix at the peak", "replicas": ["1 x h100-tp4-pd2:1-b256",
           "3 x h100-tp4-pd3:1-b256"], "cost_per_hour": 737.4,
           "scheduled_cost_per_hour": 737.4, "cost_per_month": 538302.0, "chosen": false},
          {"fleet": "one plan", "replicas": ["7 x h100-tp2-pd3:1-b32"], ...,
           "chosen": true}                     // also "best single-accelerator mix at the
        ]                                      // peak" and "least mean-cost mix over the
                                               // forecast"; counts at each group's peak
      },
      "cost_band": {"p50_cost_per_month": 5000.0,  // serving the p50 forecast: the cheaper of
                                                   // this fleet on its p50 schedule and a plan
                                                   // made for the p50 peak (never above p95)
                    "p95_cost_per_month": 5183.0},  // = recommended cost_per_month
      "energy": {"kwh_per_month": 1020.0,       // the recommended schedule's board power
                 "cost_per_month": 102.0,       // (no hosts, cooling or PUE) x 730 h: each
                 "price_per_kwh": 0.1,          // deployment's mean GPUs x TDP x (idle share +
                 "price_source": "default ...", // (active - idle) x its replayed busy share)
                 "mean_power_kw": 1.4, "peak_power_kw": 2.1,   // peak: the peak fleet at TDP
                 "busy_share": 0.42,            // GPU-weighted, from replay.busy_share
                 "idle_share_of_tdp": 0.2, "active_share_of_tdp": 0.8,
                 "power_budget_kw": 5.0},       // only with --power-budget
      "frontier": [                            // every evaluated candidate, not only Pareto
        {"id": "h100-tp1-agg-b128", "accelerator": "h100", "tp": 1, "pp": 1, "ep": 1,
         "mode": "aggregated", "pd": null, "max_batch": 128, "gpus": 1, "goodput_rps": 4.1,
         "cost_per_hour": 2.99, "cost_per_mtok": 0.41, "ttft_p99_ms": 420.0,
         "tpot_p99_ms": 18.0, "pareto": true, "chosen": true}
      ],
      "forecast": {"series": "total", "method": "profile", "freq": "10min",
                   "history": [{"t": 0, "rps": 2.5}],
                   "points": [{"t": 3600, "p10": 1.0, "p50": 2.0, "p90": 3.0, "p95": 3.5,
                               "p99": 4.0}]},                              // requests/s
      "schedule": [{"t": 3600, "plan": "h100-tp1-agg-b128", "replicas": 3,
                    "action": "scale-up", "demand_rps": 3.5}],
      "provisioning_delay_s": 120.0, "provisioning_source": "default for an 8B model ...",
      "replay": {
        "schedule":    {"slo_attainment": 0.995, "gpu_hours": 60.0, "cost": 180.0,
                        "replica_starts": 4, "scaling_actions": 6,
                        "prefix_cache_saved_share": 0.21},   // prompt tokens a prefix cache
                                                             // spared from prefill
        "static_peak": {...}, "reactive": {...},
        "reactive_tokens": {...},               // HPA on tokens/s (reactive: on requests/s)
        "kpa": {...},                           // Knative KPA: stable + panic windows
        "hybrid": {...},                        // a forecast schedule as a floor, HPA on tokens/s
                                                // above it, with the settings below
        "verdict": {"policy": "schedule",       // cheapest policy that held the SLO, or null
                    "sentence": "On the held-back replay the forecast schedule held ..."},
        "ceiling": {"slo_attainment": 0.9805,  // the most any policy holds with these
                    "requests_lost": 734,      // deployments: requests every policy missed
                    "lost_input_p50": 8280.0,  // that miss even alone on an idle replica
                    "lost_input_max": 29601, "sized_input_max": 13700},
        "hybrid_misses": {"missed": 11216,        // requests the hybrid missed; of them, those
                          "while_starting": 11183,  // arriving while replicas it had asked for
                          "start_up_s": 66.1},      // were still starting (its start-up)
        "diagnosis": {"causes": ["length drift"],  // why the schedule missed (none: it held):
                                                   // "beyond any replica",
                                                   // "burst above the forecast band",
                                                   // "length drift", "capacity"
                      "sentence": "length drift: held-back prompts longer (p50 ...)",
                      "lengths": {"input": {"ks_d": 0.31, "p_value": 1e-90, "sized_p50": 12100,
                                            "replayed_p50": 18700, "sized_mean": 13000.0,
                                            "replayed_mean": 19500.0, "drifted": true},
                                  "output": {...}},   // sized sample vs held-back requests
                      "band": {"intervals": 8, "above_intervals": 1, "requests": 9000,
                               "above_requests": 1200, "within_attainment": 0.91,
                               "above_attainment": 0.88}},  // intervals above the forecast
                                                            // quantile vs within it
        "busy_share": {"h100-tp1-agg-b128": 0.42},  // the schedule's replay: share of each
                                                    // deployment's ready GPU-time stepping
        "hybrid_tuning": {"floor_quantile": "p90",     // the floor schedule's quantile
                          "utilisation": 0.6,          // HPA target / one replica's goodput
                          "scale_down_window_s": 300.0,
                          "flat_floor": false,  // the floor schedule's peak held all day
                          "chosen_by": "replay of the windows before the held-back tail",
                          "sentence": "The hybrid's floor is the p90 forecast schedule ...",
                          "windows": [{"start_s": 600, "end_s": 1800}],  // up to 3, each
                                                                  // as long as the tail
                          "slo_attainment": 0.996,  // chosen settings: worst window
                          "cost": 170.0,            // and the cost over all windows
                          "candidates": 32,  // settings costed from their timelines;
                          "replayed": 7,     // replayed, cheapest first, until one held;
                          "simulated": 5},   // distinct timelines among them simulated
        "timeline": [{"t": 0, "schedule": 3, "static_peak": 4, "reactive": 2,
                      "hybrid": 3, "hybrid_floor": 2,
                      "demand_rps": 2.5, "forecast_rps": 3.1}],
        "window": {"start_s": 1800, "end_s": 3000, "requests": 2360,  // the held-back tail
                   "replayed_requests": 2360,   // simulated: whole intervals, busiest first,
                   "replayed_intervals": 2,     // at most 200,000 requests (attainment and
                   "forecast_method": "level"}  // busy shares are of these; costs of all)
      },
      "search": {"candidates": 240, "feasible": 120, "seconds": 12.3,
                 "mixed_hardware": 168}   // P/D replicas with the prefill side on other
                                          // hardware, built per length pool from the bounds
    }

Money basis: every ``cost_per_month`` (recommended and each alternative) is what that option
bills in a 730-hour month when it runs its own schedule over the horizon (static peak: always
on), so page one's savings and the sentence's "mixing saves" are differences of these monthly
figures. ``cost_per_hour`` is always the peak fleet with every replica running.

Replay timeline: ready (serving) replicas per policy, summed over deployments, as whole numbers
in a step series: a row at every interval edge of the replay window (its end included) and at
every grid step where a policy's count changes; each row holds until the next.
``hybrid_floor`` is the hybrid's forecast floor alone (``hybrid`` less it: its burst replicas).
``demand_rps`` is the observed arrival rate and ``forecast_rps`` the forecast `quantile` in the
interval holding ``t``.

Models below accept extra keys (forward compatible: a newer writer may add figures) but
require every key above.
"""

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from planner.errors import PlannerError

PLAN_VERSION = 1
JSON_NAMES = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


PLAN_KEYS = ("accelerator", "tp", "pp", "ep", "mode", "pd", "prefill", "max_batch", "gpus")


class _Model(BaseModel):
    """Base: extra keys allowed (newer writers), every documented key required.

    KEY_ORDER: the order PLAN.json writes the keys in (declared fields and extras alike);
    "*" stands for every key it does not name, in their own order (default: at the end).
    """

    model_config = ConfigDict(extra="allow")
    KEY_ORDER: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _ordered(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The dumped keys in KEY_ORDER (a stable sort: unnamed keys keep their order)."""
        data = handler(self)
        if not self.KEY_ORDER:
            return data
        rank = {key: i for i, key in enumerate(self.KEY_ORDER)}
        rest = rank.get("*", len(rank))
        return dict(sorted(data.items(), key=lambda kv: rank.get(kv[0], rest)))


class TraceRef(_Model):
    """The trace the plan was made from."""

    name: str
    format: str
    table: str
    requests: int
    span_s: float


class SloSpec(_Model):
    """The SLO targets given (keys present only for the SLOs given) and the attainment.

    Any `<metric>_p<percentile>_ms` key is a target (ttft_p90_ms, e2e_p99_ms, ...).
    """

    KEY_ORDER = ("*", "attainment")

    ttft_p99_ms: float | None = None
    tpot_p99_ms: float | None = None
    attainment: float = Field(gt=0, le=1)

    def limits(self) -> dict[str, float]:
        """Every SLO target given, by key ("ttft_p90_ms": 1000.0), in the plan's order."""
        return {
            key: float(value)
            for key, value in self.model_dump(exclude_unset=True).items()
            if key.endswith("_ms") and value is not None
        }


class AcceleratorRef(_Model):
    """One allowed accelerator with the price the plan used."""

    id: str
    name: str
    price_per_hour: float
    price_source: str


class PrefixCacheUse(_Model):
    """Whether the engine's prefix cache was simulated, on what reuse, and what it saved."""

    enabled: bool
    reuse: str
    saved_share: float


class Demand(_Model):
    """Observed and forecast demand (requests/s) and the trace's mean token lengths."""

    unit: str
    mean_in_tokens: float
    mean_out_tokens: float
    peak_rps: float
    mean_rps: float
    forecast_peak_rps: float
    forecast_mean_rps: float
    sized_for_rps: float
    prefix_cache: PrefixCacheUse | None = None
    length_forecast: dict | None = None


class PrefillPlan(_Model):
    """The prefill instances' accelerator and layout when they differ from the decode ones."""

    accelerator: str
    tp: int
    pp: int
    ep: int


class ParallelPlan(_Model):
    """One parallel plan: accelerator, parallelism, serving mode, batch and its goodput (the
    decode instances' accelerator and layout when `prefill` names other ones)."""

    accelerator: str
    tp: int
    pp: int
    ep: int
    mode: str
    pd: list[int] | None
    prefill: PrefillPlan | None = None
    max_batch: int
    gpus: int
    goodput_rps: float


class ReplicaGroup(ParallelPlan):
    """`count` replicas of one parallel plan (`plan`: its name in the schedule) in the busiest
    interval; `max_count`: the most the schedule runs at once, where that is more."""

    KEY_ORDER = ("plan", *PLAN_KEYS, "count", "max_count", "goodput_rps")

    count: int
    max_count: int | None = None
    plan: str | None = None
    bucket: str | None = None


class Recommended(_Model):
    """The recommended plan: the peak fleet, its cost per hour, and its cost on the schedule."""

    sentence: str
    replicas: list[ReplicaGroup]
    cost_per_hour: float
    scheduled_cost_per_hour: float
    cost_per_month: float
    cost_per_mtok: float
    shortfall: dict[str, Any] | None = None


class Alternative(_Model):
    """A comparison plan for finance (static peak, best single accelerator)."""

    cost_per_hour: float
    cost_per_month: float
    cost_per_mtok: float
    replicas: list[ReplicaGroup]


class SingleAccelerator(Alternative):
    """The best plan on one accelerator type, on its own schedule."""

    KEY_ORDER = ("accelerator", "replicas", "cost_per_hour", "scheduled_cost_per_hour")

    accelerator: str
    scheduled_cost_per_hour: float


class LengthPools(_Model):
    """One way of splitting requests into input-length pools, planned with --buckets."""

    max_input_tokens: list[float]
    pools: list[str] | None = None
    cost_per_month: float | None = None
    infeasible: str | None = None
    chosen: bool


class FleetCompared(_Model):
    """One fleet the plan scheduled before choosing the cheapest schedule."""

    KEY_ORDER = ("fleet", "replicas", "cost_per_hour", "scheduled_cost_per_hour")

    fleet: str
    replicas: list[str]
    cost_per_hour: float
    scheduled_cost_per_hour: float
    cost_per_month: float
    chosen: bool


class Alternatives(_Model):
    """What finance compares the recommendation with."""

    static_peak: Alternative
    best_single_accelerator: SingleAccelerator | None = None
    length_pools: list[LengthPools] | None = None
    fleets_compared: list[FleetCompared] = []


class FrontierPoint(ParallelPlan):
    """One evaluated candidate plan."""

    KEY_ORDER = ("id", *PLAN_KEYS, "goodput_rps", "cost_per_hour", "cost_per_mtok")
    KEY_ORDER += ("ttft_p99_ms", "tpot_p99_ms", "pooled_replicas", "chosen", "bucket", "pareto")

    id: str
    cost_per_hour: float
    cost_per_mtok: float | None
    ttft_p99_ms: float | None
    tpot_p99_ms: float | None
    pareto: bool
    chosen: bool


class ForecastBlock(_Model):
    """The demand forecast the schedule follows (requests/s)."""

    series: str
    method: str
    freq: str
    history: list[dict[str, float]]
    points: list[dict[str, float]]


class ScheduleRow(_Model):
    """One interval of one plan's replica schedule."""

    t: float
    plan: str
    replicas: int
    action: str
    start_at: float | None = None
    demand_rps: float


class PolicyReplay(_Model):
    """One provisioning policy replayed through the simulator."""

    slo_attainment: float
    gpu_hours: float
    cost: float
    replica_starts: int
    scaling_actions: int
    prefix_cache_saved_share: float = 0.0


class Verdict(_Model):
    """The cheapest replayed policy that held the attainment target (None: none did)."""

    policy: str | None
    sentence: str


class Diagnosis(_Model):
    """Why the schedule missed its target on the replay, and the measurements behind it."""

    causes: list[str]
    sentence: str
    lengths: dict[str, dict[str, float | bool]]
    band: dict[str, float | int | None]


class Ceiling(_Model):
    """The most any policy could hold on the replay with the plan's deployments: the requests
    every policy missed that miss the SLO even alone on an idle replica are lost whatever the
    fleet; their prompts beside the longest the plan was sized on."""

    slo_attainment: float
    requests_lost: int
    lost_input_p50: float | None
    lost_input_max: int | None
    sized_input_max: int | None


class HybridMisses(_Model):
    """The requests the hybrid missed on the replay, how many arrived while replicas it had
    asked for were still starting, and the start-up (s) they waited for."""

    missed: int
    while_starting: int
    start_up_s: float


class HybridTuning(_Model):
    """The hybrid's settings and how they were chosen (planner/scaling/tuning.py): on replays
    of the windows before the held-back tail (its worst window's attainment, its cost over
    them), or the defaults."""

    floor_quantile: str
    utilisation: float
    scale_down_window_s: float
    flat_floor: bool = False
    chosen_by: str
    sentence: str
    windows: list[dict[str, float]] | None = None
    slo_attainment: float | None = None
    cost: float | None = None
    candidates: int | None = None
    replayed: int | None = None
    simulated: int | None = None


class Replay(_Model):
    """The trace replayed under the schedule, static peak, the reactive autoscalers and the
    hybrid of a forecast floor and an autoscaler (the last three and the hybrid's tuning absent
    from plans made before they existed)."""

    schedule: PolicyReplay
    static_peak: PolicyReplay
    reactive: PolicyReplay
    reactive_tokens: PolicyReplay | None = None
    kpa: PolicyReplay | None = None
    hybrid: PolicyReplay | None = None
    verdict: Verdict | None = None
    ceiling: Ceiling | None = None
    hybrid_misses: HybridMisses | None = None
    diagnosis: Diagnosis | None = None
    busy_share: dict[str, float] | None = None
    hybrid_tuning: HybridTuning | None = None
    timeline: list[dict[str, int | float]]


class Search(_Model):
    """How big the search was and how long it took."""

    candidates: int
    fitting: int | None = None
    mixed_hardware: int | None = None
    latency_feasible: int | None = None
    batch_pruned: int | None = None
    ratio_pruned: int | None = None
    bound_pruned: int | None = None
    simulated: int | None = None
    feasible: int
    search_seconds: float | None = None
    seconds: float


class EngineRef(_Model):
    """The serving engine every replica was simulated as (profile id, release, defaults)."""

    id: str
    release: str | None
    name: str
    version: str


class PlanFile(_Model):
    """The whole plan file."""

    version: int
    created_at: str
    db: str
    trace: TraceRef
    model: str
    engine: EngineRef
    slo: SloSpec
    accelerators: list[AcceleratorRef]
    horizon_s: float
    interval_s: float
    quantile: str
    demand: Demand
    recommended: Recommended
    warnings: list[str] = []
    alternatives: Alternatives
    cost_band: dict[str, float]
    energy: dict[str, float | str] | None = None
    frontier: list[FrontierPoint]
    forecast: ForecastBlock
    schedule: list[ScheduleRow]
    provisioning_delay_s: float
    provisioning_source: str
    replay: Replay
    search: Search

    def to_dict(self) -> dict[str, Any]:
        """The PLAN.json object: the keys given, in the order the planner writes them."""
        return self.model_dump(exclude_unset=True)


def validate_plan(data: object, where: str = "plan") -> PlanFile:
    """The plan file model of a PLAN.json object; PlannerError naming the first bad key."""
    if not isinstance(data, dict):
        found = JSON_NAMES.get(type(data), type(data).__name__)
        raise PlannerError(f"{where}: not a plan file: expected a JSON object, found {found}")
    if data.get("version") != PLAN_VERSION:
        raise PlannerError(
            f"{where}: plan file version {data.get('version')!r} is not {PLAN_VERSION}"
        )
    try:
        return PlanFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise PlannerError(f"{where}: bad plan file at {key}: {first['msg']}") from None


def as_plan(plan: PlanFile | dict[str, Any], where: str = "plan") -> PlanFile:
    """`plan` itself, or the plan file model of a PLAN.json object (validated)."""
    return plan if isinstance(plan, PlanFile) else validate_plan(plan, where)


def write_plan(plan: PlanFile | dict[str, Any], path: Path) -> Path:
    """Validate and write PLAN.json (UTF-8, indented)."""
    data = as_plan(plan, str(path)).to_dict()
    try:
        path.write_text(json.dumps(data, indent=2, default=float) + "\n", encoding="utf-8")
    except OSError as exc:
        raise PlannerError(f"{path}: cannot write plan ({exc.strerror})") from None
    return path


def read_plan(path: Path) -> PlanFile:
    """Read and validate a PLAN.json."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlannerError(f"{path}: cannot read plan ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise PlannerError(
            f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})"
        ) from None
    except json.JSONDecodeError as exc:
        raise PlannerError(f"{path}: not valid JSON ({exc})") from None
    return validate_plan(data, str(path))
