"""The capacity report: one self-contained HTML page (finance summary, ops charts) per plan."""

from planner.optimize.planfile import read_plan
from planner.report.artefacts import Artefacts
from planner.report.charts import Chart
from planner.report.data import OpsData
from planner.report.export import ExportFormat, plan_tables
from planner.report.page import ReportResult, write_report

__all__ = [
    "Artefacts",
    "Chart",
    "ExportFormat",
    "OpsData",
    "ReportResult",
    "read_plan",
    "plan_tables",
    "write_report",
]
