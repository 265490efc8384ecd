"""StepModel: step latency of one replica (model x accelerator x parallel plan), vectorised."""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from planner.costmodel.calibration import Calibration, Coverage, load_default_calibration
from planner.costmodel.cards import ModelCard, dtype_bytes, load_card
from planner.costmodel.catalog import Accelerator, get_accelerator, load_catalog
from planner.costmodel.memory import MemoryPlan, plan_memory
from planner.costmodel.operators import F, features, step_operators
from planner.costmodel.params import EfficiencyParams
from planner.errors import PlannerError

ArrayLike = np.ndarray | float | int


@dataclass(frozen=True)
class OperatorMatrices:
    """All operators of a plan stacked: FLOP, byte and weight-element coefficients by kind."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    count: np.ndarray
    flops: np.ndarray
    bytes: np.ndarray
    weights: np.ndarray
    pairs: np.ndarray


def _stack(vectors: list[np.ndarray | None], like: np.ndarray) -> np.ndarray:
    """Stack optional per-operator coefficient vectors, zeros where absent."""
    return np.array([np.zeros_like(like) if v is None else v for v in vectors])


@lru_cache(maxsize=4096)
def operator_matrices(card: ModelCard, tp: int, pp: int, ep: int, dtype: str) -> OperatorMatrices:
    """Stack the plan's operators into coefficient matrices (cached: builds stay cheap)."""
    ops = step_operators(card, tp, pp, ep, dtype)
    flops = np.array([op.flops for op in ops])
    data = np.array([op.bytes for op in ops])
    weights = np.zeros_like(data)
    gemm = np.array([op.kind == "gemm" for op in ops])
    weights[gemm, F["ONE"]] = data[gemm, F["ONE"]]
    weights[gemm, F["X"]] = data[gemm, F["X"]]
    return OperatorMatrices(
        names=tuple(op.name for op in ops),
        kinds=tuple(op.kind for op in ops),
        count=np.array([float(op.count) for op in ops]),
        flops=flops,
        bytes=data,
        weights=weights / dtype_bytes(dtype),
        pairs=_stack([op.pairs for op in ops], flops[0]),
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


def time_coefficients(
    m: OperatorMatrices, acc: Accelerator, dtype: str, tp: int, p: EfficiencyParams
) -> TimeCoefficients:
    """Turn FLOP/byte coefficients into ms coefficients with the device peaks and efficiencies."""
    peak = acc.peak_flops(dtype) / 1e3
    bw = acc.hbm_tbs * 1e12 / 1e3
    link = acc.interconnect_gbs * 1e9 / 1e3 * p.link_eff
    kinds = np.array(m.kinds)
    eff = np.select([kinds == "gemm", kinds == "attn"], [p.gemm_eff, p.attn_eff], 0.0)
    compute_scale = np.divide(1.0, peak * eff, out=np.zeros(len(kinds)), where=eff > 0)
    on_chip = np.isin(kinds, ("gemm", "attn", "mem"))
    ring = 2.0 * (tp - 1) / tp
    comm_factor = np.select(
        [kinds == "allreduce", np.isin(kinds, ("alltoall", "p2p"))], [ring, 1.0], 0.0
    )
    count = m.count[:, None]
    padded = m.flops + 2.0 * p.gemm_pad_rows * m.weights + p.softmax_flops * m.pairs
    mem_eff = np.select([kinds == "mem", on_chip], [p.elementwise_eff, p.mem_eff], 0.0)
    memory_scale = np.divide(1.0, bw * mem_eff, out=np.zeros(len(kinds)), where=mem_eff > 0)
    return TimeCoefficients(
        names=m.names,
        compute=count * padded * compute_scale[:, None],
        memory=count * m.bytes * memory_scale[:, None],
        comm=count * m.bytes * (comm_factor / link)[:, None],
        latency=m.count * np.where(on_chip, p.kernel_ms, p.collective_ms),
        uses=((m.bytes != 0) | (m.flops != 0)).astype(float),
    )


def operator_times(c: TimeCoefficients, feats: np.ndarray) -> np.ndarray:
    """Per-operator ms (ops, points): roofline max of compute and memory, comms, latencies."""
    per_op = np.maximum(c.compute @ feats, c.memory @ feats) + c.comm @ feats
    active = (c.uses @ (feats > 0)) > 0
    return per_op + c.latency[:, None] * active


def step_time(
    c: TimeCoefficients, p: EfficiencyParams, layers: int, feats: np.ndarray, prefill: np.ndarray
) -> np.ndarray:
    """Step ms: GPU time and host (launch) time combined by a smooth max of order `overlap`."""
    gpu = operator_times(c, feats).sum(axis=0)
    host_layer = np.where(prefill, p.host_layer_prefill_ms, p.host_layer_decode_ms)
    host = host_layer * layers + p.host_step_ms
    q = p.overlap
    return (gpu**q + host**q) ** (1.0 / q)


def _arr(x: ArrayLike) -> np.ndarray:
    """A 1-d float array view of a scalar or array argument."""
    return np.atleast_1d(np.asarray(x, dtype=float))


class StepModel:
    """Predicts engine-step latency (ms) for one replica; build with StepModel.build()."""

    def __init__(
        self,
        card: ModelCard,
        accelerator: Accelerator,
        tp: int,
        pp: int,
        ep: int,
        dtype: str,
        params: EfficiencyParams,
        coverage: Coverage | None,
        calibration_key: str,
        borrowed_from: str | None,
        memory: MemoryPlan,
    ) -> None:
        """Precompute the per-operator time coefficients; use build() rather than this."""
        self.card, self.accelerator = card, accelerator
        self.tp, self.pp, self.ep, self.dtype = tp, pp, ep, dtype
        self.params, self.coverage, self.memory = params, coverage, memory
        self.calibration_key, self.borrowed_from = calibration_key, borrowed_from
        self.gpus = tp * pp * ep
        self.cost_per_hour = self.gpus * accelerator.price_per_hour
        self._coef = time_coefficients(
            operator_matrices(card, tp, pp, ep, dtype), accelerator, dtype, tp, params
        )
        self.plan_extrapolation = self._plan_extrapolation()

    @classmethod
    def build(
        cls,
        model: str | ModelCard,
        accelerator: str | Accelerator,
        tp: int = 1,
        pp: int = 1,
        ep: int = 1,
        dtype: str | None = None,
        calibration: Calibration | None = None,
        catalog: dict[str, Accelerator] | None = None,
        source: str | None = None,
        check_memory: bool = True,
    ) -> "StepModel":
        """Validate a plan and build its model; PlannerError for unknown ids, bad tp, no fit."""
        card = load_card(model)
        catalog = catalog if catalog is not None else load_catalog()
        acc = get_accelerator(accelerator, catalog)
        dtype = (dtype or card.dtype).lower()
        _check_plan(card, tp, pp, ep)
        cal = calibration if calibration is not None else load_default_calibration()
        resolved = cal.resolve(acc, catalog, source)
        memory = plan_memory(card, acc, tp, pp, ep, dtype)
        if check_memory and not memory.fits:
            raise PlannerError(memory.reason)
        return cls(
            card,
            acc,
            tp,
            pp,
            ep,
            dtype,
            resolved.params,
            resolved.coverage,
            resolved.key,
            resolved.borrowed_from,
            memory,
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
                f"(efficiencies of {self.borrowed_from}, scaled by its spec sheet)"
            )
        size = self.card.total_params() / 1e9
        if not cov.params_min_b * 0.8 <= size <= cov.params_max_b * 1.25:
            reasons.append(
                f"model size {size:.0f}B outside {cov.params_min_b:.0f}-{cov.params_max_b:.0f}B"
            )
        if self.tp > cov.tp_max:
            reasons.append(f"tp {self.tp} > calibrated {cov.tp_max}")
        if self.pp > 1 or self.ep > 1:
            reasons.append("pipeline / expert parallelism not profiled")
        if self.dtype not in cov.dtypes:
            reasons.append(f"dtype {self.dtype} not profiled")
        if self.card.is_moe and not cov.moe:
            reasons.append("MoE not profiled")
        if self.card.is_mla and not cov.mla:
            reasons.append("MLA not profiled")
        return reasons

    def _time(self, feats: np.ndarray, prefill: np.ndarray) -> np.ndarray:
        """Step time of a feature matrix under this plan's coefficients."""
        return step_time(self._coef, self.params, self.card.layers, feats, prefill)

    def prefill_ms(self, batch: ArrayLike, tokens: ArrayLike, context: ArrayLike = 0) -> np.ndarray:
        """Step of `batch` sequences each adding `tokens` new tokens after `context` cached."""
        b, t, c = np.broadcast_arrays(_arr(batch), _arr(tokens), _arr(context))
        zero = np.zeros_like(b)
        feats = features(self.card, self.ep, b, t, c, zero, zero)
        return self._time(feats, np.ones(b.shape, dtype=bool))

    def decode_ms(self, batch: ArrayLike, context: ArrayLike) -> np.ndarray:
        """One decode step of `batch` sequences with `context` cached tokens each (mean is fine)."""
        b, c = np.broadcast_arrays(_arr(batch), _arr(context))
        zero = np.zeros_like(b)
        feats = features(self.card, self.ep, zero, zero, zero, b, c)
        return self._time(feats, np.zeros(b.shape, dtype=bool))

    def mixed_ms(
        self,
        prefill_tokens: ArrayLike,
        prefill_context: ArrayLike,
        decode_batch: ArrayLike,
        decode_context: ArrayLike,
    ) -> np.ndarray:
        """One chunked-prefill step: a prefill chunk of one sequence plus a decode batch."""
        pt, pc, db, dc = np.broadcast_arrays(
            _arr(prefill_tokens), _arr(prefill_context), _arr(decode_batch), _arr(decode_context)
        )
        pb = (pt > 0).astype(float)
        feats = features(self.card, self.ep, pb, pt, pc, db, dc)
        return self._time(feats, pt > 0)

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
        one, zero = _arr(batch), np.zeros(1)
        if phase == "prefill":
            feats = features(self.card, self.ep, one, _arr(tokens), _arr(context), zero, zero)
        else:
            feats = features(self.card, self.ep, zero, zero, zero, one, _arr(context))
        per_op = operator_times(self._coef, feats)[:, 0]
        return {name: float(ms) for name, ms in zip(self._coef.names, per_op, strict=True)}


def _check_plan(card: ModelCard, tp: int, pp: int, ep: int) -> None:
    """Reject plans the model's shapes cannot be split into."""
    for name, value in (("tp", tp), ("pp", pp), ("ep", ep)):
        if not isinstance(value, int | np.integer) or value < 1:
            raise PlannerError(f"{name} must be a positive integer, not {value!r}")
    if card.heads % tp:
        raise PlannerError(f"tp={tp} does not divide the {card.heads} attention heads of {card.id}")
    if pp > card.layers:
        raise PlannerError(f"pp={pp} exceeds the {card.layers} layers of {card.id}")
    if ep > 1 and not card.is_moe:
        raise PlannerError(f"ep={ep} needs an MoE model; {card.id} is dense")
    if card.is_moe and card.experts % ep:
        raise PlannerError(f"ep={ep} does not divide the {card.experts} experts of {card.id}")
