"""CSV / Parquet exports of the plan's tables, written beside the HTML report.

Tables: ``plan`` (the recommended replicas), ``frontier`` (every evaluated candidate),
``schedule`` (replicas per interval), ``replay`` (one row per replayed policy) and
``replay_timeline`` (replicas over time under each policy). Lists and objects inside a cell
are written as JSON text; a table the plan does not carry is not written.
"""

import json
from enum import StrEnum
from pathlib import Path

import polars as pl

from planner.errors import PlannerError
from planner.optimize.planfile import PlanFile, as_plan
from planner.report.charts import POLICY_LABELS


class ExportFormat(StrEnum):
    """A table file format for `planner report --format`."""

    csv = "csv"
    parquet = "parquet"


def _cell(value: object) -> object:
    """A scalar cell: nested lists / objects become JSON text."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def plan_tables(plan: PlanFile | dict) -> dict[str, pl.DataFrame]:
    """The plan's tables as polars frames (only those non-empty)."""
    data = as_plan(plan).to_dict()
    replay = data["replay"]
    records = {
        "plan": data["recommended"]["replicas"],
        "frontier": data["frontier"],
        "schedule": data["schedule"],
        "replay": [{"policy": k, **replay[k]} for k in POLICY_LABELS if k in replay],
        "replay_timeline": replay["timeline"],
    }
    tables = {}
    for name, rows in records.items():
        if rows:
            flat = [{k: _cell(v) for k, v in row.items()} for row in rows]
            frame = pl.DataFrame(flat, infer_schema_length=None)
            tables[name] = frame.with_columns(pl.col(pl.Null).cast(pl.String))
    return tables


def parse_formats(formats: tuple[str | ExportFormat, ...]) -> list[str]:
    """Format names, deduplicated; a PlannerError for one that is not csv or parquet."""
    wanted = [str(f).lower() for f in formats]
    known = [e.value for e in ExportFormat]
    unknown = [f for f in wanted if f not in known]
    if unknown:
        raise PlannerError(f"unknown export format {unknown[0]!r}; formats: {', '.join(known)}")
    return list(dict.fromkeys(wanted))


def _write(frame: pl.DataFrame, path: Path, fmt: str) -> Path:
    """One table file in `fmt` (csv or parquet)."""
    if fmt == "csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)
    return path


def export_tables(plan: PlanFile | dict, html: Path, formats: list[str]) -> list[Path]:
    """Write each table in each format as `<html stem>-<table>.<fmt>` beside the HTML."""
    return [
        _write(frame, html.with_name(f"{html.stem}-{name}.{fmt}"), fmt)
        for name, frame in plan_tables(plan).items()
        for fmt in formats
    ]


def write_tables(plan: PlanFile | dict, folder: Path, formats: list[str]) -> list[Path]:
    """Write each table in each format as `<folder>/<table>.<fmt>` (`planner plan --csv`)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return [
            _write(frame, folder / f"{name}.{fmt}", fmt)
            for name, frame in plan_tables(plan).items()
            for fmt in formats
        ]
    except OSError as exc:
        raise PlannerError(f"{folder}: cannot write plan tables ({exc.strerror or exc})") from None
