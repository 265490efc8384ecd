"""Cold starts: counts, duration quantiles, component shares, groups, fits and pod utility.

Definitions:

- Duration quantiles are linear (DuckDB ``quantile_cont``) over ``total_s``.
- Component share = Σ component / Σ total_s over the cold starts that report the component;
  ``other`` is what the reported components leave unexplained (1 − their sum when all are
  reported on the same rows).
- Fits: LogNormal and Weibull MLE with KS over the positive durations, and a Weibull of the
  gaps between consecutive cold starts (the seed paper's two figures); a systematic sample of
  at most 200,000 values is fitted.
- Pod utility ratio (seed paper, SPEC §5) = (pod lifetime − keep-alive) / cold-start time.
  A pod lives from its cold start to its last request's end plus the keep-alive, and its
  first request arrives at its cold start, so the ratio is (last request end − first request
  arrival) / cold-start seconds. Requests and cold starts are matched on ``pod_id`` across the
  store (the Huawei release ships them as separate files); pods without both are left out.
"""

import duckdb
import numpy as np

from planner.analytics import fits
from planner.analytics.stats import num, rows
from planner.errors import PlannerError

COMPONENTS = (
    "pod_allocation_s",
    "deploy_code_s",
    "deploy_dependency_s",
    "scheduling_s",
    "model_load_s",
)
GROUPS = ("series", "pool", "kind", "cluster")
MAX_FIT = 200_000


def _quantile_dict(values: tuple) -> dict:
    """mean, p50, p90, p99, max from one SQL row."""
    return dict(zip(("mean", "p50", "p90", "p99", "max"), (num(v) for v in values), strict=True))


_DURATION = "avg(total_s), quantile_cont(total_s, [0.5, 0.9, 0.99]), max(total_s)"


def _durations(row: tuple) -> dict:
    """Unpack the _DURATION columns."""
    mean, qs, top = row
    return _quantile_dict((mean, *(qs or (None,) * 3), top))


def component_shares(con: duckdb.DuckDBPyConnection, trace_id: int) -> dict | None:
    """Share of total cold-start seconds per reported component (None when none is reported)."""
    parts = ", ".join(
        f"sum({c}) / sum(total_s) FILTER ({c} IS NOT NULL), count({c}), avg({c})"
        for c in COMPONENTS
    )
    found = rows(con, f"SELECT {parts} FROM cold_starts WHERE trace_id = ?", [trace_id])[0]
    shares = {}
    for i, comp in enumerate(COMPONENTS):
        share, count, mean = found[3 * i : 3 * i + 3]
        if count:
            shares[comp.removesuffix("_s")] = {
                "share": num(share),
                "mean_s": num(mean),
                "count": count,
            }
    if not shares:
        return None
    explained = sum(v["share"] or 0.0 for v in shares.values())
    shares["other"] = {"share": num(max(1.0 - explained, 0.0))}
    return shares


def group_breakdown(con: duckdb.DuckDBPyConnection, trace_id: int, top: int = 10) -> dict:
    """Per function / pool / kind / cluster: the `top` groups by count with duration quantiles."""
    out = {}
    for col in GROUPS:
        found = rows(
            con,
            f"""SELECT {col}, count(*), count(*) / sum(count(*)) OVER (), {_DURATION},
                       any_value(cpu_millicores), any_value(memory_mb), count(*) OVER ()
                FROM cold_starts WHERE trace_id = ? AND {col} IS NOT NULL
                GROUP BY {col} ORDER BY count(*) DESC, {col} LIMIT ?""",
            [trace_id, top],
        )
        if not found:
            continue
        out[col] = {
            "groups": found[0][-1],
            "top": [
                {
                    "key": key,
                    "count": n,
                    "share": num(share),
                    **_durations((mean, qs, top_s)),
                    **({"cpu_millicores": cpu, "memory_mb": mem} if col == "pool" else {}),
                }
                for key, n, share, mean, qs, top_s, cpu, mem, _ in found
            ],
        }
    return out


def cold_start_fits(con: duckdb.DuckDBPyConnection, trace_id: int) -> dict:
    """LogNormal / Weibull fits of durations and a Weibull fit of the gaps between cold starts."""
    data = con.execute(
        "SELECT time_s, total_s FROM cold_starts WHERE trace_id = ? ORDER BY time_s", [trace_id]
    ).fetchnumpy()
    total = np.asarray(data["total_s"], dtype=float)
    gaps = np.diff(np.asarray(data["time_s"], dtype=float))
    total, gaps = total[total > 0], gaps[gaps > 0]
    return {
        "duration": fits.fit(total[:: max(1, -(-total.size // MAX_FIT))], ("lognormal", "weibull")),
        "interval": fits.fit(gaps[:: max(1, -(-gaps.size // MAX_FIT))], ("weibull",)),
    }


def pod_utility(
    con: duckdb.DuckDBPyConnection, trace_id: int, table: str = "cold_starts"
) -> dict | None:
    """Pod utility ratio quantiles and share below 1 (module doc); None without matched pods."""
    side = "c" if table == "cold_starts" else "p"
    found = rows(
        con,
        f"""WITH p AS (
                SELECT trace_id, pod_id, min(arrival_s) AS first_s,
                       max(arrival_s + coalesce(duration_s, 0)) AS last_s
                FROM requests WHERE pod_id IS NOT NULL GROUP BY trace_id, pod_id),
            c AS (
                SELECT trace_id, pod_id, max(total_s) AS cold_s
                FROM cold_starts WHERE pod_id IS NOT NULL AND total_s > 0
                GROUP BY trace_id, pod_id),
            u AS (
                SELECT (p.last_s - p.first_s) / c.cold_s AS ratio
                FROM p JOIN c USING (pod_id) WHERE {side}.trace_id = ?)
            SELECT count(*), quantile_cont(ratio, [0.1, 0.5, 0.9]), avg((ratio < 1)::INTEGER)
            FROM u""",
        [trace_id],
    )[0]
    pods, qs, below = found
    if not pods:
        return None
    return {
        "pods": pods,
        "p10": num(qs[0]),
        "p50": num(qs[1]),
        "p90": num(qs[2]),
        "share_below_1": num(below),
    }


def cold_start_summary(con: duckdb.DuckDBPyConnection, trace_id: int, top: int = 10) -> dict:
    """Everything about a cold-start trace; a PlannerError when it has no cold starts."""
    count, span, *durations = rows(
        con,
        f"SELECT count(*), max(time_s) - min(time_s), {_DURATION} "
        "FROM cold_starts WHERE trace_id = ?",
        [trace_id],
    )[0]
    if not count:
        raise PlannerError(
            "the trace has no cold starts (the cold_starts table has no rows for it)"
        )
    return {
        "count": count,
        "span_s": num(span),
        "per_hour": num(count / span * 3600) if span else None,
        "total_s": _durations(tuple(durations)),
        "components": component_shares(con, trace_id),
        "by": group_breakdown(con, trace_id, top),
        "fits": cold_start_fits(con, trace_id),
        "pod_utility": pod_utility(con, trace_id, "cold_starts"),
    }


def request_pods(con: duckdb.DuckDBPyConnection, trace_id: int) -> dict | None:
    """For a request trace with pod ids: pods (one cold start each) per 1,000 requests, utility."""
    requests, pods = rows(
        con,
        "SELECT count(*), count(DISTINCT pod_id) FROM requests WHERE trace_id = ?",
        [trace_id],
    )[0]
    if not pods:
        return None
    return {
        "pods": pods,
        "cold_starts_per_1k_requests": num(1000 * pods / requests),
        "pod_utility": pod_utility(con, trace_id, "requests"),
    }
