"""`planner simulate` end to end: a stored trace, or a load generator's closed loop, on a plan."""

from dataclasses import dataclass
from typing import Any

import duckdb

from planner.costmodel import Speculative, StepModel
from planner.costmodel.engine import DEFAULT_ENGINE, load_engine
from planner.errors import PlannerError
from planner.simulate.benchmark import Benchmark, run_benchmark
from planner.simulate.disagg import parse_disagg
from planner.simulate.goodput import goodput_search
from planner.simulate.metrics import parse_slos
from planner.simulate.replica import Scheduling
from planner.simulate.simulator import simulate
from planner.simulate.steps import StepTable
from planner.simulate.workload import load_workload

PREFILL_KEYS = ("accelerator", "tp", "pp", "dp", "ep", "gpus", "cost_per_hour")


@dataclass(frozen=True)
class ServingPlan:
    """What serves: model, accelerator, parallel layout, precision and the engine's flags."""

    model: str
    accelerator: str
    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    engine: str = DEFAULT_ENGINE
    dtype: str | None = None
    kv_dtype: str | None = None
    speculative: str | None = None
    max_batch: int | None = None
    token_budget: int | None = None
    prefix_caching: bool = True

    def build(self) -> tuple[StepTable, Scheduling]:
        """The plan's step table and the engine's scheduling rules (with any flag overrides)."""
        flags = {
            "token_budget": self.token_budget,
            "max_seqs": self.max_batch,
            "prefix_caching": None if self.prefix_caching else 0,
        }
        engine = load_engine(self.engine).with_flags(
            **{k: v for k, v in flags.items() if v is not None}
        )
        model = StepModel.build(
            self.model,
            self.accelerator,
            tp=self.tp,
            pp=self.pp,
            dp=self.dp,
            ep=self.ep,
            dtype=self.dtype,
            kv_dtype=self.kv_dtype,
            engine=engine,
            speculative=Speculative.parse(self.speculative) if self.speculative else None,
        )
        assert model.engine is not None
        return StepTable(model), Scheduling.of(model.engine.scheduler, ranks=self.dp)

    def describe(self, table: StepTable) -> dict[str, Any]:
        """The JSON `plan` block: the deployment as simulated, engine and release included."""
        model = table.model
        assert isinstance(model, StepModel) and model.engine is not None
        return {
            "model": model.card.id,
            "accelerator": model.accelerator.id,
            "tp": self.tp,
            "pp": self.pp,
            "dp": self.dp,
            "ep": self.ep,
            "dtype": model.precision.dense,
            "kv_dtype": model.precision.kv,
            "engine": model.engine.label,
            "engine_name": model.engine.name,
            "engine_release": model.engine.release,
            "engine_version": model.engine.version,
            "speculative": self.speculative,
            "gpus": model.gpus,
            "cost_per_hour": model.cost_per_hour,
        }


def simulate_trace(
    con: duckdb.DuckDBPyConnection,
    trace: str,
    plan: ServingPlan,
    replicas: int = 1,
    router: str = "least-loaded",
    disagg: str | None = None,
    rate_scale: float = 1.0,
    start: float | None = None,
    end: float | None = None,
    slos: list[str] | None = None,
    attainment: float = 0.99,
    with_goodput: bool = True,
    seed: int = 0,
    prefix_reuse: float | None = None,
    prefill: ServingPlan | None = None,
) -> dict[str, Any]:
    """The JSON summary: requests, latency percentiles, SLO attainment, goodput, plan.
    `prefix_reuse`: the share of each prompt assumed shared by all requests, for a trace
    that records no prefix-block hashes; `prefill`: the plan of the prefill instances when
    they differ from the decode ones (`plan`), with `disagg`."""
    chosen = parse_slos(slos)
    ratio = parse_disagg(disagg) if disagg else None
    if prefill is not None and ratio is None:
        raise PlannerError("--prefill-accelerator / --prefill-tp need --disagg P:D")
    workload = load_workload(con, trace, start, end, rate_scale, seed)
    workload = workload.with_prefix_reuse(prefix_reuse)
    table, rules = plan.build()
    run = {"scheduling": rules, "replicas": replicas, "disagg": ratio, "router": router}
    if prefill is not None:
        run["prefill_model"], run["prefill_scheduling"] = prefill.build()
    result = simulate(workload, table, slos=chosen, **run)
    assert result is not None
    out = result.summary()
    if chosen and with_goodput:
        found = goodput_search(workload, table, chosen, attainment, **run)
        scale, rps = found.scale, found.rps
        out["attainment_target"] = attainment
        out["goodput_rate_scale"] = scale * rate_scale
        out["goodput_rps"] = rps
    described = plan.describe(table)
    sides = _sides(
        described, ratio, None if prefill is None else prefill.describe(run["prefill_model"])
    )
    out["plan"] = described | {
        "replicas": replicas,
        "router": router,
        "max_batch": rules.max_seqs // plan.dp,
        "token_budget": rules.token_budget // plan.dp,
        "disagg": f"{ratio[0]}:{ratio[1]}" if ratio else None,
        "gpus": replicas * sum(n * side["gpus"] for n, side in sides),
        "cost_per_hour": replicas * sum(n * side["cost_per_hour"] for n, side in sides),
        "prefill": None if prefill is None else {k: sides[0][1][k] for k in PREFILL_KEYS},
        "rate_scale": rate_scale,
        "trace": trace,
        "arrival_rps": workload.rate_rps,
        "prefix_caching": rules.prefix_caching,
        "prefix_reuse": workload.reuse,
    }
    return out


def _sides(
    decode: dict[str, Any], ratio: tuple[int, int] | None, prefill: dict[str, Any] | None
) -> list[tuple[int, dict[str, Any]]]:
    """(instances per replica, described plan) of each side: one side when aggregated."""
    if ratio is None:
        return [(1, decode)]
    return [(ratio[0], prefill or decode), (ratio[1], decode)]


def simulate_benchmark(plan: ServingPlan, bench: Benchmark) -> dict[str, Any]:
    """A load generator's closed loop on one instance, summarised as `vllm bench serve` does."""
    table, rules = plan.build()
    model = table.model
    assert isinstance(model, StepModel) and model.engine is not None
    run = run_benchmark(table, rules, bench, model.engine.host.frontend_ms)
    return run.summary() | {
        "max_concurrency": bench.concurrency,
        "num_prompts": bench.measured,
        "warmup": bench.warmup,
        "random_input_len": bench.isl,
        "random_output_len": bench.osl,
        "rejected": run.rejected,
        "plan": plan.describe(table)
        | {"max_batch": rules.max_seqs // plan.dp, "token_budget": rules.token_budget // plan.dp},
    }
