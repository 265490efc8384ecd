"""Trace analytics (SPEC §5): burstiness, token lengths, cold starts, keep-alive counterfactuals.

`analyze_trace` is what `planner analyze` prints; the smaller functions are what the report
and the optimizer call for one figure or chart. Definitions live in each module's docstring.
"""

from collections.abc import Iterable

import duckdb

from planner.analytics.burstiness import (
    Arrivals,
    arrival_counts,
    arrivals_of,
    bin_counts,
    burstiness,
    interarrival_fit,
    positive_gaps,
    rate_window_summary,
    window_fits,
)
from planner.analytics.coldstarts import cold_start_summary, pod_utility, request_pods
from planner.analytics.fits import cdf, fit, fit_groups
from planner.analytics.keepalive import KEEPALIVES_S, keepalive_curve
from planner.analytics.lengths import (
    io_relation,
    length_quantiles,
    pmf_histogram,
    prefix_reuse,
    token_histogram,
)
from planner.analytics.stats import num, rows
from planner.errors import PlannerError
from planner.store import TraceInfo, get_trace

SECTIONS = ("rates", "lengths", "coldstarts", "keepalive")
# Request formats whose series scale to zero (functions, model versions): keep-alive by default.
SERVERLESS_FORMATS = ("azure-functions", "gentd26-requests", "huawei-requests")

__all__ = [
    "KEEPALIVES_S",
    "SECTIONS",
    "analyze_trace",
    "arrival_counts",
    "bin_counts",
    "cdf",
    "cold_start_summary",
    "fit",
    "fit_groups",
    "interarrival_fit",
    "io_relation",
    "keepalive_curve",
    "length_quantiles",
    "Arrivals",
    "arrivals_of",
    "positive_gaps",
    "pmf_histogram",
    "pod_utility",
    "prefix_reuse",
    "rate_window_summary",
    "token_histogram",
    "window_fits",
]


def parse_sections(only: Iterable[str] | None) -> tuple[str, ...] | None:
    """Validate a section list (None = every section that applies)."""
    if only is None:
        return None
    chosen = tuple(s.strip() for s in only if s.strip())
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown or not chosen:
        raise PlannerError(
            f"unknown analysis section {unknown[0] if unknown else ''!r}; "
            f"sections: {', '.join(SECTIONS)}"
        )
    return chosen


def load_seconds(con: duckdb.DuckDBPyConnection, name: str) -> float:
    """Median seconds of a cold-start trace: what one counterfactual cold start costs."""
    info = get_trace(con, name)
    found = rows(con, "SELECT median(total_s) FROM cold_starts WHERE trace_id = ?", [info.id])
    median = found[0][0]
    if median is None:
        raise PlannerError(f"trace {name!r} has no cold starts to take a load time from")
    return float(median)


def analyze_trace(
    con: duckdb.DuckDBPyConnection,
    name: str,
    sections: Iterable[str] | None = None,
    window_s: float = 600.0,
    keepalives_s: tuple[float, ...] | None = None,
    load_s: float | None = None,
    load_trace: str | None = None,
) -> dict:
    """The JSON-ready analysis of one trace; sections default to every one that applies.

    A section asked for explicitly that the trace cannot support is a PlannerError; one that
    merely does not apply by default is skipped with a note.
    """
    info = get_trace(con, name)
    chosen = parse_sections(sections)
    if window_s <= 0:
        raise PlannerError("--window must be positive seconds")
    if load_trace is not None:
        load_s = load_seconds(con, load_trace)
    out: dict = {
        "trace": info.name,
        "format": info.format,
        "table": info.kind,
        "series": info.series,
        "span_s": num(info.span_s),
        "requests": None,
        "fits": {},
        "notes": [],
    }
    wanted = set(chosen or SECTIONS)
    explicit = chosen is not None
    if info.kind == "requests":
        _requests(con, info, out, wanted, explicit, window_s, keepalives_s, load_s)
    elif info.kind == "rate_windows":
        _rate_windows(con, info, out, wanted, explicit)
    else:
        _cold_starts(con, info, out, wanted, explicit)
    if not out["notes"]:
        del out["notes"]
    return out


def _skip(out: dict, explicit: bool, section: str, why: str) -> None:
    """Fail when the section was asked for, else note why it was skipped."""
    if explicit:
        raise PlannerError(f"cannot analyse {section} of trace {out['trace']!r}: {why}")
    out["notes"].append(f"{section} skipped: {why}")


def _requests(
    con: duckdb.DuckDBPyConnection,
    info: TraceInfo,
    out: dict,
    wanted: set[str],
    explicit: bool,
    window_s: float,
    keepalives_s: tuple[float, ...] | None,
    load_s: float | None,
) -> None:
    """Fill the analysis of a per-request trace."""
    (requests, failed, tokens, blocks, pods) = rows(
        con,
        """SELECT count(*), count(*) FILTER (NOT ok),
                  count(input_tokens) + count(output_tokens), count(prefix_blocks), count(pod_id)
           FROM requests WHERE trace_id = ?""",
        [info.id],
    )[0]
    out["requests"], out["failed"] = requests, failed
    if requests < 2:
        raise PlannerError(
            f"trace {info.name!r} has {requests} request(s); the analysis needs at least 2 arrivals"
        )
    if "rates" in wanted:
        result = burstiness(arrivals_of(con, info.id), window_s, _epoch(con, info.id))
        out["fits"]["interarrival"] = result.pop("interarrival_fits")
        out["fits"]["interarrival_windows"] = result.pop("interarrival_windows")
        out.update(result)
    if "lengths" in wanted:
        if tokens:
            lengths = length_quantiles(con, info.id)
            for key in ("input_tokens", "output_tokens"):
                if lengths[key] is not None:
                    out["fits"][key] = [lengths[key].pop("fit")]
            out.update(lengths)
            out["io_relation"] = io_relation(con, info.id)
            if blocks:
                out["prefix_reuse"] = prefix_reuse(con, info.id)
        else:
            _skip(out, explicit, "lengths", "the trace has no token columns")
    if "coldstarts" in wanted:
        if pods:
            out["cold_starts"] = request_pods(con, info.id)
        elif explicit:
            _skip(out, explicit, "coldstarts", "its requests carry no pod ids")
    default_keepalive = info.format in SERVERLESS_FORMATS or keepalives_s is not None
    if "keepalive" in wanted and (explicit or default_keepalive):
        curve = keepalive_curve(con, info.id, keepalives_s or KEEPALIVES_S, load_s)
        out["keepalive"] = [
            {k: v if isinstance(v, int) else num(v) for k, v in r.items()}
            for r in curve.iter_rows(named=True)
        ]
        if load_s is not None:
            out["keepalive_load_s"] = num(load_s)


def _epoch(con: duckdb.DuckDBPyConnection, trace_id: int) -> float | None:
    """The trace's absolute start as Unix seconds, when the source gave one."""
    return rows(con, "SELECT epoch(start_time) FROM traces WHERE id = ?", [trace_id])[0][0]


def _rate_windows(
    con: duckdb.DuckDBPyConnection, info: TraceInfo, out: dict, wanted: set[str], explicit: bool
) -> None:
    """Fill the analysis of a pre-aggregated (rate-window) trace."""
    summary = rate_window_summary(con, info.id)
    out["requests"] = num(
        rows(con, "SELECT sum(requests) FROM rate_windows WHERE trace_id = ?", [info.id])[0][0]
    )
    if "rates" in wanted:
        out["rate_per_s"] = {
            k: summary["rate_per_window"][k] for k in ("mean", "p50", "p99", "max")
        }
        out["rate_per_s"]["bin_s"] = summary["window_s"]
        out["interarrival_cv"] = summary["cv"]["weighted_mean"]
        out["rate_windows"] = summary
    if "lengths" in wanted:
        has_pmfs = rows(con, "SELECT count(*) FROM length_dists WHERE trace_id = ?", [info.id])[0][
            0
        ]
        if has_pmfs:
            lengths = length_quantiles(con, info.id, kind="rate_windows")
            for key in ("input_tokens", "output_tokens"):
                if lengths[key] is not None:
                    out["fits"][key] = [lengths[key].pop("fit")]
            out.update(lengths)
        else:
            _skip(out, explicit, "lengths", "the trace has no token-length distributions")
    if "coldstarts" in wanted:
        cold, requests = rows(
            con,
            "SELECT sum(cold_starts), sum(requests) FILTER (cold_starts IS NOT NULL) "
            "FROM rate_windows WHERE trace_id = ?",
            [info.id],
        )[0]
        if cold is not None:
            out["cold_starts"] = {
                "count": num(cold),
                "cold_starts_per_1k_requests": num(1000 * cold / requests) if requests else None,
            }
        elif explicit:
            _skip(out, explicit, "coldstarts", "its windows carry no cold-start counts")
    if "keepalive" in wanted and explicit:
        _skip(out, explicit, "keepalive", "it needs per-request timestamps, not rate windows")


def _cold_starts(
    con: duckdb.DuckDBPyConnection, info: TraceInfo, out: dict, wanted: set[str], explicit: bool
) -> None:
    """Fill the analysis of a cold-start trace."""
    for section in ("rates", "lengths", "keepalive"):
        if section in wanted and explicit:
            _skip(out, explicit, section, "it holds cold starts, not requests")
    if "coldstarts" in wanted:
        summary = cold_start_summary(con, info.id)
        out["fits"]["cold_start_s"] = summary["fits"].pop("duration")
        out["fits"]["cold_start_interval_s"] = summary["fits"].pop("interval")
        del summary["fits"]
        out["cold_starts"] = summary
