"""`planner simulate` end to end: a stored trace on a plan, summarised for the CLI."""

from typing import Any

import duckdb

from planner.costmodel import StepModel
from planner.simulate.disagg import parse_disagg
from planner.simulate.goodput import goodput
from planner.simulate.metrics import parse_slos
from planner.simulate.simulator import simulate
from planner.simulate.steps import StepTable
from planner.simulate.workload import load_workload


def simulate_trace(
    con: duckdb.DuckDBPyConnection,
    trace: str,
    model: str,
    accelerator: str,
    tp: int = 1,
    pp: int = 1,
    replicas: int = 1,
    router: str = "least-loaded",
    max_batch: int = 256,
    chunked_prefill: int | None = None,
    disagg: str | None = None,
    rate_scale: float = 1.0,
    start: float | None = None,
    end: float | None = None,
    slos: list[str] | None = None,
    attainment: float = 0.99,
    with_goodput: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """The JSON summary: requests, latency percentiles, SLO attainment, goodput, plan."""
    chosen = parse_slos(slos)
    ratio = parse_disagg(disagg) if disagg else None
    workload = load_workload(con, trace, start, end, rate_scale, seed)
    table = StepTable(StepModel.build(model, accelerator, tp=tp, pp=pp))
    plan = {
        "replicas": replicas,
        "max_batch": max_batch,
        "chunked_prefill": chunked_prefill,
        "disagg": ratio,
        "router": router,
    }
    result = simulate(workload, table, slos=chosen, **plan)
    out = result.summary()
    if chosen and with_goodput:
        scale, rps = goodput(workload, table, chosen, attainment, **plan)
        out["attainment_target"] = attainment
        out["goodput_rate_scale"] = scale * rate_scale
        out["goodput_rps"] = rps
    sm = table.model
    instances = replicas * (sum(ratio) if ratio else 1)
    out["plan"] = {
        "model": model,
        "accelerator": sm.accelerator.id,
        "tp": tp,
        "pp": pp,
        **plan,
        "disagg": f"{ratio[0]}:{ratio[1]}" if ratio else None,
        "gpus": instances * sm.gpus,
        "cost_per_hour": instances * sm.cost_per_hour,
        "rate_scale": rate_scale,
        "trace": trace,
        "arrival_rps": workload.rate_rps,
    }
    return out
