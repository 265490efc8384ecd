"""Serving simulator speed: Azure conv (19,366 requests) on one H100 replica of llama-3.1-8b.

The replica batches as the default engine (vLLM: mixed steps, chunked prompts in an 8,192
token budget); a prefill-first variant (SGLang-style steps, whole prompts) is timed too.

Reference, measured in the same run on the same requests: the simplest queueing model of the
trace, a FIFO single server that serves one request at a time (M/G/1 by Lindley's recursion,
vectorised in numpy) with each request's isolated service time from the same cost model
(prefill + every batch-1 decode step, in two vectorised cost-model calls). The ratio says what
iteration-level continuous batching costs on top of that numpy pass.
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.costmodel import StepModel  # noqa: E402
from planner.ingest import ingest_sample  # noqa: E402
from planner.simulate import (  # noqa: E402
    Scheduling,
    StepTable,
    Workload,
    goodput_search,
    load_workload,
    parse_slos,
)
from planner.simulate import simulate as run_simulation  # noqa: E402
from planner.store import open_store  # noqa: E402

REPEATS = 5
SLOS = ["ttft_p99=1000ms", "tpot_p99=50ms"]


def _best(fn, *args, clock=time.perf_counter, **kwargs) -> tuple[float, object]:
    """Best time of REPEATS calls on `clock`, and the last result."""
    best, out = float("inf"), None
    for _ in range(REPEATS):
        start = clock()
        out = fn(*args, **kwargs)
        best = min(best, clock() - start)
    return best, out


def _lindley(work: Workload, model: StepModel) -> np.ndarray:
    """Completion times of a one-at-a-time FIFO server with cost-model service times."""
    inputs = work.input_tokens.astype(float)
    decodes = np.maximum(work.output_tokens - 1, 0).astype(float)
    service = model.prefill_ms(1, inputs, 0) + decodes * model.decode_ms(1, inputs + decodes / 2)
    total = np.cumsum(service / 1000.0)
    before = total - service / 1000.0
    return total + np.maximum.accumulate(work.arrival_s - before)


def run() -> dict:
    """Time one simulation and one goodput search; the Lindley pass is the reference."""
    with tempfile.TemporaryDirectory() as tmp:
        con = open_store(Path(tmp) / "bench.duckdb")
        ingest_sample(con, "azure-conv")
        work = load_workload(con, "azure-conv")
        con.close()
    model = StepModel.build("llama-3.1-8b", "h100")
    start = time.perf_counter()
    table = StepTable(model)
    run_simulation(work, table)
    cold = time.perf_counter() - start
    seconds, result = _best(run_simulation, work, table)
    cpu_seconds, _ = _best(run_simulation, work, table, clock=time.process_time)
    reference, _ = _best(_lindley, work, model)
    slos = parse_slos(SLOS)
    goodput_seconds, found = _best(goodput_search, work, table, slos, 0.99)
    scale, rps = found.scale, found.rps
    prefill_first = Scheduling(256, 16384, chunked=False, mixed=False)
    whole, _ = _best(run_simulation, work, table, prefill_first)
    routed, _ = _best(run_simulation, work.scaled(4), table, replicas=4)
    split, _ = _best(run_simulation, work, table, disagg=(1, 1))
    summary = result.summary()
    return {
        "name": "simulate: Azure conv (19,366 requests), llama-3.1-8b on 1 x H100",
        "requests": work.requests,
        "seconds": round(seconds, 4),
        "cold_seconds": round(cold, 4),
        "reference": "numpy FIFO one-at-a-time server (Lindley) with cost-model service times",
        "reference_seconds": round(reference, 4),
        "ratio": round(seconds / reference, 1),
        "requests_per_s": round(work.requests / seconds),
        "cpu_seconds": round(cpu_seconds, 4),
        "requests_per_cpu_s": round(work.requests / cpu_seconds),
        "goodput_seconds": round(goodput_seconds, 3),
        "goodput_rps": round(rps, 2),
        "goodput_rate_scale": round(scale, 3),
        "prefill_first_whole_prompts_requests_per_s": round(work.requests / whole),
        "least_loaded_4_replicas_x4_rate_requests_per_s": round(work.requests / routed),
        "disagg_1p1d_requests_per_s": round(work.requests / split),
        "ttft_p99_ms": round(summary["ttft_ms"]["p99"], 1),
        "tpot_p99_ms": round(summary["tpot_ms"]["p99"], 2),
        "target": "requests_per_s >= 100,000 per core; goodput search <= 2 s",
    }


if __name__ == "__main__":
    print(run())
