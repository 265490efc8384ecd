"""Prefill/decode disaggregation: P prefill and D decode instances, KV shipped in between.

Prefill instances run prompts only; each request's KV cache then crosses the interconnect (or
a network bandwidth the user sets) to a decode instance, which admits it straight into its
decode batch. The first token is computed by the prefill instance but reaches the client
through the decode instance when that takes the request in (SGLang's decode server streams the
transferred first token as its loop admits the request; Dynamo serves every token of a
disaggregated request from the decode worker: docs "SGLang Disaggregated Serving"), so TTFT
includes the KV hand-off and the wait for the decode instance's next step. Both sides have
their own batch limits, and may run on different accelerators and parallel layouts (prefill on
a compute-rich part, decode on a cheaper or bigger-memory one); the KV cache then crosses the
scale-out network.
"""

import re
from math import inf

import numpy as np

from planner.errors import PlannerError
from planner.simulate.benchmark import (
    Benchmark,
    BenchmarkRun,
    benchmark_run,
    client_loop,
    first_sends,
)
from planner.simulate.replica import Replica, Requests, Scheduling
from planner.simulate.router import route
from planner.simulate.steps import StepTable, StepTimes

_RATIO = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_disagg(text: str) -> tuple[int, int]:
    """Parse a P:D instance ratio such as ``1:2`` (both sides at least 1)."""
    match = _RATIO.match(text)
    if not match:
        raise PlannerError(f"cannot parse --disagg {text!r}; expected P:D such as 1:1 or 2:3")
    return check_ratio((int(match.group(1)), int(match.group(2))))


def check_ratio(ratio: tuple[int, int]) -> tuple[int, int]:
    """Reject a P:D ratio with no instance on either side."""
    prefill, decode = ratio
    if prefill < 1 or decode < 1:
        raise PlannerError(
            f"P:D ratio {prefill}:{decode} needs at least one prefill and one decode instance"
        )
    return prefill, decode


def handoff_gbs(prefill: StepTimes, decode: StepTimes) -> float | None:
    """Per-GPU bandwidth of the KV hand-off between two different accelerators: the slower
    side's scale-out link (None when both sides are one accelerator type: its interconnect)."""
    sides = [getattr(m, "accelerator", None) for m in (prefill, decode)]
    if None in sides or sides[0].id == sides[1].id:
        return None
    return min(a.scale_out_gbs for a in sides)


def run_disaggregated(
    reqs: Requests,
    table: StepTable,
    arrivals: np.ndarray,
    ratio: tuple[int, int],
    replicas: int,
    rules: Scheduling,
    prefill_rules: Scheduling,
    router: str,
    bandwidth_gb_s: float | None,
    prefill_table: StepTable | None = None,
) -> tuple[list[Replica], np.ndarray]:
    """Simulate `replicas` copies of a P:D group, the prefill side on `prefill_table` if given
    (else on `table`, as the decode side); the instances and each request's prefill one."""
    ptable = prefill_table or table
    prefills = [
        Replica(reqs, ptable, prefill_rules, prefill_only=True) for _ in range(ratio[0] * replicas)
    ]
    rids = np.arange(len(arrivals))
    chosen = route(prefills, rids, arrivals, router)
    first = np.asarray(reqs.first)
    prompt = np.asarray(reqs.prompt)
    moving = np.flatnonzero(np.isfinite(first) & (np.asarray(reqs.target) > 1))
    transfer = np.asarray(ptable.model.kv_transfer_ms(prompt[moving], bandwidth_gb_s), dtype=float)
    ready = first[moving] + transfer / 1000.0
    order = np.argsort(ready, kind="stable")
    for rid in moving.tolist():
        reqs.kv_ready[rid] = True
    decodes = [Replica(reqs, table, rules) for _ in range(ratio[1] * replicas)]
    route(decodes, moving[order], ready[order], router)
    return prefills + decodes, chosen


def run_disaggregated_benchmark(
    prefill_table: StepTable,
    decode_table: StepTable,
    prefill_rules: Scheduling,
    decode_rules: Scheduling,
    workers: tuple[int, int],
    bench: Benchmark,
    delay_ms: float,
) -> BenchmarkRun:
    """A closed-loop benchmark against P prefill and D decode workers, simulated together.

    Each prompt goes to the least-loaded prefill worker; its KV cache then crosses to the
    least-loaded decode worker; each completion sends the client's next request. The workers
    advance in time order (the earliest one runs until the next one's step), so a request
    handed over always finds its target no later than it should. (The steps of several
    workers interleave, so the run keeps no step log.)
    """
    check_ratio(workers)
    inputs, outputs = bench.lengths()
    reqs = Requests(inputs.tolist(), outputs.tolist(), [0.0] * bench.count)

    def to_prefill(rid: int, t: float) -> None:
        """Send a new request to the least-loaded prefill worker."""
        min(prefills, key=lambda r: r.load).push(rid, t)

    def to_decode(rid: int, t: float) -> None:
        """Ship a prefilled request's KV cache to the least-loaded decode worker."""
        if reqs.gen[rid] >= reqs.target[rid]:
            return
        reqs.kv_ready[rid] = True
        transfer = float(prefill_table.model.kv_transfer_ms([reqs.prompt[rid]])[0]) / 1000.0
        min(decodes, key=lambda r: r.load).push(rid, t + transfer)

    loop = client_loop(bench, delay_ms, send=to_prefill)
    prefills = [
        Replica(reqs, prefill_table, prefill_rules, prefill_only=True, handoff=to_decode)
        for _ in range(workers[0])
    ]
    decodes = [
        Replica(reqs, decode_table, decode_rules, loop=loop, hands_on=True)
        for _ in range(workers[1])
    ]
    for rid, at in enumerate(first_sends(loop, bench)):
        reqs.arrival[rid] = at
        to_prefill(rid, loop.through_frontend(at))
    instances = prefills + decodes
    while True:
        order = sorted(instances, key=lambda r: r.next_start)
        first = order[0]
        if first.next_start == inf:
            break
        horizon = order[1].next_start if len(order) > 1 else inf
        first.run(max(horizon, first.next_start) + 1e-9)
    return benchmark_run(reqs, bench.warmup, prefills + decodes, [])
