"""The Spark engine: aggregate a request trace too large for one machine with PySpark.

Reads the CSV or Parquet files of a source (a file, folder, glob or Hive partitions, local or
any URI Spark's file systems read: s3a://, hdfs://, abfss://, gs://, file://) through
the --map column mapping and runs the aggregation's portable SQL (`planner.ingest.aggregate`,
the same text DuckDB runs) in a local Spark session, or on any cluster given as `master`
(spark://, yarn, k8s://); `spark-submit` sets the master for a session it starts. PySpark is an
optional extra (`pip install -e ".[spark]"`) and needs a Java 17+ runtime.
"""

import contextlib
import hashlib
import os
import socket
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from planner.errors import PlannerError, one_line
from planner.ingest.aggregate import (
    Aggregates,
    Aggregation,
    canonical_sql,
    length_dists_table,
    lengths_sql,
    number,
    rate_windows_table,
    windows_sql,
)
from planner.ingest.formats import TIME_UNITS, Format, check_mapping, time_unit_warnings
from planner.ingest.sources import Remote, Source, glob_root, is_glob, refuse_empty_files
from planner.store import MAX_TOKENS

LOCAL_MASTER = "local[*]"
JVM_LOG = Path(tempfile.gettempdir()) / "planner-spark.log"  # the JVM's stderr, last session
_CONNECT_TIMEOUT_S = 5.0
_LOCAL_SHUFFLE_PARTITIONS = 8  # Spark's default 200 is for clusters; local runs drown in tasks


def spark_aggregates(
    source: Source, fmt: Format, mapping: dict[str, str], options: dict, agg: Aggregation
) -> Aggregates:
    """Aggregate a csv / parquet source with Spark, checking its values as a DuckDB ingest
    would (empty, non-finite and negative values refused, naming the file)."""
    if not fmt.generic:
        raise PlannerError(
            f"--engine spark reads csv or parquet files with --map ts=COL,...; format {fmt.id} "
            "is read by the duckdb engine"
        )
    unit = options.get("time_unit", "s")
    check_mapping(source, mapping, unit)
    with warnings.catch_warnings():  # pyspark warns about the pandas release it finds
        warnings.simplefilter("ignore", FutureWarning)
        spark = spark_session(agg.master)
        try:
            return _aggregate(spark, source, fmt, mapping, unit, agg)
        except PlannerError:
            raise
        except Exception as exc:  # Spark's own errors (AnalysisException, Py4JJavaError, ...)
            raise PlannerError(f"{source.path}: Spark: {_spark_message(exc)}") from None


def spark_session(master: str | None) -> Any:
    """A Spark session on `master`: by default the one `spark-submit` was given when it runs
    planner, else local[*]; UTC clock, no console progress bars."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise PlannerError(
            '--engine spark needs PySpark: pip install -e ".[spark]" (and a Java 17+ runtime)'
        ) from None
    submitted = master is None and "PYSPARK_GATEWAY_PORT" in os.environ  # run by spark-submit
    url = master or LOCAL_MASTER
    if submitted:
        builder, url = SparkSession.builder, "(spark-submit's)"
    else:
        _check_reachable(url)
        builder = SparkSession.builder.master(url)
    builder = (
        builder.appName("planner-ingest")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if url.startswith("local"):
        builder = builder.config("spark.sql.shuffle.partitions", _LOCAL_SHUFFLE_PARTITIONS)
    try:
        with _jvm_output(JVM_LOG):
            spark = builder.getOrCreate()
    except Exception as exc:  # no Java runtime, or a master Spark cannot join
        said = [line for line in JVM_LOG.read_text(errors="replace").splitlines() if line.strip()]
        raise PlannerError(
            f"--master {url}: Spark could not start (a Java 17+ runtime is needed): "
            f"{_spark_message(exc)}" + (f"; the JVM said: {said[-1]} ({JVM_LOG})" if said else "")
        ) from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextlib.contextmanager
def _jvm_output(log: Path) -> Iterator[None]:
    """The process's stderr (fd 2) pointed at `log` while Spark starts its JVM, which inherits
    it: the JVM's start-up chatter (incubator modules, log4j profile, loopback address) and its
    later log lines go there, not to the user's terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    with log.open("wb") as fh:
        os.dup2(fh.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _check_reachable(master: str) -> None:
    """Refuse a spark:// master that does not accept connections, at once (Spark itself retries
    for a minute before giving up)."""
    if not master.startswith("spark://"):
        return
    for hostport in master.removeprefix("spark://").split(","):
        host, _, port = hostport.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S).close()
            return
        except (OSError, ValueError) as exc:
            reason = one_line(exc) or type(exc).__name__
    raise PlannerError(f"--master {master}: cannot reach the Spark master ({reason})")


def _spark_message(exc: Exception) -> str:
    """The first line of a Spark error, without the JVM stack (the Java exception's own, where
    py4j wraps one in "An error occurred while calling ...")."""
    java = getattr(exc, "java_exception", None)
    text = str(java.toString()) if java is not None else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def remote_source(uri: str, master: str | None) -> Source:
    """A URI source as Spark's file system lists it: a file, every data file under a folder, or
    every file a glob matches (bookkeeping files such as _SUCCESS left out), each named under
    the URI as given; error if none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        spark = spark_session(master)
    try:
        listed, folder = _listing(spark, uri)
    except Exception as exc:  # Py4JJavaError: no file system for the scheme, no access, ...
        raise PlannerError(f"{uri}: Spark cannot list it: {_spark_message(exc)}") from None
    base = uri.rstrip("/") if folder else _glob_base(uri) if is_glob(uri) else None
    files = {}
    for name, size, _ in listed:
        below = _norm(name)[len(_norm(base)) :] if base is not None else ""
        if not any(part.startswith((".", "_")) for part in below.split("/")):
            files[base + below if base is not None else uri] = size
    if not files:
        raise PlannerError(f"{uri}: matches no data file")
    digest = hashlib.sha256(repr(sorted(listed)).encode()).hexdigest()
    remote = Remote(uri, files, base, digest)
    return Source(Path(uri), [Path(u) for u in files], remote=remote)


def _listing(spark: Any, uri: str) -> tuple[list[tuple[str, int, int]], bool]:
    """(URI, bytes, modification time) of each file the URI names (the files under each folder
    it names or matches), through Hadoop's file system API, and whether it names one folder."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    statuses = list(fs.globStatus(path) or [])
    files = []
    for status in statuses:
        if status.isDirectory():
            found = fs.listFiles(status.getPath(), True)
            while found.hasNext():
                files.append(found.next())
        else:
            files.append(status)
    folder = len(statuses) == 1 and statuses[0].isDirectory() and not is_glob(uri)
    return [(s.getPath().toString(), s.getLen(), s.getModificationTime()) for s in files], folder


def _glob_base(uri: str) -> str:
    """The folder a glob URI starts in: up to the last '/' before its first glob character."""
    first = min(uri.index(c) for c in "*?[" if c in uri)
    return uri[: uri.rindex("/", 0, first)]


def _norm(uri: str) -> str:
    """A file's name as both Spark's listing and its reads report it: a local path for file
    URIs (file:/a and file:///a alike), scheme://host/path otherwise, unquoted."""
    parsed = urlparse(uri)
    if parsed.scheme in ("file", ""):
        return unquote(parsed.path)
    return f"{parsed.scheme}://{parsed.netloc}{unquote(parsed.path)}"


def _names(source: Source) -> list[str]:
    """What Spark reads for each of the source's files: its URI, or its absolute local path."""
    if source.remote is not None:
        return list(source.remote.files)
    return [str(p.resolve()) for p in source.files]


def _read(spark: Any, source: Source, fmt: Format) -> Any:
    """The source's files as a DataFrame; Hive partition keys under a folder or glob root
    become columns."""
    reader = spark.read
    if source.remote is not None:
        if source.remote.base is not None:
            reader = reader.option("basePath", source.remote.base)
    elif source.path.is_dir() or is_glob(source.path):
        root = source.path if source.path.is_dir() else glob_root(source.path)
        reader = reader.option("basePath", str(root.resolve()))
    paths = _names(source)
    if fmt.id == "parquet":
        return reader.parquet(*paths)
    csv = reader.options(header=True, mode="FAILFAST", quote='"', escape='"', comment=None)
    return csv.csv(paths)


def _column(name: str) -> str:
    """A column name as a Spark SQL identifier."""
    return "`" + name.replace("`", "``") + "`"


def _time_expr(df: Any, column: str, unit: str) -> tuple[str, bool]:
    """Spark SQL for a timestamp column in seconds, and whether it is numeric (as DuckDB reads
    it: numbers in `unit`, date-times as epoch seconds)."""
    dtype = dict(df.dtypes)[column]
    col = _column(column)
    numeric = dtype != "string" and not dtype.startswith(("timestamp", "date"))
    if dtype == "string":
        first = df.where(f"trim({col}) <> ''").select(col).first()
        numeric = first is not None and _is_number(first[0])
    if numeric:
        return f"CAST({col} AS DOUBLE) / {number(TIME_UNITS[unit])}", True
    if unit != "s":
        raise PlannerError(
            f"column {column!r} holds date-times; --time-unit applies to numeric timestamps only"
        )
    return f"CAST(unix_micros(CAST({col} AS TIMESTAMP)) AS DOUBLE) / {number(1e6)}", False


def _is_number(text: str) -> bool:
    """Whether a text value reads as a number."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _aggregate(
    spark: Any, source: Source, fmt: Format, mapping: dict[str, str], unit: str, agg: Aggregation
) -> Aggregates:
    """Read, check and aggregate the source in `spark`."""
    df = _read(spark, source, fmt)
    missing = [c for c in mapping.values() if c not in df.columns]
    if missing:
        raise PlannerError(
            f"{source.path}: column {missing[0]!r} missing for format {fmt.id} --map; found: "
            f"{', '.join(df.columns)}"
        )
    df.createOrReplaceTempView("planner_source")
    ts, numeric = _time_expr(df, mapping["ts"], unit)
    given = {
        "input_tokens": (("input",), "DOUBLE"),  # checked whole before aggregation
        "output_tokens": (("output",), "DOUBLE"),
        "series": (("model", "series"), "STRING"),
        "ok": (("ok",), "BOOLEAN"),
    }
    exprs = []
    for name, (keys, dtype) in given.items():
        key = next((k for k in keys if k in mapping), None)
        expr = f"CAST({_column(mapping[key])} AS {dtype})" if key else "NULL"
        exprs.append(f"{expr} AS {name}")
    select = ", ".join(exprs)
    spark.sql(
        f"CREATE OR REPLACE TEMP VIEW planner_rows AS SELECT {ts} AS t, {select}, "
        "input_file_name() AS file FROM planner_source"
    )
    lo, hi, files = _check(spark, source)
    warnings = time_unit_warnings(str(source.path), mapping["ts"], unit, lo, hi) if numeric else []
    spark.sql(
        "CREATE OR REPLACE TEMP VIEW planner_canonical AS "
        + canonical_sql(
            "SELECT t, series, input_tokens, output_tokens, ok FROM planner_rows", lo or 0.0
        )
    )
    windows = _collect(spark, windows_sql("planner_canonical", agg))
    lengths = _collect(spark, lengths_sql("planner_canonical", agg))
    return Aggregates(
        rate_windows_table(windows, agg), length_dists_table(lengths, agg), None, warnings, files
    )


_BAD = {
    "t IS NULL": "no timestamp (an empty or unreadable value)",
    "isnan(t) OR abs(t) = double('Infinity')": "timestamp is not a finite number; NaN and inf "
    "refused",
    **{
        test.format(c=c): what.format(c=c)
        for c in ("input_tokens", "output_tokens")
        for test, what in (
            ("isnan({c}) OR abs({c}) = double('Infinity')", "value in {c} is not a finite number"),
            ("{c} < 0", "negative value in {c}; counts must be >= 0"),
            ("{c} <> floor({c})", "value in {c} is not a whole number"),
            (f"{{c}} > {MAX_TOKENS}", f"value in {{c}} is too large; at most {MAX_TOKENS}"),
        )
    },
}


def _check(spark: Any, source: Source) -> tuple[float | None, float | None, dict[str, int]]:
    """Refuse bad values (naming the first file holding one) and files without rows; return the
    smallest and largest time and the rows of each file."""
    counts = ", ".join(f"count_if({test}) AS c{i}" for i, test in enumerate(_BAD))
    row = spark.sql(f"SELECT min(t), max(t), {counts} FROM planner_rows").first()
    for i, (test, what) in enumerate(_BAD.items()):
        if row[2 + i]:
            where = spark.sql(f"SELECT min(file) FROM planner_rows WHERE {test}").first()[0]
            raise PlannerError(f"{_named(source, where)}: {what} ({row[2 + i]} row(s))")
    per_file = spark.sql("SELECT file, count(*) AS n FROM planner_rows GROUP BY file").collect()
    counts = {_norm(r["file"]): int(r["n"]) for r in per_file}
    files = {
        str(p): counts.get(_norm(name), 0)
        for p, name in zip(source.files, _names(source), strict=True)
    }
    refuse_empty_files(source, files)
    if not any(files.values()):
        raise PlannerError(f"{source.path}: no data rows (only a header?)")
    return row[0], row[1], files if len(source.files) > 1 else {}


def _named(source: Source, uri: str) -> str:
    """The file a Spark file URI names, as the user gave it."""
    names = zip(source.files, _names(source), strict=True)
    return next((str(p) for p, name in names if _norm(name) == _norm(uri)), _norm(uri))


def _collect(spark: Any, sql: str) -> dict[str, np.ndarray]:
    """A (small) aggregate query's result as numpy columns."""
    table = spark.sql(sql).toArrow()
    return {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}
