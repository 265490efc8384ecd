"""Predict a measured benchmark: rebuild its deployment and replay its closed loop.

A row becomes the cost model of each role (model card, accelerator, parallel layout, weight
precision, the engine profile of its release) and the load generator's closed loop
(``planner.simulate.benchmark``). A row the planner cannot represent (unknown model or
accelerator, an unsupported quantisation, a layout that does not fit in memory) is skipped
with the reason; a row missing facts the planner can assume (disaggregated worker counts) is
predicted with the assumption noted.
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np

from planner.costmodel import Accelerator, Calibration, StepModel, get_accelerator, load_card
from planner.costmodel.cards import ModelCard, dtype_bytes, normalize_dtype
from planner.costmodel.engine import load_engine
from planner.errors import PlannerError
from planner.simulate.benchmark import Benchmark, BenchmarkRun, run_benchmark
from planner.simulate.disagg import run_disaggregated_benchmark
from planner.simulate.replica import Scheduling
from planner.simulate.steps import StepTable
from planner.validate.measured import Measured, Workers

WIDE_DECODE_GPUS = 16


@dataclass
class Prediction:
    """The planner's TTFT and TPOT for one measured row, or why it was skipped."""

    row: Measured
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    skipped: str = ""
    notes: list[str] = field(default_factory=list)
    fewer_in_flight: bool = False
    runs: list[BenchmarkRun] = field(default_factory=list, repr=False)  # kept with `log` only
    models: list[StepModel] = field(default_factory=list, repr=False)

    @property
    def predicted(self) -> bool:
        """Whether the row has a prediction."""
        return self.ttft_ms is not None


# Measured in-flight sequences below this share of the simulated ones flag a row (see
# `_fewer_in_flight`); on the shared H100 rows it flagged exactly the nine vLLM gpt-oss-120b runs
# exported at concurrency 512 (~100 in flight whatever the TP), since traced to InferenceX's
# client fault and skipped (`measured.client_fault`), and flags no other.
FEWER_IN_FLIGHT = 1 / 3


def _precision(card: ModelCard, row: Measured) -> tuple[str, str, str]:
    """Dense, expert and KV-cache dtypes of a row's deployment.

    Weights take the row's quantisation within what the checkpoint ships: a checkpoint that
    quantises only its experts (gpt-oss: MXFP4 experts, BF16 attention) keeps its dense parts,
    and experts never take more bytes than shipped (an MXFP4 checkpoint's NVFP4 row keeps
    MXFP4), except that an INT4 checkpoint's NVFP4 row runs NVFP4: that is a requantised
    release (Kimi K2.5's NVFP4 checkpoint) for FP4 tensor cores. The KV cache is FP8 where
    the row's GEMMs or experts are FP8 or NVFP4, as AIConfigurator infers for such
    checkpoints and writes into the engine flags of the deployments it generates (aic-core
    sdk/models/helpers.py, _infer_quant_modes_from_raw_config), BF16 otherwise; a row whose
    launch flags are known (``Measured.kv_dtype``: InferenceX's vLLM scripts) runs those.
    """
    dense = card.dtype if card.expert_dtype != card.dtype else (row.dtype or card.dtype)
    experts = normalize_dtype(row.expert_dtype or row.dtype or card.expert_dtype)
    requantised = card.expert_dtype == "int4" and experts == "fp4"
    if dtype_bytes(card.expert_dtype) < dtype_bytes(experts) and not requantised:
        experts = card.expert_dtype
    quantised = {normalize_dtype(q) for q in (row.dtype, row.expert_dtype) if q}
    kv = row.kv_dtype or ("fp8" if quantised & {"fp8", "fp4"} else "bf16")
    return normalize_dtype(dense), experts, kv


def step_model(
    row: Measured,
    workers: Workers,
    calibration: Calibration | None,
    catalog: dict[str, Accelerator] | None,
) -> StepModel:
    """The cost model of one role of the row's deployment (a PlannerError if unrepresentable)."""
    card = load_card(row.model)
    workers = attention_layout(card, workers)
    acc = get_accelerator(row.accelerator, catalog)
    release = row.version if _numbered(row.version) else ""
    engine = load_engine(f"{row.engine}@{release}" if release else row.engine)
    engine = engine.with_flags(**row.flags) if row.mode == "agg" else engine
    dense, experts, kv = _precision(card, row)
    ep = workers.ep if card.is_moe else 1
    return StepModel.build(
        card,
        acc,
        tp=workers.tp,
        pp=workers.pp,
        dp=workers.dp,
        ep=ep,
        dtype=dense,
        expert_dtype=experts,
        kv_dtype=kv,
        engine=engine,
        calibration=calibration,
        catalog=catalog,
    )


def _numbered(version: str) -> bool:
    """Whether a row's engine version names a release (a dev image's label, 'gpt-oss-dev',
    does not: the row is then predicted with the profile's defaults, and says so)."""
    return any(ch.isdigit() for ch in version)


def replay_load(row: Measured) -> Benchmark:
    """The row's closed loop as its load generator ran it (``Measured.load``).

    aiperf (AIConfigurator's benchmark template, generator/config/backend_templates/benchmark/
    bench_run.sh.j2) runs ``--warmup-request-count 2 x concurrency`` and ``--num-requests
    concurrency x BENCH_MULTI_ROUND`` (default 20), waits for every warm-up response, then
    starts the measured phase's clients at once; InferenceX's client sends concurrency x 10
    prompts with lengths drawn between 0.8 x and 1 x the nominal ones.
    """
    load = row.load
    return Benchmark(
        row.concurrency,
        row.isl,
        row.osl,
        requests=load.rounds * row.concurrency,
        warmup=load.warmup_rounds * row.concurrency,
        range_ratio=load.range_ratio,
    )


def attention_layout(card: ModelCard, workers: Workers) -> Workers:
    """A role's layout as an engine can run it: an MoE model whose tp does not divide its
    attention heads (wide expert-parallel exports list every GPU as tp: DeepSeek-R1 at tp 48 on
    GB200) runs attention data-parallel, one rank per GPU (SGLang --enable-dp-attention,
    TensorRT-LLM attention DP), the experts over all of them as moe_tp x moe_ep say."""
    if not card.is_moe or card.heads % workers.tp == 0:
        return workers
    return replace(workers, tp=1, dp=workers.tp * workers.dp)


def wide_decode(card: ModelCard, decode: Workers) -> Workers:
    """The decode role of a disaggregated row whose deployment is not known (no worker counts,
    no recipe): an MoE model decoding over 16 or more GPUs runs attention data-parallel, one
    rank per GPU, as 431 of the 496 decode roles of that size in InferenceX's recipes do (every
    TensorRT-LLM one on GB200 and GB300; datasets/benchmarks/inferencex_disagg.csv), so each
    rank holds its own sequences instead of one tensor-parallel batch holding them all."""
    if not card.is_moe or decode.dp > 1 or decode.tp < WIDE_DECODE_GPUS:
        return decode
    return replace(decode, tp=1, dp=decode.tp)


def holding_decoders(decode: StepModel, row: Measured) -> int:
    """Decode workers a disaggregated row that omits its worker counts most likely ran: the
    fewest whose sequence slots (the engine's max running sequences on every attention rank)
    and KV cache (each client's prompt and output) hold all the row's clients at once. A
    deployment benchmarked at a concurrency is sized to hold it: one decode worker capped at
    2,048 sequences under 6,452 clients kept two thirds of them waiting minutes for a slot,
    where the run measured a 7 s TTFT."""
    slots = row.concurrency / _rules(decode).max_seqs
    kv = row.concurrency * (row.isl + row.osl) / decode.memory.kv_budget_tokens
    return max(math.ceil(max(slots, kv)), 1)


def feeding_prefills(
    prefill: StepModel, decode: StepModel, row: Measured, decoders: int = 1
) -> int:
    """Prefill workers a disaggregated row that omits its worker counts most likely ran: the
    fewest whose prompt throughput keeps `decoders` decode workers busy at the row's
    concurrency.

    Rates at steady state: each decode worker finishes its share of the clients / (osl x decode
    step) requests a second (its batch at the mean context isl + osl / 2); a prefill worker
    prefills a full step of its token budget (at least one prompt) per prefill step.
    Deployments are sized that way (a pool that starves the other wastes GPUs), so this
    replaces assuming one prefill worker, which queues every high-concurrency row's prompts
    for minutes.
    """
    assert prefill.engine is not None
    batch = max(math.ceil(row.concurrency / decoders), 1)
    step_s = float(decode.decode_ms(batch, row.isl + row.osl / 2)[0]) / 1000.0
    demand = decoders * batch / (max(row.osl, 1) * step_s)
    prompts = max(prefill.engine.scheduler.token_budget // max(row.isl, 1), 1)
    supply = prompts / (float(prefill.prefill_ms(prompts, row.isl)[0]) / 1000.0)
    return max(math.ceil(demand / supply), 1)


def _rules(model: StepModel) -> Scheduling:
    """The engine's scheduling rules for one instance of the model's plan."""
    assert model.engine is not None
    return Scheduling.of(model.engine.scheduler, ranks=model.dp)


def predict(
    row: Measured,
    calibration: Calibration | None = None,
    catalog: dict[str, Accelerator] | None = None,
    log: bool = False,
) -> Prediction:
    """Replay one measured benchmark through the simulator (`log` keeps the schedules)."""
    out = Prediction(row, notes=list(row.notes))
    if row.unknown_load:
        out.skipped = row.unknown_load
        return out
    if row.version and not _numbered(row.version):
        out.notes.append(
            f"engine version {row.version!r} names no release: the {row.engine} profile's defaults"
        )
    given = [row.agg] if row.mode == "agg" else [row.prefill, row.decode]
    try:
        if row.mode == "agg":
            model = step_model(row, row.agg, calibration, catalog)
            out.models = [model]
            bench = replay_load(row)
            assert model.engine is not None
            host = model.engine.host
            run = run_benchmark(
                StepTable(model),
                _rules(model),
                bench,
                host.frontend_ms,
                log,
            )
            out.runs = [run]
        else:
            prefill, decode = row.prefill, row.decode
            if not prefill.count or not decode.count:
                decode = given[1] = wide_decode(load_card(row.model), decode)
                if decode != row.decode:
                    out.notes.append(
                        f"decode over {decode.dp} GPUs read as attention data-parallel, as "
                        "InferenceX's recipes run decode roles that wide"
                    )
            models = [step_model(row, w, calibration, catalog) for w in (prefill, decode)]
            if not prefill.count or not decode.count:
                held = holding_decoders(models[1], row)
                fed = feeding_prefills(models[0], models[1], row, held)
                out.notes.append(
                    f"no worker counts: {fed} prefill and {held} decode worker(s) assumed, the "
                    f"fewest decode workers whose slots hold the {row.concurrency} clients and "
                    "the fewest prefill workers that keep them fed"
                )
                prefill = Workers(prefill.tp, prefill.pp, prefill.dp, prefill.ep, 0, fed)
                decode = Workers(decode.tp, decode.pp, decode.dp, decode.ep, 0, held)
            out.models = models
            bench = replay_load(row)
            assert models[1].engine is not None
            run = run_disaggregated_benchmark(
                StepTable(models[0]),
                StepTable(models[1]),
                _rules(models[0]),
                _rules(models[1]),
                (prefill.count, decode.count),
                bench,
                models[1].engine.host.frontend_ms,
            )
            out.runs = [run]
    except PlannerError as exc:
        out.skipped = str(exc)
        return out
    for model, workers in zip(out.models, given, strict=True):
        if model.tp != workers.tp:
            out.notes.append(
                f"tp={workers.tp} does not divide the {model.card.heads} attention heads: read "
                f"as attention data parallelism ({model.dp} ranks of tp {model.tp})"
            )
    summary = out.runs[0].summary()
    if not log:
        out.runs = []
    if not summary["completed"]:
        out.skipped = "no request completed (prompt and output exceed the KV cache)"
        return out
    out.ttft_ms, out.tpot_ms = float(summary["mean_ttft_ms"]), float(summary["mean_tpot_ms"])
    if row.osl <= 1:
        out.tpot_ms = float(np.nan)
    elif note := _fewer_in_flight(row, out.ttft_ms, out.tpot_ms):
        out.notes.append(note)
        out.fewer_in_flight = True
    return out


def decoding(concurrency: int, osl: int, ttft_ms: float, tpot_ms: float) -> float:
    """Sequences decoding at once in a closed loop of `concurrency` clients (Little's law): each
    cycle waits `ttft_ms` for its first token, then decodes the other osl - 1 at `tpot_ms`."""
    decode_ms = (osl - 1) * tpot_ms
    return concurrency * decode_ms / (decode_ms + ttft_ms)


def _fewer_in_flight(row: Measured, ttft_ms: float, tpot_ms: float) -> str | None:
    """A note when the measured latencies imply under a third of the sequences decoding at once
    that the simulated deployment decodes: the run admitted fewer than its load generator's
    concurrency for a reason the row does not state (a limit of the benchmark or the engine),
    so its latencies describe another load than the one the row names."""
    measured = decoding(row.concurrency, row.osl, row.ttft_ms, row.tpot_ms)
    modelled = decoding(row.concurrency, row.osl, ttft_ms, tpot_ms)
    if not measured < FEWER_IN_FLIGHT * modelled:
        return None
    return (
        f"measured TTFT and TPOT imply ~{measured:.0f} of {row.concurrency} sequences decoding "
        f"at once (Little's law), the deployment as given ~{modelled:.0f}: the run admitted "
        "fewer than its concurrency"
    )
