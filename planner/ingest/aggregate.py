"""Aggregates of a request-level trace: the currency that scales past one machine.

Per series and interval: the arrivals and the coefficient of variation of the gaps between
them; per series and length window: input and output length histograms on fixed log-spaced
bins (exact below 16 tokens, then 16 bins per octave, each bin represented by its mean length).
One definition, in SQL that DuckDB and Spark both run (`windows_sql`, `lengths_sql`), so both
engines give the same aggregates; `tables` turns their small results into a rate-window trace
(rate_windows + length_dists) that analyze, forecast and plan read like a ServeGen folder.
Memory is bounded by intervals x series, not by rows.
"""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from planner.errors import PlannerError

# Octaves binned 16 to one: [2^o, 2^(o+1)) for o = 4 .. 40; lengths from 2^41 share the last bin.
_FIRST_OCTAVE, _LAST_OCTAVE = 4, 40
_BINS_PER_OCTAVE = 16
ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class Aggregation:
    """How a trace is aggregated: the rate interval and the length-histogram window (seconds),
    by which engine (duckdb or spark; a Spark `master` URL, local by default)."""

    interval_s: float = 60.0
    length_window_s: float = 3600.0
    engine: str = "duckdb"
    master: str | None = None

    def __post_init__(self) -> None:
        for name, value in (("interval", self.interval_s), ("length window", self.length_window_s)):
            if not value > 0:
                raise PlannerError(f"aggregation {name} {value!r} s: must be positive")
        if self.engine not in ENGINES:
            raise PlannerError(f"--engine {self.engine!r}: expected one of {', '.join(ENGINES)}")

    def options(self) -> dict:
        """The read options an aggregated trace records: what decides its rows (both engines
        give the same rows, so the engine is not one)."""
        return {
            "interval_s": float(self.interval_s),
            "length_window_s": float(self.length_window_s),
        }


@dataclass
class Aggregates:
    """An aggregated source, ready to store: its rate windows and length PMFs, the epoch time
    its clock starts at (None for relative clocks), warnings, and the rows of each file."""

    rate_windows: pa.Table
    length_dists: pa.Table
    start: float | None
    warnings: list[str]
    files: dict[str, int]


def length_bin(column: str) -> str:
    """Portable SQL for a length's bin id: the length itself below 16, then 16 bins per octave.

    Only comparisons, subtraction and division by powers of two: exact in double precision and
    the same in DuckDB and Spark (a log2 would differ in its last bit between engines).
    """
    whens = " ".join(
        f"WHEN {column} < {2 ** (o + 1)} THEN {_BINS_PER_OCTAVE * (o - 3)} "
        f"+ CAST(floor(({column} - {2**o}) / {2 ** (o - 4)}) AS BIGINT)"
        for o in range(_FIRST_OCTAVE, _LAST_OCTAVE + 1)
    )
    last = _BINS_PER_OCTAVE * (_LAST_OCTAVE - 2)
    return f"CASE WHEN {column} < 16 THEN CAST({column} AS BIGINT) {whens} ELSE {last} END"


def number(value: float) -> str:
    """A float as a portable SQL double (a bare 1.5 is a DECIMAL in both engines)."""
    return f"CAST({float(value)!r} AS DOUBLE)"


def _window(interval_s: float) -> str:
    """Portable SQL for the index of the interval a (rebased) time falls in."""
    return f"CAST(floor(t / {number(interval_s)}) AS BIGINT)"


def canonical_sql(relation: str, base: float) -> str:
    """The view both aggregations read: a relation of canonical request rows (t, series,
    input_tokens, output_tokens, ok) with times rebased by `base` and defaults filled in."""
    return (
        f"SELECT t - {number(base)} AS t, coalesce(series, '') AS series, input_tokens, "
        f"output_tokens, coalesce(ok, TRUE) AS ok FROM ({relation}) source_rows"
    )


def windows_sql(view: str, agg: Aggregation) -> str:
    """Per series and interval of `view` (t rebased to 0, series): arrivals and gap CV.

    Gaps are taken within an interval (the first arrival of each has none), so each interval is
    one independent group: both engines spread them over cores or executors without a sort of
    the whole trace.
    """
    k = _window(agg.interval_s)
    return f"""
        SELECT series, k, count(*) AS requests,
               CASE WHEN avg(gap) > 0 THEN stddev_samp(gap) / avg(gap) END AS cv
        FROM (SELECT series, t, {k} AS k,
                     t - lag(t) OVER (PARTITION BY series, {k} ORDER BY t) AS gap
              FROM {view}) gaps
        GROUP BY series, k"""


def lengths_sql(view: str, agg: Aggregation) -> str:
    """Per series, length window, side (input/output) and bin of `view`'s successful
    requests: how many, their total length (for the bin's mean) and their share of the
    (series, window, side)."""
    k = _window(agg.length_window_s)
    parts = [
        f"""SELECT series, {k} AS k, '{side}' AS which, {length_bin(side)} AS bin,
                   count(*) AS n, sum({side}) AS total
            FROM {view} WHERE ok AND {side} IS NOT NULL
            GROUP BY series, {k}, {length_bin(side)}"""
        for side in ("input_tokens", "output_tokens")
    ]
    return f"""
        SELECT series, k, which, bin, n, total,
               n / sum(n) OVER (PARTITION BY series, k, which) AS prob
        FROM ({" UNION ALL ".join(parts)}) bins"""


def rate_windows_table(rows: dict[str, np.ndarray], agg: Aggregation) -> pa.Table:
    """rate_windows rows (series, window, count, rate, CV) from `windows_sql`'s result."""
    k = np.asarray(rows["k"], dtype=np.int64)
    requests = np.asarray(rows["requests"], dtype=float)
    cv = np.ma.filled(np.ma.asarray(rows["cv"], dtype=float), np.nan)
    return pa.table(
        {
            "series": pa.array(np.asarray(rows["series"], dtype=object), pa.string()),
            "window_start_s": k * agg.interval_s,
            "window_s": np.full(len(k), agg.interval_s),
            "requests": requests,
            "rate_rps": requests / agg.interval_s,
            "cv": pa.array(cv, pa.float64(), mask=np.isnan(cv)),
        }
    )


def length_dists_table(rows: dict[str, np.ndarray], agg: Aggregation) -> pa.Table:
    """length_dists PMFs (series, window, side, tokens, probability) from `lengths_sql`'s
    result: each bin becomes its mean length (rounded half up) with its share."""
    k = np.asarray(rows["k"], dtype=np.int64)
    n = np.asarray(rows["n"], dtype=float)
    tokens = np.floor(np.asarray(rows["total"], dtype=float) / np.maximum(n, 1.0) + 0.5)
    return pa.table(
        {
            "series": pa.array(np.asarray(rows["series"], dtype=object), pa.string()),
            "window_start_s": k * agg.length_window_s,
            "window_s": np.full(len(k), agg.length_window_s),
            "which": pa.array(np.asarray(rows["which"], dtype=object), pa.string()),
            "tokens": tokens.astype(np.int64),
            "prob": np.asarray(rows["prob"], dtype=float),
        }
    )
