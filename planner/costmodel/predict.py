"""StepModel: step latency of one replica (model x accelerator x parallel plan), vectorised."""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from math import ceil
from typing import Any, NamedTuple

import numpy as np

from planner.costmodel.calibration import Calibration, Resolved, load_default_calibration
from planner.costmodel.cards import ModelCard, dtype_bytes, load_card, normalize_dtype
from planner.costmodel.catalog import Accelerator, get_accelerator, load_catalog
from planner.costmodel.engine import EngineProfile, HostCosts
from planner.costmodel.memory import DEFAULT_MEMORY, MemoryPlan, plan_memory
from planner.costmodel.operators import (
    ACT_DTYPE,
    F,
    Precision,
    StepShape,
    busiest_share,
    features,
    step_operators,
)
from planner.costmodel.parallel import Parallel
from planner.costmodel.params import EfficiencyParams
from planner.errors import PlannerError

ArrayLike = np.ndarray | float | int
LOW_PRECISION = ("fp8", "int8", "fp4", "mxfp4")


@dataclass(frozen=True)
class Speculative:
    """Speculative decoding (MTP or a draft model): `tokens` drafts per step, each accepted
    with probability `acceptance` given the previous one was."""

    tokens: int
    acceptance: float

    def __post_init__(self) -> None:
        """Reject impossible settings."""
        if self.tokens < 1 or not 0.0 <= self.acceptance < 1.0:
            raise PlannerError(
                f"speculative decoding needs >= 1 draft token and acceptance in [0, 1), "
                f"not {self.tokens} and {self.acceptance}"
            )

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens a sequence gains per verify step: 1 + a + a^2 + ... + a^k."""
        a = self.acceptance
        return (1.0 - a ** (self.tokens + 1)) / (1.0 - a)

    @classmethod
    def parse(cls, text: str) -> "Speculative":
        """'1:0.7' (draft tokens : acceptance), as --speculative takes it."""
        tokens, _, acceptance = text.partition(":")
        try:
            return cls(int(tokens), float(acceptance))
        except ValueError:
            raise PlannerError(
                f"cannot parse --speculative {text!r}; expected TOKENS:ACCEPTANCE, e.g. 1:0.7"
            ) from None


@dataclass(frozen=True)
class OperatorMatrices:
    """All operators of a plan stacked: FLOP, byte and weight-element coefficients by kind."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    dtypes: tuple[str, ...]
    spans: np.ndarray
    count: np.ndarray
    flops: np.ndarray
    bytes: np.ndarray
    weights: np.ndarray
    pairs: np.ndarray


@lru_cache(maxsize=4096)
def operator_matrices(card: ModelCard, plan: Parallel, prec: Precision) -> OperatorMatrices:
    """Stack the plan's operators into coefficient matrices (cached: builds stay cheap)."""
    ops = step_operators(card, plan, prec)
    flops = np.array([op.flops for op in ops])
    data = np.array([op.bytes for op in ops])
    weights = np.zeros_like(data)
    for i, op in enumerate(ops):
        if op.kind in ("gemm", "moe"):
            weights[i, F["ONE"]] = data[i, F["ONE"]] / dtype_bytes(op.dtype)
            weights[i, F["X"]] = data[i, F["X"]] / dtype_bytes(op.dtype)
    return OperatorMatrices(
        names=tuple(op.name for op in ops),
        kinds=tuple(op.kind for op in ops),
        dtypes=tuple(op.dtype for op in ops),
        spans=np.array([float(op.span) for op in ops]),
        count=np.array([float(op.count) for op in ops]),
        flops=flops,
        bytes=data,
        weights=weights,
        pairs=np.array([np.zeros(flops.shape[1]) if op.pairs is None else op.pairs for op in ops]),
    )


@dataclass(frozen=True)
class TimeCoefficients:
    """Millisecond coefficients per operator and feature for one plan on one device."""

    names: tuple[str, ...]
    compute: np.ndarray
    memory: np.ndarray
    comm: np.ndarray
    latency: np.ndarray
    uses: np.ndarray
    roofline_q: float

    @cached_property
    def stacked(self) -> np.ndarray:
        """Compute, memory and comm coefficients stacked: one product prices all three."""
        return np.vstack([self.compute, self.memory, self.comm])

    @cached_property
    def sparse(self) -> tuple["SparseOperator", ...]:
        """Each operator's nonzero coefficients (each operator depends on a few features)."""

        def pairs(row: np.ndarray) -> tuple[tuple[int, float], ...]:
            return tuple((j, float(k)) for j, k in enumerate(row) if k != 0)

        return tuple(
            SparseOperator(
                pairs(self.compute[i]),
                pairs(self.memory[i]),
                pairs(self.comm[i]),
                float(self.latency[i]),
                tuple(j for j, used in enumerate(self.uses[i]) if used),
            )
            for i in range(len(self.names))
        )


class SparseOperator(NamedTuple):
    """One operator's (feature, ms coefficient) pairs, its launch latency and the features
    whose presence makes it run."""

    compute: tuple[tuple[int, float], ...]
    memory: tuple[tuple[int, float], ...]
    comm: tuple[tuple[int, float], ...]
    latency: float
    uses: tuple[int, ...]


def _compute_scale(m: OperatorMatrices, acc: Accelerator, p: EfficiencyParams) -> np.ndarray:
    """ms per FLOP of each operator: its precision's peak times its kind's efficiency."""
    scale = np.zeros(len(m.kinds))
    for i, (kind, dtype) in enumerate(zip(m.kinds, m.dtypes, strict=True)):
        eff = {"gemm": p.gemm_eff, "moe": p.moe_eff, "attn": p.attn_eff}.get(kind, 0.0)
        if not eff:
            continue
        peak = acc.peak_flops(dtype)
        if dtype in LOW_PRECISION and peak > acc.peak_flops(ACT_DTYPE):
            eff *= p.lowp_eff
        scale[i] = 1e3 / (peak * eff)
    return scale


def time_coefficients(
    m: OperatorMatrices, acc: Accelerator, p: EfficiencyParams
) -> TimeCoefficients:
    """Turn FLOP/byte coefficients into ms coefficients with the device peaks and efficiencies."""
    bw = acc.hbm_tbs * 1e12 / 1e3
    kinds = np.array(m.kinds)
    on_chip = np.isin(kinds, ("gemm", "moe", "attn", "mem"))
    link = np.array([acc.link_gbs(int(s)) for s in m.spans]) * 1e9 / 1e3 * p.link_eff
    ring = 2.0 * (m.spans - 1) / m.spans
    many = (kinds == "alltoall") | (m.spans > acc.scale_up_domain)
    rounds = np.where(many, np.maximum(np.log2(np.maximum(m.spans, 1.0)), 1.0), 1.0)
    comm_factor = np.select(
        [kinds == "allreduce", np.isin(kinds, ("alltoall", "p2p"))], [ring, 1.0], 0.0
    )
    count = m.count[:, None]
    pad = np.where(kinds == "moe", p.moe_pad_rows, p.gemm_pad_rows)[:, None]
    padded = m.flops + 2.0 * pad * m.weights + p.softmax_flops * m.pairs
    mem_eff = np.select([kinds == "mem", on_chip], [p.elementwise_eff, p.mem_eff], 0.0)
    memory_scale = np.divide(1.0, bw * mem_eff, out=np.zeros(len(kinds)), where=mem_eff > 0)
    return TimeCoefficients(
        names=m.names,
        compute=count * padded * _compute_scale(m, acc, p)[:, None],
        memory=count * m.bytes * memory_scale[:, None],
        comm=count * m.bytes * (comm_factor / link)[:, None],
        latency=m.count * np.where(on_chip, p.kernel_ms, p.collective_ms * rounds),
        uses=((m.bytes != 0) | (m.flops != 0)).astype(float),
        roofline_q=p.roofline_q,
    )


def smooth_max(a: np.ndarray, b: np.ndarray, q: float) -> np.ndarray:
    """(a^q + b^q)^(1/q): the larger of two times, less than fully hiding the smaller one."""
    hi = np.maximum(a, b)
    ratio = np.minimum(a, b) / np.maximum(hi, 1e-300)
    return hi * (1.0 + ratio**q) ** (1.0 / q)


def smooth_max_one(a: float, b: float, q: float) -> float:
    """smooth_max of two floats (a simulator prices one step at a time; numpy's per-call cost
    would be most of it)."""
    hi, lo = (a, b) if a >= b else (b, a)
    return hi * (1.0 + (lo / max(hi, 1e-300)) ** q) ** (1.0 / q)


def _pick(condition: bool, a: float, b: float) -> float:
    """np.where for one value."""
    return a if condition else b


def operator_times(c: TimeCoefficients, feats: np.ndarray) -> np.ndarray:
    """Per-operator ms (ops, points): smooth roofline of compute and memory, comms, latencies."""
    ops = len(c.names)
    terms = c.stacked @ feats
    per_op = smooth_max(terms[:ops], terms[ops : 2 * ops], c.roofline_q) + terms[2 * ops :]
    active = (c.uses @ (feats > 0)) > 0
    return per_op + c.latency[:, None] * active


def gpu_ms_one(c: TimeCoefficients, feats: list[float]) -> float:
    """operator_times of one step summed over the operators, from the sparse coefficients."""
    total = 0.0
    for compute, memory, comm, latency, uses in c.sparse:
        a = b = link = 0.0
        for j, k in compute:
            a += k * feats[j]
        for j, k in memory:
            b += k * feats[j]
        for j, k in comm:
            link += k * feats[j]
        total += smooth_max_one(a, b, c.roofline_q) + link
        for j in uses:
            if feats[j] > 0:
                total += latency
                break
    return total


def step_time(
    c: TimeCoefficients,
    p: EfficiencyParams,
    layers: int,
    feats: np.ndarray,
    eager: np.ndarray,
    host: HostCosts | None = None,
    seqs: np.ndarray | None = None,
    overlap_scheduler: bool = False,
) -> np.ndarray:
    """Step ms: GPU time combined with the host's launch and scheduling time.

    Without an engine (a profiling harness) the host is the calibration's own launch model.
    With an engine, the GPU work grows by the engine's `seq_layer_ms` per sequence and layer,
    eager steps pay `layer_ms` per layer of launches (hidden behind the GPU by a smooth max),
    and every step pays the scheduler's `step_ms` plus `seq_ms` per sequence, after the GPU
    work or, with an overlap scheduler, under it.
    """
    gpu = operator_times(c, feats).sum(axis=0)
    count = seqs if seqs is not None else 0.0
    return with_host(gpu, p, layers, eager, host, count, overlap_scheduler, smooth_max, np.where)


def with_host(
    gpu: Any,
    p: EfficiencyParams,
    layers: int,
    eager: Any,
    host: HostCosts | None,
    seqs: Any,
    overlap_scheduler: bool,
    smax: Callable[[Any, Any, float], Any],
    pick: Callable[[Any, Any, Any], Any],
) -> Any:
    """step_time's host part on the GPU time, for arrays (smooth_max, np.where) or for one
    step's floats (smooth_max_one, _pick)."""
    q = p.overlap
    if host is None:
        host_layer = pick(eager, p.host_layer_prefill_ms, p.host_layer_decode_ms)
        return smax(gpu, host_layer * layers + p.host_step_ms, q)
    kernels = gpu + host.seq_layer_ms * seqs * layers
    device = smax(kernels, pick(eager, host.layer_ms * layers, 0.0), q)
    sched = host.step_ms + host.seq_ms * seqs
    return smax(device, sched, q) if overlap_scheduler else device + sched


def _arr(x: ArrayLike) -> np.ndarray:
    """A 1-d float array view of a scalar or array argument."""
    return np.atleast_1d(np.asarray(x, dtype=float))


class StepModel:
    """Predicts engine-step latency (ms) for one replica; build with StepModel.build()."""

    def __init__(
        self,
        card: ModelCard,
        accelerator: Accelerator,
        plan: Parallel,
        precision: Precision,
        resolved: Resolved,
        memory: MemoryPlan,
        engine: EngineProfile | None = None,
        speculative: Speculative | None = None,
    ) -> None:
        """Precompute the per-operator time coefficients; use build() rather than this."""
        self.card, self.accelerator, self.plan, self.precision = card, accelerator, plan, precision
        self.params, self.coverage = resolved.params, resolved.coverage
        self.memory, self.engine, self.speculative = memory, engine, speculative
        self.calibration_key, self.borrowed_from = resolved.key, resolved.borrowed_from
        self.vendor_defaults = resolved.vendor_defaults
        params = resolved.params
        self.tp, self.pp, self.dp, self.ep = plan.tp, plan.pp, plan.dp, plan.ep
        self.dtype = precision.dense
        self.attention_window = card.attention_window
        self.gpus = plan.gpus
        self.cost_per_hour = self.gpus * accelerator.price_per_hour
        matrices = operator_matrices(card, plan, precision)
        self._coef = time_coefficients(matrices, accelerator, params)
        self.plan_extrapolation = self._plan_extrapolation()

    @classmethod
    def build(
        cls,
        model: str | ModelCard,
        accelerator: str | Accelerator,
        tp: int = 1,
        pp: int = 1,
        ep: int = 1,
        dp: int = 1,
        dtype: str | None = None,
        expert_dtype: str | None = None,
        kv_dtype: str | None = None,
        engine: EngineProfile | None = None,
        speculative: Speculative | None = None,
        calibration: Calibration | None = None,
        catalog: dict[str, Accelerator] | None = None,
        source: str | None = None,
        check_memory: bool = True,
    ) -> "StepModel":
        """Validate a plan and build its model; PlannerError for unknown ids, bad tp, no fit.

        `dtype` sets the weight precision of the whole model (default: as shipped),
        `expert_dtype` that of the routed experts alone; the KV cache defaults to BF16 (the
        engines' "auto": the activation dtype). With an `engine`, steps pay its host costs
        (fitted ones from the calibration where it has them) and memory follows its policy.
        With `speculative` decoding, a decode step verifies the drafts and is priced per
        expected token it yields.
        """
        card = load_card(model)
        catalog = catalog if catalog is not None else load_catalog()
        acc = get_accelerator(accelerator, catalog)
        plan = Parallel(tp, pp, dp, ep)
        plan.check(card)
        dense = normalize_dtype(dtype or card.dtype)
        experts = normalize_dtype(expert_dtype or dtype or card.expert_dtype)
        precision = Precision(dense, experts, normalize_dtype(kv_dtype or ACT_DTYPE))
        cal = calibration if calibration is not None else load_default_calibration()
        resolved = cal.resolve(acc, catalog, source)
        if engine is not None:
            engine = cal.fitted_engine(engine.resolve(acc.hbm_gb))
        policy = engine.memory if engine is not None else DEFAULT_MEMORY
        memory = plan_memory(card, acc, plan, precision, policy)
        if check_memory and not memory.fits:
            raise PlannerError(memory.reason)
        return cls(
            card,
            acc,
            plan,
            precision,
            resolved,
            memory,
            engine,
            speculative,
        )

    def _plan_extrapolation(self) -> list[str]:
        """Why every prediction of this plan is outside what calibration saw (empty if none)."""
        cov = self.coverage
        if cov is None:
            return ["no calibration data: spec-sheet defaults"]
        reasons = []
        if self.borrowed_from:
            reasons.append(
                f"{self.accelerator.id} has no reference profile "
                f"(efficiencies of {self.borrowed_from}, scaled by its spec sheet"
                + (
                    "; MoE and low-precision GEMM values at defaults: fitted on another "
                    "vendor's kernels)"
                    if self.vendor_defaults
                    else ")"
                )
            )
        size = self.card.total_params() / 1e9
        if not cov.params_min_b * 0.8 <= size <= cov.params_max_b * 1.25:
            reasons.append(
                f"model size {size:.0f}B outside {cov.params_min_b:.0f}-{cov.params_max_b:.0f}B"
            )
        if self.tp > cov.tp_max:
            reasons.append(f"tp {self.tp} > calibrated {cov.tp_max}")
        if self.pp > 1 or self.ep > 1 or self.dp > 1:
            reasons.append("pipeline / expert / attention-data parallelism not profiled")
        if self.dtype not in cov.dtypes:
            reasons.append(f"dtype {self.dtype} not profiled")
        if self.card.is_moe and not cov.moe:
            reasons.append("MoE not profiled")
        if self.card.is_mla and not cov.mla:
            reasons.append("MLA not profiled")
        return reasons

    def step_ms(self, shape: StepShape) -> np.ndarray:
        """Time of engine steps described by their summed prefill and decode work.

        With speculative decoding, a step without prompt tokens is a verify step plus the
        drafting (one pass of the draft layers per draft token), divided by the tokens it
        yields on average, so the simulator can advance one token per step; a step carrying
        prompt tokens advances its decodes by one token (conservative). The shape's fields
        may be arrays (many steps) or floats (one step, priced faster).
        """
        spec = self.speculative
        if spec is None and not isinstance(shape.decode_seqs, np.ndarray):
            return np.array([self._one_ms(shape)])
        decode = np.atleast_1d(np.asarray(shape.decode_seqs, dtype=float))
        prefill = np.atleast_1d(np.asarray(shape.prefill_tokens, dtype=float)) > 0
        eager, seqs = self.host_inputs(shape)
        if spec is None:
            return self._time(features(self.card, self.plan, shape), eager, seqs)
        verify = self._time(features(self.card, self.plan, shape, spec.tokens + 1), eager, seqs)
        draft = self._time(features(self.card, self.plan, shape), eager, seqs)
        layers = max(self.card.mtp_layers, 1) / self.card.layers
        per_token = (verify + spec.tokens * layers * draft) / spec.tokens_per_step
        return np.where(prefill | (decode == 0), verify, per_token)

    def host_inputs(self, shape: StepShape) -> tuple[np.ndarray, np.ndarray]:
        """Which steps run eagerly (prompt tokens, or a decode batch past the CUDA graphs) and
        how many sequences the busiest DP rank's scheduler handles in each."""
        decode = np.atleast_1d(np.asarray(shape.decode_seqs, dtype=float))
        prefill = np.atleast_1d(np.asarray(shape.prefill_seqs, dtype=float))
        eager = np.atleast_1d(np.asarray(shape.prefill_tokens, dtype=float)) > 0
        if self.engine is not None:
            graphed = self.engine.runtime.graphed
            eager = eager | ~np.array([graphed(int(b)) for b in np.ceil(decode / self.dp)])
        seqs = prefill * busiest_share(prefill, self.dp) + decode * busiest_share(decode, self.dp)
        return eager, seqs

    def _one_ms(self, shape: StepShape) -> float:
        """step_ms of one step given as floats, without speculative decoding, in plain floats."""
        decode, prefill = float(shape.decode_seqs), float(shape.prefill_seqs)
        eager = shape.prefill_tokens > 0
        engine = self.engine
        if engine is not None:
            eager = eager or not engine.runtime.graphed(ceil(decode / self.dp))
        share = busiest_share
        seqs = float(prefill * share(prefill, self.dp) + decode * share(decode, self.dp))
        gpu = gpu_ms_one(self._coef, features(self.card, self.plan, shape).ravel().tolist())
        host = engine.host if engine is not None else None
        overlap = engine.runtime.overlap_scheduler if engine is not None else False
        layers = self.card.layers
        return with_host(
            gpu, self.params, layers, eager, host, seqs, overlap, smooth_max_one, _pick
        )

    def _time(self, feats: np.ndarray, eager: np.ndarray, seqs: np.ndarray) -> np.ndarray:
        """Step time of a feature matrix: GPU time with the engine's (or harness') host."""
        engine = self.engine
        return step_time(
            self._coef,
            self.params,
            self.card.layers,
            feats,
            eager,
            engine.host if engine is not None else None,
            seqs,
            engine.runtime.overlap_scheduler if engine is not None else False,
        )

    def _uniform(
        self, pb: ArrayLike, pt: ArrayLike, pc: ArrayLike, db: ArrayLike, dc: ArrayLike
    ) -> StepShape:
        """The shape of a step of equal prompt chunks and equal decodes (broadcast arrays)."""
        arrays = np.broadcast_arrays(_arr(pb), _arr(pt), _arr(pc), _arr(db), _arr(dc))
        return StepShape.uniform(float(self.card.attention_window), *arrays)

    def prefill_ms(self, batch: ArrayLike, tokens: ArrayLike, context: ArrayLike = 0) -> np.ndarray:
        """Step of `batch` sequences each adding `tokens` new tokens after `context` cached."""
        return self.step_ms(self._uniform(batch, tokens, context, 0, 0))

    def decode_ms(self, batch: ArrayLike, context: ArrayLike) -> np.ndarray:
        """One decode step of `batch` sequences with `context` cached tokens each (mean is fine)."""
        return self.step_ms(self._uniform(0, 0, 0, batch, context))

    def mixed_ms(
        self,
        prefill_tokens: ArrayLike,
        prefill_context: ArrayLike,
        decode_batch: ArrayLike,
        decode_context: ArrayLike,
    ) -> np.ndarray:
        """One chunked-prefill step: a prefill chunk of one sequence plus a decode batch."""
        pt = _arr(prefill_tokens)
        return self.step_ms(
            self._uniform((pt > 0).astype(float), pt, prefill_context, decode_batch, decode_context)
        )

    def kv_transfer_ms(self, tokens: ArrayLike, bandwidth_gb_s: float | None = None) -> np.ndarray:
        """Time to ship `tokens` tokens of KV cache to another instance, shards in parallel."""
        if bandwidth_gb_s is None:
            bandwidth_gb_s = self.accelerator.interconnect_gbs * self.params.link_eff
        if bandwidth_gb_s <= 0:
            raise PlannerError(f"bandwidth must be positive, not {bandwidth_gb_s}")
        shards = self.tp * self.pp
        seconds = _arr(tokens) * self.memory.kv_bytes_per_token / (shards * bandwidth_gb_s * 1e9)
        return seconds * 1e3 + self.params.collective_ms

    def extrapolated(
        self, phase: np.ndarray, batch: ArrayLike, tokens: ArrayLike, context: ArrayLike
    ) -> np.ndarray:
        """True where a point lies outside the calibration's batch/token/context ranges or plan."""
        b, t, c = np.broadcast_arrays(_arr(batch), _arr(tokens), _arr(context))
        if self.plan_extrapolation or self.coverage is None:
            return np.ones(b.shape, dtype=bool)
        cov = self.coverage
        prefill = np.asarray(phase) == "prefill"
        out = (b > cov.batch_max) | (c + t > cov.context_max + cov.tokens_max)
        return out | (prefill & ((t > cov.tokens_max) | (b * t > cov.step_tokens_max)))

    def breakdown(
        self, phase: str, batch: float, tokens: float = 1.0, context: float = 0.0
    ) -> dict[str, float]:
        """Per-operator ms of one prefill or decode point, before host overlap (to explain)."""
        if phase == "prefill":
            shape = self._uniform(batch, tokens, context, 0, 0)
        else:
            shape = self._uniform(0, 0, 0, batch, context)
        per_op = operator_times(self._coef, features(self.card, self.plan, shape))[:, 0]
        return {name: float(ms) for name, ms in zip(self._coef.names, per_op, strict=True)}
