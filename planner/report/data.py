"""What the report reads: the plan file, and the ops data of the plan's trace from the store.

The store is opened read-only and every section degrades on its own: a missing store, an
unknown trace or a trace without token counts leaves a note saying why, never an error.
Figures come from the analytics and forecast stages' public functions; cold starts from the
plan's trace when it holds them, else from the largest cold-start trace in the store.
Bursts are the rate bins more than ``BURST_SIGMA`` standard deviations above the mean rate
at the chart's resolution.
"""

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from planner.analytics import (
    KEEPALIVES_S,
    arrivals_of,
    cdf,
    cold_start_summary,
    interarrival_fit,
    keepalive_curve,
    pmf_histogram,
    positive_gaps,
    token_histogram,
)
from planner.errors import PlannerError
from planner.forecast import format_duration, load_series
from planner.optimize.planfile import PlanFile, as_plan
from planner.store import TraceInfo, get_trace, list_traces, open_store

BURST_SIGMA = 3.0
MAX_RATE_POINTS = 720
NICE_BINS_S = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 21600, 86400)
GAP_BINS = 48
LENGTH_BINS_PER_OCTAVE = 4
TOP_POOLS = 8


@dataclass
class OpsData:
    """Ops-section data from the store; `notes` says, per section, why data is absent."""

    store: str | None = None
    trace: TraceInfo | None = None
    rate: pl.DataFrame | None = None
    rate_bin_s: int = 0
    interarrival: pl.DataFrame | None = None
    fits: list[dict] = field(default_factory=list)
    lengths: pl.DataFrame | None = None
    cold_starts: dict | None = None
    cold_trace: str | None = None
    keepalive: pl.DataFrame | None = None
    notes: dict[str, str] = field(default_factory=dict)


def read_ops(plan: PlanFile | dict, db: Path | str | None = None) -> OpsData:
    """Everything the ops sections need from the store named by `db` or plan.db."""
    plan = as_plan(plan)
    path = db if db is not None else plan.db
    trace_name = plan.trace.name
    ops = OpsData(store=str(path) if path else None)
    if not path:
        ops.notes["store"] = "the plan names no store, so the traffic sections are empty"
        return ops
    try:
        con = open_store(path, read_only=True)
    except PlannerError as exc:
        ops.notes["store"] = f"store unavailable: {exc}"
        return ops
    try:
        _read_trace(con, ops, trace_name)
        _read_cold_starts(con, ops)
        _read_keepalive(con, ops, plan.provisioning_delay_s)
    finally:
        con.close()
    return ops


def _read_trace(con: duckdb.DuckDBPyConnection, ops: OpsData, name: str | None) -> None:
    """Rate, inter-arrival and token-length data of the plan's trace."""
    try:
        ops.trace = get_trace(con, name or "")
    except PlannerError as exc:
        ops.notes["store"] = f"trace {name!r} is not in the store {ops.store} ({exc})"
        return
    _read_rate(con, ops)
    if ops.trace.kind == "requests":
        _read_interarrival(con, ops)
        hist = token_histogram(con, ops.trace.id)
    else:
        ops.notes["interarrival"] = (
            f"trace {ops.trace.name!r} holds pre-aggregated {ops.trace.kind.replace('_', ' ')} "
            "(no individual arrivals to fit)"
        )
        hist = pmf_histogram(con, ops.trace.id) if ops.trace.kind == "rate_windows" else None
    if hist is None or hist.is_empty():
        ops.notes["lengths"] = f"trace {ops.trace.name!r} has no token counts"
    else:
        ops.lengths = length_bins(hist)


def rate_bin(span_s: float, resolution_s: float | None) -> int:
    """The finest nice bin that keeps the rate chart under MAX_RATE_POINTS points."""
    floor_s = resolution_s or 1
    for bin_s in NICE_BINS_S:
        if bin_s >= floor_s and bin_s % floor_s == 0 and span_s / bin_s <= MAX_RATE_POINTS:
            return bin_s
    return NICE_BINS_S[-1]


def _read_rate(con: duckdb.DuckDBPyConnection, ops: OpsData) -> None:
    """Total request rate per bin with bursts flagged."""
    trace = ops.trace
    resolution = None
    if trace.kind == "rate_windows":
        rows = con.execute(
            "SELECT max(window_s) FROM rate_windows WHERE trace_id = ?", [trace.id]
        ).fetchall()
        resolution = rows[0][0]
    elif trace.kind != "requests":
        ops.notes["rate"] = f"trace {trace.name!r} holds {trace.kind.replace('_', ' ')}, no rates"
        return
    bin_s = rate_bin(float(trace.span_s or 0), resolution)
    try:
        series = load_series(con, trace.name, format_duration(bin_s), total=True)
    except PlannerError as exc:
        ops.notes["rate"] = str(exc)
        return
    rate = series.select(
        pl.col("t").alias("t_s"), (pl.col("requests") / bin_s).alias("rate_rps")
    ).drop_nulls()
    mean, sd = rate["rate_rps"].mean(), rate["rate_rps"].std()
    ops.rate = rate.with_columns(
        (pl.col("rate_rps") > mean + BURST_SIGMA * (sd or 0.0)).alias("burst")
    )
    ops.rate_bin_s = bin_s


def _read_interarrival(con: duckdb.DuckDBPyConnection, ops: OpsData) -> None:
    """Observed share of gaps per log-spaced bin and each fit's expected share."""
    arrivals = arrivals_of(con, ops.trace.id)
    gaps, _ = positive_gaps(arrivals)  # all of them, or a systematic sample of 200,000
    if gaps.size < 2:
        ops.notes["interarrival"] = "fewer than two positive inter-arrival gaps"
        return
    ops.fits = interarrival_fit(arrivals)
    edges = np.logspace(np.log10(gaps.min()), np.log10(gaps.max()), GAP_BINS + 1)
    observed = np.histogram(gaps, edges)[0] / gaps.size
    lo, hi = edges[:-1], edges[1:]
    frames = [pl.DataFrame({"lo_s": lo, "hi_s": hi, "share": observed, "curve": "observed"})]
    mean = float(gaps.mean())
    curves = [("exponential (Poisson)", "gamma", 1.0, mean)] + [
        (f"{f['dist']} (KS {f['ks']:.3f})", f["dist"], *f["params"].values()) for f in ops.fits
    ]
    for label, dist, p1, p2 in curves:
        p1s, p2s = np.full(lo.size, p1), np.full(lo.size, p2)
        share = cdf(dist, hi, p1s, p2s) - cdf(dist, lo, p1s, p2s)
        frames.append(pl.DataFrame({"lo_s": lo, "hi_s": hi, "share": share, "curve": label}))
    ops.interarrival = pl.concat(frames).with_columns(
        ((pl.col("lo_s") * pl.col("hi_s")).sqrt()).alias("mid_s")
    )


def length_bins(hist: pl.DataFrame) -> pl.DataFrame:
    """Share of requests per log-spaced token bin (quarter octaves), per input/output."""
    step = 1.0 / LENGTH_BINS_PER_OCTAVE
    binned = hist.filter(pl.col("tokens") > 0).with_columns(
        (pl.col("tokens").cast(pl.Float64).log(2) / step).floor().alias("k")
    )
    out = binned.group_by("which", "k").agg(pl.col("requests").sum())
    return (
        out.with_columns(
            (pl.col("requests") / pl.col("requests").sum().over("which")).alias("share"),
            (2.0 ** (pl.col("k") * step)).alias("lo"),
            (2.0 ** ((pl.col("k") + 1) * step)).alias("hi"),
        )
        .select("which", "lo", "hi", "requests", "share")
        .sort("which", "lo")
    )


def _read_cold_starts(con: duckdb.DuckDBPyConnection, ops: OpsData) -> None:
    """Cold-start summary of the plan's trace, else of the store's largest cold-start trace."""
    traces = [t for t in list_traces(con) if t.kind == "cold_starts"]
    if ops.trace is not None and ops.trace.kind == "cold_starts":
        traces = [ops.trace]
    if not traces:
        ops.notes["cold_starts"] = (
            "the store has no cold-start records; load a cold-start trace (huawei-coldstart, "
            "gentd26-load) to see where cold-start time goes"
        )
        return
    chosen = max(traces, key=lambda t: t.rows)
    try:
        ops.cold_starts = cold_start_summary(con, chosen.id, TOP_POOLS)
    except PlannerError as exc:
        ops.notes["cold_starts"] = f"trace {chosen.name!r}: {exc}"
        return
    ops.cold_trace = chosen.name


def _read_keepalive(con: duckdb.DuckDBPyConnection, ops: OpsData, load_s: float | None) -> None:
    """Cold starts against idle instance-hours per keep-alive window for the plan's trace."""
    if ops.trace is None or ops.trace.kind != "requests":
        ops.notes.setdefault(
            "keepalive", "the keep-alive counterfactual needs a per-request trace in the store"
        )
        return
    try:
        ops.keepalive = keepalive_curve(con, ops.trace.id, KEEPALIVES_S, load_s)
    except PlannerError as exc:
        ops.notes["keepalive"] = f"trace {ops.trace.name!r}: {exc}"
