"""Ingest at scale: `planner ingest` of a 10M-row BurstGPT CSV vs DuckDB's own CTAS read_csv.

The trace is SYNTHETIC (real Azure 2023 requests replayed with hourly offsets; see synth.py).
Both sides run as child processes so wall time and peak RSS are measured the same way.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synth import burstgpt_csv  # noqa: E402

ROWS = int(os.environ.get("PLANNER_BENCH_ROWS", 10_000_000))
WORK = Path(__file__).resolve().parent / "work"


_MEASURE = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Run a command in its own measuring parent; return (wall seconds, its peak RSS in MiB)."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]), float(out[1]) / 1024


def run() -> dict:
    """Time planner ingest against raw DuckDB CTAS on the same file, in the same run."""
    csv = burstgpt_csv(WORK / f"burstgpt_{ROWS}.csv", ROWS)
    with tempfile.TemporaryDirectory() as tmp:
        ref_db, our_db = Path(tmp, "ref.duckdb"), Path(tmp, "ours.duckdb")
        ref_sql = f"CREATE TABLE t AS SELECT * FROM read_csv('{csv}')"
        ref_s, ref_rss = _timed(
            [
                sys.executable,
                "-c",
                f"import duckdb; duckdb.connect('{ref_db}').execute({ref_sql!r})",
            ]
        )
        ours_s, ours_rss = _timed(
            [sys.executable, "-m", "cli", "ingest", str(csv), "--db", str(our_db), "--json"]
        )
    return {
        "name": "ingest 10M-row BurstGPT CSV (synthetic replay of Azure 2023)",
        "rows": ROWS,
        "file_mb": round(csv.stat().st_size / 2**20, 1),
        "seconds": round(ours_s, 2),
        "reference": "DuckDB CREATE TABLE AS SELECT * FROM read_csv (child process)",
        "reference_seconds": round(ref_s, 2),
        "ratio": round(ours_s / ref_s, 2),
        "peak_rss_mib": round(ours_rss),
        "reference_peak_rss_mib": round(ref_rss),
        "target": "ratio <= 1.5, peak RSS <= 2048 MiB",
    }


if __name__ == "__main__":
    print(run())
