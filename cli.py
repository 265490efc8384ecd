"""The `planner` command line: parse, call the library, format. No logic lives here."""

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import duckdb
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from planner.demo import run_demo
from planner.errors import PlannerError
from planner.ingest import FORMATS, SAMPLES, ingest_path, ingest_sample
from planner.store import default_db_path, list_traces, open_store, run_query

app = typer.Typer(
    help="Workload-trace analytics and capacity planner for LLM serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", envvar="PLANNER_DB", help="DuckDB store file [default: ./planner.duckdb]"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Register a command whose PlannerErrors become one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PlannerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return app.command()(wrapper)


@contextmanager
def store(db: Path | None, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the store for one command and always close it."""
    con = open_store(db if db is not None else default_db_path(), read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def emit_json(data: Any) -> None:
    """Print JSON (and nothing else) on stdout."""
    typer.echo(json.dumps(data, indent=2, default=str))


def progress(enabled: bool) -> Progress:
    """A progress bar on stderr, shown only on a terminal."""
    return Progress(console=err_console, disable=not (enabled and sys.stderr.isatty()))


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A compact rich table on stdout."""
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[fmt_value(v) for v in row])
    console.print(table)


def fmt_value(value: Any) -> str:
    """Readable cell: thousands separators, 4 significant digits for floats."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def parse_map(spec: str | None) -> dict[str, str]:
    """Parse --map ts=COL,input=COL,... into a dict."""
    if not spec:
        return {}
    pairs = [p.split("=", 1) for p in spec.split(",") if p.strip()]
    if any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise PlannerError(f"--map {spec!r}: expected KEY=COLUMN pairs separated by commas")
    return {k.strip(): v.strip() for k, v in pairs}


@command
def ingest(
    paths: Annotated[list[Path] | None, typer.Argument(help="Trace files or folders.")] = None,
    format: Annotated[str | None, typer.Option("--format", "-f", help="Force a format.")] = None,
    name: Annotated[str | None, typer.Option(help="Trace name (one path only).")] = None,
    replace: Annotated[
        bool, typer.Option(help="Reload a changed file under the same name.")
    ] = False,
    map: Annotated[
        str | None, typer.Option("--map", help="Column mapping for csv/parquet: ts=COL,input=COL")
    ] = None,
    sample: Annotated[
        list[str] | None, typer.Option(help=f"Embedded sample: {', '.join(SAMPLES)}.")
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Load traces into the store (atomic per source, idempotent)."""
    paths, sample = paths or [], sample or []
    if not paths and not sample:
        raise PlannerError("give at least one PATH or --sample NAME")
    if name and len(paths) + len(sample) > 1:
        raise PlannerError("--name needs exactly one PATH")
    mapping = parse_map(map)
    results = []
    with store(db) as con, progress(not json_out) as bar:
        task = bar.add_task("ingesting", total=len(paths) + len(sample))
        for s in sample:
            results.append(ingest_sample(con, s, replace=replace))
            bar.advance(task)
        for path in paths:
            bar.update(task, description=f"ingesting {path.name}")
            results.append(ingest_path(con, path, format, name, replace, mapping))
            bar.advance(task)
    if json_out:
        emit_json([r.to_dict() for r in results])
        return
    for r in results:
        what = "" if r.status != "unchanged" else " (same content already loaded; nothing to do)"
        typer.echo(
            f"{r.status} {r.name}: {r.rows:,} {r.table} rows, format {r.format}, "
            f"{r.series or 0} series, span {r.span_s or 0:,.0f} s{what}"
        )


@command
def traces(db: DbOption = None, json_out: JsonOption = False) -> None:
    """List the traces in the store."""
    with store(db) as con:
        infos = list_traces(con)
    if json_out:
        emit_json([vars(t) for t in infos])
        return
    print_table(
        "traces",
        ["name", "format", "table", "rows", "series", "span_s", "start"],
        [[t.name, t.format, t.kind, t.rows, t.series, t.span_s, t.start_time] for t in infos],
    )


@command
def query(
    sql: Annotated[str, typer.Argument(help="SQL to run (read-only).")],
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run read-only SQL over the store (tables: traces, requests, rate_windows, ...)."""
    with store(db, read_only=True) as con:
        columns, rows = run_query(con, sql)
    if json_out:
        emit_json([dict(zip(columns, r, strict=True)) for r in rows])
        return
    print_table("", columns, [list(r) for r in rows])


@command
def formats(json_out: JsonOption = False) -> None:
    """List the trace readers and the columns each expects."""
    listing = [
        {
            "id": f.id,
            "table": f.table,
            "columns": list(f.columns),
            "optional": list(f.optional),
            "description": f.description,
        }
        for f in FORMATS.values()
    ]
    if json_out:
        emit_json(listing)
        return
    print_table(
        "formats",
        ["format", "table", "columns", "description"],
        [
            [
                f["id"],
                f["table"],
                ", ".join(f["columns"] + [f"[{c}]" for c in f["optional"]]),
                f["description"],
            ]
            for f in listing
        ],
    )


@command
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the store and outputs.")] = Path(
        "planner-demo"
    ),
    json_out: JsonOption = False,
) -> None:
    """Run the whole pipeline on the embedded trace (offline)."""
    with progress(not json_out) as bar:
        task = bar.add_task("demo", total=None)
        result = run_demo(out, lambda msg: bar.update(task, description=msg))
    if json_out:
        emit_json(
            {
                "out_dir": str(result.out_dir),
                "db": str(result.db),
                "headline": result.headline,
                "files": [str(f) for f in result.files],
            }
        )
        return
    typer.echo(result.headline)
    typer.echo(f"store: {result.db}")
    for f in result.files:
        typer.echo(f"wrote {f}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
