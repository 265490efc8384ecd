"""Per-replica goodput of a candidate under the SLO, by simulation on the trace's request mix.

Each candidate runs on a representative slice of the trace through the simulator's goodput
search: the arrival pattern of its busiest interval (bursts included) carrying token lengths
drawn from its last day (the current request mix), a few thousand requests; per length bucket
when requests are split. Goodput is measured with `replicas` copies behind a round-robin
router and divided by that count: bursty traffic pools across replicas, so a fleet of n serves
more than n times what one replica serves alone, and the planner measures at the fleet size it
will run.
Results are cached per (candidate, bucket, replicas).
"""

from dataclasses import dataclass, replace

import duckdb
import numpy as np

from planner.costmodel import StepModel
from planner.forecast.tokens import LengthDrift
from planner.optimize.candidates import Candidate
from planner.simulate import (
    Slo,
    StepTable,
    Workload,
    concatenate,
    engine_scheduling,
    goodput_search,
    load_workload,
)
from planner.store import TraceInfo

JITTER_S = 60.0
SLICE_REQUESTS = 2000
RECENT_S = 86_400.0
MAX_POOL = 16
CURVE_SIZES = (1, 2, 4, 8, 16)
ROUTER = "round-robin"
TOLERANCE = 0.05


@dataclass(frozen=True)
class Evaluation:
    """A candidate's simulated per-replica goodput on one bucket and its latency there."""

    candidate: Candidate
    bucket: int
    replicas: int
    goodput_rps: float
    ttft_p99_ms: float | None
    tpot_p99_ms: float | None


def scaled_workload(
    con: duckdb.DuckDBPyConnection,
    trace: str,
    start: float,
    end: float,
    rate_scale: float,
    seed: int = 0,
) -> Workload:
    """Requests in [start, end) with `rate_scale` times the traffic on the same time axis.

    ceil(k) copies are superposed and thinned to k: a rate-window trace draws each copy anew
    (more clients of the same kind); a request trace repeats its requests with each copy's
    arrivals jittered by up to JITTER_S seconds and its prefix blocks made its own (other
    clients do not share the recorded clients' prompts). (The simulator's own rate scale compresses
    time instead, which would also compress the daily pattern.)
    """
    copies = max(int(np.ceil(rate_scale)), 1)
    rng = np.random.default_rng(seed)
    parts = []
    for j in range(copies):
        work = load_workload(con, trace, start=start, end=end, seed=seed + j)
        if j:
            work = work.shifted(rng.uniform(0.0, JITTER_S, work.requests)).salted(j)
        parts.append(work)
    merged = concatenate(parts)
    keep = np.flatnonzero(rng.random(merged.requests) < rate_scale / copies)
    order = keep[np.argsort(merged.arrival_s[keep], kind="stable")]
    return merged.take(order, name=trace)


def busiest_start(
    con: duckdb.DuckDBPyConnection, info: TraceInfo, interval_s: float, end_s: float
) -> float:
    """Start (s) of the interval with the most requests before `end_s`."""
    if info.kind == "requests":
        sql = (
            "SELECT floor(arrival_s / ?) AS k, count(*) AS n FROM requests "
            "WHERE trace_id = ? AND arrival_s < ? GROUP BY 1 ORDER BY n DESC, k LIMIT 1"
        )
    else:
        sql = (
            "SELECT floor(window_start_s / ?) AS k, sum(rate_rps * window_s) AS n "
            "FROM rate_windows WHERE trace_id = ? AND window_start_s < ? "
            "GROUP BY 1 ORDER BY n DESC, k LIMIT 1"
        )
    rows = con.execute(sql, [interval_s, info.id, end_s]).fetchall()
    return float(rows[0][0]) * interval_s if rows else 0.0


def representative_slice(
    con: duckdb.DuckDBPyConnection,
    info: TraceInfo,
    interval_s: float,
    end_s: float,
    seed: int = 0,
    drift: LengthDrift | None = None,
) -> Workload:
    """SLICE_REQUESTS requests: arrivals of the busiest interval before `end_s` (its bursts),
    token lengths drawn from the last RECENT_S of history (the current request mix), moved by
    the forecast `drift` of that mix where one is given."""
    start = busiest_start(con, info, interval_s, end_s)
    span = interval_s
    while True:
        work = load_workload(con, info.name, start=start, end=min(start + span, end_s), seed=seed)
        if work.requests >= SLICE_REQUESTS or start + span >= end_s:
            break
        span *= 2
    count = min(work.requests, SLICE_REQUESTS)
    recent = load_workload(con, info.name, start=max(end_s - RECENT_S, 0.0), end=end_s, seed=seed)
    pick = np.random.default_rng(seed).choice(
        recent.requests, count, replace=recent.requests < count
    )
    mix = recent.take(pick, name=f"{info.name} busiest interval")
    if drift is not None:
        mix = replace(
            mix,
            input_tokens=drift.scale("input", mix.input_tokens),
            output_tokens=drift.scale("output", mix.output_tokens),
        )
    return replace(mix, arrival_s=work.arrival_s[:count] - work.arrival_s[0])


def split_buckets(work: Workload, edges: np.ndarray) -> list[Workload]:
    """The slice's requests per input-length bucket (edges: upper bounds of all but the last)."""
    which = np.searchsorted(edges, work.input_tokens, side="left")
    return [work.take(which == b, name=f"{work.name} bucket {b}") for b in range(len(edges) + 1)]


def flops_bound_rps(cand: Candidate, work: Workload) -> float:
    """Most requests/s one replica could serve if every GPU ran at its best peak FLOP/s and
    each token cost only its matmul FLOPs (2 x active weights): no real plan gets near it."""
    tokens = float(np.mean(work.input_tokens) + np.mean(work.output_tokens))
    sides = [cand.accelerator] + ([cand.prefill.accelerator] if cand.prefill else [])
    peaks = {a.id: max(a.peak_flops(d) for d in ("bf16", "fp8", "int8", "fp4")) for a in sides}
    per_request = 2.0 * cand.model.card.active_matmul_params() * max(tokens, 1.0)
    return sum(n * peaks[acc] for acc, n in cand.gpus_on().items()) / per_request


def _check_flops_bound(cand: Candidate, work: Workload, goodput_rps: float) -> None:
    """Goodput above the FLOP/s bound is a simulator or cost-model bug, never a plan."""
    bound = flops_bound_rps(cand, work)
    if goodput_rps > bound:
        raise AssertionError(
            f"{cand.id}: simulated goodput {goodput_rps:.4g} req/s per replica exceeds the "
            f"{bound:.4g} req/s its peak FLOP/s allow for {work.name}'s tokens (a planner bug)"
        )


class GoodputEvaluator:
    """Simulated goodput of candidates on per-bucket workloads, with step tables and cache."""

    def __init__(self, workloads: list[Workload], slos: list[Slo], attainment: float) -> None:
        """Evaluate against `workloads` (one per bucket) for `slos` held by `attainment`."""
        self.workloads, self.slos, self.attainment = workloads, slos, attainment
        self._tables: dict[int, StepTable] = {}
        self._cache: dict[tuple[str, int, int], Evaluation] = {}

    def tpot_limit(self) -> float | None:
        """The TPOT target in ms, if the SLO has one."""
        return next((s.limit_ms for s in self.slos if s.metric == "tpot"), None)

    def table(self, cand: Candidate) -> StepTable:
        """The step table of a candidate's (decode) parallel plan, shared across modes and
        batches."""
        return self._table(cand.model)

    def prefill_table(self, cand: Candidate) -> StepTable | None:
        """The step table of a candidate's prefill side on other hardware (None: the same)."""
        return None if cand.prefill is None else self._table(cand.prefill.model)

    def _table(self, model: StepModel) -> StepTable:
        """One step table per step model."""
        key = id(model)
        if key not in self._tables:
            self._tables[key] = StepTable(model)
        return self._tables[key]

    def evaluate(
        self,
        cand: Candidate,
        bucket: int,
        replicas: int,
        guess_rps: float,
        first_step: float = 2.0,
    ) -> Evaluation:
        """Per-replica goodput with `replicas` pooled; `guess_rps` per replica seeds the search,
        which first steps by `first_step` (small when the guess is itself a simulated goodput)."""
        key = (cand.id, bucket, replicas)
        if key in self._cache:
            return self._cache[key]
        work = self.workloads[bucket]
        start = work.scaled(max(guess_rps * replicas / work.rate_rps, 1e-6))
        table = self.table(cand)
        plan = {
            "replicas": replicas,
            "scheduling": engine_scheduling(table, cand.max_batch),
            "disagg": cand.pd,
            "router": ROUTER,
            "prefill_model": self.prefill_table(cand),
        }
        found = goodput_search(
            start, table, self.slos, self.attainment, TOLERANCE, first_step, **plan
        )
        rps, ttft, tpot = found.rps, None, None
        if found.result is not None:
            summary = found.result.summary()
            ttft, tpot = summary["ttft_ms"]["p99"], summary["tpot_ms"]["p99"]
        _check_flops_bound(cand, work, rps / replicas)
        evaluation = Evaluation(cand, bucket, replicas, rps / replicas, ttft, tpot)
        self._cache[key] = evaluation
        return evaluation

    def capacity_curve(
        self, cand: Candidate, bucket: int, largest: int, guess_rps: float
    ) -> tuple[tuple[int, float], ...]:
        """(fleet size, per-replica goodput) at 1, 2, 4, ... up to `largest` (at most MAX_POOL)."""
        top = min(max(largest, 1), MAX_POOL)
        sizes = sorted({n for n in CURVE_SIZES if n < top} | {top})
        return tuple((n, self.evaluate(cand, bucket, n, guess_rps).goodput_rps) for n in sizes)
