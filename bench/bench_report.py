"""Report generation for an existing plan vs Altair's own offline HTML of one of its charts.

The plan is the report tests' fixture plan (tests/report_plan.py) over the embedded azure-code
trace plus, where ../shared/data exists, GenTD26 cold starts. Both sides run as fresh child
processes (imports and the inlined Vega bundle included): ours is `planner report PLAN.json`,
the reference is `altair.Chart.from_dict(spec).save(out, inline=True)` of the report's
request-rate chart, which inlines the same Vega / Vega-Lite / vega-embed bundle.
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from report_plan import fixture_plan, fixture_store  # noqa: E402

from planner.report.charts import request_rate  # noqa: E402
from planner.report.data import read_ops  # noqa: E402

_REFERENCE = (
    "import altair, json, sys; "
    "altair.Chart.from_dict(json.load(open(sys.argv[1]))).save(sys.argv[2], inline=True)"
)


def _timed(cmd: list[str]) -> float:
    """Wall seconds of one child process run to completion."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def run() -> dict:
    """Time `planner report` on a fixture plan against Altair's inline save of one chart."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plan = fixture_plan(fixture_store(work / "store.duckdb"))
        plan_file = work / "PLAN.json"
        plan_file.write_text(json.dumps(plan))
        spec_file = work / "chart.json"
        spec_file.write_text(json.dumps(request_rate(read_ops(plan)).spec))
        html = work / "report.html"
        ours = _timed([sys.executable, "-m", "cli", "report", str(plan_file), "--out", str(html)])
        ref = _timed([sys.executable, "-c", _REFERENCE, str(spec_file), str(work / "ref.html")])
        size = html.stat().st_size
    return {
        "name": "planner report of a fixture plan (11 charts, child process)",
        "seconds": round(ours, 2),
        "reference": "altair Chart.save(inline=True) of the request-rate chart (child process)",
        "reference_seconds": round(ref, 2),
        "ratio": round(ours / ref, 2),
        "html_bytes": size,
        "target": "<= 5 s and <= 5 MB",
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
