"""simulate(): a workload on a plan (replicas of one step model), aggregated or disaggregated."""

from math import inf

import numpy as np

from planner.errors import PlannerError
from planner.simulate.disagg import check_ratio, run_disaggregated
from planner.simulate.metrics import SimResult, Slo
from planner.simulate.replica import Replica, Requests, TargetMissed
from planner.simulate.router import check_router, route
from planner.simulate.steps import StepTable, StepTimes, step_table
from planner.simulate.workload import Workload

DEFAULT_PREFILL_TOKENS = 16384


def simulate(
    workload: Workload,
    step_model: StepTimes | StepTable,
    replicas: int = 1,
    max_batch: int = 256,
    chunked_prefill: int | None = None,
    disagg: tuple[int, int] | None = None,
    router: str = "least-loaded",
    slos: list[Slo] | None = None,
    prefill_max_batch: int | None = None,
    prefill_tokens: int = DEFAULT_PREFILL_TOKENS,
    kv_bandwidth_gb_s: float | None = None,
    stop_below: float | None = None,
) -> SimResult | None:
    """What every request of `workload` experiences on `replicas` copies of the plan.

    `disagg=(p, d)` makes each replica p prefill + d decode instances; `chunked_prefill` is the
    token budget of a mixed step; `prefill_tokens` caps one prefill step's prompt tokens
    otherwise. Pass a StepTable (built once) to reuse step tables across many calls. With
    `stop_below`, returns None as soon as so many requests miss the TTFT SLO that attainment
    must fall below it (goodput's shortcut for overloaded rates).
    """
    _check(workload, replicas, max_batch, chunked_prefill, prefill_max_batch, prefill_tokens)
    check_router(router)
    table = step_table(step_model)
    arrivals = np.asarray(workload.arrival_s, dtype=float)
    reqs = Requests(
        np.asarray(workload.input_tokens, dtype=np.int64).tolist(),
        np.asarray(workload.output_tokens, dtype=np.int64).tolist(),
        arrivals.tolist(),
    )
    if stop_below is not None:
        ttft = [slo.limit_ms / 1000.0 for slo in slos or [] if slo.metric == "ttft"]
        reqs.ttft_limit_s = min(ttft, default=inf)
        reqs.misses_allowed = int((1.0 - stop_below) * workload.requests)
    try:
        if disagg is None:
            instances = [
                Replica(reqs, table, max_batch, chunked_prefill, prefill_tokens)
                for _ in range(replicas)
            ]
            chosen = route(instances, np.arange(len(arrivals)), arrivals, router)
        else:
            instances, chosen = run_disaggregated(
                reqs,
                table,
                arrivals,
                check_ratio(disagg),
                replicas,
                max_batch,
                prefill_max_batch or max_batch,
                chunked_prefill,
                prefill_tokens,
                router,
                kv_bandwidth_gb_s,
            )
    except TargetMissed:
        return None
    return _result(workload, reqs, instances, chosen, replicas, table, slos or [])


def _check(
    workload: Workload,
    replicas: int,
    max_batch: int,
    chunked_prefill: int | None,
    prefill_max_batch: int | None,
    prefill_tokens: int,
) -> None:
    """Reject empty workloads and non-positive plan sizes with a one-line reason."""
    if not workload.requests:
        raise PlannerError("the workload has no requests to simulate")
    limits = {
        "replicas": replicas,
        "max batch": max_batch,
        "chunked prefill budget": chunked_prefill,
        "prefill max batch": prefill_max_batch,
        "prefill tokens": prefill_tokens,
    }
    for name, value in limits.items():
        if value is not None and value < 1:
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
    )
