"""`planner plan` on the embedded azure-code trace vs one simulate() of that trace, same run.

The plan: llama-3.1-8b on h100, a100, l4 with TTFT p99 <= 1 s and TPOT p99 <= 50 ms for 99 %
of requests (the full pipeline: candidates, goodput search, MILP mix, schedule, replay; mixed-
hardware P/D is opt-in and off here).
The reference: one simulate() of the whole trace (8,819 requests) on one H100 replica
(TP1, aggregated, max batch 256), the unit of work the search repeats.
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.costmodel import StepModel  # noqa: E402
from planner.ingest import ingest_sample  # noqa: E402
from planner.planning import PlanOptions, make_plan  # noqa: E402
from planner.simulate import StepTable, load_workload, parse_slos, simulate  # noqa: E402
from planner.store import open_store  # noqa: E402

SLOS = ["ttft_p99=1000ms", "tpot_p99=50ms"]


def run() -> dict:
    """Time one full plan and one reference simulation on the same store."""
    with tempfile.TemporaryDirectory() as tmp:
        con = open_store(Path(tmp) / "bench.duckdb")
        ingest_sample(con, "azure-code")
        work = load_workload(con, "azure-code")
        table = StepTable(StepModel.build("llama-3.1-8b", "h100"))
        started = time.perf_counter()
        simulate(work, table, slos=parse_slos(SLOS))
        reference = time.perf_counter() - started
        started = time.perf_counter()
        options = PlanOptions(
            "azure-code", "llama-3.1-8b", SLOS, accelerators=["h100", "a100", "l4"]
        )
        plan = make_plan(con, options)
        seconds = time.perf_counter() - started
        con.close()
    search = plan.search
    return {
        "name": "planner plan azure-code: llama-3.1-8b, h100+a100+l4, TTFT p99 1s, TPOT p99 50ms",
        "seconds": round(seconds, 2),
        "reference": "one simulate() of the 8,819-request trace on 1 x H100 TP1 (same run)",
        "reference_seconds": round(reference, 3),
        "ratio": round(seconds / reference, 1),
        "candidates": search.candidates,
        "mixed_hardware": search.mixed_hardware,
        "simulated": search.simulated,
        "bound_pruned": search.bound_pruned,
        "batch_pruned": search.batch_pruned,
        "ratio_pruned": search.ratio_pruned,
        "recommended": plan.recommended.sentence,
        "target": "seconds <= 30 on the 2-core CI machine, >= 200 candidates",
    }


if __name__ == "__main__":
    print(run())
