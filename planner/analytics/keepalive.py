"""Keep-alive counterfactual: cold starts and idle instance-seconds per keep-alive window.

Model (per series = function / model version; one instance per series, concurrency ignored):
an instance is busy while a request runs (``duration_s``; 0 where the source has no duration)
and then stays warm for the keep-alive K. A request is a cold start when it is the first of
its series or when the idle gap since the instance last became idle (the latest end of the
series' earlier requests) exceeds K. Idle instance-seconds = Σ min(gap, K) over every idle
gap, including the one after each series' last request, cut at the trace's end.
A cold start is *avoidable* at K when its gap lies in (K, 2K]: doubling the keep-alive would
have kept the instance warm. With a measured load time per cold start (e.g. the GenTD26 model
load median), ``cold_start_s`` = cold starts × that time.
All keep-alive values are computed in one SQL query (the gaps cross-joined with the K list).
"""

import duckdb
import polars as pl

from planner.analytics.stats import frame
from planner.errors import PlannerError

KEEPALIVES_S = (60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0)

_SQL = """
WITH r AS (
    SELECT coalesce(series, '') AS series, arrival_s,
           arrival_s + greatest(coalesce(duration_s, 0), 0) AS end_s,
           max(arrival_s + greatest(coalesce(duration_s, 0), 0)) OVER (
               PARTITION BY coalesce(series, '') ORDER BY arrival_s
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS busy_until
    FROM requests WHERE trace_id = $1),
g AS (
    SELECT FALSE AS tail,
           CASE WHEN busy_until IS NOT NULL THEN greatest(arrival_s - busy_until, 0) END AS gap
    FROM r
    UNION ALL
    SELECT TRUE, (SELECT max(end_s) FROM r) - max(end_s) FROM r GROUP BY series),
k AS (SELECT unnest($2::DOUBLE[]) AS keepalive_s)
SELECT keepalive_s,
       count(*) FILTER (NOT tail) AS requests,
       count(*) FILTER (NOT tail AND (gap IS NULL OR gap > keepalive_s)) AS cold_starts,
       sum(least(gap, keepalive_s)) FILTER (gap IS NOT NULL) AS idle_instance_s,
       count(*) FILTER (NOT tail AND gap > keepalive_s AND gap <= 2 * keepalive_s)
           AS avoidable_cold_starts
FROM g CROSS JOIN k
GROUP BY keepalive_s ORDER BY keepalive_s
"""


def keepalive_curve(
    con: duckdb.DuckDBPyConnection,
    trace_id: int,
    keepalives_s: tuple[float, ...] = KEEPALIVES_S,
    load_s: float | None = None,
) -> pl.DataFrame:
    """Cold starts, idle instance-seconds and avoidable cold starts per keep-alive (module doc)."""
    if not keepalives_s or min(keepalives_s) <= 0:
        raise PlannerError("keep-alive windows must be positive seconds")
    curve = frame(con, _SQL, [trace_id, list(keepalives_s)])
    if curve.is_empty() or curve["requests"][0] == 0:
        raise PlannerError(
            "the trace has no requests; the keep-alive counterfactual needs arrivals"
        )
    curve = curve.with_columns(
        (1000 * pl.col("cold_starts") / pl.col("requests")).alias("cold_starts_per_1k")
    )
    if load_s is not None:
        curve = curve.with_columns((pl.col("cold_starts") * load_s).alias("cold_start_s"))
    return curve
