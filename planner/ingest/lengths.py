"""Token lengths borrowed from another stored trace, for a rate series that has none.

A per-minute request count (a Huawei series table, say) says how many requests came, not how
long they were, so it cannot be simulated or planned alone. `planner ingest SERIES --lengths
TRACE` gives it one pooled length PMF per side, valid over its whole span: the length histogram
of TRACE's successful requests (the bins of `planner.ingest.aggregate`), or the mean of TRACE's
own PMFs when TRACE is a rate trace with them. The trace records where its lengths came from
(read option "lengths") and plans say so.
"""

import duckdb
import pyarrow as pa

from planner.errors import PlannerError
from planner.ingest.aggregate import Aggregation, length_dists_table, lengths_sql
from planner.store import get_trace


def borrowed_lengths(con: duckdb.DuckDBPyConnection, name: str, span_s: float) -> pa.Table:
    """length_dists rows (series "", from 0 s over `span_s`) with the lengths of trace `name`."""
    info = get_trace(con, name)
    agg = Aggregation(length_window_s=max(span_s, 1.0))
    if info.kind == "requests":
        view = (
            "SELECT 0.0 AS t, '' AS series, input_tokens, output_tokens, coalesce(ok, TRUE) AS ok "
            f"FROM requests WHERE trace_id = {int(info.id)}"
        )
        rows = con.execute(f"WITH src AS ({view}) {lengths_sql('src', agg)}").fetchnumpy()
    elif info.kind == "rate_windows":  # each PMF point as a bin of one length (total / n)
        rows = con.execute(
            """SELECT '' AS series, 0 AS k, which, tokens AS total, 1 AS n,
                      sum(prob) / max(pmfs) AS prob
               FROM (SELECT *, count(DISTINCT (series, window_start_s))
                               OVER (PARTITION BY which) AS pmfs
                     FROM length_dists WHERE trace_id = ?)
               GROUP BY which, tokens ORDER BY which, tokens""",
            [info.id],
        ).fetchnumpy()
    else:
        rows = {}
    if not len(rows.get("prob", [])):
        raise PlannerError(
            f"--lengths {name}: trace {name!r} ({info.kind.replace('_', ' ')}) holds no token "
            "lengths to borrow; name a request trace or a rate trace with length PMFs"
        )
    return length_dists_table(rows, agg)  # one window: k = 0, from 0 s over span_s
