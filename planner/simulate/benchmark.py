"""Benchmark mode: what a load generator measures, N clients in a closed loop on one instance.

`vllm bench serve --max-concurrency N`, genai-perf and aiperf ``--concurrency N`` all start N
requests at once and send a new one as soon as one completes, with fixed (or normally drawn)
input and output lengths and ``ignore_eos``. They report TTFT from the send to the first token
and TPOT per request as (end-to-end - TTFT) / (output tokens - 1), averaged over requests
(genai-perf and aiperf call the same quantity ITL). With a warm-up count, aiperf and
genai-perf wait for every warm-up response and then start the measured phase's N clients at
once, so the measured means include that synchronised wave. This module drives the replica
scheduler that way and reports the same statistics.
"""

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from planner.errors import PlannerError
from planner.simulate.replica import ClosedLoop, Replica, Requests, Scheduling, Step
from planner.simulate.steps import StepTable

ROUNDS = 10


@dataclass(frozen=True)
class Benchmark:
    """A closed-loop load: clients, lengths (optionally spread), request counts.

    Lengths are spread either normally (`isl_std`, `osl_std`) or, with a `range_ratio` below 1,
    the way the random dataset of the benchmark_serving.py client InferenceX runs draws them
    (`--random-range-ratio`, as vLLM's client did before it centred the range on the nominal
    length): uniform integers between range_ratio x and 1 x the nominal length. Spread lengths
    matter beyond their mean: with equal lengths the clients that started together finish
    together and queue their prompts behind each other again, round after round. `think_ms` is
    the clients' mean pause between a response and the next request (exponential; 0 for load
    generators, which send at once).
    """

    concurrency: int
    isl: int
    osl: int
    requests: int = 0
    warmup: int = 0
    isl_std: float = 0.0
    osl_std: float = 0.0
    think_ms: float = 0.0
    seed: int = 0
    range_ratio: float = 1.0

    def __post_init__(self) -> None:
        """Reject loads a load generator would refuse."""
        for name in ("concurrency", "isl", "osl"):
            if getattr(self, name) < 1:
                raise PlannerError(f"{name} must be at least 1, not {getattr(self, name)}")
        if min(self.requests, self.warmup, self.isl_std, self.osl_std, self.think_ms) < 0:
            raise PlannerError("requests, warm-up, length spreads and think time must be >= 0")
        if not 0.0 <= self.range_ratio <= 1.0:
            raise PlannerError(f"range ratio must be within [0, 1], not {self.range_ratio}")

    @property
    def measured(self) -> int:
        """Requests measured (default: ROUNDS per client)."""
        return self.requests or ROUNDS * self.concurrency

    @property
    def count(self) -> int:
        """Requests sent: the warm-up ones (not measured) first, then the measured ones."""
        return self.warmup + self.measured

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """Input and output lengths of every request (seeded draws, at least 1)."""
        rng = np.random.default_rng(self.seed)
        if self.range_ratio < 1.0:
            isl_drawn, osl_drawn = (
                np.maximum(rng.integers(int(n * self.range_ratio), n + 1, self.count), 1)
                for n in (self.isl, self.osl)
            )
            return isl_drawn, osl_drawn
        isl = np.full(self.count, float(self.isl))
        osl = np.full(self.count, float(self.osl))
        if self.isl_std:
            isl += rng.normal(0.0, self.isl_std, self.count)
        if self.osl_std:
            osl += rng.normal(0.0, self.osl_std, self.count)
        return np.maximum(np.rint(isl), 1).astype(int), np.maximum(np.rint(osl), 1).astype(int)


@dataclass
class BenchmarkRun:
    """Per-request latencies of the measured requests of one run, and its step log if kept.

    `reqs` holds every request sent, the `warmup` first ones (not measured) included.
    """

    ttft_ms: np.ndarray
    tpot_ms: np.ndarray
    e2e_ms: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    duration_s: float
    preemptions: int
    rejected: int
    reqs: Requests
    warmup: int = 0
    log: list[Step] = field(default_factory=list)

    def summary(self) -> dict[str, float | int]:
        """The statistics `vllm bench serve --save-result` writes (mean, median, p99)."""
        done = np.isfinite(self.e2e_ms)
        out: dict[str, float | int] = {
            "completed": int(done.sum()),
            "failed": int((~done).sum()),
            "duration": self.duration_s,
            "request_throughput": float(done.sum() / self.duration_s) if self.duration_s else 0.0,
            "output_throughput": float(self.output_tokens[done].sum() / self.duration_s)
            if self.duration_s
            else 0.0,
            "preemptions": self.preemptions,
        }
        for name, values in (("ttft", self.ttft_ms), ("tpot", self.tpot_ms), ("e2el", self.e2e_ms)):
            finite = values[np.isfinite(values)]
            for stat, fn in (("mean", np.mean), ("median", np.median)):
                out[f"{stat}_{name}_ms"] = float(fn(finite)) if finite.size else float("nan")
            out[f"p99_{name}_ms"] = (
                float(np.percentile(finite, 99)) if finite.size else float("nan")
            )
        return out


def client_loop(
    bench: Benchmark, delay_ms: float, send: Callable[[int, float], None] | None = None
) -> ClosedLoop:
    """The benchmark's clients: requests after the first wave, latencies, seeded think times."""
    queue = deque(range(bench.concurrency, bench.count))
    rng = random.Random(bench.seed)
    return ClosedLoop(
        queue,
        delay_ms / 1000.0,
        bench.think_ms / 1000.0,
        rng,
        send,
        warmup=bench.warmup,
        clients=bench.concurrency,
    )


def first_sends(loop: ClosedLoop, bench: Benchmark) -> list[float]:
    """Send times of the first wave: every client starts at once, after one think time."""
    return sorted(loop.think() for _ in range(min(bench.concurrency, bench.count)))


def run_benchmark(
    table: StepTable,
    scheduling: Scheduling,
    bench: Benchmark,
    delay_ms: float,
    log: bool = False,
) -> BenchmarkRun:
    """Run `bench` against one instance; the engine sees a request ~`delay_ms` after its send."""
    inputs, outputs = bench.lengths()
    reqs = Requests(inputs.tolist(), outputs.tolist(), [0.0] * bench.count)
    loop = client_loop(bench, delay_ms)
    steps: list[Step] = []
    replica = Replica(reqs, table, scheduling, loop=loop, log=steps if log else None)
    for rid, at in enumerate(first_sends(loop, bench)):
        reqs.arrival[rid] = at
        replica.push(rid, loop.through_frontend(at))
    replica.run()
    return benchmark_run(reqs, bench.warmup, [replica], steps)


def benchmark_run(
    reqs: Requests, warmup: int, instances: list[Replica], steps: list[Step]
) -> BenchmarkRun:
    """Latencies of the measured requests (after `warmup`) once a closed-loop run is over."""
    cut = slice(warmup, None)
    arrival, first, done = (np.asarray(v)[cut] for v in (reqs.arrival, reqs.first, reqs.done))
    inputs, outputs = np.asarray(reqs.prompt)[cut], np.asarray(reqs.target)[cut]
    first = np.where(first < 0, np.inf, first)
    done = np.where(done < 0, np.inf, done)
    with np.errstate(invalid="ignore"):
        tpot = np.where(outputs > 1, (done - first) / np.maximum(outputs - 1, 1), np.nan)
    finite = done[np.isfinite(done)]
    return BenchmarkRun(
        ttft_ms=(first - arrival) * 1000.0,
        tpot_ms=tpot * 1000.0,
        e2e_ms=(done - arrival) * 1000.0,
        input_tokens=inputs,
        output_tokens=outputs,
        duration_s=float(finite.max() - arrival.min()) if finite.size else 0.0,
        preemptions=sum(r.preemptions for r in instances),
        rejected=sum(r.rejected for r in instances),
        reqs=reqs,
        warmup=warmup,
        log=steps,
    )
