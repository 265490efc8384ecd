"""The `planner` command line: parse, call the library, format. No logic lives here.

Each command imports its pipeline stage when it runs, so `planner traces` does not pay for
loading altair, statsmodels and the simulator.
"""

import dataclasses
import functools
import importlib.metadata
import json
import re
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import duckdb
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from planner.errors import PlannerError, one_line
from planner.ingest import (
    FORMATS,
    SAMPLES,
    IngestResult,
    ingest_path,
    ingest_sample,
    is_uri,
    source_size,
)
from planner.store import default_db_path, list_traces, open_store, remove_store, run_query

if TYPE_CHECKING:
    from planner.costmodel import Calibration
    from planner.optimize.planfile import PlanFile, ReplicaGroup
    from planner.planning import PlanOptions
    from planner.report import Artefacts

app = typer.Typer(
    help="Workload-trace analytics and capacity planner for LLM serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain (click) help: rich markup would swallow the `[default: ...]` written into help texts
    # and show flags such as --json as taking a `<bool>` value.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", envvar="PLANNER_DB", help="DuckDB store file [default: ./planner.duckdb]"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
FORMATS_WIDTH = 100
TraceArgument = Annotated[str, typer.Argument(help="Trace name (see `planner traces`).")]


def print_version(value: bool) -> None:
    """`--version`: print `planner <version>` of the installed distribution and exit."""
    if value:
        try:
            version = importlib.metadata.version("planner")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown (not installed; run `pip install -e .`)"
        typer.echo(f"planner {version}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Workload-trace analytics and capacity planner for LLM serving."""


def command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Register a command whose PlannerErrors become one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PlannerError as exc:
            typer.echo(f"error: {one_line(exc)}", err=True)
            raise typer.Exit(1) from None

    return app.command()(wrapper)


@contextmanager
def store(db: Path | None, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the store for one command and always close it; a store this command created is
    removed again when the command fails before anything was stored in it (a first ingest of a
    bad file leaves no empty planner.duckdb behind)."""
    path = Path(db if db is not None else default_db_path())
    created = not read_only and not path.exists()
    con = open_store(path, read_only=read_only)
    try:
        yield con
    except BaseException:
        empty = created and not list_traces(con)
        con.close()
        if empty:
            remove_store(path)
        raise
    con.close()


def show(data: Any, json_out: bool, printer: Callable[[Any], None]) -> None:
    """`data` as JSON on stdout with --json, else through the command's printer."""
    if json_out:
        emit_json(data)
    else:
        printer(data)


def emit_json(data: Any) -> None:
    """Print JSON (and nothing else) on stdout."""
    typer.echo(json.dumps(data, indent=2, default=str))


def progress(enabled: bool, unit: str = "count") -> Progress:
    """A progress bar on stderr, shown only on a terminal: the step, a bar with done/total
    (`unit` "bytes" shows sizes) and the time left once a step is counted."""
    done = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        done,
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        disable=not (enabled and sys.stderr.isatty()),
    )


COUNTED = re.compile(r"^(.*?)[ ,:]*\b(\d+)/(\d+)$")


def reporter(bar: Progress, task: TaskID) -> Callable[[str], None]:
    """A library progress callback for `task`: messages ending in "k/n" also move the bar."""

    def report(message: str) -> None:
        """Show the step; count it when it says how far along it is."""
        counted = COUNTED.match(message)
        if counted:
            bar.update(task, description=message, completed=int(counted[2]), total=int(counted[3]))
        else:
            bar.update(task, description=message)

    return report


def print_table(
    title: str, columns: list[str], rows: list[list[Any]], notes: Iterable[str] = ()
) -> None:
    """A rich table on stdout, then any notes on stderr; a narrow terminal never cuts a cell."""
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[escape(fmt_value(v)) for v in row])
    needed = console.measure(table, options=console.options.update_width(10_000)).maximum
    (console if needed <= console.width else Console(width=needed)).print(table)
    for note in notes:
        typer.echo(f"note: {note}", err=True)


def fmt_value(value: Any) -> str:
    """Readable cell: thousands separators, 4 significant digits for floats."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _moved(bar: Progress, task: TaskID, before: int, size: int, share: float) -> None:
    """Move an ingest's byte bar to `share` of the current source (called from a thread)."""
    bar.update(task, completed=before + share * size)


FILES_LISTED = 10  # an ingest lists the rows of each file up to this many files


def parse_map(spec: str | None) -> dict[str, str]:
    """Parse --map ts=COL,input=COL,... into a dict."""
    if not spec:
        return {}
    pairs = [p.split("=", 1) for p in spec.split(",") if p.strip()]
    if any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise PlannerError(f"--map {spec!r}: expected KEY=COLUMN pairs separated by commas")
    return {k.strip(): v.strip() for k, v in pairs}


IngestPaths = Annotated[
    list[str] | None,
    typer.Argument(
        help="Trace files, folders or quoted globs ('logs/*/part-*.parquet'); the files of "
        "a folder or glob are one trace. With --engine spark also URIs Spark reads "
        "('s3a://bucket/logs/*.parquet', hdfs://, file://).",
        show_default=False,
        metavar="PATH",
    ),
]
MapOption = Annotated[
    str | None, typer.Option("--map", help="Column mapping for csv/parquet: ts=COL,input=COL")
]
SampleOption = Annotated[
    list[str] | None, typer.Option(help=f"Embedded sample: {', '.join(SAMPLES)}.")
]
IntervalOption = Annotated[
    str, typer.Option(help="Rate interval of --aggregate (30s, 1min, 10min, ...).")
]
LengthWindowOption = Annotated[str, typer.Option(help="Window of the length PMFs of --aggregate.")]
ReplaceOption = Annotated[
    bool,
    typer.Option(
        help="Reload a changed file, or re-read it with another --format/--map/--time-unit, "
        "under the same name."
    ),
]
TimeUnitOption = Annotated[
    str | None,
    typer.Option(
        "--time-unit", help="Unit of a numeric --map ts column: s, ms, us or ns [default: s]."
    ),
]
AggregateOption = Annotated[
    bool,
    typer.Option(
        "--aggregate",
        help="Store a request trace as aggregates only (rate windows + length PMFs): memory "
        "and store size grow with intervals x series, not rows.",
    ),
]
AggregatorOption = Annotated[
    str,
    typer.Option(
        help="Who aggregates: duckdb (this machine) or spark (csv/parquet with --map; local "
        "or a cluster via --master); spark implies --aggregate."
    ),
]
MasterOption = Annotated[
    str | None,
    typer.Option(help="Spark master URL (spark://host:7077, yarn, k8s://...) [local[*]]."),
]
LengthsOption = Annotated[
    str | None,
    typer.Option(
        help="A stored trace whose token lengths a rate series without any borrows (to "
        "simulate and plan it)."
    ),
]


@command
def ingest(
    paths: IngestPaths = None,
    format: Annotated[str | None, typer.Option("--format", "-f", help="Force a format.")] = None,
    name: Annotated[str | None, typer.Option(help="Trace name (one path only).")] = None,
    replace: ReplaceOption = False,
    map: MapOption = None,
    time_unit: TimeUnitOption = None,
    sample: SampleOption = None,
    aggregate: AggregateOption = False,
    interval: IntervalOption = "1min",
    length_window: LengthWindowOption = "1h",
    engine: AggregatorOption = "duckdb",
    master: MasterOption = None,
    lengths: LengthsOption = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Load traces into the store (atomic per source, idempotent)."""
    from planner.forecast.series import parse_duration
    from planner.ingest.aggregate import Aggregation

    paths = [p if is_uri(p) else Path(p) for p in paths or []]
    sample = sample or []
    _check_ingest_options(paths, sample, name, time_unit, master, engine, aggregate, lengths)
    agg = None
    if aggregate or engine != "duckdb":
        agg = Aggregation(
            parse_duration(interval, "--interval"),
            parse_duration(length_window, "--length-window"),
            engine,
            master,
        )
    mapping = parse_map(map)
    results = []
    sizes = [source_size(p) for p in paths]
    with store(db) as con, progress(not json_out, unit="bytes") as bar:
        task = bar.add_task("ingesting", total=sum(sizes) or None)
        for s in sample:
            bar.update(task, description=f"ingesting sample {s}")
            results.append(ingest_sample(con, s, replace=replace))
        done = 0
        for path, size in zip(paths, sizes, strict=True):
            bar.update(task, description=f"ingesting {Path(path).name}")
            moved = functools.partial(_moved, bar, task, done, size)
            results.append(
                ingest_path(
                    con, path, format, name, replace, mapping, time_unit, agg, moved, lengths
                )
            )
            done += size
            bar.update(task, completed=done)
    for r in results:
        for warning in r.warnings:
            typer.echo(f"warning: {warning}", err=True)
    if json_out:
        emit_json([r.to_dict() for r in results])
        return
    print_ingested(results)


def _check_ingest_options(
    paths: list[Path | str],
    sample: list[str],
    name: str | None,
    time_unit: str | None,
    master: str | None,
    engine: str,
    aggregate: bool,
    lengths: str | None,
) -> None:
    """Refuse option combinations `ingest` cannot honour, before anything is read."""
    if not paths and not sample:
        raise PlannerError("give at least one PATH or --sample NAME")
    if name and len(paths) + len(sample) > 1:
        raise PlannerError("--name needs exactly one PATH")
    if time_unit is not None and sample:
        raise PlannerError("--time-unit applies to csv/parquet PATHs with --map, not to --sample")
    if master is not None and engine != "spark":
        raise PlannerError("--master applies to --engine spark")
    if (aggregate or engine != "duckdb" or lengths) and sample:
        raise PlannerError("--aggregate, --engine and --lengths apply to PATHs, not to --sample")


def print_ingested(results: list[IngestResult]) -> None:
    """One line per trace loaded (or left unchanged), with its files when there are several."""
    for r in results:
        what = "" if r.status != "unchanged" else " (same content already loaded; nothing to do)"
        parts = f" from {len(r.files):,} files" if len(r.files) > 1 else ""
        if r.aggregated is not None:
            parts += f" ({r.aggregated:,} requests aggregated)"
        typer.echo(
            f"{r.status} {r.name}: {r.rows:,} {r.table} rows{parts}, format {r.format}, "
            f"{r.series or 0} series, span {r.span_s or 0:,.0f} s{what}"
        )
        if 1 < len(r.files) <= FILES_LISTED:
            for path, rows in r.files.items():
                typer.echo(f"  {path}: {rows:,} rows")
        elif len(r.files) > FILES_LISTED:
            counts = sorted(r.files.values())
            typer.echo(f"  rows per file: {counts[0]:,} to {counts[-1]:,} (--json lists each)")


@command
def rm(
    names: Annotated[list[str], typer.Argument(help="Trace names (see `planner traces`).")],
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Remove traces and every row they own from the store (all in one transaction)."""
    from planner.store import delete_traces

    path = db if db is not None else default_db_path()
    if not path.exists():
        raise PlannerError(f"{path}: no store here yet (run `planner ingest` first)")
    with store(path) as con:
        removed = delete_traces(con, names)
    if json_out:
        emit_json(
            [{"name": t.name, "format": t.format, "table": t.kind, "rows": t.rows} for t in removed]
        )
        return
    for t in removed:
        typer.echo(f"removed {t.name}: {t.rows:,} {t.kind} rows, format {t.format}")


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
    sql: Annotated[
        str,
        typer.Argument(help="One read-only SELECT (or SHOW, DESCRIBE, SUMMARIZE, EXPLAIN)."),
    ],
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
def analyze(
    trace: TraceArgument,
    only: Annotated[
        str | None,
        typer.Option(help="Comma-separated sections (default: all that apply; see --json keys)."),
    ] = None,
    window: Annotated[float, typer.Option(help="Per-window fit length in seconds.")] = 600.0,
    keepalive: Annotated[
        str | None,
        typer.Option(help="Keep-alive windows in seconds, e.g. 60,300 (runs the counterfactual)."),
    ] = None,
    load_s: Annotated[
        float | None, typer.Option(help="Seconds one counterfactual cold start costs.")
    ] = None,
    load_from: Annotated[
        str | None, typer.Option(help="Cold-start trace whose median gives --load-s.")
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Burstiness, token lengths, cold starts and keep-alive counterfactuals of a trace."""
    from planner.analytics import analyze_trace
    from planner.analytics.table import summary_rows

    try:
        keepalives = tuple(float(k) for k in keepalive.split(",")) if keepalive else None
    except ValueError:
        raise PlannerError(f"--keepalive {keepalive!r}: expected seconds like 60,300") from None
    with store(db, read_only=True) as con:
        result = analyze_trace(
            con,
            trace,
            sections=only.split(",") if only else None,
            window_s=window,
            keepalives_s=keepalives,
            load_s=load_s,
            load_trace=load_from,
        )
    if json_out:
        emit_json(result)
        return
    print_table(f"analysis of {trace}", ["section", "figure", "value"], summary_rows(result))


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
    for f in listing:
        columns = ", ".join(f["columns"] + [f"[{c}]" for c in f["optional"]])
        typer.echo(f"{f['id']} ({f['table']})")
        for label, text in (("", f["description"]), ("columns: ", columns)):
            typer.echo(
                textwrap.fill(
                    label + text,
                    width=FORMATS_WIDTH,
                    initial_indent="  ",
                    subsequent_indent="    ",
                    break_on_hyphens=False,
                )
            )
    typer.echo("[optional columns] in brackets; --format ID forces a reader")


@command
def calibrate(
    profiles: Annotated[
        list[Path],
        typer.Argument(
            help="Step profiles (JSONL, Splitwise CSV) and/or measured serving benchmarks "
            "(AIConfigurator silicon CSV, vllm bench serve JSON)."
        ),
    ],
    out: Annotated[Path | None, typer.Option(help="Write the calibration JSON here.")] = None,
    report: Annotated[
        bool, typer.Option(help="Leave-one-model-out and per-TP error of the fit.")
    ] = False,
    accelerator: Annotated[
        str | None, typer.Option(help="Accelerator of bench JSON files without that metadata.")
    ] = None,
    tp: Annotated[int, typer.Option(help="TP of bench JSON files without that metadata.")] = 1,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Fit the latency cost model to step profiles, and the engines to measured benchmarks."""
    from planner.costmodel import load_default_calibration
    from planner.costmodel.calibrate import calibrate as fit_calibration
    from planner.costmodel.calibrate import format_report
    from planner.validate import error_table, fit_measured, is_measured, lomo, read_measured

    measured = [p for p in profiles if is_measured(p)]
    steps = [p for p in profiles if p not in measured]
    errors: dict[str, Any] = {}
    if steps:
        cal, errors = fit_calibration(steps, report=report)
    else:
        cal = load_default_calibration().steps_only()
    with progress(not json_out) as bar:
        say = reporter(bar, bar.add_task("calibrating", total=None))

        if measured:
            rows = read_measured(measured, {"accelerator": accelerator, "tp": tp})
            start = cal
            cal = fit_measured(rows, start, progress=say)
            if report:
                errors["measured_lomo"] = error_table(lomo(rows, start, progress=say))
    if out is not None:
        try:
            cal.save(out)
        except OSError as exc:
            raise PlannerError(f"{out}: cannot write calibration ({exc.strerror})") from None
    if json_out:
        emit_json({"out": str(out) if out else None, "report": errors or None, **cal.to_json()})
        return
    print_calibration(cal)
    if report and steps:
        typer.echo(format_report(errors))
    if report and measured:
        print_errors("leave-one-model-out on the measured benchmarks", errors["measured_lomo"])
    if out is not None:
        typer.echo(f"wrote {out}")


def print_calibration(cal: "Calibration") -> None:
    """One line per calibrated accelerator (and profile source) and per fitted engine."""
    for key, entry in cal.entries.items():
        p = entry.params
        serving = (
            f"; MoE {p.moe_eff:.0%} (+{p.moe_pad_rows:.0f} rows per expert), "
            f"FP8/INT8 x{p.lowp_eff:.2f}, all-reduce {p.collective_ms * 1000:.1f} us "
            f"(fitted on {entry.serving} serving benchmarks)"
            if entry.serving and "@" not in key
            else ""
        )
        typer.echo(
            f"{key}: {entry.points} points; gemm {p.gemm_eff:.0%} attention {p.attn_eff:.0%} "
            f"HBM {p.mem_eff:.0%} of peak, host {p.host_layer_prefill_ms:.3f} ms/layer (prefill)"
            f"{serving}"
        )
    for name, host in cal.engines.items():
        typer.echo(
            f"engine {name}: {host.step_ms:.2f} ms per step + {host.seq_ms * 1000:.1f} us per "
            f"sequence, {host.layer_ms * 1000:.0f} us per eager layer, attention kernels "
            f"+{host.seq_layer_ms * 1000:.2f} us per sequence and layer, front end "
            f"{host.frontend_ms:.1f} ms per request"
        )


def _pct(value: float | None) -> str:
    """A MAPE for a sentence ('n/a' without points)."""
    return "n/a" if value is None else f"{value:.1f} %"


def print_errors(title: str, rows: list[dict[str, Any]]) -> None:
    """An error table: TTFT and TPOT MAPE by engine x model x mode, overall last."""
    print_table(
        title,
        ["engine", "model", "mode", "rows", "predicted", "TTFT MAPE %", "TPOT MAPE %"],
        [
            [
                r["engine"],
                r["model"],
                r["mode"],
                r["rows"],
                r["predicted"],
                r["ttft_mape"],
                r["tpot_mape"],
            ]
            for r in rows
        ],
    )


@command
def validate(
    measured: Annotated[
        list[Path],
        typer.Argument(help="Measured benchmarks: AIConfigurator silicon CSV, bench JSON."),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the rows with predictions (CSV).")
    ] = None,
    calibration: Annotated[
        Path | None, typer.Option(help="Calibration JSON [default: the bundled one].")
    ] = None,
    accelerator: Annotated[
        str | None, typer.Option(help="Accelerator of bench JSON files without that metadata.")
    ] = None,
    tp: Annotated[int, typer.Option(help="TP of bench JSON files without that metadata.")] = 1,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Predict every measured benchmark (TTFT, TPOT) and report the errors per engine and model."""
    from planner.costmodel import Calibration
    from planner.validate import predict_rows, read_measured, validation_summary, write_predictions

    rows = read_measured(measured, {"accelerator": accelerator, "tp": tp})
    cal = Calibration.load(calibration) if calibration is not None else None
    with progress(not json_out) as bar:
        say = reporter(bar, bar.add_task("predicting", total=None))
        preds = predict_rows(rows, cal, progress=say)
    if out is not None:
        write_predictions(preds, out)
    summary = validation_summary(preds)
    if json_out:
        emit_json({**summary, "out": str(out) if out else None})
        return
    print_validation(summary, measured, out)


def print_validation(summary: dict[str, Any], measured: list[Path], out: Path | None) -> None:
    """The error table, rows predicted, flagged and skipped rows of `planner validate`."""
    print_errors(
        f"predicted vs measured ({', '.join(str(m) for m in measured)})", summary["errors"]
    )
    done, total = summary["predicted"], summary["rows"]
    typer.echo(f"predicted {done:,} of {total:,} rows ({done / total:.1%})")
    fewer, as_loaded = len(summary["fewer_in_flight"]), summary["errors_as_loaded"]
    if fewer:
        typer.echo(
            f"{fewer:,} rows ran fewer sequences at once than their concurrency (Little's law on "
            "their own TTFT and TPOT; see the note column): scored as measured; without them "
            f"TTFT {_pct(as_loaded['ttft_mape'])}, TPOT {_pct(as_loaded['tpot_mape'])} MAPE "
            "(calibrate does not fit them)"
        )
    reasons: dict[str, int] = {}
    for skip in summary["skipped"]:
        reasons[skip["reason"]] = reasons.get(skip["reason"], 0) + 1
    for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
        typer.echo(f"skipped {count:,}: {reason}", err=True)
    if out is not None:
        typer.echo(f"wrote {out}")


@command
def latency(
    in_path: Annotated[
        Path, typer.Option("--in", help="CSV: model, accelerator, phase, batch, tokens, context.")
    ],
    out: Annotated[Path, typer.Option("--out", help="CSV with ms and extrapolated added.")],
    calibration: Annotated[
        Path | None, typer.Option(help="Calibration JSON [default: the bundled one].")
    ] = None,
    accelerators: Annotated[
        Path | None,
        typer.Option("--accelerators", "--prices", help="Your accelerator / price file (TOML)."),
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Predict engine-step latency (ms) for every point of a CSV."""
    from planner.costmodel import Calibration, load_catalog
    from planner.costmodel.batch import predict_points, read_points

    points = read_points(in_path)
    cal = Calibration.load(calibration) if calibration is not None else None
    catalog = load_catalog(accelerators) if accelerators is not None else None
    predicted = predict_points(points, cal, catalog)
    try:
        predicted.write_csv(out)
    except OSError as exc:
        raise PlannerError(f"{out}: cannot write ({exc.strerror})") from None
    ms = predicted["ms"]
    summary = {
        "points": predicted.height,
        "out": str(out),
        "extrapolated": int(predicted["extrapolated"].sum()),
        "ms_min": ms.min(),
        "ms_median": ms.median(),
        "ms_max": ms.max(),
    }
    if json_out:
        emit_json(summary)
        return
    typer.echo(
        f"wrote {summary['points']:,} predictions to {out} ({summary['extrapolated']:,} "
        f"extrapolated); ms min {fmt_value(ms.min())}, median {fmt_value(ms.median())}, "
        f"max {fmt_value(ms.max())}"
    )


EngineOption = Annotated[
    str,
    typer.Option(
        help="Serving engine: vllm, sglang or trtllm, optionally @release (vllm@0.12.0), or a "
        "profile .toml of your own."
    ),
]


SimTraceArgument = Annotated[
    str | None, typer.Argument(help="Trace name; omit with --concurrency (benchmark mode).")
]
ModelOption = Annotated[str, typer.Option(help="Model card id, Hugging Face path or config.json.")]
DtypeOption = Annotated[
    str | None, typer.Option(help="Weight precision, e.g. fp8 [default: as shipped].")
]
KvDtypeOption = Annotated[
    str | None, typer.Option(help="KV-cache precision, e.g. fp8 [default: bf16].")
]
SpeculativeOption = Annotated[
    str | None,
    typer.Option(help="Speculative decoding / MTP as TOKENS:ACCEPTANCE, e.g. 1:0.7."),
]
MaxBatchOption = Annotated[
    int | None, typer.Option(help="Most sequences in flight [default: the engine's].")
]
TokenBudgetOption = Annotated[
    int | None, typer.Option(help="Tokens per step [default: the engine's].")
]
ConcurrencyOption = Annotated[
    int | None, typer.Option(help="Benchmark mode: N clients in a closed loop.")
]
RequestsOption = Annotated[
    int, typer.Option(help="Benchmark requests measured [default: 10 per client].")
]
WarmupOption = Annotated[
    int,
    typer.Option(
        help="Benchmark warm-up requests, not measured; as aiperf does, the measured "
        "requests start together once every warm-up response is in."
    ),
]
RangeRatioOption = Annotated[
    float,
    typer.Option(
        help="Benchmark lengths drawn uniformly between RATIO x and 1 x --isl / --osl, as "
        "InferenceX's benchmark_serving.py --random-range-ratio draws them; 1 = fixed."
    ),
]
RouterOption = Annotated[
    str, typer.Option(help="Routing: round-robin, least-loaded or prefix-affinity.")
]
PrefixReuseOption = Annotated[
    float | None,
    typer.Option(
        help="Share of every prompt assumed to be a prefix all requests share (a system "
        "prompt), for a trace without prefix-block hashes; a Mooncake trace uses its own."
    ),
]
PrefixCacheOption = Annotated[
    bool, typer.Option(help="Simulate the engine's prefix cache (on in vLLM, SGLang, TRT-LLM).")
]
DisaggOption = Annotated[
    str | None, typer.Option(help="Prefill:decode instances per replica, e.g. 1:1.")
]
SloOption = Annotated[
    list[str] | None, typer.Option(help="SLO such as ttft_p99=1000ms (repeatable).")
]
SliceStartOption = Annotated[float | None, typer.Option(help="Slice start (s from trace start).")]
SeedOption = Annotated[int, typer.Option(help="Seed for drawn arrivals and benchmark jitter.")]
AttainmentOption = Annotated[float, typer.Option(help="Share of requests within all SLOs.")]


@command
def simulate(
    trace: SimTraceArgument = None,
    model: ModelOption = "llama-3.1-8b",
    accelerator: Annotated[str, typer.Option(help="Accelerator id, e.g. h100.")] = "h100",
    engine: EngineOption = "vllm",
    tp: Annotated[int, typer.Option(help="Tensor-parallel degree per instance.")] = 1,
    pp: Annotated[int, typer.Option(help="Pipeline-parallel degree per instance.")] = 1,
    dp: Annotated[int, typer.Option(help="Attention data-parallel ranks per instance.")] = 1,
    ep: Annotated[int, typer.Option(help="Expert-parallel degree (MoE), dividing tp x dp.")] = 1,
    dtype: DtypeOption = None,
    kv_dtype: KvDtypeOption = None,
    speculative: SpeculativeOption = None,
    max_batch: MaxBatchOption = None,
    token_budget: TokenBudgetOption = None,
    concurrency: ConcurrencyOption = None,
    isl: Annotated[int, typer.Option(help="Benchmark input tokens per request.")] = 1024,
    osl: Annotated[int, typer.Option(help="Benchmark output tokens per request.")] = 128,
    requests: RequestsOption = 0,
    warmup: WarmupOption = 0,
    range_ratio: RangeRatioOption = 1.0,
    replicas: Annotated[int, typer.Option(help="Replicas behind the router.")] = 1,
    router: RouterOption = "least-loaded",
    disagg: DisaggOption = None,
    prefill_accelerator: Annotated[
        str | None,
        typer.Option(
            help="With --disagg: the prefill instances' accelerator [default: --accelerator]."
        ),
    ] = None,
    prefill_tp: Annotated[
        int | None, typer.Option(help="With --disagg: the prefill instances' TP [default: --tp].")
    ] = None,
    prefix_reuse: PrefixReuseOption = None,
    prefix_cache: PrefixCacheOption = True,
    rate_scale: Annotated[float, typer.Option(help="Replay the arrivals X times faster.")] = 1.0,
    start: SliceStartOption = None,
    end: Annotated[float | None, typer.Option(help="Slice end (s, exclusive).")] = None,
    slo: SloOption = None,
    attainment: AttainmentOption = 0.99,
    goodput: Annotated[bool, typer.Option(help="Search the goodput (with --slo).")] = True,
    seed: SeedOption = 0,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Simulate a trace, or a load generator's closed loop, on a serving plan and engine."""
    from planner.simulate import Benchmark
    from planner.simulate.run import ServingPlan, simulate_benchmark, simulate_trace

    plan = ServingPlan(
        model, accelerator, tp, pp, dp, ep, engine, dtype, kv_dtype, speculative, max_batch,
        token_budget, prefix_cache,
    )  # fmt: skip
    if concurrency is not None:
        bench = Benchmark(
            concurrency, isl, osl, requests, warmup, seed=seed, range_ratio=range_ratio
        )
        show(simulate_benchmark(plan, bench), json_out, print_benchmark)
        return
    if trace is None:
        raise PlannerError("give a TRACE to replay, or --concurrency N for benchmark mode")
    prefill = None
    if prefill_accelerator is not None or prefill_tp is not None:
        prefill = dataclasses.replace(
            plan,
            accelerator=accelerator if prefill_accelerator is None else prefill_accelerator,
            tp=tp if prefill_tp is None else prefill_tp,
        )
    with store(db, read_only=True) as con:
        out = simulate_trace(
            con, trace, plan, replicas=replicas, router=router, disagg=disagg,
            rate_scale=rate_scale, start=start, end=end, slos=slo, attainment=attainment,
            with_goodput=goodput, seed=seed, prefix_reuse=prefix_reuse, prefill=prefill,
        )  # fmt: skip
    show(out, json_out, functools.partial(print_simulation, trace=trace, attainment=attainment))


def print_simulation(out: dict[str, Any], trace: str, attainment: float) -> None:
    """A trace replay's latency table, load, SLO attainment and goodput, and the engine used."""
    p = out["plan"]
    replicas = p["replicas"]
    print_table(
        f"{trace} on {_fleet(p)} ({_layout(p)}, {replicas} replica(s)"
        f"{', disagg ' + p['disagg'] if p['disagg'] else ''}{_prefill_side(p['prefill'])})",
        ["metric (ms)", "p50", "p90", "p99", "mean"],
        [[name, *out[name].values()] for name in ("ttft_ms", "tpot_ms", "e2e_ms", "queue_ms")],
    )
    typer.echo(
        f"{out['served']:,} of {out['requests']:,} requests served, "
        f"{out['preemptions']:,} preemptions, peak KV {out['peak_kv_tokens']:,} of "
        f"{out['kv_budget_tokens']:,} tokens, ${p['cost_per_hour']:.2f}/hour"
    )
    cache = out["prefix_cache"]
    if cache["cached_tokens"] or p["prefix_reuse"] != "none":
        typer.echo(
            f"prefix cache ({'on' if p['prefix_caching'] else 'off'}; reuse from "
            f"{p['prefix_reuse']}): {cache['cached_tokens']:,} prompt tokens reused, "
            f"{cache['prefilled_tokens']:,} prefilled ({cache['saved_share']:.1%} of prefill saved)"
        )
    if "slo_attainment" in out:
        typer.echo(f"SLO attainment {out['slo_attainment']:.2%} (target {attainment:.0%})")
    if "goodput_rps" in out:
        typer.echo(
            f"goodput {out['goodput_rps']:.3g} requests/s "
            f"({out['goodput_rate_scale']:.3g}x the trace's rate)"
        )
    typer.echo(_engine_line(p))


def _fleet(plan: dict[str, Any]) -> str:
    """'4 x h100', or '5 GPUs, decode on a100' when the prefill side is another plan."""
    if plan["prefill"]:
        return f"{plan['gpus']} GPUs, decode on {plan['accelerator']}"
    return f"{plan['gpus']} x {plan['accelerator']}"


def _mixed_text(count: int | None) -> str:
    """' (+168 with prefill on other hardware)' when the search built such replicas."""
    return f" (+{count} with prefill on other hardware)" if count else ""


def _group_mode(group: "ReplicaGroup") -> str:
    """'aggregated', 'P:D 2:1', or 'P:D 2:1, prefill on H100 TP2' for a plan's replica group
    (the prefill side as the recommendation sentence names it)."""
    from planner.report.narrative import prefill_label

    if not group.pd:
        return group.mode
    side = f", prefill on {prefill_label(group.prefill)}" if group.prefill else ""
    return f"P:D {group.pd[0]}:{group.pd[1]}{side}"


def _prefill_side(prefill: dict[str, Any] | None) -> str:
    """', prefill on h100 (tp=2, pp=1)' when the prefill instances are another plan."""
    return f", prefill on {prefill['accelerator']} ({_layout(prefill)})" if prefill else ""


def _layout(plan: dict[str, Any]) -> str:
    """'tp=2, pp=1' plus dp and ep where they are above 1."""
    more = ", ".join(f"{k}={plan[k]}" for k in ("dp", "ep") if plan[k] > 1)
    return f"tp={plan['tp']}, pp={plan['pp']}" + (f", {more}" if more else "")


def _engine_line(plan: dict[str, Any]) -> str:
    """Which engine the simulation assumed, and the flags it ran with."""
    release = plan["engine_release"] or f"defaults of {plan['engine_version']}"
    return (
        f"engine: {plan['engine']} ({plan['engine_name']}, {release}; "
        f"max batch {plan['max_batch']:,}, {plan['token_budget']:,} tokens per step), "
        f"weights {plan['dtype']}, KV cache {plan['kv_dtype']}"
    )


def print_benchmark(out: dict[str, Any]) -> None:
    """Benchmark mode's table, laid out like `vllm bench serve` prints its result."""
    p = out["plan"]
    print_table(
        f"{out['max_concurrency']} clients, {out['random_input_len']:,} in / "
        f"{out['random_output_len']:,} out, {p['gpus']} x {p['accelerator']}",
        ["metric (ms)", "mean", "median", "p99"],
        [
            [name, out[f"mean_{key}_ms"], out[f"median_{key}_ms"], out[f"p99_{key}_ms"]]
            for name, key in (("TTFT", "ttft"), ("TPOT", "tpot"), ("E2E", "e2el"))
        ],
    )
    typer.echo(
        f"{p['model']}, {_layout(p)}: {out['completed']:,} requests completed in "
        f"{out['duration']:.1f} s, {out['request_throughput']:.3g} requests/s, "
        f"{out['output_throughput']:,.0f} output tokens/s, {out['preemptions']:,} preemptions"
    )
    typer.echo(_engine_line(p))


@command
def report(
    plan_file: Annotated[Path, typer.Argument(help="PLAN.json written by `planner plan`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")],
    format: Annotated[
        list[str] | None,
        typer.Option("--format", help="Also write the plan's tables beside the HTML (repeat)."),
    ] = None,
    db: Annotated[
        Path | None, typer.Option("--db", help="Store for the ops charts [default: the plan's].")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Write the capacity report: one self-contained HTML file (opens offline)."""
    from planner.report import read_plan, write_report

    result = write_report(read_plan(plan_file), out, tuple(format or ()), db)
    if json_out:
        emit_json(result.to_dict())
        return
    typer.echo(f"wrote {result.html} ({result.bytes / 1e6:,.1f} MB, {len(result.charts)} charts)")
    for f in result.files:
        typer.echo(f"wrote {f}")
    for section, note in result.notes.items():
        typer.echo(f"note: {section}: {note}", err=True)


@command
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the store and outputs.")] = Path(
        "planner-demo"
    ),
    json_out: JsonOption = False,
) -> None:
    """Run the whole pipeline on the embedded trace (offline) and write the report."""
    from planner.demo import run_demo

    with progress(not json_out) as bar:
        result = run_demo(out, reporter(bar, bar.add_task("demo", total=None)))
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if json_out:
        emit_json(result.to_dict())
        return
    for f in result.files:
        typer.echo(f"wrote {f}")
    typer.echo(f"\n{result.headline}")
    typer.echo(f"\nreport: {result.report}  ({result.seconds:.0f} s)")


FreqOption = Annotated[
    str, typer.Option(help="Interval: 1min, 10min or 1h (not finer than the trace's windows).")
]
HorizonOption = Annotated[str, typer.Option(help="How far ahead: 1d, 12h, ...")]
SeriesOption = Annotated[
    str | None, typer.Option(help="Comma-separated series ids (default: all).")
]
TotalOption = Annotated[bool, typer.Option(help="Use the trace total, not each series.")]


@command
def forecast(
    trace: TraceArgument,
    freq: FreqOption = "10min",
    horizon: HorizonOption = "1d",
    series: SeriesOption = None,
    total: TotalOption = False,
    method: Annotated[
        str, typer.Option(help="auto (best by backtest, per series) or a method name.")
    ] = "auto",
    end: Annotated[
        float | None, typer.Option(help="Forecast origin in s from trace start (default: its end).")
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Forecast requests per interval with quantiles (p10-p99) and the token mix."""
    from planner.forecast import forecast_trace
    from planner.forecast.forecast import FORECAST_COLUMNS, forecast_rows

    with store(db, read_only=True) as con, progress(not json_out) as bar:
        say = reporter(bar, bar.add_task("forecasting", total=None))
        result = forecast_trace(
            con, trace, freq, horizon, method, series, total, end=end, progress=say
        )
    if json_out:
        emit_json(result)
        return
    title = f"forecast of {trace}: {result['unit']}, next {result['horizon']}"
    print_table(title, FORECAST_COLUMNS, forecast_rows(result), result["notes"])


@command
def backtest(
    trace: TraceArgument,
    freq: FreqOption = "10min",
    horizon: HorizonOption = "1d",
    series: SeriesOption = None,
    total: TotalOption = False,
    method: Annotated[
        str, typer.Option(help="auto (every method) or comma-separated method names.")
    ] = "auto",
    origins: Annotated[int, typer.Option(help="Rolling origins, one day apart.")] = 2,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Rolling-origin backtest: MASE, relative MASE, pinball loss, interval coverage."""
    from planner.forecast import backtest_trace
    from planner.forecast.backtest import BACKTEST_COLUMNS, backtest_rows

    methods = None if method == "auto" else method.split(",")
    with store(db, read_only=True) as con, progress(not json_out) as bar:
        say = reporter(bar, bar.add_task("backtesting", total=None))
        result = backtest_trace(
            con, trace, freq, origins, horizon, series, total, methods, progress=say
        )
    if json_out:
        emit_json(result)
        return
    title = f"backtest of {trace}: {result['series']} series, {origins} origin(s), {freq}"
    print_table(title, BACKTEST_COLUMNS, backtest_rows(result), result["notes"])


AcceleratorsOption = Annotated[str, typer.Option(help="Allowed accelerators, comma-separated.")]
PricesOption = Annotated[
    Path | None, typer.Option(help="Accelerator/price overrides (TOML, JSON or YAML).")
]
AvailableOption = Annotated[
    str | None, typer.Option(help="GPUs available per type, e.g. h100=16,l4=8.")
]
BudgetOption = Annotated[
    str | None, typer.Option(help="Most to spend, e.g. 20000/month (or /day, /hour).")
]
BucketsOption = Annotated[
    bool,
    typer.Option(help="Also plan requests split into input-length pools; keeps the cheaper plan."),
]
ColdStartsOption = Annotated[
    str | None, typer.Option(help="Cold-start trace to measure the provisioning delay.")
]
ElasticMoeOption = Annotated[
    bool,
    typer.Option(
        "--elastic-moe",
        help="MoE models: scale up by adding accelerators to the running deployment "
        "(ElasticMoE: shards copied from a serving replica, no container start).",
    ),
]
RateScaleOption = Annotated[
    float, typer.Option(help="Plan for X times the trace's traffic (same time axis).")
]
MixedPdOption = Annotated[
    bool,
    typer.Option(
        help="Also plan disaggregated replicas whose prefill instances run on another "
        "accelerator or TP than their decode ones (needs a KV transfer path between the two "
        "pools)."
    ),
]
StrictOption = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Refuse a trace with requests longer than the model's context, and --available "
        "too low for the peak (default: plan without them / the best the GPUs allow, with "
        "a warning).",
    ),
]
EnergyPriceOption = Annotated[
    float | None,
    typer.Option(help="Electricity price in US$ per kWh for the energy figures [default: 0.10]."),
]
PowerBudgetOption = Annotated[
    float | None,
    typer.Option(help="Most power the peak fleet may draw at TDP, in kW, e.g. 40."),
]
ReportOption = Annotated[
    Path | None, typer.Option("--report", help="Also write the HTML capacity report here.")
]


@command
def plan(
    trace: TraceArgument,
    model: Annotated[str, typer.Option(help="Model card id, e.g. llama-3.1-8b.")],
    slo: Annotated[list[str], typer.Option(help="SLO such as ttft_p99=1000ms (repeatable).")],
    attainment: AttainmentOption = 0.99,
    accelerators: AcceleratorsOption = "h100,a100,l4",
    prices: PricesOption = None,
    available: AvailableOption = None,
    budget: BudgetOption = None,
    buckets: BucketsOption = False,
    horizon: Annotated[str, typer.Option(help="Planning horizon, e.g. 1d.")] = "1d",
    interval: Annotated[str, typer.Option(help="Schedule interval, e.g. 10min.")] = "10min",
    quantile: Annotated[str, typer.Option(help="Forecast quantile to cover, e.g. p95.")] = "p95",
    cold_starts: ColdStartsOption = None,
    elastic_moe: ElasticMoeOption = False,
    mixed_pd: MixedPdOption = False,
    rate_scale: RateScaleOption = 1.0,
    engine: EngineOption = "vllm",
    strict: StrictOption = False,
    energy_price: EnergyPriceOption = None,
    power_budget: PowerBudgetOption = None,
    prefix_reuse: PrefixReuseOption = None,
    prefix_cache: PrefixCacheOption = True,
    out: Annotated[Path | None, typer.Option("--out", help="Write PLAN.json here.")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Write the plan's tables here.")] = None,
    report_file: ReportOption = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """The cheapest plan holding the SLO, its scaling schedule and a replay of the trace."""
    from planner.planning import PlanOptions
    from planner.report import Artefacts

    db_path = (db if db is not None else default_db_path()).resolve()
    options = PlanOptions(
        trace=trace,
        model=model,
        slos=slo,
        attainment=attainment,
        accelerators=accelerators.split(","),
        prices=str(prices) if prices else None,
        available=available,
        budget=budget,
        buckets=buckets,
        horizon=horizon,
        interval=interval,
        quantile=quantile,
        cold_starts=cold_starts,
        elastic_moe=elastic_moe,
        mixed_pd=mixed_pd,
        rate_scale=rate_scale,
        db=str(db_path),
        engine=engine,
        strict=strict,
        energy_price=energy_price,
        power_budget=power_budget,
        prefix_reuse=prefix_reuse,
        prefix_cache=prefix_cache,
    )
    run_plan(options, Artefacts(plan_json=out, tables_dir=csv, report=report_file), json_out)


def run_plan(options: "PlanOptions", artefacts: "Artefacts", json_out: bool) -> None:
    """Plan with a progress bar, write the artefacts, then print warnings and the summary."""
    from planner.planning import plan_to_artefacts

    with progress(not json_out) as bar:
        say = reporter(bar, bar.add_task("planning", total=None))
        result, written = plan_to_artefacts(options, artefacts, say)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if json_out:
        emit_json(result.to_dict())
        return
    print_plan(result)
    for f in written.files:
        typer.echo(f"wrote {f}")


def print_plan(result: "PlanFile") -> None:
    """`planner plan`'s summary: the sentence, engine, replicas, replay and search size."""
    rec, served, search = result.recommended, result.engine, result.search
    typer.echo(rec.sentence)
    release = served.release or f"defaults of {served.version}"
    typer.echo(f"engine: {served.id} ({served.name}, {release})")
    print_table(
        "recommended replicas at the forecast peak",
        ["count", "accelerator", "tp", "pp", "ep", "mode", "max batch", "GPUs", "req/s each"],
        [
            [
                g.count,
                g.accelerator,
                g.tp,
                g.pp,
                g.ep,
                _group_mode(g),
                g.max_batch,
                g.gpus,
                g.goodput_rps,
            ]
            for g in rec.replicas
        ],
    )
    if result.alternatives.length_pools:
        print_table(
            "length pools planned (--buckets): the cheapest on its schedule is recommended",
            ["pools", "split at input tokens", "$/month", "chosen"],
            [
                [
                    "/".join(p.pools or []) or "-",
                    ", ".join(f"{e:,.0f}" for e in p.max_input_tokens) or "-",
                    f"{p.cost_per_month:,.0f}" if p.cost_per_month is not None else p.infeasible,
                    "yes" if p.chosen else "",
                ]
                for p in result.alternatives.length_pools
            ],
        )
    print_replay(result)
    lengths = result.demand.length_forecast
    if lengths is not None and {lengths["input"]["method"], lengths["output"]["method"]} != {
        "recent"
    }:
        typer.echo(lengths["sentence"])
    cache = result.demand.prefix_cache
    if cache is not None and cache.reuse != "none":
        typer.echo(
            f"prefix cache {'on' if cache.enabled else 'off'} (reuse: {cache.reuse}): "
            f"{cache.saved_share:.1%} of prompt tokens served from cache on the replay"
        )
    if result.energy:
        e = result.energy
        typer.echo(
            f"energy: {e['kwh_per_month']:,.0f} kWh/month, ${e['cost_per_month']:,.0f}/month at "
            f"${e['price_per_kwh']:g}/kWh (board power: mean {e['mean_power_kw']:,.2f} kW, "
            f"peak fleet {e['peak_power_kw']:,.2f} kW at TDP; busy {e['busy_share']:.0%})"
        )
    typer.echo(
        f"{search.candidates} candidate plans{_mixed_text(search.mixed_hardware)}, "
        f"{search.simulated} simulated, "
        f"{search.seconds:.1f} s; provisioning delay {result.provisioning_delay_s:.0f} s "
        f"({result.provisioning_source})"
    )


def print_replay(result: "PlanFile") -> None:
    """The held-back replay of the schedule against static-peak, autoscaled and hybrid fleets."""
    replay = result.replay
    window = replay.window
    print_table(
        f"replay of the held-back {window['end_s'] - window['start_s']:,.0f} s",
        ["policy", "SLO attainment", "GPU-hours", "cost $", "replica starts", "scaling actions"],
        [
            [
                name,
                f"{policy.slo_attainment:.3%}",
                policy.gpu_hours,
                policy.cost,
                policy.replica_starts,
                policy.scaling_actions,
            ]
            for name, policy in (
                ("schedule", replay.schedule),
                ("static_peak", replay.static_peak),
                ("reactive", replay.reactive),
                ("reactive_tokens", replay.reactive_tokens),
                ("kpa", replay.kpa),
                ("hybrid", replay.hybrid),
            )
            if policy is not None
        ],
    )
    if replay.verdict is not None:
        typer.echo(replay.verdict.sentence)
    if replay.hybrid_tuning is not None:
        typer.echo(replay.hybrid_tuning.sentence)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
