"""Mutation fuzzing of the trace readers: real samples, deterministic mutations, one invariant.

One definition shared by ``tests/test_fuzz.py`` (a few hundred inputs in every test run) and
``bench/fuzz.py`` (10,000 or more per reader family).

For each reader family a small sample is cut from real data (a few dozen lines of the embedded
Azure LLM trace or of a file under ``../shared/data``; the BurstGPT and Huawei families, whose
data is not on these machines, are written to their documented schema, BurstGPT from real Azure
requests). `make_case` turns (family, seed, index) into one mutated input on disk: content
mutations (truncation, byte flips, line duplication / deletion / reordering, column swap /
duplication / rename / loss, header loss, wrong types, NaN / inf / negative / huge numbers,
bad UTF-8, UTF-16, BOM, NUL, over-long fields, deeply nested JSON, wrong JSON types, PMFs that
do not sum to 1 or hold negative mass) and then a wrapper (gzip, zip with several methods, tar,
tar.gz, xz, bz2, zstd), itself sometimes corrupted (truncated, flipped, an encrypted member, an
unsupported zip method, a wrong extension, unsafe member paths). Everything is derived from
``random.Random(f"{family}:{seed}:{index}")``, so a case is reproducible from its three keys.

`Fuzzer.run` feeds a case to ``planner.ingest.ingest_path`` (the API ``planner ingest`` calls)
and classifies the outcome; the invariant is that every input either

- ingests, and the stored rows are semantically valid (finite timestamps and spans, finite and
  non-negative token counts, durations, rates and counts, PMFs with no negative mass summing to
  1, the trace's row count equal to the rows stored and, where it can be counted, to the data
  lines of the file), or
- raises ``PlannerError`` with a one-line message that names the file, leaving the store exactly
  as before (the same `traces` rows and data-table counts, no transaction left open).

Anything else (another exception, a store change, an invalid accepted input, a multi-line or
anonymous error) is a failure, recorded with the case's keys so it can be replayed.
"""

from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import io
import json
import lzma
import math
import random
import shutil
import struct
import tarfile
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from planner.errors import PlannerError
from planner.ingest import ingest_path, remove_trace, sample_path
from planner.store import DATA_TABLES, open_store

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TRACES = SHARED_DATA / "traces"
SAMPLE_ROWS = 30
BASE = "base"
PMF_TOLERANCE = 1e-6
OUTCOMES = ("accepted", "refused", "uncaught", "store-changed", "invalid", "bad-message")


class Unavailable(Exception):
    """The real data a family's sample is cut from is not on this machine."""


@dataclass
class Sample:
    """A family's unmutated input: member name -> plain bytes, and how it is packaged.

    `packaging` is "file" (one member, written as `root`), "folder" (members under the folder
    `root`) or "tar.gz" (members in the archive `root`).
    """

    root: str
    members: dict[str, bytes]
    packaging: str = "file"


@dataclass(frozen=True)
class Family:
    """One reader family: its format, the sample it mutates and what its members hold."""

    id: str
    fmt: str
    table: str
    origin: str
    build: Callable[[], Sample]
    mapping: tuple[tuple[str, str], ...] = ()
    numeric: tuple[str, ...] = ()
    count_rows: bool = True


@dataclass
class Case:
    """One fuzzed input and the ingest arguments the CLI would pass for it."""

    family: str
    seed: int
    index: int
    path: Path
    fmt: str | None
    name: str | None
    replace: bool
    mapping: dict[str, str]
    time_unit: str | None
    mutations: list[str]
    expected_rows: int | None

    @property
    def key(self) -> str:
        """How to replay it: family:seed:index."""
        return f"{self.family}:{self.seed}:{self.index}"

    def cli_args(self, db: Path) -> list[str]:
        """The `planner ingest` arguments for this case."""
        args = [str(self.path), "--db", str(db)]
        if self.fmt:
            args += ["--format", self.fmt]
        if self.name:
            args += ["--name", self.name]
        if self.replace:
            args.append("--replace")
        if self.mapping:
            args += ["--map", ",".join(f"{k}={v}" for k, v in self.mapping.items())]
        if self.time_unit:
            args += ["--time-unit", self.time_unit]
        return args


@dataclass
class Outcome:
    """How one case went: one of OUTCOMES, with the message or the reason it failed."""

    kind: str
    detail: str
    case: Case | None = None


# --- samples ----------------------------------------------------------------------------------
def _shared(*parts: str) -> Path:
    path = TRACES.joinpath(*parts)
    if not path.exists():
        raise Unavailable(f"shared data not available: {path}")
    return path


def _head(data: bytes, lines: int) -> bytes:
    """The first `lines` lines of text, newline-terminated."""
    return b"".join(data.splitlines(keepends=True)[:lines])


@functools.cache
def _azure_llm_rows(kind: str = "code") -> list[tuple[str, int, int]]:
    """The first SAMPLE_ROWS requests of an embedded Azure LLM 2023 trace."""
    with gzip.open(sample_path(f"azure-{kind}"), "rt") as fh:
        lines = [next(fh) for _ in range(SAMPLE_ROWS + 1)][1:]
    rows = []
    for line in lines:
        ts, ctx, gen = line.strip().split(",")
        rows.append((ts, int(ctx), int(gen)))
    return rows


def _epoch(ts: str) -> float:
    from datetime import UTC, datetime

    whole, _, frac = ts.partition(".")
    dt = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return dt.timestamp() + float("0." + (frac or "0"))


def _azure_llm() -> Sample:
    with gzip.open(sample_path("azure-code"), "rb") as fh:
        data = _head(fh.read(1 << 16), SAMPLE_ROWS + 1)
    return Sample("AzureLLMInferenceTrace_code.csv", {"AzureLLMInferenceTrace_code.csv": data})


def _burstgpt() -> Sample:
    # BurstGPT's layout (release assets only, not on these machines) filled with real Azure
    # requests: code requests as GPT-4 API calls, conv requests as ChatGPT conversations.
    rows = sorted(
        [(_epoch(t), i, o, "GPT-4", "API log") for t, i, o in _azure_llm_rows("code")[:15]]
        + [(_epoch(t), i, o, "ChatGPT", "Conversation log") for t, i, o in _azure_llm_rows("conv")]
    )[:SAMPLE_ROWS]
    start = rows[0][0]
    lines = [
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type,Session ID,"
        "Elapsed time"
    ]
    for n, (t, i, o, model, log) in enumerate(rows):
        lines.append(f"{t - start:.3f},{model},{i},{o},{i + o},{log},s{n % 7},{0.02 * o + 0.3:.3f}")
    return Sample("BurstGPT_1.csv", {"BurstGPT_1.csv": ("\n".join(lines) + "\n").encode()})


def _mooncake() -> Sample:
    data = _shared("mooncake_fast25", "synthetic_trace.jsonl").read_bytes()
    return Sample("synthetic_trace.jsonl", {"synthetic_trace.jsonl": _head(data, SAMPLE_ROWS)})


def _azure_functions() -> Sample:
    data = _shared("azure_functions_2021_sample", "Azure2021_200.csv").read_bytes()
    return Sample("Azure2021_200.csv", {"Azure2021_200.csv": _head(data, SAMPLE_ROWS + 1)})


def _servegen() -> Sample:
    folder = _shared("alibaba_servegen", "data", "language", "m-large")
    members = {
        "chunk-0-trace.csv": _head((folder / "chunk-0-trace.csv").read_bytes(), SAMPLE_ROWS),
        "chunk-1-trace.csv": _head((folder / "chunk-1-trace.csv").read_bytes(), 10),
    }
    with gzip.open(folder / "chunk-0-dataset.json.gz", "rt") as fh:
        doc = json.load(fh)
    small = dict(list(doc.items())[:2])
    members["chunk-0-dataset.json.gz"] = gzip.compress(json.dumps(small).encode(), mtime=0)
    return Sample("m-large", members, "folder")


def _gentd26_load() -> Sample:
    path = _shared("alibaba_gentd26", "basemodel_update_latency_anon.tar.gz")
    with tarfile.open(path) as tar:
        member = next(m for m in tar.getmembers() if m.isfile())
        fh = tar.extractfile(member)
        assert fh is not None
        data = _head(fh.read(1 << 16), SAMPLE_ROWS + 1)
    return Sample(
        "basemodel_update_latency_anon.tar.gz",
        {"basemodel_update_latency_anon.csv": data},
        "tar.gz",
    )


def _gentd26_requests() -> Sample:
    data = _shared("alibaba_gentd26", "lora_request_trace.csv").read_bytes()[: 1 << 16]
    return Sample(
        "lora_request_trace.csv", {"lora_request_trace.csv": _head(data, SAMPLE_ROWS + 1)}
    )


# The Huawei 2025 / 2023 releases are hosted outside GitHub (not on these machines); these
# samples follow the column reference in ../shared/data/formats/huawei_2025.md.
def _huawei_coldstart() -> Sample:
    rng = random.Random("huawei-coldstart")
    lines = [
        "day,time,clusterName,funcName,userID,requestID,totalCost_cold_start,podAllocationCost,"
        "deployCodeCost,deployDependencyCost,schedulingCost,podID"
    ]
    t = 0.0
    for _ in range(SAMPLE_ROWS):
        t += rng.expovariate(1 / 40)
        parts = [rng.uniform(0, 0.05), rng.uniform(0, 0.1), rng.uniform(0, 2), rng.uniform(0, 3)]
        pool = rng.choice(["pool22-300-128", "pool24-600-512", "pool35-6600-8192"])
        lines.append(
            f"{int(t // 86400)},{t:.3f},{rng.randint(1, 4)},{rng.randint(1, 400)},"
            f"{rng.randint(1, 500)},{rng.getrandbits(32):08x},{sum(parts):.6f},"
            + ",".join(f"{p:.6f}" for p in parts)
            + f",{pool}-{rng.randint(0, 10**9):010d}"
        )
    return Sample("R1_coldstart.csv", {"R1_coldstart.csv": ("\n".join(lines) + "\n").encode()})


def _huawei_requests() -> Sample:
    rng = random.Random("huawei-requests")
    lines = [
        "time_worker,time_frontend,requestID,clusterName,funcName,podID,userID,totalCost_worker,"
        "workerCost,runtimeCost,totalCost_frontend,frontendCost,busCost,readBodyCost,"
        "writeRspCost,cpu_usage,memory_usage,requestBodySize"
    ]
    t = 2592000.0
    for _ in range(SAMPLE_ROWS):
        t += rng.expovariate(2)
        worker = rng.uniform(0.001, 0.5)
        lines.append(
            f"{t + 0.001:.3f},{t:.3f},{rng.getrandbits(32):08x},{rng.randint(1, 4)},"
            f"{rng.randint(1, 400)},pool22-300-128-{rng.randint(0, 10**9):010d},"
            f"{rng.randint(1, 500)},{worker:.6f},{worker / 3:.6f},{worker / 2:.6f},"
            f"{worker + 0.003:.6f},0.000364,0.001994,0.000016,0.000006,{rng.random():.6f},"
            f"{rng.uniform(10, 200):.6f},{rng.randint(0, 4096)}"
        )
    return Sample("R2_requests.csv", {"R2_requests.csv": ("\n".join(lines) + "\n").encode()})


def _huawei_series() -> Sample:
    rng = random.Random("huawei-series")
    lines = ["funcID,time,requests,num_cold_starts,num_pods,busCost_avg"]
    funcs = ["400---418---pool22-300-128", "12---7---pool24-600-512"]
    for minute in range(SAMPLE_ROWS // 2):
        for func in funcs:
            n = rng.randint(0, 90)
            lines.append(
                f"{func},{minute * 60},{n},{rng.randint(0, 2)},{rng.randint(1, 4)},"
                f"{rng.uniform(0, 0.01):.6f}"
            )
    return Sample("R2_series.csv", {"R2_series.csv": ("\n".join(lines) + "\n").encode()})


def _huawei_wide() -> Sample:
    rng = random.Random("huawei-wide")
    lines = ["day,time,0,1,2,3,17"]
    for minute in range(SAMPLE_ROWS):
        cells = [str(rng.randint(0, 50)) if rng.random() < 0.7 else "" for _ in range(5)]
        lines.append(f"0,{minute * 60}," + ",".join(cells))
    return Sample("day_00.csv", {"day_00.csv": ("\n".join(lines) + "\n").encode()})


def _generic_csv() -> Sample:
    lines = ["time,prompt,completion,svc"]
    rows = _azure_llm_rows("conv")
    for t, i, o in rows:
        lines.append(f"{_epoch(t):.4f},{i},{o},conv")
    return Sample("requests.csv", {"requests.csv": ("\n".join(lines) + "\n").encode()})


def _parquet_table() -> pa.Table:
    rows = _azure_llm_rows("code")
    return pa.table(
        {
            "TIMESTAMP": pa.array([r[0] for r in rows], pa.string()),
            "ContextTokens": pa.array([r[1] for r in rows], pa.int64()),
            "GeneratedTokens": pa.array([r[2] for r in rows], pa.int64()),
            "model": pa.array(["code"] * len(rows), pa.string()),
        }
    )


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _generic_parquet() -> Sample:
    return Sample("requests.parquet", {"requests.parquet": _parquet_bytes(_parquet_table())})


FAMILIES: dict[str, Family] = {
    f.id: f
    for f in [
        Family(
            "azure-llm",
            "azure-llm",
            "requests",
            "embedded Azure LLM 2023 code trace",
            _azure_llm,
            numeric=("ContextTokens", "GeneratedTokens"),
        ),
        Family(
            "azure-functions",
            "azure-functions",
            "requests",
            "shared azure_functions_2021_sample",
            _azure_functions,
            numeric=("end_timestamp", "duration"),
        ),
        Family(
            "burstgpt",
            "burstgpt",
            "requests",
            "BurstGPT layout filled with embedded Azure LLM requests",
            _burstgpt,
            numeric=("Timestamp", "Request tokens", "Response tokens", "Elapsed time"),
        ),
        Family(
            "mooncake",
            "mooncake",
            "requests",
            "shared mooncake_fast25 JSONL",
            _mooncake,
        ),
        Family(
            "servegen",
            "servegen",
            "rate_windows",
            "shared alibaba_servegen m-large (2 clients, one dataset file)",
            _servegen,
        ),
        Family(
            "gentd26-load",
            "gentd26-load",
            "cold_starts",
            "shared alibaba_gentd26 basemodel load latencies",
            _gentd26_load,
            numeric=("timestamp_anon", "value"),
        ),
        Family(
            "gentd26-requests",
            "gentd26-requests",
            "requests",
            "shared alibaba_gentd26 LoRA request trace",
            _gentd26_requests,
            numeric=("exec_time_seconds",),
        ),
        Family(
            "huawei-coldstart",
            "huawei-coldstart",
            "cold_starts",
            "Huawei 2025 cold-start schema (documented columns)",
            _huawei_coldstart,
            numeric=("time", "totalCost_cold_start", "podAllocationCost", "schedulingCost"),
        ),
        Family(
            "huawei-requests",
            "huawei-requests",
            "requests",
            "Huawei 2025 request-table schema (documented columns)",
            _huawei_requests,
            numeric=("time_frontend", "totalCost_frontend"),
        ),
        Family(
            "huawei-series",
            "huawei-series",
            "rate_windows",
            "Huawei 2025 per-function per-minute series schema",
            _huawei_series,
            numeric=("time", "requests", "num_cold_starts", "num_pods"),
        ),
        Family(
            "huawei-wide",
            "huawei-series",
            "rate_windows",
            "Huawei 2023 wide per-function counts schema",
            _huawei_wide,
            numeric=("time", "0", "1", "2", "3", "17"),
            count_rows=False,
        ),
        Family(
            "csv",
            "csv",
            "requests",
            "embedded Azure LLM 2023 conv trace as epoch-second CSV, --map",
            _generic_csv,
            mapping=(
                ("ts", "time"),
                ("input", "prompt"),
                ("output", "completion"),
                ("model", "svc"),
            ),
            numeric=("time", "prompt", "completion"),
        ),
        Family(
            "parquet",
            "parquet",
            "requests",
            "embedded Azure LLM 2023 code trace as Parquet, --map",
            _generic_parquet,
            mapping=(
                ("ts", "TIMESTAMP"),
                ("input", "ContextTokens"),
                ("output", "GeneratedTokens"),
            ),
        ),
    ]
}


# --- content mutations ------------------------------------------------------------------------
BAD_VALUES = [
    "abc", "", " ", "true", "1,5", "0x1F", "1e", "--1", "１２", "null", "NULL", "None", "[1]",
    "{}", "2023-13-45 25:61:61", "1.2.3", "١٢", "+", ".", "e5", "1_000",
]  # fmt: skip
SPECIAL_NUMBERS = [
    "NaN", "nan", "inf", "-inf", "Infinity", "-Infinity", "+inf", "-1", "-0.5", "-1e-300",
    "1e308", "1e309", "-1e309", "9223372036854775808", "99999999999999999999", "1e-320",
    "-0", "2147483648", "-9223372036854775809", "1e30", "-1e30",
]  # fmt: skip
JSON_SPECIALS = [
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "-1", "-0.5", "1e30", "-1e30",
    "99999999999999999999", "9223372036854775808", '"12"', '"abc"', "null", "true", "[]", "{}",
    '""', "[1, 2]", '{"a": 1}', "0.5", "-0",
]  # fmt: skip


@dataclass
class _Text:
    """What a content mutation knows about the member it edits."""

    header: bool
    numeric: list[int]
    json_lines: bool = False


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _data_rows(lines: list[bytes], info: _Text) -> list[int]:
    start = 1 if info.header else 0
    return [i for i in range(start, len(lines)) if lines[i].strip()]


def _truncate(rng: random.Random, data: bytes, info: _Text) -> bytes:
    return data[: rng.randrange(len(data) + 1)] if data else data


def _flip(rng: random.Random, data: bytes, info: _Text) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(out))
        out[i] ^= rng.choice([1, 2, 4, 8, 16, 32, 64, 128, rng.randint(1, 255)])
    return bytes(out)


def _set_byte(rng: random.Random, data: bytes, info: _Text) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    i = rng.randrange(len(out))
    out[i] = ord(rng.choice(",\"\n\r#;\t \\'0-.e{}[]:"))
    return bytes(out)


def _dup_line(rng: random.Random, data: bytes, info: _Text) -> bytes:
    lines = _lines(data)
    i = rng.randrange(len(lines))
    return b"\n".join(lines[: i + 1] + [lines[i]] * rng.randint(1, 3) + lines[i + 1 :])


def _del_line(rng: random.Random, data: bytes, info: _Text) -> bytes:
    lines = _lines(data)
    if len(lines) > 1:
        del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def _swap_lines(rng: random.Random, data: bytes, info: _Text) -> bytes:
    lines = _lines(data)
    rows = _data_rows(lines, info)
    if len(rows) >= 2:
        a, b = rng.sample(rows, 2)
        lines[a], lines[b] = lines[b], lines[a]
    return b"\n".join(lines)


def _reverse_rows(rng: random.Random, data: bytes, info: _Text) -> bytes:
    lines = _lines(data)
    rows = _data_rows(lines, info)
    for i, j in zip(rows, reversed(rows), strict=True):
        if i >= j:
            break
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def _header_loss(rng: random.Random, data: bytes, info: _Text) -> bytes:
    return b"\n".join(_lines(data)[1:])


def _header_only(rng: random.Random, data: bytes, info: _Text) -> bytes:
    return _lines(data)[0] + b"\n"


def _empty(rng: random.Random, data: bytes, info: _Text) -> bytes:
    return rng.choice([b"", b"\n", b"\n\n  \n", b"\xef\xbb\xbf", b"\x00"])


def _columns(rng: random.Random, data: bytes, info: _Text, op: str) -> bytes:
    lines = _lines(data)
    width = len(lines[0].split(b","))
    if width < 2 or info.json_lines:
        return data
    a, b = rng.sample(range(width), 2)
    name = rng.choice([b"x", b"Timestamp", b"time", b"value", b"", b"ts ", b'"q"', b"\xff"])
    data_only = op == "swap" and rng.random() < 0.5
    out = []
    for n, line in enumerate(lines):
        cells = line.split(b",")
        if len(cells) != width:
            out.append(line)
            continue
        if op == "swap" and not (data_only and n == 0 and info.header):
            cells[a], cells[b] = cells[b], cells[a]
        elif op == "dup":
            cells.insert(b, cells[a])
        elif op == "drop":
            del cells[a]
        elif op == "rename" and n == 0:
            cells[a] = name
        elif op == "rename-dup" and n == 0:
            cells[a] = cells[b]
        out.append(b",".join(cells))
    return b"\n".join(out)


def _col_swap(rng: random.Random, data: bytes, info: _Text) -> bytes:
    return _columns(rng, data, info, "swap")


def _col_dup(rng: random.Random, data: bytes, info: _Text) -> bytes:
    return _columns(rng, data, info, "dup")


def _col_drop(rng: random.Random, data: bytes, info: _Text) -> bytes:
    return _columns(rng, data, info, "drop")


def _col_rename(rng: random.Random, data: bytes, info: _Text) -> bytes:
    return _columns(rng, data, info, rng.choice(["rename", "rename-dup"]))


def _cells(rng: random.Random, data: bytes, info: _Text, values: list[str], numeric: bool) -> bytes:
    lines = _lines(data)
    rows = _data_rows(lines, info)
    if not rows or info.json_lines:
        return data
    for _ in range(rng.randint(1, 3)):
        i = rng.choice(rows)
        cells = lines[i].split(b",")
        cols = [c for c in info.numeric if c < len(cells)] if numeric else []
        j = rng.choice(cols or range(len(cells)))
        cells[j] = rng.choice(values).encode()
        lines[i] = b",".join(cells)
    return b"\n".join(lines)


def _wrong_type(rng: random.Random, data: bytes, info: _Text) -> bytes:
    return _cells(rng, data, info, BAD_VALUES, numeric=rng.random() < 0.7)


def _special_number(rng: random.Random, data: bytes, info: _Text) -> bytes:
    return _cells(rng, data, info, SPECIAL_NUMBERS, numeric=True)


def _ragged(rng: random.Random, data: bytes, info: _Text) -> bytes:
    lines = _lines(data)
    rows = _data_rows(lines, info)
    if rows:
        i = rng.choice(rows)
        if rng.random() < 0.5:
            lines[i] += b",extra"
        else:
            lines[i] = lines[i].rsplit(b",", 1)[0]
    return b"\n".join(lines)


def _blank_lines(rng: random.Random, data: bytes, info: _Text) -> bytes:
    lines = _lines(data)
    i = rng.randrange(len(lines) + 1)
    lines.insert(i, rng.choice([b"", b"  ", b"\t", b",", b",,,", b"\r"]))
    return b"\n".join(lines)


def _crlf(rng: random.Random, data: bytes, info: _Text) -> bytes:
    if rng.random() < 0.5:
        return data.replace(b"\n", b"\r\n")
    return data.replace(b"\n", b"\r")


def _bom(rng: random.Random, data: bytes, info: _Text) -> bytes:
    return b"\xef\xbb\xbf" + data


def _utf16(rng: random.Random, data: bytes, info: _Text) -> bytes:
    text = data.decode("utf-8", errors="replace")
    return text.encode(rng.choice(["utf-16", "utf-16-le", "utf-16-be", "utf-32"]))


def _bad_utf8(rng: random.Random, data: bytes, info: _Text) -> bytes:
    junk = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe9", b"\x80\x80", b"\xf8\x88"])
    i = rng.randrange(len(data) + 1) if data else 0
    return data[:i] + junk + data[i:]


def _nul(rng: random.Random, data: bytes, info: _Text) -> bytes:
    i = rng.randrange(len(data) + 1) if data else 0
    return data[:i] + b"\x00" * rng.randint(1, 3) + data[i:]


def _long_field(rng: random.Random, data: bytes, info: _Text) -> bytes:
    lines = _lines(data)
    i = 0 if rng.random() < 0.4 else rng.randrange(len(lines))
    blob = rng.choice([b"9", b"a", b"[", b" "]) * rng.choice([140_000, 300_000, 2_100_000])
    lines[i] = lines[i] + (b"" if info.json_lines and i else b",") + blob
    return b"\n".join(lines)


def _quote(rng: random.Random, data: bytes, info: _Text) -> bytes:
    i = rng.randrange(len(data) + 1) if data else 0
    return data[:i] + rng.choice([b'"', b'""', b'"x"', b"'"]) + data[i:]


def _comment(rng: random.Random, data: bytes, info: _Text) -> bytes:
    lines = _lines(data)
    rows = _data_rows(lines, info)
    if rows:
        i = rng.choice(rows)
        lines[i] = rng.choice([b"#", b"//", b"--", b";"]) + lines[i]
    return b"\n".join(lines)


def _delimiter(rng: random.Random, data: bytes, info: _Text) -> bytes:
    new = rng.choice([b";", b"\t", b"|", b", "])
    if rng.random() < 0.5:
        return data.replace(b",", new)
    lines = _lines(data)
    i = rng.randrange(len(lines))
    lines[i] = lines[i].replace(b",", new)
    return b"\n".join(lines)


def _deep_nest(rng: random.Random, data: bytes, info: _Text) -> bytes:
    depth = rng.choice([200, 1_000, 5_000, 100_000])
    blob = rng.choice([b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth])
    lines = _lines(data)
    rows = _data_rows(lines, info) or [0]
    i = 0 if rng.random() < 0.5 else rng.choice(rows)
    if info.json_lines and rng.random() < 0.6:
        key = rng.choice([b'"timestamp"', b'"input_length"', b'"hash_ids"', b'"output_length"'])
        head, sep, tail = lines[i].partition(key + b": ")
        if sep:
            value_end = min((p for p in (tail.find(b","), tail.find(b"}")) if p >= 0), default=0)
            if tail.startswith(b"["):
                value_end = tail.find(b"]") + 1
            lines[i] = head + sep + blob + tail[value_end:]
            return b"\n".join(lines)
    lines[i] = blob
    return b"\n".join(lines)


def _json_value(rng: random.Random, data: bytes, info: _Text) -> bytes:
    """Replace one key's value (or drop / rename / duplicate the key) in one JSON line."""
    lines = _lines(data)
    rows = _data_rows(lines, info)
    if not rows:
        return data
    i = rows[0] if rng.random() < 0.4 else rng.choice(rows)
    try:
        obj = json.loads(lines[i])
    except (ValueError, RecursionError):
        return data
    if not isinstance(obj, dict) or not obj:
        return data
    key = rng.choice(list(obj))
    op = rng.random()
    parts = []
    for k, v in obj.items():
        text = json.dumps(v)
        if k == key:
            if op < 0.6:
                text = rng.choice(JSON_SPECIALS)
                if k == "hash_ids" and rng.random() < 0.5:
                    text = rng.choice(["[-1]", "[1.5]", '["x"]', "[[1]]", "[1e30]", "[null]", "1"])
            elif op < 0.75:
                continue
            elif op < 0.9:
                k = rng.choice(["Timestamp", "ts", "", key.upper(), key + " "])
            else:
                parts.append(f"{json.dumps(k)}: {rng.choice(JSON_SPECIALS)}")
        parts.append(f"{json.dumps(k)}: {text}")
    lines[i] = ("{" + ", ".join(parts) + "}").encode()
    return b"\n".join(lines)


def _json_line_type(rng: random.Random, data: bytes, info: _Text) -> bytes:
    lines = _lines(data)
    rows = _data_rows(lines, info) or [0]
    i = rows[0] if rng.random() < 0.4 else rng.choice(rows)
    lines[i] = rng.choice([b"[1, 2, 3]", b"null", b"42", b'"text"', b"{}", b"{", b"}", b"[]"])
    return b"\n".join(lines)


Mutation = Callable[[random.Random, bytes, _Text], bytes]
TEXT_MUTATIONS: list[tuple[str, float, Mutation]] = [
    ("truncate", 1.0, _truncate),
    ("flip", 1.5, _flip),
    ("set-byte", 1.0, _set_byte),
    ("dup-line", 1.0, _dup_line),
    ("del-line", 1.0, _del_line),
    ("swap-lines", 0.7, _swap_lines),
    ("reverse-rows", 0.5, _reverse_rows),
    ("header-loss", 0.6, _header_loss),
    ("header-only", 0.3, _header_only),
    ("empty", 0.3, _empty),
    ("col-swap", 0.8, _col_swap),
    ("col-dup", 0.6, _col_dup),
    ("col-drop", 0.6, _col_drop),
    ("col-rename", 0.6, _col_rename),
    ("wrong-type", 1.5, _wrong_type),
    ("special-number", 2.5, _special_number),
    ("ragged", 0.6, _ragged),
    ("blank-lines", 0.5, _blank_lines),
    ("crlf", 0.4, _crlf),
    ("bom", 0.3, _bom),
    ("utf16", 0.4, _utf16),
    ("bad-utf8", 0.8, _bad_utf8),
    ("nul", 0.3, _nul),
    ("long-field", 0.3, _long_field),
    ("quote", 0.5, _quote),
    ("comment", 0.4, _comment),
    ("delimiter", 0.4, _delimiter),
]
JSONL_MUTATIONS: list[tuple[str, float, Mutation]] = [
    m for m in TEXT_MUTATIONS if m[0] not in {"col-swap", "col-dup", "col-drop", "col-rename"}
] + [
    ("json-value", 4.0, _json_value),
    ("json-line-type", 0.8, _json_line_type),
    ("deep-nest", 1.0, _deep_nest),
]


def _pick(rng: random.Random, table: list[tuple[str, float, Mutation]]) -> tuple[str, Mutation]:
    name, _, fn = rng.choices(table, weights=[w for _, w, _ in table])[0]
    return name, fn


def _mutate_text(
    rng: random.Random, data: bytes, info: _Text, table: list[tuple[str, float, Mutation]]
) -> tuple[bytes, list[str]]:
    names = []
    for _ in range(rng.choices([1, 2, 3], weights=[6, 3, 1])[0]):
        name, fn = _pick(rng, table)
        data = fn(rng, data, info)
        names.append(name)
    return data, names


# --- ServeGen dataset (PMF) mutations ---------------------------------------------------------
def _pmf_text(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"


def _pmf_pairs(text: str) -> list[tuple[str, str]]:
    """(support, probability) texts of a PMF string; [] when it is empty or already garbled."""
    body = text.strip().strip("{}")
    parts = [p.split(":", 1) for p in body.split(",")] if body.strip() else []
    if any(len(p) != 2 for p in parts):
        return []
    return [(k.strip(), v.strip()) for k, v in parts]


def _mutate_dataset(rng: random.Random, doc: dict) -> tuple[object, str]:
    """One semantic edit of a ServeGen dataset document (window -> kind -> PMF string)."""
    if not isinstance(doc, dict) or not doc:
        return doc, "noop"
    start = rng.choice(list(doc))
    window = doc[start]
    if not isinstance(window, dict):
        return doc, "noop"
    kinds = [k for k, v in window.items() if isinstance(v, str) and _pmf_pairs(v)]
    op = rng.choice(
        [
            "scale", "negative-mass", "nonfinite-prob", "token-negative", "token-fraction",
            "token-huge", "garbage-pmf", "empty-pmf", "window-key", "window-type", "pmf-type",
            "top-type", "deep", "drop-entry", "dup-entry",
        ]
    )  # fmt: skip
    if op in {"scale", "negative-mass", "nonfinite-prob", "token-negative", "token-fraction",
              "token-huge", "drop-entry", "dup-entry"} and kinds:  # fmt: skip
        kind = rng.choice(kinds)
        pairs = _pmf_pairs(window[kind])
        i = rng.randrange(len(pairs))
        k, v = pairs[i]
        if op == "scale":
            f = rng.choice([0.5, 0.9, 0.999, 1.01, 2.0, 0.0])
            pairs = [(a, repr(float(b) * f)) for a, b in pairs]
        elif op == "negative-mass":
            p = float(v)
            pairs[i] = (k, repr(-abs(p) - 0.01))
            if len(pairs) > 1:
                j = (i + 1) % len(pairs)
                pairs[j] = (pairs[j][0], repr(float(pairs[j][1]) + 2 * abs(p) + 0.02))
        elif op == "nonfinite-prob":
            pairs[i] = (k, rng.choice(["nan", "inf", "-inf", "NaN", "1e400"]))
        elif op == "token-negative":
            pairs[i] = (rng.choice(["-1", "-224", "-1e9"]), v)
        elif op == "token-fraction":
            pairs[i] = (rng.choice(["1.5", "nan", "inf", "-0.5"]), v)
        elif op == "token-huge":
            pairs[i] = (rng.choice(["3000000000", "1e30", "9223372036854775808", "1e400"]), v)
        elif op == "drop-entry":
            del pairs[i]
        else:
            pairs.insert(i, pairs[i])
        window[kind] = _pmf_text(pairs)
        return doc, f"pmf-{op}"
    if op == "garbage-pmf" and window:
        kind = rng.choice(list(window))
        window[kind] = rng.choice(
            ["{1: }", "abc", "{1: 0.5, 2}", "[1, 2]", "{a: 1.0}", "{1: 1.0,}", "{:}", "{1 2}"]
        )
        return doc, "pmf-garbage"
    if op == "empty-pmf" and window:
        window[rng.choice(list(window))] = rng.choice(["{}", "", " "])
        return doc, "pmf-empty"
    if op == "window-key":
        new = rng.choice(["abc", "nan", "inf", "-inf", "1e400", "", "-600", "0x10", "1_0"])
        doc[new] = doc.pop(start)
        return doc, "window-key"
    if op == "window-type":
        doc[start] = rng.choice(["text", 5, None, [], [1, 2], True])
        return doc, "window-type"
    if op == "pmf-type" and window:
        window[rng.choice(list(window))] = rng.choice([0.5, None, {"1": 1.0}, [1, 2], True, 7])
        return doc, "pmf-type"
    if op == "top-type":
        return rng.choice([[doc], "text", 5, None, [], True]), "top-type"
    if op == "deep":
        depth = rng.choice([500, 5_000, 100_000])
        return {"__deep__": depth}, "deep-nest"
    return doc, "noop"


def _dataset_bytes(rng: random.Random, plain: bytes) -> tuple[bytes, list[str]]:
    doc = json.loads(plain)
    names = []
    for _ in range(rng.choices([1, 2], weights=[4, 1])[0]):
        try:
            doc, name = _mutate_dataset(rng, doc)
        except ValueError:  # a second edit of a PMF the first one made unreadable
            name = "noop"
        names.append(name)
    if isinstance(doc, dict) and "__deep__" in doc:
        depth = doc["__deep__"]
        text = rng.choice(["[" * depth + "]" * depth, '{"0": ' * depth + "{}" + "}" * depth])
        return text.encode(), names
    return json.dumps(doc).encode(), names


# --- Parquet mutations ------------------------------------------------------------------------
def _mutate_table(rng: random.Random, table: pa.Table) -> tuple[pa.Table, str]:
    names = table.column_names
    n = table.num_rows
    op = rng.choice(
        [
            "drop", "rename", "dup", "swap", "tokens-string", "tokens-negative", "tokens-float",
            "tokens-huge", "ts-null", "ts-float", "ts-int", "ts-timestamp", "ts-bool", "ts-list",
            "ts-bad-string", "empty", "tokens-null", "ts-struct",
        ]
    )  # fmt: skip
    col = rng.choice(names)
    i = rng.randrange(max(n, 1))
    if op == "drop":
        return table.drop_columns([col]), "pq-drop"
    if op == "rename":
        new = [rng.choice(["x", "", names[0]]) if c == col else c for c in names]
        return table.rename_columns(new), "pq-rename"
    if op == "dup":
        return pa.Table.from_arrays(
            [*table.columns, table[col]], names=[*names, rng.choice([col, names[0]])]
        ), "pq-dup"
    if op == "swap":
        a, b = rng.sample(names, 2)
        order = [b if c == a else a if c == b else c for c in names]
        return pa.Table.from_arrays([table[c] for c in order], names=names), "pq-swap"
    tokens = rng.choice(["ContextTokens", "GeneratedTokens"])
    values = table[tokens].to_pylist()
    ts = table["TIMESTAMP"].to_pylist()

    def put(name: str, array: pa.Array) -> pa.Table:
        return table.set_column(names.index(name), name, array)

    if op == "tokens-string":
        values = [str(v) for v in values]
        values[i] = rng.choice(BAD_VALUES + SPECIAL_NUMBERS)
        return put(tokens, pa.array(values, pa.string())), op
    if op == "tokens-negative":
        values[i] = rng.choice([-1, -(2**40), -7])
        return put(tokens, pa.array(values, pa.int64())), op
    if op == "tokens-float":
        floats = [None if v is None else float(v) for v in values]  # an earlier mutation nulls
        floats[i] = rng.choice([math.nan, math.inf, -math.inf, 1.5, -0.5, 1e30])
        return put(tokens, pa.array(floats, pa.float64())), op
    if op == "tokens-huge":
        values[i] = rng.choice([2**31, 2**62, 2**40])
        return put(tokens, pa.array(values, pa.int64())), op
    if op == "tokens-null":
        values[i] = None
        return put(tokens, pa.array(values, pa.int64())), op
    if op == "ts-null":
        ts[i] = rng.choice([None, "", " "])
        return put("TIMESTAMP", pa.array(ts, pa.string())), op
    if op == "ts-bad-string":
        ts[i] = rng.choice(BAD_VALUES + SPECIAL_NUMBERS)
        return put("TIMESTAMP", pa.array(ts, pa.string())), op
    seconds = [_epoch(r[0]) for r in _azure_llm_rows("code")][:n] + [1.7e9] * (n - SAMPLE_ROWS)
    if op == "ts-float":
        seconds[i] = rng.choice([math.nan, math.inf, -math.inf, 1e300, -1e300, -1.0])
        return put("TIMESTAMP", pa.array(seconds, pa.float64())), op
    if op == "ts-int":
        return put("TIMESTAMP", pa.array([int(s * 1000) for s in seconds], pa.int64())), op
    if op == "ts-timestamp":
        stamps = pa.array([int(s * 1e6) for s in seconds], pa.timestamp("us"))
        return put("TIMESTAMP", stamps), op
    if op == "ts-bool":
        return put("TIMESTAMP", pa.array([True] * n, pa.bool_())), op
    if op == "ts-list":
        return put("TIMESTAMP", pa.array([[s] for s in seconds], pa.list_(pa.float64()))), op
    if op == "ts-struct":
        return put("TIMESTAMP", pa.array([{"s": s} for s in seconds])), op
    return table.slice(0, 0), "pq-empty"


BINARY_MUTATIONS: list[tuple[str, float, Mutation]] = [
    ("truncate", 1.0, _truncate),
    ("flip", 2.0, _flip),
    ("empty", 0.2, _empty),
]


def _mutate_parquet(rng: random.Random, plain: bytes) -> tuple[bytes, list[str], bool]:
    """A mutated Parquet file; the flag says whether it is still a well-formed file."""
    table = pq.read_table(io.BytesIO(plain))
    names = []
    if rng.random() < 0.75:
        for _ in range(rng.choices([1, 2], weights=[4, 1])[0]):
            try:
                table, name = _mutate_table(rng, table)
            except (KeyError, ValueError, IndexError, pa.ArrowException):
                name = "pq-skipped"  # a second edit that needs a column the first one removed
            names.append(name)
    data = _parquet_bytes(table)
    if not names or rng.random() < 0.3:
        data, more = _mutate_text(rng, data, _Text(False, []), BINARY_MUTATIONS)
        return data, names + more, False
    return data, names, True


# --- wrappers ---------------------------------------------------------------------------------
def _zip(members: dict[str, bytes], method: int) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression=method) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = method
            zf.writestr(info, data)
    return sink.getvalue()


def _tar(members: dict[str, bytes], mode: str, unsafe: str | None = None) -> bytes:
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
        if unsafe == "absolute":
            info = tarfile.TarInfo("/tmp/planner-fuzz-escape.csv")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"a,b"))
        elif unsafe == "parent":
            info = tarfile.TarInfo("../escape.csv")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"a,b"))
        elif unsafe == "symlink":
            info = tarfile.TarInfo("link.csv")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        elif unsafe == "device":
            info = tarfile.TarInfo("dev.csv")
            info.type = tarfile.CHRTYPE
            tar.addfile(info)
    return sink.getvalue()


def _zip_patch(data: bytes, rng: random.Random, what: str) -> bytes:
    """Mark every member encrypted, or give it an unsupported compression method."""
    out = bytearray(data)
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        start = 0
        while (i := out.find(sig, start)) >= 0:
            if what == "encrypted":
                flags = struct.unpack_from("<H", out, i + flag_at)[0]
                struct.pack_into("<H", out, i + flag_at, flags | 1)
            else:
                struct.pack_into("<H", out, i + method_at, rng.choice([1, 6, 9, 97, 98, 99]))
            start = i + 4
    return bytes(out)


WRAPPERS = ["gz", "zip", "zip-stored", "zip-bzip2", "zip-lzma", "tar.gz", "tgz", "tar", "xz",
            "bz2", "zst", "nested-zip", "zip-empty"]  # fmt: skip
CORRUPTIONS = ["truncate", "flip", "encrypted", "method", "wrong-ext", "unsafe-member"]


def _wrap(
    rng: random.Random, sample: Sample, members: dict[str, bytes], case_dir: Path
) -> tuple[Path, list[str], bool]:
    """Package the (mutated) members; return the input path, what was done, and whether the
    wrapper still holds exactly the members (so their rows can be counted)."""
    root = sample.root
    stem = root.removesuffix(".tar.gz")
    natural = rng.random() < 0.55
    if natural and sample.packaging == "folder":
        folder = case_dir / root
        folder.mkdir()
        for name, data in members.items():
            (folder / name).write_bytes(data)
        return folder, [], True
    if natural and sample.packaging == "file":
        path = case_dir / root
        path.write_bytes(members[root])
        return path, [], True
    if natural:
        kind = "tar.gz"
    else:
        kind = rng.choice(WRAPPERS if len(members) == 1 else [w for w in WRAPPERS if w != "gz"])
        if kind in {"xz", "bz2", "zst"} and len(members) > 1:
            kind = "tar"
    if sample.packaging == "folder":
        members = {f"{root}/{k}": v for k, v in members.items()}
    only = next(iter(members.values()))
    name = next(iter(members))
    corrupt = rng.random() < (0.15 if natural else 0.4)
    unsafe = rng.choice(["absolute", "parent", "symlink", "device"]) if corrupt else None
    if kind == "gz":
        path, blob = case_dir / f"{name}.gz", gzip.compress(only, mtime=0)
    elif kind.startswith("zip") or kind == "nested-zip":
        method = {
            "zip-stored": zipfile.ZIP_STORED,
            "zip-bzip2": zipfile.ZIP_BZIP2,
            "zip-lzma": zipfile.ZIP_LZMA,
        }.get(kind, zipfile.ZIP_DEFLATED)
        blob = _zip(members, method)
        if kind == "nested-zip":
            blob = _zip({f"{stem}.zip": blob}, zipfile.ZIP_DEFLATED)
        elif kind == "zip-empty":
            blob = _zip({}, method)
        path = case_dir / f"{Path(stem).stem if sample.packaging == 'file' else stem}.zip"
    elif kind in {"tar.gz", "tgz", "tar"}:
        mode = "w" if kind == "tar" else "w:gz"
        blob = _tar(members, mode, unsafe if corrupt and rng.random() < 0.3 else None)
        base = Path(stem).stem if sample.packaging == "file" else stem
        path = case_dir / f"{base}.{kind}"
    elif kind == "xz":
        path, blob = case_dir / f"{name}.xz", lzma.compress(only)
    elif kind == "bz2":
        path, blob = case_dir / f"{name}.bz2", bz2.compress(only)
    else:  # a zstd frame header and a damaged body: no zstd codec is needed to write it
        path, blob = case_dir / f"{name}.zst", b"\x28\xb5\x2f\xfd" + bytes(rng.randbytes(64)) + only
    done = [f"wrap-{kind}"]
    intact = kind in {"gz", "zip", "zip-stored", "zip-bzip2", "zip-lzma", "tar.gz", "tgz", "tar"}
    if corrupt:
        how = rng.choice(CORRUPTIONS)
        if how == "truncate":
            blob = blob[: rng.randrange(len(blob) + 1)]
        elif how == "flip":
            blob = _flip(rng, blob, _Text(False, []))
        elif how in {"encrypted", "method"} and path.suffix == ".zip":
            blob = _zip_patch(blob, rng, how)
        elif how == "wrong-ext":
            path = path.with_name(
                Path(stem).stem + rng.choice([".zip", ".tar.gz", ".tgz", ".tar", ".csv.gz", ".gz"])
            )
        elif how == "unsafe-member" and kind in {"tar.gz", "tgz", "tar"}:
            blob = _tar(members, "w" if kind == "tar" else "w:gz", unsafe or "absolute")
        done.append(f"corrupt-{how}")
        intact = False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return path, done, intact


# --- expected rows ----------------------------------------------------------------------------
def count_csv_rows(data: bytes, header: bool) -> int | None:
    """Data lines of a CSV, or None where no simple rule counts them (quotes, odd bytes, CR,
    whitespace-only lines, a blank first line)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if '"' in text or "\x00" in text or "\r" in text:
        return None
    lines = text.split("\n")
    if any(line.strip() == "" and line != "" for line in lines):
        return None
    if header and (not lines or lines[0] == ""):
        return None
    rows = sum(1 for line in lines if line)
    return rows - 1 if header else rows


def count_jsonl_rows(data: bytes) -> int | None:
    """Non-blank lines of a JSON-lines file (None when there are CRs or whitespace-only lines)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\r" in text:
        return None
    lines = text.split("\n")
    if any(line.strip() == "" and line != "" for line in lines):
        return None
    return sum(1 for line in lines if line)


# --- cases ------------------------------------------------------------------------------------
LONG_KEYS = {b"funcID", b"funcName", b"function", b"func_id"}  # huawei-series long layout


def make_case(family: Family, sample: Sample, seed: int, index: int, out: Path) -> Case:
    """Write the mutated input (family, seed, index) under `out` and return how to ingest it."""
    rng = random.Random(f"{family.id}:{seed}:{index}")
    members = dict(sample.members)
    mutations: list[str] = []
    counts: dict[str, int | None] = {}
    for name, plain in members.items():
        if family.id == "parquet":
            counts[name] = pq.read_metadata(io.BytesIO(plain)).num_rows
        elif name.endswith(".jsonl"):
            counts[name] = count_jsonl_rows(plain)
        elif name.endswith("-dataset.json.gz"):
            counts[name] = None
        else:
            counts[name] = count_csv_rows(plain, header=family.id != "servegen")
    target = rng.choice(list(members))
    plain = members[target]
    if family.id == "parquet":
        data, names, well_formed = _mutate_parquet(rng, plain)
        counts[target] = pq.read_metadata(io.BytesIO(data)).num_rows if well_formed else None
        if family.id == "parquet" and well_formed and names and names[-1] == "pq-empty":
            counts[target] = 0
    elif target.endswith("-dataset.json.gz"):
        raw = gzip.decompress(plain)
        if rng.random() < 0.8:
            raw, names = _dataset_bytes(rng, raw)
        else:
            names = []
        if rng.random() < 0.3:
            raw, more = _mutate_text(rng, raw, _Text(False, []), JSONL_MUTATIONS)
            names += more
        if rng.random() < 0.2:
            members.pop(target)
            target = target.removesuffix(".gz")
            data = raw
            names.append("plain-json")
        else:
            data = gzip.compress(raw, mtime=0)
            if rng.random() < 0.15:
                data, more = _mutate_text(rng, data, _Text(False, []), BINARY_MUTATIONS)
                names += [f"gz-{m}" for m in more]
    else:
        header = family.id != "servegen"
        json_lines = target.endswith(".jsonl")
        first = plain.split(b"\n", 1)[0].decode()
        columns = first.split(",") if header else []
        numeric = [columns.index(c) for c in family.numeric if c in columns]
        if family.id == "servegen":
            numeric = [0, 1, 2, 4, 5]
        info = _Text(header, numeric, json_lines)
        data, names = _mutate_text(
            rng, plain, info, JSONL_MUTATIONS if json_lines else TEXT_MUTATIONS
        )
        if json_lines:
            counts[target] = count_jsonl_rows(data)
        else:
            counts[target] = count_csv_rows(data, header)
    members[target] = data
    mutations += [f"{target}:{n}" for n in names]
    case_dir = out / f"{family.id}-{seed}-{index}"
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    path, wrapped, intact = _wrap(rng, sample, members, case_dir)
    mutations += wrapped
    expected = None
    header = {c.strip() for c in members[target].split(b"\n", 1)[0].split(b",")}
    if family.id == "huawei-series" and not header & LONG_KEYS:
        intact = False  # no function column: read as the wide layout, one row per cell
    if intact and family.count_rows and family.id != "servegen":
        expected = counts[target]
    elif intact and family.id == "servegen":
        traces = [v for k, v in counts.items() if k.endswith("-trace.csv")]
        expected = None if None in traces else sum(v for v in traces if v is not None)
    fmt = family.fmt if (family.mapping or rng.random() < 0.5) else None
    if family.mapping and rng.random() < 0.5:
        fmt = None
    name, replace = None, False
    roll = rng.random()
    if roll < 0.15:
        name, replace = BASE, True
    elif roll < 0.2:
        name = BASE
    time_unit = None
    if family.id == "csv" and rng.random() < 0.25:
        time_unit = rng.choice(["s", "ms", "us", "ns"])
    elif family.id == "parquet" and rng.random() < 0.05:
        time_unit = "ms"
    return Case(
        family.id,
        seed,
        index,
        path,
        fmt,
        name,
        replace,
        dict(family.mapping),
        time_unit,
        mutations,
        expected,
    )


def write_sample(sample: Sample, out: Path) -> Path:
    """Write the unmutated sample under `out` in its natural packaging; return its path."""
    out.mkdir(parents=True, exist_ok=True)
    if sample.packaging == "folder":
        folder = out / sample.root
        folder.mkdir(exist_ok=True)
        for name, data in sample.members.items():
            (folder / name).write_bytes(data)
        return folder
    if sample.packaging == "tar.gz":
        path = out / sample.root
        path.write_bytes(_tar(sample.members, "w:gz"))
        return path
    path = out / sample.root
    path.write_bytes(sample.members[sample.root])
    return path


# --- the invariant ----------------------------------------------------------------------------
def store_snapshot(con: duckdb.DuckDBPyConnection) -> tuple[list[tuple], dict[str, int]]:
    """The `traces` rows and every data table's row count (tests/conftest.py `store_state`,
    on an open connection)."""
    traces = con.execute("SELECT * FROM traces ORDER BY id").fetchall()
    sql = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in DATA_TABLES)
    return traces, dict(zip(DATA_TABLES, con.execute(sql).fetchall()[0], strict=True))


def _in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        con.begin()
    except duckdb.TransactionException:
        return True
    con.rollback()
    return False


_NONNEG = "{c} IS NOT NULL AND (NOT isfinite({c}) OR {c} < 0)"
_CHECKS: dict[str, list[tuple[str, str]]] = {
    "requests": [
        ("arrival_s not finite", "NOT isfinite(arrival_s)"),
        ("input_tokens negative", "input_tokens < 0"),
        ("output_tokens negative", "output_tokens < 0"),
        ("duration_s negative or not finite", _NONNEG.format(c="duration_s")),
    ],
    "cold_starts": [
        ("time_s not finite", "NOT isfinite(time_s)"),
        *[
            (f"{c} negative or not finite", _NONNEG.format(c=c))
            for c in (
                "total_s",
                "pod_allocation_s",
                "deploy_code_s",
                "deploy_dependency_s",
                "scheduling_s",
                "model_load_s",
            )  # fmt: skip
        ],
        ("cpu_millicores negative", "cpu_millicores < 0"),
        ("memory_mb negative", "memory_mb < 0"),
    ],
    "rate_windows": [
        ("window_start_s not finite", "NOT isfinite(window_start_s)"),
        ("window_s not positive", "NOT isfinite(window_s) OR window_s <= 0"),
        ("window end not finite", "NOT isfinite(window_start_s + window_s)"),
        *[
            (f"{c} negative or not finite", _NONNEG.format(c=c))
            for c in ("requests", "rate_rps", "cv", "cold_starts", "pods")
        ],
        ("p1 not finite", "p1 IS NOT NULL AND NOT isfinite(p1)"),
        ("p2 not finite", "p2 IS NOT NULL AND NOT isfinite(p2)"),
    ],
    "length_dists": [
        ("window_start_s not finite", "NOT isfinite(window_start_s)"),
        ("window_s not positive", "NOT isfinite(window_s) OR window_s <= 0"),
        ("tokens negative", "tokens < 0"),
        ("prob negative or not finite", "NOT isfinite(prob) OR prob < 0"),
    ],
}


def stored_problems(con: duckdb.DuckDBPyConnection, trace_id: int, table: str) -> list[str]:
    """What is semantically wrong with a stored trace's rows (empty when they are valid)."""
    problems = []
    info = con.execute(
        "SELECT rows, span_s, series, content_hash FROM traces WHERE id = ?", [trace_id]
    ).fetchall()
    if not info:
        return [f"trace {trace_id} missing"]
    rows, span, series, digest = info[0]
    stored = con.execute(f"SELECT count(*) FROM {table} WHERE trace_id = ?", [trace_id]).fetchall()
    if stored[0][0] != rows:
        problems.append(f"traces.rows {rows} but {stored[0][0]} rows stored")
    if rows <= 0:
        problems.append("no rows")
    if span is None or not math.isfinite(span) or span < 0:
        problems.append(f"span {span}")
    if not digest:
        problems.append("no content hash")
    for t in (table, "length_dists") if table == "rate_windows" else (table,):
        for what, cond in _CHECKS[t]:
            bad = con.execute(
                f"SELECT count(*) FROM {t} WHERE trace_id = ? AND ({cond})", [trace_id]
            ).fetchall()[0][0]
            if bad:
                problems.append(f"{t}: {bad} row(s) with {what}")
    if table == "rate_windows":
        bad = con.execute(
            "SELECT count(*) FROM (SELECT sum(prob) AS total FROM length_dists WHERE trace_id = ? "
            "GROUP BY series, window_start_s, which) WHERE NOT (abs(total - 1) <= ?)",
            [trace_id, PMF_TOLERANCE],
        ).fetchall()[0][0]
        if bad:
            problems.append(f"length_dists: {bad} PMF(s) not summing to 1")
    return problems


def error_problems(message: str, case: Case) -> list[str]:
    """Why a PlannerError message is not a proper one-line error naming the file."""
    problems = []
    if len(message.splitlines()) > 1 or not message.isprintable():
        problems.append("message spans several lines or holds control characters")
    if not message.strip():
        problems.append("empty message")
    if str(case.path) not in message:
        problems.append("message does not name the file")
    return problems


@dataclass
class Tally:
    """Per-family counts of outcomes, with the first few failures of each kind kept."""

    family: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    examples: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def inputs(self) -> int:
        return sum(self.counts.values())

    @property
    def failures(self) -> int:
        return self.inputs - self.counts["accepted"] - self.counts["refused"]

    def add(self, outcome: Outcome, keep: int = 5) -> None:
        self.counts[outcome.kind] += 1
        if outcome.kind not in ("accepted", "refused"):
            kept = self.examples.setdefault(outcome.kind, [])
            if len(kept) < keep:
                case = outcome.case
                where = f"{case.key} {' '.join(case.mutations)}" if case else ""
                kept.append(f"{where}: {outcome.detail}")


class Fuzzer:
    """One family's fuzzing session: a store holding the unmutated sample as trace `base`, and
    the cases run against it one after another through `ingest_path`."""

    def __init__(self, family: Family, work: Path) -> None:
        self.family = family
        self.work = work
        self.sample = family.build()
        work.mkdir(parents=True, exist_ok=True)
        self.base_path = write_sample(self.sample, work / "sample")
        self.db = work / "store.duckdb"
        self.con = open_store(self.db)
        ingest_path(self.con, self.base_path, family.fmt, BASE, False, dict(family.mapping))

    def close(self) -> None:
        self.con.close()

    def case(self, seed: int, index: int) -> Case:
        """The input (seed, index) of this family, written under the session's folder."""
        return make_case(self.family, self.sample, seed, index, self.work / "cases")

    def run(self, case: Case) -> Outcome:
        """Ingest one case and classify it; the store is brought back to its base state."""
        before = store_snapshot(self.con)
        try:
            result = ingest_path(
                self.con, case.path, case.fmt, case.name, case.replace, case.mapping, case.time_unit
            )
        except PlannerError as exc:
            return self._refused(case, str(exc), before)
        except Exception as exc:  # the invariant's failure: anything but a PlannerError
            lines = str(exc).splitlines() or [""]
            tb = traceback.extract_tb(exc.__traceback__)
            at = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
            self._recover()
            return Outcome("uncaught", f"{type(exc).__name__}: {lines[0][:200]}{at}", case)
        finally:
            shutil.rmtree(case.path.parent, ignore_errors=True)
        return self._accepted(case, result, before)

    def _refused(self, case: Case, message: str, before: tuple) -> Outcome:
        if _in_transaction(self.con):
            self._recover()
            return Outcome("store-changed", f"transaction left open after: {message[:200]}", case)
        if store_snapshot(self.con) != before:
            self._recover()
            return Outcome("store-changed", f"store changed by a refused input: {message}", case)
        problems = error_problems(message, case)
        if problems:
            return Outcome("bad-message", f"{'; '.join(problems)}: {message[:300]!r}", case)
        return Outcome("refused", message, case)

    def _accepted(self, case: Case, result, before: tuple) -> Outcome:
        trace = self.con.execute("SELECT id FROM traces WHERE name = ?", [result.name]).fetchall()
        problems = []
        if _in_transaction(self.con):
            problems.append("transaction left open")
        elif result.status == "unchanged":
            if store_snapshot(self.con) != before:
                problems.append("store changed by an unchanged ingest")
        elif not trace:
            problems.append(f"trace {result.name!r} not stored")
        else:
            problems += stored_problems(self.con, trace[0][0], self.family.table)
            expected = case.expected_rows
            if (
                expected is not None
                and result.format == self.family.fmt
                and expected != result.rows
            ):
                problems.append(f"{result.rows} rows stored, the file holds {expected}")
        self._restore(result)
        if problems:
            return Outcome("invalid", "; ".join(problems), case)
        return Outcome("accepted", f"{result.status} {result.rows} rows", case)

    def _restore(self, result) -> None:
        if _in_transaction(self.con):
            self.con.rollback()
        if result.status == "ingested":
            trace = self.con.execute(
                "SELECT id FROM traces WHERE name = ?", [result.name]
            ).fetchall()
            if trace:
                remove_trace(self.con, trace[0][0])
        elif result.status == "replaced":
            fmt, mapping = self.family.fmt, dict(self.family.mapping)
            ingest_path(self.con, self.base_path, fmt, BASE, True, mapping)

    def _recover(self) -> None:
        """After a failure: drop anything uncommitted and make sure `base` is as it was."""
        with contextlib.suppress(duckdb.Error):
            self.con.close()
        self.con = open_store(self.db)
        names = {r[0] for r in self.con.execute("SELECT name FROM traces").fetchall()}
        for name in names - {BASE}:
            trace = self.con.execute("SELECT id FROM traces WHERE name = ?", [name]).fetchall()
            remove_trace(self.con, trace[0][0])
        if BASE not in names:
            fmt, mapping = self.family.fmt, dict(self.family.mapping)
            ingest_path(self.con, self.base_path, fmt, BASE, False, mapping)


def fuzz_family(
    family: Family,
    work: Path,
    count: int,
    seed: int = 0,
    progress: Callable[[Tally], None] | None = None,
) -> Tally:
    """Run `count` cases of one family (indices 0..count-1 of `seed`) and tally the outcomes."""
    import time

    tally = Tally(family.id)
    fuzzer = Fuzzer(family, work)
    start = time.perf_counter()
    try:
        for index in range(count):
            case = fuzzer.case(seed, index)
            tally.add(fuzzer.run(case))
            if progress is not None and (index + 1) % 500 == 0:
                tally.seconds = time.perf_counter() - start
                progress(tally)
    finally:
        fuzzer.close()
    tally.seconds = time.perf_counter() - start
    return tally
