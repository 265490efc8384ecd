"""The end-to-end demo on the embedded trace: a new user's first minute, offline.

ingest → analyze → forecast → plan (candidates, mix, schedule, replay) → HTML report, each step
through the stage's public function, writing every artefact under one folder.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from planner.analytics import analyze_trace
from planner.errors import PlannerError
from planner.forecast import forecast_trace
from planner.ingest import ingest_sample
from planner.planning import WRITING, PlanOptions, plan_to_artefacts
from planner.report import Artefacts
from planner.report.artefacts import check_folder
from planner.store import open_store

DEMO_SAMPLE = "azure-code"
DEMO_MODEL = "llama-3.1-8b"
DEMO_SLOS = ("ttft_p99=1000ms", "tpot_p99=50ms")
DEMO_ACCELERATORS = ("h100", "a100", "l4")
DEMO_STEPS = 5


@dataclass
class DemoResult:
    """What the demo produced: the store, the files written, the recommendation, the plan's
    warnings and timing."""

    out_dir: Path
    db: Path
    headline: str
    report: Path
    seconds: float
    files: list[Path] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "out_dir": str(self.out_dir),
            "db": str(self.db),
            "recommendation": self.headline,
            "warnings": self.warnings,
            "report": str(self.report),
            "seconds": round(self.seconds, 2),
            "files": [str(f) for f in self.files],
        }


def _write_json(path: Path, data: dict) -> Path:
    """Write `data` as indented JSON and return the path."""
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def run_demo(out_dir: Path, step: Callable[[str], None] = lambda _: None) -> DemoResult:
    """Run the whole pipeline on the embedded Azure code trace into a fresh store in `out_dir`."""
    started = time.perf_counter()
    check_folder(out_dir, "demo outputs")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlannerError(f"{out_dir}: cannot create the demo folder ({exc.strerror})") from None
    artefacts = Artefacts(
        plan_json=out_dir / "PLAN.json", report=out_dir / "report.html", report_formats=("csv",)
    )
    artefacts.check()
    db = (out_dir / "planner.duckdb").resolve()
    files = []
    con = open_store(db)
    try:
        step(f"1/{DEMO_STEPS} ingesting the embedded trace {DEMO_SAMPLE}")
        ingest_sample(con, DEMO_SAMPLE)
        step(f"2/{DEMO_STEPS} analysing bursts and token lengths")
        files.append(_write_json(out_dir / "analysis.json", analyze_trace(con, DEMO_SAMPLE)))
        step(f"3/{DEMO_STEPS} forecasting demand")
        forecast = forecast_trace(con, DEMO_SAMPLE, freq="1min", horizon="1h", total=True)
        files.append(_write_json(out_dir / "forecast.json", forecast))
        step(f"4/{DEMO_STEPS} planning {DEMO_MODEL} on {', '.join(DEMO_ACCELERATORS)}")
    finally:
        con.close()
    options = PlanOptions(
        DEMO_SAMPLE, DEMO_MODEL, DEMO_SLOS, accelerators=DEMO_ACCELERATORS, db=str(db)
    )
    plan, written = plan_to_artefacts(
        options, artefacts, lambda msg: step(f"{5 if msg == WRITING else 4}/{DEMO_STEPS} {msg}")
    )
    assert written.report is not None, "the demo's artefacts include the report"
    return DemoResult(
        out_dir,
        db,
        plan.recommended.sentence,
        written.report.html,
        time.perf_counter() - started,
        files + written.files,
        written.report.charts,
        plan.warnings,
    )
