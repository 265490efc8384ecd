"""Measured serving benchmarks: AIConfigurator's silicon CSV and `vllm bench serve` JSON.

Both become ``Measured`` rows: the deployment (model, accelerator, engine and release,
precision, parallel layout, aggregated or prefill/decode disaggregated workers) and the closed
loop it was measured under (concurrent clients, input and output lengths), with the mean TTFT
and TPOT the load generator reported.

- Silicon CSV (AIConfigurator ``systems/silicon_sample.csv``): one benchmark per row. Aggregated
  rows give ``batch_size`` (concurrent clients per worker, per attention-DP rank) and
  ``tp_size``, ``pp_size``, ``attention_dp_size``, ``moe_ep_size``; disaggregated rows give the
  same per role with ``prefill_`` / ``decode_`` prefixes and worker counts, the whole load
  being ``silicon_concurrency`` in ``silicon_data_source``.
- ``vllm bench serve --save-result`` JSON: one file per benchmark, with ``max_concurrency``,
  the mean TTFT and TPOT and token totals (mean lengths). The deployment comes from
  ``--metadata`` keys written into the file (``accelerator``, ``tp``, ``dp``, ``ep``,
  ``engine_version``, ``dtype``, ``max_num_batched_tokens``, ``max_num_seqs``) or from
  defaults the caller passes; engine flags not given are the engine's defaults.

Load generators: AIConfigurator measures its own deployments with aiperf through its
benchmark template (two warm-up rounds, then 20 requests per client, fixed lengths); the
silicon file also carries InferenceX's nightly results (rows whose source is a dated export,
``source_file=YYYY-MM-DD.csv``, or a dump of its results database, ``db-dump/YYYY-MM-DD`` with
the database's ``config_id`` and ``workflow_run_id``: InferenceX keys its benchmark points by
those two, docs/results-and-ingestion.md), measured with the benchmark_serving.py client
InferenceX's recipes clone (kimbochen/bench_serving, vLLM's client before it centred the random
range: lengths ``randint(int(L x ratio), L + 1)``) as they run it (benchmarks/70b_fp8_h100_slurm.sh,
gptoss_fp4_h100.sh; README "Benchmark Client Configuration": ``--random-range-ratio 0.8
--num-prompts CONC x 10 --max-concurrency CONC``) against servers launched with at most CONC
sequences (vLLM: ``--max-num-seqs CONC --max-num-batched-tokens 8192``; other engines keep their
defaults). Runs measured from 2026-01-21 on (the row's ``measured=`` date, else its export's)
first send 2 x CONC warm-up requests and wait for all of them, as aiperf does: InferenceX then
took the client into its repository and added ``--num-warmups 2 x max_concurrency`` to every
run (commit d053ae24e, "upstream kimbochen/bench_serving, adding warmup (#480)";
benchmarks/benchmark_lib.sh run_benchmark_serving; utils/bench_serving/benchmark_serving.py
waits on the warm-up tasks before the measured ones start).

InferenceX's aggregated TensorRT-LLM and SGLang rows run the flags its benchmark script for the
model, system and precision launched the server with (datasets/benchmarks/inferencex_trtllm_agg.csv:
token budget and padded CUDA graphs; inferencex_sglang_agg.csv: chunked-prefill size, CUDA graphs
and the scheduler's receive interval), not the engine's defaults.

GPUs of InferenceX's aggregated rows: some exports write tp x ep as the GPU count (tp 64 for
a tp 8, ep 8 run on one 8-GPU node); `exported_layout` reads them as InferenceX ran them.

KV-cache dtype of InferenceX's aggregated vLLM rows: what its script passed as
--kv-cache-dtype on the row's day, or where it passed none vLLM's "auto": the KV quantisation
the checkpoint declares (NVFP4 ModelOpt checkpoints: FP8), else BF16
(datasets/benchmarks/inferencex_vllm_kv.csv; ``Measured.kv_dtype``).

Rows whose load is unknown: where an InferenceX script ran its client at another concurrency
than its server's (datasets/benchmarks/inferencex_client_faults.csv, with the commits that
introduced and fixed it), the rows exported from that window carry the reason
(``Measured.unknown_load``) and are skipped rather than predicted at a load that did not run.
The same holds for rows that record no load at all (`unrecorded_load`): AIConfigurator's
gap-analysis exports name each row ``..._c{concurrency}_tp...`` and give the concurrency as
``silicon_concurrency`` in the source; some of their rows leave both blank (ids ``..._c_tp...``),
and their batch sizes are the deployment's engine limits, not the load that ran (the same
pipeline's rows that do record it show ``silicon_concurrency=192`` beside a batch size of 48).

Worker counts of InferenceX's disaggregated rows: the export gives each role's tp and ep but
neither how many prefill and decode workers ran nor whether attention ran data-parallel. Those
come from InferenceX's own recipe for the point (`recipe_layout`, the table in
datasets/benchmarks/inferencex_disagg.csv, read from its nvidia-master.yaml), where one answer
matches; otherwise the row keeps them unknown and the prediction assumes the fewest
prefill workers that feed one decode worker (`predict.feeding_prefills`).

Engine flags of silicon rows: AIConfigurator benchmarks the deployments its generator writes
(generator/rule_plugin/benchmark/{vllm,trtllm}.rule): for an aggregated vLLM or TensorRT-LLM
worker, max-num-batched-tokens / max_num_tokens = batch + ISL + 1500, max-num-seqs /
max_batch_size = batch, and CUDA graphs for every batch size up to batch. Its SGLang rows are
read with SGLang's defaults (prefill-first steps): they match those (TTFT MAPE 15 %) and not
the generator's current mixed-chunk rule (71 %), which they predate.
"""

import csv
import json
import math
import re
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from planner.errors import PlannerError
from planner.resources import resource_dir

SILICON_REQUIRED = ("model_path", "system", "backend", "mode", "isl", "osl")
SILICON_REQUIRED += ("silicon_ttft_ms", "silicon_tpot_ms")
PARALLEL = ("tp_size", "pp_size", "attention_dp_size", "moe_ep_size")
ENGINES = ("vllm", "sglang", "trtllm")
AIC_GENERATED = ("vllm", "trtllm")
AIC_SPARE_TOKENS = 1500
BENCH_REQUIRED = ("model_id", "max_concurrency", "mean_ttft_ms", "mean_tpot_ms", "completed")
BENCH_REQUIRED += ("total_input_tokens", "total_output_tokens")
INFERENCEX_SOURCE = re.compile(r"source_file=(\d{4}-\d{2}-\d{2})\.csv|db-dump/(\d{4}-\d{2}-\d{2})")
MEASURED_ON = re.compile(r"measured=(\d{4}-\d{2}-\d{2})")
INFERENCEX_WARMUP_FROM = "2026-01-21"
INFERENCEX_TOKEN_BUDGET = 8192
INFERENCEX_NODE_GPUS = 8
RECIPE_KEY = ("system", "engine", "precision", "isl", "osl")


@dataclass(frozen=True)
class LoadGenerator:
    """How a benchmark client loaded the server: requests per client, warm-up rounds (a wave
    the measured phase waits for) and the lengths' spread (`Benchmark.range_ratio`)."""

    name: str
    rounds: int
    warmup_rounds: int
    range_ratio: float = 1.0


AIPERF = LoadGenerator("aiperf (AIConfigurator benchmark template)", 20, 2)
INFERENCEX = LoadGenerator("vllm benchmark_serving.py (InferenceX recipes)", 10, 0, 0.8)
INFERENCEX_WARM = LoadGenerator(
    "vllm benchmark_serving.py (InferenceX recipes, 2 x CONC warm-ups)", 10, 2, 0.8
)


@dataclass(frozen=True)
class Workers:
    """One role's instances: parallel layout, per-instance batch and how many instances."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    batch: int = 0
    count: int = 0


@dataclass(frozen=True)
class Measured:
    """One measured benchmark: its deployment, closed-loop load and reported latencies."""

    source: str
    line: int
    id: str
    model: str
    accelerator: str
    engine: str
    version: str
    mode: str
    isl: int
    osl: int
    concurrency: int
    dtype: str
    expert_dtype: str
    ttft_ms: float
    tpot_ms: float
    agg: Workers = field(default_factory=Workers)
    prefill: Workers = field(default_factory=Workers)
    decode: Workers = field(default_factory=Workers)
    flags: dict[str, int] = field(default_factory=dict)
    load: LoadGenerator = AIPERF
    notes: tuple[str, ...] = ()
    unknown_load: str = ""
    kv_dtype: str = ""
    raw: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


def _where(path: Path, line: int, column: str) -> str:
    """'FILE: line N: column C' prefix of an error."""
    return f"{path}: line {line}: column {column!r}"


def _number(row: dict[str, str], column: str, path: Path, line: int) -> float:
    """A finite positive number, or a PlannerError naming file, line and column."""
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise PlannerError(f"{_where(path, line, column)}: {text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise PlannerError(f"{_where(path, line, column)}: {text!r} is not a positive number")
    return value


def _count(row: dict[str, str], column: str, path: Path, line: int, default: int = 1) -> int:
    """A whole count (blank or 0 means `default`), or a PlannerError naming the cell."""
    text = (row.get(column) or "").strip()
    if not text:
        return default
    try:
        value = int(float(text))
    except ValueError:
        raise PlannerError(
            f"{_where(path, line, column)}: {text!r} is not a whole number"
        ) from None
    if value < 0 or value != float(text):
        raise PlannerError(f"{_where(path, line, column)}: {text!r} is not a whole number >= 0")
    return value or default


def _workers(row: dict[str, str], prefix: str, path: Path, line: int) -> Workers:
    """The parallel layout, batch and count of one role (prefix '' for aggregated rows).

    The experts span every GPU of a stage (moe_tp x moe_ep = tp x attention dp); a row that
    leaves attention_dp_size blank while its experts span more GPUs than its tp (vLLM's
    Qwen3-235B rows on H200: tp 1, moe_tp 2) ran that many attention data-parallel ranks.
    """
    tp, pp, dp, ep = (_count(row, prefix + c, path, line) for c in PARALLEL)
    experts_over = _count(row, prefix + "moe_tp_size", path, line) * ep
    if not (row.get(prefix + "attention_dp_size") or "").strip() and experts_over > tp * dp:
        dp = max(experts_over // tp, 1)
    batch = _count(row, prefix + "batch_size", path, line, 0)
    count = _count(row, prefix + "num_workers", path, line, 0) if prefix else 1
    return Workers(tp, pp, dp, ep, batch, count)


def exported_layout(
    row: dict[str, str], workers: Workers, concurrency: int, path: Path, line: int
) -> tuple[Workers, str]:
    """The GPUs an InferenceX aggregated row ran on, where its export multiplied them by the EP
    (empty note where it did not).

    InferenceX runs a single-node point on `tp` GPUs with its experts spread `ep` ways over them
    (benchmark-tmpl.yml; "single-node GPU count is tp x pp", docs/results-and-ingestion.md);
    some exports write tp x ep as the GPU count: tp 64 with moe_tp 8 x moe_ep 8 for its tp 8,
    ep 8 (attention dp 64 where attention ran data-parallel), and for vLLM tp 4 with attention
    dp 4 and moe_ep 16 for its tp 4, ep 4. Each such row of the public sample whose point was
    also exported the plain way (tp 8, moe_ep 8) carries that twin's TTFT and TPOT exactly."""
    moe_tp = _count(row, "moe_tp_size", path, line)
    gpus = workers.tp * workers.dp
    if moe_tp > 1 and workers.ep > 1 and moe_tp * workers.ep == gpus:
        tp, dp, ep = (1, moe_tp, workers.ep) if workers.dp > 1 else (moe_tp, 1, workers.ep)
    elif workers.tp > 1 and workers.dp > 1 and moe_tp == 1 and workers.ep == gpus:
        tp, dp, ep = workers.tp, 1, workers.dp
    else:
        return workers, ""
    ran = replace(workers, tp=tp, dp=dp, ep=ep, batch=max(concurrency // dp, 1))
    note = (
        f"the export lists tp x ep ({gpus}) as its GPUs; InferenceX ran it on {tp * dp} "
        f"(tp {tp}, attention dp {dp}, ep {ep})"
    )
    return ran, note


def _engine(row: dict[str, str], path: Path, line: int) -> str:
    """The row's engine id, or a PlannerError naming the known ones."""
    name = _lower(row, "backend")
    if name not in ENGINES:
        known = ", ".join(ENGINES)
        raise PlannerError(
            f"{_where(path, line, 'backend')}: unknown engine {name!r}; engines: {known}"
        )
    return name


@cache
def _datasets_csv(name: str) -> list[dict[str, str]]:
    """The rows of a bundled benchmarks table (datasets/benchmarks/NAME), '#' lines skipped."""
    path = resource_dir("datasets") / "benchmarks" / name
    lines = path.read_text(encoding="utf-8").splitlines()
    return list(csv.DictReader(ln for ln in lines if not ln.startswith("#")))


def _lower(row: dict[str, str], column: str) -> str:
    """A row's value in `column`, trimmed and lower-cased ('' where it is empty)."""
    return (row.get(column) or "").strip().lower()


def _system(row: dict[str, str]) -> str:
    """A row's accelerator as InferenceX's tables name it ('h100_sxm' -> 'h100')."""
    return _lower(row, "system").split("_")[0]


def _script(table: str, row: dict[str, str], gpus: int) -> dict[str, str] | None:
    """The entry of an InferenceX launch-flag table (datasets/benchmarks/TABLE) for the row's
    model, system, precision and, where the entry names one, GPUs (InferenceX's tp). The model
    is the row's, or the one InferenceX's id names: its database rows of DeepSeek-R1 give the
    architecture's path, deepseek-ai/DeepSeek-V3, with ids that start with the recipe's model
    prefix (dsr1_b200_sglang_fp4_...), as the scripts' names do (dsr1_fp4_b200)."""
    system = _system(row)
    precision = _lower(row, "precision")
    name = _lower(row, "id")
    for entry in _datasets_csv(table):
        if (entry["system"], entry["precision"]) != (system, precision):
            continue
        if entry.get("tp") and entry["tp"] != str(gpus):
            continue
        prefix = entry["script"].split(f"_{precision}_")[0].replace(".", "_")
        if _same_model(row.get("model_path") or "", entry["model"]) or name.startswith(
            f"{prefix}_{system}_"
        ):
            return entry
    return None


def _count_or_conc(value: str, concurrency: int) -> int:
    """A table value: a number, or 'conc' for the run's concurrency."""
    return concurrency if value == "conc" else int(value)


def _inferencex_trtllm(
    row: dict[str, str], gpus: int, concurrency: int, isl: int
) -> dict[str, int]:
    """TensorRT-LLM flags InferenceX's script for the row's model, system and precision launched
    with (datasets/benchmarks/inferencex_trtllm_agg.csv); empty where no script matches."""
    entry = _script("inferencex_trtllm_agg.csv", row, gpus)
    if entry is None:
        return {}
    budget = int(entry["token_budget"] or 0)
    if not budget:
        measured = MEASURED_ON.search(row.get("silicon_data_source") or "")
        budget = -(-(concurrency + isl + int(entry["budget_spare"])) // 64) * 64
        if measured and measured.group(1) >= entry["budget_floor_from"]:
            budget = max(budget, int(entry["budget_floor"]))
    graphs = _count_or_conc(entry["cuda_graphs"], concurrency)
    return {"token_budget": budget, "cuda_graph_max_batch": graphs}


def _inferencex_sglang(row: dict[str, str], gpus: int, concurrency: int) -> dict[str, int]:
    """SGLang flags InferenceX's script for the row's model, system, precision and tp launched
    with (datasets/benchmarks/inferencex_sglang_agg.csv); empty where no script matches."""
    entry = _script("inferencex_sglang_agg.csv", row, gpus)
    if entry is None:
        return {}
    interval = entry["recv_interval"] if concurrency >= 16 else entry["recv_interval_below_16"]
    return {
        "token_budget": int(entry["token_budget"]),
        "cuda_graph_max_batch": _count_or_conc(entry["cuda_graphs"], concurrency),
        "recv_interval": int(interval),
    }


def _launch_flags(
    row: dict[str, str], engine: str, load: LoadGenerator, agg: Workers, concurrency: int, isl: int
) -> dict[str, int]:
    """The engine flags an aggregated worker of a silicon row was launched with."""
    batch = agg.batch
    if load in (INFERENCEX, INFERENCEX_WARM):
        flags = {"max_seqs": batch}
        gpus = agg.tp * agg.dp
        if engine == "vllm":
            flags["token_budget"] = INFERENCEX_TOKEN_BUDGET
        if engine == "trtllm":
            flags |= _inferencex_trtllm(row, gpus, concurrency, isl)
        if engine == "sglang":
            flags |= _inferencex_sglang(row, gpus, concurrency)
        return flags
    if engine in AIC_GENERATED:
        return {
            "token_budget": batch + isl + AIC_SPARE_TOKENS,
            "max_seqs": batch,
            "cuda_graph_max_batch": batch,
        }
    return {}


def _inferencex_day(source: str) -> str | None:
    """The day an InferenceX row was measured (its ``measured=`` date, else its export's), or
    None for a row InferenceX did not export."""
    export = INFERENCEX_SOURCE.search(source)
    if export is None:
        return None
    measured = MEASURED_ON.search(source)
    return measured.group(1) if measured else export.group(1) or export.group(2)


def _load_generator(source: str) -> LoadGenerator:
    """The client a silicon row was measured with, from its data-source field."""
    day = _inferencex_day(source)
    if day is None:
        return AIPERF
    return INFERENCEX_WARM if day >= INFERENCEX_WARMUP_FROM else INFERENCEX


def inferencex_vllm_kv(row: dict[str, str]) -> str:
    """The KV-cache dtype InferenceX's vLLM script for an aggregated row's model, system and
    precision ran on the row's measured day (datasets/benchmarks/inferencex_vllm_kv.csv);
    empty for a row no script entry covers."""
    day = _inferencex_day(row.get("silicon_data_source") or "")
    if day is None or _lower(row, "backend") != "vllm":
        return ""
    system = _system(row)
    precision = _lower(row, "precision")
    entries = [
        e
        for e in _datasets_csv("inferencex_vllm_kv.csv")
        if (e["system"], e["precision"]) == (system, precision)
        and _same_model(row.get("model_path") or "", e["model"])
        and e["from"] <= day
    ]
    return max(entries, key=lambda e: e["from"])["kv_dtype"] if entries else ""


def client_fault(row: dict[str, str], concurrency: int) -> str:
    """Why an InferenceX row's load is unknown: its script ran the client at another
    concurrency than the server's (datasets/benchmarks/inferencex_client_faults.csv); empty
    where no such window covers the row."""
    day = _inferencex_day(row.get("silicon_data_source") or "")
    if day is None:
        return ""
    system, engine = _system(row), _lower(row, "backend")
    for fault in _datasets_csv("inferencex_client_faults.csv"):
        if (
            (fault["system"], fault["engine"]) == (system, engine)
            and _same_model(row.get("model_path") or "", fault["model"])
            and fault["from"] <= day <= fault["until"]
            and int(fault["client_concurrency"]) == concurrency
        ):
            return (
                f"InferenceX's {fault['script']} ran its client at concurrency "
                f"{fault['client_concurrency']} from {fault['from']} to {fault['until']} "
                f"({fault['introduced']}, fixed in {fault['fixed']}) against a server holding "
                f"the sweep's concurrency ({fault['server_concurrency']}, not in the row): "
                "the load that ran is unknown"
            )
    return ""


def source_concurrency(row: dict[str, str]) -> int | None:
    """The clients a silicon row's source records (``silicon_concurrency=N``), if it does."""
    found = re.search(r"silicon_concurrency=(\d+)", row.get("silicon_data_source") or "")
    return int(found.group(1)) if found else None


def unrecorded_load(row: dict[str, str]) -> str:
    """Why an aiperf row's load is unknown: its id leaves the concurrency blank (``_c_tp``)
    and its source gives no silicon_concurrency; empty where either records it."""
    if source_concurrency(row) is not None or "_c_tp" not in (row.get("id") or ""):
        return ""
    return (
        "the row records no concurrency (its id leaves it blank and its source gives no "
        "silicon_concurrency): its batch size is the deployment's engine limit, and the load "
        "that ran is unknown"
    )


def _same_model(row_model: str, recipe_model: str) -> bool:
    """Whether two model paths name one model, one's name being the other's plus suffixes
    ('DeepSeek-R1' and 'deepseek-r1-0528' or 'DeepSeek-R1-0528-NVFP4'; not GLM-5 and GLM-5.1)."""
    a, b = (
        re.split(r"[-_]", m.rstrip("/").rsplit("/", 1)[-1].lower())
        for m in (row_model, recipe_model)
    )
    n = min(len(a), len(b))
    return a[:n] == b[:n]


@cache
def inferencex_recipes() -> dict[tuple[str, ...], list[dict[str, str]]]:
    """InferenceX's disaggregated recipe points (datasets/benchmarks/inferencex_disagg.csv),
    keyed by system, engine, precision, ISL, OSL, the prefill role's GPUs and EP and the decode
    role's GPUs: not its EP, which the exports write as the prefill role's (every one of the
    public sample's 229 count-less rows resolved this way carries the counts of its twin row
    from the dump of InferenceX's results database; keyed by the exported decode EP too, 3 of 86
    did not)."""
    table: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for entry in _datasets_csv("inferencex_disagg.csv"):
        key = tuple(entry[c] for c in RECIPE_KEY)
        key += (entry["prefill_tp"], entry["prefill_ep"], entry["decode_tp"])
        table.setdefault(key, []).append(entry)
    return table


def _role(workers: Workers, entry: dict[str, str], role: str) -> Workers:
    """A role's layout as the recipe ran it: its worker count, expert parallelism and whether
    attention ran data-parallel."""
    gpus, ep = int(entry[f"{role}_tp"]), int(entry[f"{role}_ep"])
    attention_dp = entry[f"{role}_dp_attention"] == "True"
    tp, dp = (1, gpus) if attention_dp else (gpus, 1)
    return replace(workers, tp=tp, dp=dp, ep=ep, count=int(entry[f"{role}_workers"]))


def _point_key(row: dict[str, str]) -> tuple[str, ...]:
    """A row's system, engine, precision, ISL and OSL as InferenceX's recipe table writes them
    (RECIPE_KEY)."""
    system = _system(row)
    values = (row.get("backend"), row.get("precision"), row.get("isl"), row.get("osl"))
    return (system, *((v or "").strip().lower() for v in values))


def _recipe_points(
    row: dict[str, str], prefill: Workers, decode: Workers, concurrency: int
) -> list[dict[str, str]]:
    """The recipe entries for a row's model, system, engine, precision, lengths and layout
    (less the decode EP, see `inferencex_recipes`) run at its concurrency: the recipe's own,
    or else its clients on each decode worker (InferenceX exports some points, the H200
    TensorRT-LLM ones, as the recipe's concurrency times its decode workers: 11 clients for
    the 11-worker recipe at 1, 36 for the 9-worker one at 4)."""
    key = _point_key(row) + (
        str(prefill.tp * prefill.dp),
        str(prefill.ep),
        str(decode.tp * decode.dp),
    )
    model = row.get("model_path") or ""
    same = [e for e in inferencex_recipes().get(key, []) if _same_model(model, e["model"])]
    exact = [e for e in same if int(e["concurrency"]) == concurrency]
    return exact or [
        e for e in same if int(e["concurrency"]) * int(e["decode_workers"]) == concurrency
    ]


def recipe_layout(
    row: dict[str, str], prefill: Workers, decode: Workers, concurrency: int
) -> tuple[Workers, Workers, str]:
    """Worker counts of an InferenceX disaggregated row that omits them, from InferenceX's own
    recipe for the same point (model, system, engine, precision, lengths, concurrency, each
    role's GPUs, the prefill role's EP; the decode EP is then the recipe's); unchanged, with
    the reason, where none matches. Several are narrowed to those with the exported decode EP,
    then to those without speculative decoding (a recipe run with and without at one point may
    differ; the row does not say, the planner predicts without); where several different ones
    still match, the row takes what they all agree on (`_agreed`)."""
    found = _recipe_points(row, prefill, decode, concurrency)
    listed = [e for e in found if e["decode_ep"] == str(decode.ep)]
    entry = _one_recipe((found, listed))
    if entry is None and found:
        return _agreed(found, prefill, decode)
    if entry is None:
        return prefill, decode, "no InferenceX recipe matches"
    prefill, decode = _role(prefill, entry, "prefill"), _role(decode, entry, "decode")
    note = (
        f"worker counts from InferenceX's recipe {entry['recipe']}: {prefill.count} "
        f"prefill and {decode.count} decode workers"
    )
    return prefill, decode, note


def _agreed(
    found: list[dict[str, str]], prefill: Workers, decode: Workers
) -> tuple[Workers, Workers, str]:
    """The layout several different matching recipes agree on: each role's attention DP and
    the decode EP where all give one value, and the worker counts where all give the same two
    (the H200 TensorRT-LLM recipes that differ only in whether the prefill role ran attention
    data-parallel still say how many workers of each ran)."""

    def one(column: str) -> str | None:
        values = {e[column] for e in found}
        return values.pop() if len(values) == 1 else None

    roles = []
    for role, workers in (("prefill", prefill), ("decode", decode)):
        gpus = workers.tp * workers.dp
        if (attention_dp := one(f"{role}_dp_attention")) is not None:
            tp, dp = (1, gpus) if attention_dp == "True" else (gpus, 1)
            workers = replace(workers, tp=tp, dp=dp)
        roles.append(workers)
    prefill, decode = roles
    if (ep := one("decode_ep")) is not None:
        decode = replace(decode, ep=int(ep))
    counts = one("prefill_workers"), one("decode_workers")
    if None in counts:
        return prefill, decode, "several InferenceX recipes match, with different worker counts"
    prefill, decode = replace(prefill, count=int(counts[0])), replace(decode, count=int(counts[1]))
    names = ", ".join(sorted({e["recipe"] for e in found}))
    note = (
        f"worker counts from InferenceX's recipes {names}: several match, all with "
        f"{prefill.count} prefill and {decode.count} decode workers"
    )
    return prefill, decode, note


def _one_recipe(pools: tuple[list[dict[str, str]], ...]) -> dict[str, str] | None:
    """The first pool's recipe where all its entries give one layout (each role's workers, GPUs,
    EP and attention DP), then the same among the entries without speculative decoding."""
    roles = ("prefill", "decode")
    fields = [f"{r}_{c}" for r in roles for c in ("workers", "tp", "ep", "dp_attention")]
    for pool in (*pools, *([e for e in p if e["spec"] == "none"] for p in pools)):
        if len({tuple(e[f] for f in fields) for e in pool}) == 1:
            return pool[0]
    return None


def multinode_layout(
    row: dict[str, str], gpus: int, concurrency: int
) -> tuple[Workers, Workers] | None:
    """The disaggregated layout of an InferenceX point exported as aggregated over more GPUs
    than one node holds: InferenceX runs aggregated points on one node only (every single-node
    search space in its nvidia-master.yaml has tp <= 8; GB200 NVL72 points are all
    disaggregated), so an 'agg' row at tp 36 on GB200 is a disaggregated run listed by its total
    GPUs. Its recipe is the one for the model, system, engine, precision, lengths and
    concurrency whose prefill and decode workers hold that many GPUs, where one layout matches
    (or one without speculative decoding)."""
    key, model = _point_key(row), row.get("model_path") or ""
    found = [
        e
        for e in _datasets_csv("inferencex_disagg.csv")
        if tuple(e[c] for c in RECIPE_KEY) == key
        and int(e["concurrency"]) == concurrency
        and _same_model(model, e["model"])
        and sum(int(e[f"{r}_workers"]) * int(e[f"{r}_tp"]) for r in ("prefill", "decode")) == gpus
    ]
    entry = _one_recipe((found,))
    if entry is None:
        return None
    return _role(Workers(), entry, "prefill"), _role(Workers(), entry, "decode")


def _silicon_row(row: dict[str, str], path: Path, line: int) -> Measured:
    """One silicon CSV row as a Measured benchmark."""
    mode = _lower(row, "mode")
    if mode not in ("agg", "disagg"):
        raise PlannerError(f"{_where(path, line, 'mode')}: {mode!r} is neither agg nor disagg")
    engine = _engine(row, path, line)
    load = _load_generator(row.get("silicon_data_source") or "")
    agg = prefill = decode = Workers()
    flags: dict[str, int] = {}
    notes: list[str] = []
    isl = int(_number(row, "isl", path, line))
    if mode == "agg":
        agg = _workers(row, "", path, line)
        if not agg.batch:
            raise PlannerError(f"{_where(path, line, 'batch_size')}: an agg row needs a batch size")
        concurrency = agg.batch * agg.dp
        if load is not AIPERF:
            agg, note = exported_layout(row, agg, concurrency, path, line)
            notes += [note] if note else []
        if load is not AIPERF and agg.tp * agg.dp > INFERENCEX_NODE_GPUS:
            roles = multinode_layout(row, agg.tp * agg.dp, concurrency)
            if roles is None:
                notes.append(
                    f"InferenceX runs no aggregated point over {agg.tp * agg.dp} GPUs (one node "
                    "at most): likely a disaggregated run exported as agg, and no recipe of "
                    "that size matches; predicted as one aggregated instance"
                )
            else:
                mode, (prefill, decode) = "disagg", roles
                notes.append(
                    f"exported as agg over {agg.tp * agg.dp} GPUs, more than InferenceX puts on "
                    f"one aggregated instance: its recipe's {prefill.count} prefill and "
                    f"{decode.count} decode workers"
                )
        flags = _launch_flags(row, engine, load, agg, concurrency, isl) if mode == "agg" else {}
    else:
        prefill = _workers(row, "prefill_", path, line)
        decode = _workers(row, "decode_", path, line)
        concurrency = source_concurrency(row) or decode.batch * decode.count
        if not concurrency:
            raise PlannerError(
                f"{_where(path, line, 'silicon_data_source')}: a disagg row needs "
                "silicon_concurrency or decode_batch_size and decode_num_workers"
            )
        if load is not AIPERF and not (prefill.count and decode.count):
            prefill, decode, note = recipe_layout(row, prefill, decode, concurrency)
            notes.append(note)
    return Measured(
        source=str(path),
        line=line,
        id=(row.get("id") or f"line {line}").strip(),
        model=(row.get("model_path") or "").strip(),
        accelerator=(row.get("system") or "").strip(),
        engine=engine,
        version=(row.get("backend_version") or "").strip(),
        mode=mode,
        isl=isl,
        osl=int(_number(row, "osl", path, line)),
        concurrency=concurrency,
        dtype=_lower(row, "gemm_quant_mode"),
        expert_dtype=_lower(row, "moe_quant_mode"),
        ttft_ms=_number(row, "silicon_ttft_ms", path, line),
        tpot_ms=_number(row, "silicon_tpot_ms", path, line),
        agg=agg,
        prefill=prefill,
        decode=decode,
        flags=flags,
        load=load,
        notes=tuple(notes),
        unknown_load=client_fault(row, concurrency) if load is not AIPERF else unrecorded_load(row),
        kv_dtype=inferencex_vllm_kv(row) if mode == "agg" else "",
        raw=dict(row),
    )


def read_silicon_csv(path: Path) -> list[Measured]:
    """Every row of an AIConfigurator silicon CSV, or a one-line PlannerError for the first bad."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in SILICON_REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise PlannerError(f"{path}: missing column(s) {', '.join(missing)}")
            rows = [_silicon_row(row, path, i + 2) for i, row in enumerate(reader)]
    except OSError as exc:
        raise PlannerError(f"{path}: cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PlannerError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    if not rows:
        raise PlannerError(f"{path}: no benchmark rows")
    return rows


def _bench_data(path: Path) -> dict[str, Any]:
    """The JSON object of a `vllm bench serve --save-result` file, with the keys it needs."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlannerError(f"{path}: cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlannerError(f"{path}: not a vllm bench serve JSON result ({exc})") from None
    if not isinstance(data, dict):
        raise PlannerError(f"{path}: not a vllm bench serve JSON result (no object)")
    missing = [k for k in BENCH_REQUIRED if data.get(k) is None]
    if missing:
        raise PlannerError(f"{path}: missing key(s) {', '.join(missing)}")
    return data


def read_bench_json(path: Path, defaults: dict[str, Any]) -> Measured:
    """A `vllm bench serve --save-result` file; deployment from its metadata or `defaults`.

    Its load is vllm bench serve's own: the completed requests over `max_concurrency` clients,
    no warm-up wave, the mean lengths for every request.
    """
    data = _bench_data(path)
    text = {k: str(v) for k, v in data.items() if not isinstance(v, dict | list)}
    completed = _number(text, "completed", path, 1)

    def pick(*keys: str, default: Any = None) -> Any:
        """The first metadata key present, else the caller's default."""
        for key in keys:
            if data.get(key) not in (None, ""):
                return data[key]
        return defaults.get(keys[0], default)

    accelerator = pick("accelerator", "gpu")
    if not accelerator:
        raise PlannerError(
            f"{path}: no accelerator: pass --accelerator or --metadata accelerator=..."
        )
    workers = Workers(
        tp=int(pick("tp", "tensor_parallel_size", default=1)),
        pp=int(pick("pp", "pipeline_parallel_size", default=1)),
        dp=int(pick("dp", "data_parallel_size", default=1)),
        ep=int(pick("ep", "expert_parallel_size", default=1)),
        batch=int(_number(text, "max_concurrency", path, 1)),
        count=1,
    )
    flags = {"token_budget": "max_num_batched_tokens", "max_seqs": "max_num_seqs"}
    return Measured(
        source=str(path),
        line=1,
        id=path.stem,
        model=str(data["model_id"]),
        accelerator=str(accelerator),
        engine=str(pick("engine", default="vllm")).lower(),
        version=str(pick("engine_version", "vllm_version", default="")),
        mode="agg",
        isl=max(round(_number(text, "total_input_tokens", path, 1) / completed), 1),
        osl=max(round(_number(text, "total_output_tokens", path, 1) / completed), 1),
        concurrency=workers.batch * workers.dp,
        dtype=str(pick("dtype", default="")).lower(),
        expert_dtype=str(pick("expert_dtype", default="")).lower(),
        ttft_ms=_number(text, "mean_ttft_ms", path, 1),
        tpot_ms=_number(text, "mean_tpot_ms", path, 1),
        agg=workers,
        flags={name: int(pick(key)) for name, key in flags.items() if pick(key) is not None},
        load=LoadGenerator(
            "vllm bench serve", max(round(completed / (workers.batch * workers.dp)), 1), 0
        ),
        raw=text,
    )


def is_measured(path: Path) -> bool:
    """Whether a file (or folder) holds measured serving benchmarks rather than step profiles."""
    if path.is_dir():
        return any(is_measured(p) for p in [*path.glob("*.json"), *path.glob("*.csv")])
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(data, dict) and "mean_ttft_ms" in data
        if path.suffix.lower() == ".csv":
            with path.open(encoding="utf-8") as handle:
                return "silicon_ttft_ms" in handle.readline()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return False


def read_measured(paths: list[Path], defaults: dict[str, Any] | None = None) -> list[Measured]:
    """Rows of every measured file given (silicon CSVs, bench JSON files or folders of them)."""
    rows: list[Measured] = []
    for path in paths:
        files = (
            sorted(path.glob("*.json")) + sorted(path.glob("*.csv")) if path.is_dir() else [path]
        )
        if not files:
            raise PlannerError(f"{path}: no .csv or .json benchmark files")
        for file in files:
            if not file.exists():
                raise PlannerError(f"{file}: no such file")
            if file.suffix.lower() == ".json":
                rows.append(read_bench_json(file, defaults or {}))
            else:
                rows += read_silicon_csv(file)
    return rows
