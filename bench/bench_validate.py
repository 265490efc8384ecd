"""`planner validate` speed: replay the 917 measured H100 serving benchmarks.

Each row is a closed-loop benchmark (10 requests per client after a warm-up of 2 per client)
on its deployment's cost model and engine scheduler. Reference, measured in the same run: one
simulate() of the embedded Azure conv trace (19,366 requests) on one H100 replica, the
simulator's everyday job.
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.costmodel import StepModel  # noqa: E402
from planner.ingest import ingest_sample  # noqa: E402
from planner.simulate import StepTable, load_workload, simulate  # noqa: E402
from planner.store import open_store  # noqa: E402
from planner.validate import error_table, predict_rows, read_measured  # noqa: E402

MEASURED = Path(__file__).resolve().parents[2] / "shared" / "data" / "profiles"
MEASURED = MEASURED / "aiconfigurator" / "silicon_h100.csv"


def run() -> dict:
    """Time a full validation; one trace simulation is the reference."""
    if not MEASURED.exists():
        return {"name": "validate", "skipped": f"{MEASURED} not available"}
    with tempfile.TemporaryDirectory() as tmp:
        con = open_store(Path(tmp) / "bench.duckdb")
        ingest_sample(con, "azure-conv")
        work = load_workload(con, "azure-conv")
        con.close()
    table = StepTable(StepModel.build("llama-3.1-8b", "h100"))
    started = time.perf_counter()
    simulate(work, table)
    reference = time.perf_counter() - started
    rows = read_measured([MEASURED])
    started = time.perf_counter()
    preds = predict_rows(rows)
    seconds = time.perf_counter() - started
    overall = error_table(preds)[-1]
    return {
        "name": "planner validate silicon_h100.csv: 917 measured serving benchmarks",
        "seconds": round(seconds, 1),
        "rows_per_s": round(len(rows) / seconds, 1),
        "reference": "one simulate() of Azure conv (19,366 requests) on 1 x H100 (same run)",
        "reference_seconds": round(reference, 3),
        "ratio": round(seconds / reference, 1),
        "predicted": f"{overall['predicted']} of {overall['rows']}",
        "ttft_mape": round(overall["ttft_mape"], 1),
        "tpot_mape": round(overall["tpot_mape"], 1),
    }


if __name__ == "__main__":
    print(run())
