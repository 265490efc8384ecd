"""simulate(): a workload on a plan (replicas of one step model), aggregated or disaggregated."""

from math import inf

import numpy as np

from planner.costmodel.engine import load_engine
from planner.errors import PlannerError
from planner.simulate.disagg import check_ratio, handoff_gbs, run_disaggregated
from planner.simulate.metrics import METRICS, SimResult, Slo
from planner.simulate.replica import Replica, Requests, Scheduling, TargetMissed
from planner.simulate.router import check_router, route
from planner.simulate.steps import StepTable, StepTimes, step_table
from planner.simulate.workload import Workload


def engine_scheduling(table: StepTable, max_seqs: int | None = None) -> Scheduling:
    """The scheduling rules of the engine the step model was built for (vLLM if none)."""
    engine = getattr(table.model, "engine", None) or load_engine()
    return Scheduling.of(engine.scheduler, max_seqs)


def simulate(
    workload: Workload,
    step_model: StepTimes | StepTable,
    scheduling: Scheduling | None = None,
    replicas: int = 1,
    disagg: tuple[int, int] | None = None,
    router: str = "least-loaded",
    slos: list[Slo] | None = None,
    prefill_scheduling: Scheduling | None = None,
    kv_bandwidth_gb_s: float | None = None,
    stop_below: float | None = None,
    prefill_model: StepTimes | StepTable | None = None,
) -> SimResult | None:
    """What every request of `workload` experiences on `replicas` copies of the plan.

    Each instance batches by `scheduling` (default: the step model's engine); `disagg=(p, d)`
    makes each replica p prefill + d decode instances, the prefill side batching by
    `prefill_scheduling` if given and running on `prefill_model` if given (another accelerator
    or layout; its KV cache then crosses the slower side's scale-out link unless
    `kv_bandwidth_gb_s` says otherwise). Pass a StepTable (built once) to reuse step tables across
    many calls. With `stop_below`, returns None as soon as so many requests miss the TTFT, TPOT
    or end-to-end SLO that attainment must fall below it (goodput's shortcut for overloaded
    rates; a queue-time SLO is only counted in the result).
    """
    table = step_table(step_model)
    rules = scheduling or engine_scheduling(table)
    _check(workload, replicas, rules, prefill_scheduling)
    if prefill_model is not None and disagg is None:
        raise PlannerError("a separate prefill plan needs a P:D split (disagg)")
    ptable = None if prefill_model is None else step_table(prefill_model)
    bandwidth = kv_bandwidth_gb_s
    if bandwidth is None and ptable is not None:
        bandwidth = handoff_gbs(ptable.model, table.model)
    check_router(router)
    arrivals = np.asarray(workload.arrival_s, dtype=float)
    reqs = Requests(
        np.asarray(workload.input_tokens, dtype=np.int64).tolist(),
        np.asarray(workload.output_tokens, dtype=np.int64).tolist(),
        arrivals.tolist(),
        blocks=None if workload.blocks is None else list(workload.blocks),
        block_tokens=workload.block_tokens,
    )
    if stop_below is not None:
        limits = {
            m: min((s.limit_ms for s in slos or [] if s.metric == m), default=inf) for m in METRICS
        }
        reqs.ttft_limit_s = limits["ttft"] / 1000.0
        reqs.tpot_limit_ms, reqs.e2e_limit_ms = limits["tpot"], limits["e2e"]
        reqs.misses_allowed = int((1.0 - stop_below) * workload.requests)
    try:
        if disagg is None:
            instances = [Replica(reqs, table, rules) for _ in range(replicas)]
            chosen = route(instances, np.arange(len(arrivals)), arrivals, router)
        else:
            instances, chosen = run_disaggregated(
                reqs,
                table,
                arrivals,
                check_ratio(disagg),
                replicas,
                rules,
                prefill_scheduling or rules,
                router,
                bandwidth,
                ptable,
            )
    except TargetMissed:
        return None
    return _result(workload, reqs, instances, chosen, replicas, table, slos or [])


def _check(
    workload: Workload,
    replicas: int,
    rules: Scheduling,
    prefill_rules: Scheduling | None,
) -> None:
    """Reject empty workloads and non-positive plan sizes with a one-line reason."""
    if not workload.requests:
        raise PlannerError("the workload has no requests to simulate")
    limits = {"replicas": replicas, "max batch": rules.max_seqs, "token budget": rules.token_budget}
    if prefill_rules is not None:
        limits["prefill max batch"] = prefill_rules.max_seqs
    for name, value in limits.items():
        if value < 1:
            raise PlannerError(f"{name} must be at least 1, not {value}")


def _result(
    workload: Workload,
    reqs: Requests,
    instances: list[Replica],
    chosen: np.ndarray,
    replicas: int,
    table: StepTable,
    slos: list[Slo],
) -> SimResult:
    """Per-request latencies in ms from the shared request state."""
    arrivals = np.asarray(workload.arrival_s, dtype=float)
    first = np.asarray(reqs.first)
    done = np.asarray(reqs.done)
    start = np.asarray(reqs.start)
    outputs = np.asarray(reqs.target)
    unfinished = done < 0
    first[first < 0] = np.inf
    done[unfinished] = np.inf
    start[start < 0] = np.inf
    with np.errstate(invalid="ignore"):
        tpot = np.where(outputs > 1, (done - first) / np.maximum(outputs - 1, 1), np.nan)
    return SimResult(
        arrival_s=arrivals,
        input_tokens=np.asarray(workload.input_tokens),
        output_tokens=np.asarray(workload.output_tokens),
        ttft_ms=(first - arrivals) * 1000.0,
        tpot_ms=tpot * 1000.0,
        e2e_ms=(done - arrivals) * 1000.0,
        queue_ms=(start - arrivals) * 1000.0,
        instance=chosen,
        replicas=replicas,
        preemptions=sum(r.preemptions for r in instances),
        peak_kv_tokens=max(r.peak_kv for r in instances),
        kv_budget_tokens=table.kv_budget_tokens,
        slos=slos,
        busy_s=sum(r.busy_ms for r in instances) / 1000.0,
        prefilled_tokens=sum(r.prefill_computed for r in instances),
        cached_tokens=sum(r.prefix_hits for r in instances),
    )
