"""Readers for the Huawei public cloud serverless traces (sir-lab/data-release).

2025 release (EuroSys'25): cold-start events, day-30 request tables and per-function per-minute
series; 2023 release (SoCC'23): wide per-function request counts (one column per function).
All times are seconds from the start of day 0 and are kept on that clock (no rebasing), so
cold starts, requests and series of one region line up. A function is named by the release's
funcID ``funcName---userID---poolName`` wherever the columns allow (funcName alone is only
unique per user). A folder (or .zip / .tar.gz) of day files loads as one trace.
"""

from collections.abc import Callable
from pathlib import Path

from planner.errors import PlannerError
from planner.ingest.formats import (
    COLD_START_COLUMNS,
    RATE_COLUMNS,
    REQUEST_COLUMNS,
    Format,
    Select,
    canonical,
    numbered,
    register,
    require_columns,
    typed_csv,
    unique_columns,
)
from planner.ingest.sources import Source, csv_header

# podID = <pool>-<pod number>, pool = poolNN-<millicores>-<MB>, e.g. pool24-600-512-0000577863.
POOL_PATTERN = "^([A-Za-z]+[0-9]*-([0-9]+)-([0-9]+))(-|$)"
DEFAULT_WINDOW_S = 60.0


def _pool(group: int) -> str:
    """SQL for one part of the pool name parsed from podID (NULL when it does not match)."""
    return f"nullif(regexp_extract(podID, '{POOL_PATTERN}', {group}), '')"


def _func_id(header: list[str]) -> str:
    """SQL for the release's funcID funcName---userID---poolName from the columns present."""
    parts = ["funcName"]
    if "userID" in header:
        parts.append("userID")
    if "podID" in header:
        parts.append(_pool(1))
    return f"concat_ws('---', {', '.join(parts)})"


def _data_files(source: Source) -> list[Path]:
    """The CSV files of a source: the file itself, or the .csv / .csv.gz files of a folder."""
    if len(source.files) == 1:
        return source.files
    return [p for p in source.files if p.name.endswith((".csv", ".csv.gz"))]


def _every_file(source: Source, accepts: Callable[[list[str]], bool]) -> bool:
    """True when the source has CSV data files and `accepts` holds for every file's header."""
    files = _data_files(source)
    if not files or any(p.suffix in (".jsonl", ".json", ".parquet") for p in files):
        return False
    return all(accepts(csv_header(p)) for p in files)


def _pick(path: Path, header: list[str], role: str, choices: tuple[str, ...]) -> str:
    """The first of `choices` present in the header, or an error naming the accepted names."""
    for name in choices:
        if name in header:
            return name
    raise PlannerError(
        f"{path}: no {role} column for format huawei-series; expected one of: "
        f"{', '.join(choices)}; found: {', '.join(header[:20])}"
    )


# --- huawei-coldstart ------------------------------------------------------------------------
COLDSTART = ("time", "funcName", "totalCost_cold_start")
COLDSTART_OPTIONAL = (
    "clusterName",
    "userID",
    "requestID",
    "podAllocationCost",
    "deployCodeCost",
    "deployDependencyCost",
    "schedulingCost",
    "podID",
)
_COLDSTART_PARTS = {
    "podAllocationCost": "pod_allocation_s",
    "deployCodeCost": "deploy_code_s",
    "deployDependencyCost": "deploy_dependency_s",
    "schedulingCost": "scheduling_s",
}
_TEXT = ("clusterName", "funcName", "userID", "requestID", "podID")


def _read_coldstart(source: Source, _: dict[str, str]) -> list[Select]:
    """One cold_starts select per data file of the source."""
    selects = []
    for path in _data_files(source):
        header = csv_header(path)
        require_columns(path, header, "huawei-coldstart", COLDSTART)
        numeric = ("time", "totalCost_cold_start", *_COLDSTART_PARTS)
        types = {c: "DOUBLE" for c in numeric if c in header}
        types |= {c: "VARCHAR" for c in _TEXT if c in header}
        src = typed_csv(path, types)
        cols = {
            "time_s": "time",
            "series": _func_id(header),
            "total_s": "totalCost_cold_start",
        }
        cols |= {canon: col for col, canon in _COLDSTART_PARTS.items() if col in header}
        if "clusterName" in header:
            cols["cluster"] = "clusterName"
        if "requestID" in header:
            cols["request_id"] = "requestID"
        if "podID" in header:
            cols |= {
                "pool": _pool(1),
                "cpu_millicores": f"CAST({_pool(2)} AS INTEGER)",
                "memory_mb": f"CAST({_pool(3)} AS INTEGER)",
                "pod_id": "podID",
            }
        sql = f"SELECT {canonical(COLD_START_COLUMNS, cols)} FROM {src}"
        selects.append(
            Select(
                "cold_starts",
                sql,
                rebase=False,
                time_column="time_s",
                lines=numbered(path, sql, 2),
                path=path,
            )
        )
    return selects


# --- huawei-requests -------------------------------------------------------------------------
REQUESTS = ("time_frontend", "funcName", "totalCost_frontend")
REQUESTS_OPTIONAL = ("userID", "podID")


def _read_requests(source: Source, _: dict[str, str]) -> list[Select]:
    """One requests select per data file of the source."""
    selects = []
    for path in _data_files(source):
        header = csv_header(path)
        require_columns(path, header, "huawei-requests", REQUESTS)
        types = {"time_frontend": "DOUBLE", "totalCost_frontend": "DOUBLE"}
        types |= {c: "VARCHAR" for c in ("funcName", "userID", "podID") if c in header}
        src = typed_csv(path, types)
        # duration = totalCost_frontend: end-to-end time seen at the frontend (worker + bus +
        # frontend overheads), i.e. what the caller waits for; the worker-only parts are not kept.
        cols = {
            "t": "time_frontend",
            "series": _func_id(header),
            "duration_s": "totalCost_frontend",
        }
        if "podID" in header:
            cols["pod_id"] = "podID"
        sql = f"SELECT {canonical(REQUEST_COLUMNS, cols)} FROM {src}"
        selects.append(
            Select("requests", sql, rebase=False, lines=numbered(path, sql, 2), path=path)
        )
    return selects


# --- huawei-series ---------------------------------------------------------------------------
SERIES_KEYS = ("funcID", "funcName", "function", "func_id")
SERIES_TIMES = ("time", "timestamp", "time_s", "minute")
SERIES_COUNTS = ("requests", "num_requests", "request_count", "count", "invocations")
SERIES_COLD = ("num_cold_starts", "cold_starts")
SERIES_PODS = ("num_pods", "pods")
WIDE_TIMES = ("time", "timestamp", "time_s")
WIDE_OTHER = ("day",)


def _is_long(header: list[str]) -> bool:
    """A per-function per-minute table: function, time and request-count columns."""
    return all(
        any(c in header for c in names) for names in (SERIES_KEYS, SERIES_TIMES, SERIES_COUNTS)
    )


def _is_wide(header: list[str]) -> bool:
    """The 2023 layout: [day,] time, then one column per numeric function id."""
    funcs = [c for c in header if c not in WIDE_TIMES + WIDE_OTHER]
    has_time = any(c in header for c in WIDE_TIMES)
    return has_time and bool(funcs) and all(c.isdigit() for c in funcs)


def _windowed(rows: str, cols: dict[str, str]) -> str:
    """SQL for rate windows from `rows` (time column t), read once; w = the inferred step."""
    # The window is the smallest positive step between distinct times: 60 s for per-minute
    # data, 1 s for per-second data, DEFAULT_WINDOW_S when the file holds a single time.
    given = cols | {"window_start_s": "t", "window_s": "w"}
    return (
        f"WITH u AS MATERIALIZED (SELECT * FROM {rows}), "
        f"step AS (SELECT coalesce(min(d), {DEFAULT_WINDOW_S}) AS w FROM "
        "(SELECT t - lag(t) OVER (ORDER BY t) AS d FROM (SELECT DISTINCT t FROM u)) WHERE d > 0) "
        f"SELECT {canonical(RATE_COLUMNS, given)} FROM u, step"
    )


def _read_long(path: Path, header: list[str]) -> Select:
    """Long layout: one row per function and minute, request counts and optional extras."""
    key = _pick(path, header, "function", SERIES_KEYS)
    time = _pick(path, header, "time", SERIES_TIMES)
    count = _pick(path, header, "request-count", SERIES_COUNTS)
    unique_columns(path, header, [key, time, count])
    extras = {
        "cold_starts": next((c for c in SERIES_COLD if c in header), None),
        "pods": next((c for c in SERIES_PODS if c in header), None),
    }
    types = {key: "VARCHAR", time: "DOUBLE", count: "DOUBLE"}
    types |= {col: "DOUBLE" for col in extras.values() if col}
    src = typed_csv(path, types)
    seconds = f'"{time}" * 60' if time == "minute" else f'"{time}"'
    cols = {"series": f'"{key}"', "requests": f'"{count}"', "rate_rps": f'"{count}" / w'}
    cols |= {canon: f'"{col}"' for canon, col in extras.items() if col}
    # lines: the file's values under their stored names (rate_rps and window_s need the step)
    given = cols | {"window_start_s": "t", "rate_rps": "NULL", "window_s": "NULL"}
    rows = f"SELECT {canonical(RATE_COLUMNS, given)} FROM (SELECT {seconds} AS t, * FROM {src})"
    return Select(
        "rate_windows",
        _windowed(f"(SELECT {seconds} AS t, * FROM {src})", cols),
        rebase=False,
        time_column="window_start_s",
        lines=numbered(path, rows, 2),
        path=path,
    )


def _read_wide(path: Path, header: list[str]) -> Select:
    """Wide layout: UNPIVOT the per-function columns into (series, time, requests) rows."""
    unique_columns(path, header, header)  # every column is read: time, day or a function
    time = next((c for c in header if c in WIDE_TIMES), header[0])
    skip = [c for c in header if c == time or c in WIDE_OTHER]
    if len(skip) == len(header):
        raise PlannerError(
            f"{path}: no function columns for format huawei-series (wide layout: "
            f"[day,] time, then one column per function id); found: {', '.join(header)}"
        )
    src = typed_csv(path, {c: "DOUBLE" for c in header})
    exclude = ", ".join(f'"{c}"' for c in skip)
    cells = f'(SELECT "{time}" AS t, series, requests FROM {_unpivot(src, exclude)} '
    cells += "WHERE NOT isnan(requests))"
    lined = f"(SELECT row_number() OVER () AS line, * FROM {src})"
    rows = (
        f'SELECT line + 1 AS _line, "{time}" AS window_start_s, series, requests '
        f"FROM {_unpivot(lined, 'line, ' + exclude)} WHERE NOT isnan(requests)"
    )
    return Select(
        "rate_windows",
        _windowed(cells, {"series": "series", "requests": "requests", "rate_rps": "requests / w"}),
        rebase=False,
        time_column="window_start_s",
        lines=[(str(path), rows)],
        path=path,
    )


def _unpivot(rows: str, exclude: str) -> str:
    """SQL turning every column but `exclude` into (series, requests) rows; NULL cells dropped."""
    return f"(UNPIVOT {rows} ON COLUMNS(* EXCLUDE ({exclude})) INTO NAME series VALUE requests)"


def _read_series(source: Source, _: dict[str, str]) -> list[Select]:
    """One rate_windows select per data file: long layout if it names functions, else wide."""
    selects = []
    for path in _data_files(source):
        header = csv_header(path)
        read = _read_long if any(c in header for c in SERIES_KEYS) else _read_wide
        selects.append(read(path, header))
    return selects


for _fmt in (
    Format(
        "huawei-coldstart",
        "cold_starts",
        "Huawei public cloud 2025 cold-start events (CSV per region/day, s from day 0); series = "
        "funcName---userID---pool, pool/mCPU/MB parsed from podID poolNN-<mCPU>-<MB>-<n>",
        COLDSTART,
        COLDSTART_OPTIONAL,
        lambda s: _every_file(s, lambda h: set(COLDSTART) <= set(h)),
        _read_coldstart,
        reads_folder=True,
    ),
    Format(
        "huawei-requests",
        "requests",
        "Huawei public cloud 2025 day-30 request tables (CSV); arrival = time_frontend (s from "
        "day 0), duration = totalCost_frontend (end-to-end), series = funcName---userID---pool; "
        "worker/bus costs, cpu/memory usage and body size are not stored",
        REQUESTS,
        REQUESTS_OPTIONAL,
        lambda s: _every_file(s, lambda h: set(REQUESTS) <= set(h)),
        _read_requests,
        reads_folder=True,
    ),
    Format(
        "huawei-series",
        "rate_windows",
        "Huawei per-function request counts: 2025 long per-minute series (function, time in s "
        "or minute index, request count [, num_cold_starts, num_pods]) or the 2023 wide table "
        "([day,] time, one column per function id; empty cells skipped); window = time step",
        tuple("|".join(names) for names in (SERIES_KEYS, SERIES_TIMES, SERIES_COUNTS)),
        ("|".join(SERIES_COLD), "|".join(SERIES_PODS)),
        lambda s: _every_file(s, lambda h: _is_long(h) or _is_wide(h)),
        _read_series,
        reads_folder=True,
    ),
):
    register(_fmt)
