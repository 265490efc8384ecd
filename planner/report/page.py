"""The report page: render a plan (and its store's ops data) to one HTML file, exports beside it."""

import time
from dataclasses import dataclass, field
from pathlib import Path

from planner.errors import PlannerError
from planner.optimize.planfile import PlanFile, as_plan
from planner.report.charts import build_charts
from planner.report.data import read_ops
from planner.report.export import ExportFormat, export_tables, parse_formats
from planner.report.render import render_html


@dataclass
class ReportResult:
    """What `write_report` wrote: the HTML page, its size, the exported tables and the charts."""

    html: Path
    bytes: int
    seconds: float
    charts: list[str]
    files: list[Path] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready form (the CLI's --json output)."""
        return {
            "html": str(self.html),
            "bytes": self.bytes,
            "files": [str(f) for f in self.files],
            "seconds": round(self.seconds, 3),
            "charts": self.charts,
            "notes": self.notes,
        }


def write_report(
    plan: PlanFile | dict,
    out: Path,
    formats: tuple[str | ExportFormat, ...] = (),
    db: Path | str | None = None,
) -> ReportResult:
    """Render `plan` (with ops data from the store `db` or plan.db) to the HTML file `out`.

    `plan` is the plan file model, or a PLAN.json object (validated first).
    """
    start = time.perf_counter()
    plan = as_plan(plan)
    wanted = parse_formats(formats)
    out = Path(out)
    if not out.parent.exists():
        raise PlannerError(f"{out}: folder {out.parent} does not exist")
    ops = read_ops(plan, db)
    charts = build_charts(plan, ops)
    html = render_html(plan, ops, charts)
    try:
        out.write_text(html, encoding="utf-8")
        files = export_tables(plan, out, wanted)
    except OSError as exc:
        raise PlannerError(f"{out}: cannot write report ({exc.strerror or exc})") from None
    return ReportResult(
        html=out,
        bytes=out.stat().st_size,
        seconds=time.perf_counter() - start,
        charts=list(charts),
        files=files,
        notes=dict(ops.notes),
    )
