"""Synthetic scale traces for benchmarks, built by replaying the real Azure 2023 requests.

SYNTHETIC: the 10M-row BurstGPT-format file is the real Azure LLM 2023 code + conv requests
(28,185 requests, one hour) repeated hour after hour with time offsets. Arrival pattern within
each hour and all token counts are real; the repetition is not.
"""

from pathlib import Path

import duckdb

from planner.ingest import sample_path

HOUR_S = 3600.0
AZURE_ROWS = 28_185


def _azure_sql() -> str:
    """Both embedded Azure traces as (t seconds from their start, input, output, model)."""
    parts = []
    for sample, model in (("azure-code", "GPT-4"), ("azure-conv", "ChatGPT")):
        path = str(sample_path(sample)).replace("'", "''")
        parts.append(
            f"SELECT epoch(strptime(split_part(TIMESTAMP, '.', 1), '%Y-%m-%d %H:%M:%S')) "
            f"+ coalesce(TRY_CAST('0.' || split_part(TIMESTAMP, '.', 2) AS DOUBLE), 0) AS t, "
            f"ContextTokens AS i, GeneratedTokens AS o, '{model}' AS m "
            f"FROM read_csv('{path}', types={{'TIMESTAMP': 'VARCHAR'}})"
        )
    union = " UNION ALL ".join(parts)
    return (
        f"SELECT t - min(t) OVER () AS t, i, o, m, row_number() OVER (ORDER BY t, m) - 1 AS n "
        f"FROM ({union})"
    )


def burstgpt_csv(path: Path, rows: int) -> Path:
    """Write (or reuse) a BurstGPT-format CSV of `rows` replayed Azure requests at `path`."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    repeats = rows // AZURE_ROWS + 1
    tmp = path.with_suffix(".tmp")
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false").fetchall()
    con.execute(
        f"""COPY (
            SELECT round(b.t + r.range * {HOUR_S}, 3) AS "Timestamp", b.m AS "Model",
                   b.i AS "Request tokens", b.o AS "Response tokens",
                   b.i + b.o AS "Total tokens",
                   CASE WHEN b.m = 'GPT-4' THEN 'API log' ELSE 'Conversation log' END AS "Log Type"
            FROM range({repeats}) r, ({_azure_sql()}) b
            ORDER BY "Timestamp" LIMIT {rows}
        ) TO '{tmp}' (FORMAT csv, HEADER)"""
    ).fetchall()
    con.close()
    tmp.rename(path)
    return path


WEEK_S = 7 * 24 * HOUR_S


def partitioned_parquet(folder: Path, rows: int) -> Path:
    """Write (or reuse) about `rows` replayed Azure requests over one week as Hive-partitioned
    Parquet (`day=D/`), SYNTHETIC: copy k of the real hour is laid over hour k mod 168 of the
    week (shifted by k ms, so no two arrivals coincide), and a fixed hash keeps the share of
    rows that makes the count; lengths and within-hour arrivals are real. The span is a week
    whatever the row count, so denser traces aggregate to the same windows."""
    if folder.exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    copies = max(168, -(-rows // AZURE_ROWS))
    keep = round(1e6 * rows / (copies * AZURE_ROWS))
    tmp = folder.with_name(folder.name + ".tmp")
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false").fetchall()
    con.execute("SET preserve_insertion_order = false").fetchall()
    con.execute(
        f"""COPY (
            SELECT t, i AS input_tokens, o AS output_tokens, m AS model,
                   CAST(floor(t / 86400) AS INTEGER) AS day
            FROM (SELECT b.t + (r.range % 168) * {HOUR_S} + r.range * 0.001 AS t, b.i, b.o, b.m
                  FROM range({copies}) r, ({_azure_sql()}) b
                  WHERE hash(r.range * {AZURE_ROWS} + b.n) % 1000000 < {keep})
        ) TO '{tmp}' (FORMAT parquet, PARTITION_BY (day))"""
    ).fetchall()
    con.close()
    tmp.rename(folder)
    return folder
