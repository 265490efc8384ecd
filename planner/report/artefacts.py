"""A plan's output files: PLAN.json, its tables in a folder, the HTML report and its exports.

`planner plan` and `planner demo` both describe what to write as one `Artefacts` and call
`check()` before the search starts, so a path that cannot be written fails in a second with a
one-line error instead of after minutes of simulation; `write()` then writes them all.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

from planner.errors import PlannerError
from planner.optimize.planfile import PlanFile, as_plan, write_plan
from planner.report.export import parse_formats, write_tables
from planner.report.page import ReportResult, write_report


def _nearest_folder(path: Path) -> Path:
    """The closest existing ancestor of `path` (itself if it exists)."""
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def _probe(folder: Path, target: Path, what: str) -> None:
    """PlannerError unless a file can be created in `folder` (permissions, read-only disks)."""
    if not folder.is_dir():
        raise PlannerError(f"{target}: cannot write {what}: {folder} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".planner-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PlannerError(f"{target}: cannot write {what} in {folder} ({reason})") from None


def check_file(path: Path, what: str) -> None:
    """A file `path` can be written: its folder exists and takes new files; not a folder."""
    if path.is_dir():
        raise PlannerError(f"{path}: is a folder; give a file name for the {what}")
    if not path.absolute().parent.exists():
        raise PlannerError(f"{path}: folder {path.parent} does not exist")
    _probe(path.absolute().parent, path, what)


def check_folder(path: Path, what: str) -> None:
    """Files can be written in folder `path`, created (with its parents) if missing."""
    if path.exists() and not path.is_dir():
        raise PlannerError(f"{path}: is a file; give a folder for the {what}")
    _probe(_nearest_folder(path), path, what)


@dataclass(frozen=True)
class Written:
    """The files written, in order, and the report's own result (charts, notes) if any."""

    files: list[Path]
    report: ReportResult | None


@dataclass(frozen=True)
class Artefacts:
    """Where a plan's outputs go; None skips one."""

    plan_json: Path | None = None
    tables_dir: Path | None = None
    report: Path | None = None
    report_formats: tuple[str, ...] = ()

    def check(self) -> None:
        """Fail now (PlannerError) on any output that could not be written later."""
        parse_formats(self.report_formats)
        if self.plan_json is not None:
            check_file(self.plan_json, "plan")
        if self.tables_dir is not None:
            check_folder(self.tables_dir, "plan tables")
        if self.report is not None:
            check_file(self.report, "report")

    def write(self, plan: PlanFile | dict) -> Written:
        """Write every output of `plan` (a plan file model, or a PLAN.json object)."""
        plan = as_plan(plan)
        files = [write_plan(plan, self.plan_json)] if self.plan_json is not None else []
        if self.tables_dir is not None:
            files += write_tables(plan, self.tables_dir, ["csv"])
        report = None
        if self.report is not None:
            report = write_report(plan, self.report, self.report_formats)
            files += [report.html, *report.files]
        return Written(files, report)
