"""Candidate parallel plans and cheap analytic bounds on what each can reach.

A candidate is accelerator x tp x pp x ep (MoE only) x aggregated or disaggregated (any P:D
instance ratio in lowest terms up to MAX_PD_INSTANCES instances) x max batch. Plans the model's
shapes cannot be split into, or that do not fit in memory, are dropped with the cost model's
reason. A disaggregated candidate may run its prefill instances on another parallel plan than
its decode ones (mixed_candidates: built per request mix from the two sides' bounds). Before
any simulation each candidate gets two bounds from the cost model, on the request mix it will
serve:

- latency floor: each request's TTFT and TPOT on an idle replica (batch of one; plus the KV
  transfer when disaggregated). If fewer than the attainment share of requests meet the SLO
  even then, no load makes it better: the candidate is latency-infeasible.
- goodput ceiling: the replica's throughput if prefill ran at its best per-token cost and
  decode at the largest batch the max batch, the KV cache and the TPOT target allow.
  Aggregated: 1 / (prefill + decode time per request); disaggregated: the slower of P
  prefill and D decode instances, so the ratio whose two sides balance has the lowest floor.
The search simulates candidates in order of their cost-per-goodput floor and stops early.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from math import gcd

import numpy as np

from planner.costmodel import Accelerator, StepModel, load_card
from planner.costmodel.engine import EngineProfile
from planner.simulate.disagg import handoff_gbs
from planner.simulate.metrics import Slo

TP_DEGREES = (1, 2, 4, 8)
PP_DEGREES = (1, 2, 4)
MAX_PD_INSTANCES = 8
MAX_BATCHES = (32, 64, 128, 256)
MAX_INSTANCE_GPUS = 32
MAX_EP = 256
PREFILL_PROBE_TOKENS = np.array([256, 512, 1024, 2048, 4096, 8192, 16384], dtype=float)


@dataclass(frozen=True)
class Targets:
    """Per-request latency limits (ms; None = no target) and the share that must meet them."""

    ttft_ms: float | None
    tpot_ms: float | None
    attainment: float

    @classmethod
    def of(cls, slos: Sequence[Slo], attainment: float) -> "Targets":
        """The TTFT and TPOT limits of parsed SLOs (other metrics are checked by simulation)."""
        limits = {s.metric: s.limit_ms for s in slos}
        return cls(limits.get("ttft"), limits.get("tpot"), attainment)

    def describe(self) -> str:
        """'TTFT <= 1000 ms and TPOT <= 50 ms' (per request)."""
        parts = [
            f"{name} <= {value:g} ms"
            for name, value in (("TTFT", self.ttft_ms), ("TPOT", self.tpot_ms))
            if value is not None
        ]
        return " and ".join(parts) or "the SLO"


@dataclass(frozen=True)
class PrefillSide:
    """The prefill instances of a disaggregated replica that run on another accelerator or
    parallel layout than its decode instances (P/D on mixed hardware)."""

    accelerator: Accelerator
    tp: int
    pp: int
    ep: int
    model: StepModel = field(compare=False, repr=False)

    @property
    def gpus(self) -> int:
        """GPUs of one prefill instance."""
        return self.tp * self.pp * self.ep

    def label(self) -> str:
        """'h100-tp2', 'b200-tp4-ep8': accelerator and the degrees above 1 after tp."""
        return _layout_label(self.accelerator.id, self.tp, self.pp, self.ep)


def _layout_label(accelerator: str, tp: int, pp: int, ep: int) -> str:
    """'h100-tp2', 'a100-tp1-pp2', 'b200-tp4-ep8'."""
    more = [f"{k}{v}" for k, v in (("pp", pp), ("ep", ep)) if v > 1]
    return "-".join([accelerator, f"tp{tp}", *more])


@dataclass(frozen=True)
class Candidate:
    """One replica plan; a disaggregated replica is P prefill plus D decode instances, the
    prefill ones on `prefill` when they run on other hardware (else as the decode ones)."""

    accelerator: Accelerator
    tp: int
    pp: int
    ep: int
    mode: str
    pd: tuple[int, int] | None
    max_batch: int
    model: StepModel = field(compare=False, repr=False)
    prefill: PrefillSide | None = None

    @property
    def instances(self) -> int:
        """Serving instances per replica (P + D when disaggregated)."""
        return sum(self.pd) if self.pd else 1

    @property
    def instance_gpus(self) -> int:
        """GPUs of one (decode, or aggregated) instance."""
        return self.tp * self.pp * self.ep

    def gpus_on(self) -> dict[str, int]:
        """GPUs per replica on each accelerator type."""
        out: dict[str, int] = {}
        for acc, n in self._sides():
            out[acc.id] = out.get(acc.id, 0) + n
        return out

    @property
    def gpus(self) -> int:
        """GPUs per replica."""
        return sum(self.gpus_on().values())

    def _sides(self) -> list[tuple[Accelerator, int]]:
        """(accelerator, GPUs per replica) of each side."""
        if self.prefill is None or self.pd is None:
            return [(self.accelerator, self.instances * self.instance_gpus)]
        p, d = self.pd
        return [
            (self.prefill.accelerator, p * self.prefill.gpus),
            (self.accelerator, d * self.instance_gpus),
        ]

    @property
    def cost_per_hour(self) -> float:
        """Price of one replica per hour."""
        return sum(n * acc.price_per_hour for acc, n in self._sides())

    @property
    def power_kw(self) -> float:
        """Board power of one replica with every GPU at TDP (kW)."""
        return sum(n * acc.tdp_w for acc, n in self._sides()) / 1000.0

    @property
    def accelerator_label(self) -> str:
        """'h100', or 'h100+a100' (prefill + decode) on mixed hardware."""
        return "+".join(dict.fromkeys(acc.id for acc, _ in self._sides()))

    @cached_property
    def id(self) -> str:
        """Short stable id, e.g. 'h100-tp2-agg-b128', 'a100-tp1-pp2-pd1:2-b64', or with the
        prefill side first on mixed hardware 'h100-tp1-pd2:1-a100-tp1-b256'."""
        own = _layout_label(self.accelerator.id, self.tp, self.pp, self.ep)
        if not self.pd:
            return f"{own}-agg-b{self.max_batch}"
        ratio = f"pd{self.pd[0]}:{self.pd[1]}"
        if self.prefill is not None:
            return f"{self.prefill.label()}-{ratio}-{own}-b{self.max_batch}"
        return f"{own}-{ratio}-b{self.max_batch}"

    def describe(self) -> dict:
        """The plan fields of PLAN.json (accelerator, tp, pp, ep, mode, pd, max_batch, gpus;
        `prefill`: the prefill instances' accelerator and layout on mixed hardware)."""
        side = self.prefill
        return {
            "accelerator": self.accelerator.id,
            "tp": self.tp,
            "pp": self.pp,
            "ep": self.ep,
            "mode": self.mode,
            "pd": list(self.pd) if self.pd else None,
            "max_batch": self.max_batch,
            "gpus": self.gpus,
            "prefill": None
            if side is None
            else {"accelerator": side.accelerator.id, "tp": side.tp, "pp": side.pp, "ep": side.ep},
        }


@dataclass
class Enumeration:
    """All candidates that fit, and why the parallel plans that do not fit were dropped."""

    candidates: list[Candidate]
    enumerated: int
    unfit: list[str]


def pd_ratios(most: int = MAX_PD_INSTANCES) -> tuple[tuple[int, int], ...]:
    """Every P:D instance ratio in lowest terms with at most `most` instances in all, smallest
    first (1:1, 1:2, 2:1, 1:3, 3:1, 1:4, 2:3, ...): a workload's prefill and decode work can
    stand in any proportion, and a multiple of a ratio is only more replicas of it."""
    return tuple(
        (p, total - p)
        for total in range(2, most + 1)
        for p in range(1, total)
        if gcd(p, total - p) == 1
    )


def expert_degrees(experts: int) -> list[int]:
    """EP degrees for a model with `experts` routed experts: powers of two that divide them, up
    to every expert on its own GPU (at most MAX_EP); [1] for a dense model."""
    degrees, ep = [1], 2
    while experts and ep <= min(experts, MAX_EP) and experts % ep == 0:
        degrees.append(ep)
        ep *= 2
    return degrees


def parallel_plans(model: str, accelerator: Accelerator) -> list[tuple[int, int, int]]:
    """(tp, pp, ep) degrees worth trying: tp within the scale-up domain, ep only for MoE and
    up to the expert count; an instance up to the accelerator's scale-up domain (384 NPUs of a
    CloudMatrix384) or MAX_INSTANCE_GPUS where that is larger (wide EP over the scale-out
    network: the all-to-all is costed on it)."""
    card = load_card(model)
    eps = expert_degrees(card.experts if card.is_moe else 0)
    largest = max(MAX_INSTANCE_GPUS, accelerator.scale_up_domain)
    return [
        (tp, pp, ep)
        for tp in TP_DEGREES
        for pp in PP_DEGREES
        for ep in eps
        if tp <= accelerator.scale_up_domain
        and card.heads % tp == 0
        and pp <= card.layers
        and tp * pp * ep <= largest
    ]


def enumerate_candidates(
    model: str,
    accelerators: Sequence[Accelerator],
    catalog: dict[str, Accelerator],
    engine: EngineProfile | None = None,
    max_batches: Sequence[int] = MAX_BATCHES,
    ratios: Sequence[tuple[int, int]] | None = None,
) -> Enumeration:
    """Every (accelerator, tp, pp, ep, mode, P:D, max batch) whose replica fits in memory.

    An ep > 1 plan runs attention data-parallel over ep ranks with the experts spread over
    them (DeepSeek-style), so its GPUs are tp x pp x ep. Replicas serve with `engine`;
    disaggregated ones at each of `ratios` (default: every ratio of pd_ratios()).
    """
    candidates, unfit, enumerated = [], [], 0
    modes: list[tuple[str, tuple[int, int] | None]] = [("aggregated", None)]
    modes += [("disaggregated", r) for r in (pd_ratios() if ratios is None else ratios)]
    for acc in accelerators:
        for tp, pp, ep in parallel_plans(model, acc):
            enumerated += len(modes) * len(max_batches)
            step = StepModel.build(
                model,
                acc,
                tp=tp,
                pp=pp,
                ep=ep,
                dp=ep,
                engine=engine,
                catalog=catalog,
                check_memory=False,
            )
            if not step.memory.fits:
                unfit.append(step.memory.reason)
                continue
            candidates += [
                Candidate(acc, tp, pp, ep, mode, pd, b, step)
                for mode, pd in modes
                for b in max_batches
            ]
    return Enumeration(candidates, enumerated, unfit)


@dataclass(frozen=True)
class Bounds:
    """Analytic bounds of one candidate on one request mix."""

    latency_share: float
    ttft_floor_ms: float
    tpot_floor_ms: float
    goodput_ceiling: float
    batch_limit: int

    def cost_floor(self, cost_per_hour: float) -> float:
        """The least $/hour per request/s the candidate could reach."""
        return cost_per_hour / self.goodput_ceiling if self.goodput_ceiling > 0 else np.inf


def _prefill_ms_per_token(step: StepModel) -> float:
    """The best prefill cost per token over prompt lengths and small batches."""
    batch, tokens = np.meshgrid([1.0, 4.0, 16.0], PREFILL_PROBE_TOKENS)
    ms = step.prefill_ms(batch.ravel(), tokens.ravel(), 0.0)
    return float((ms / (batch.ravel() * tokens.ravel())).min())


@dataclass(frozen=True)
class Phases:
    """What the instances of one parallel plan can do on a request mix, whatever the replica's
    mode, P:D ratio and max batch: which requests an idle instance serves within the TTFT and
    the TPOT target, latency floors, and prefill and decode time per request."""

    ttft_ok: np.ndarray
    tpot_ok: np.ndarray
    tpot_ms: np.ndarray
    ttft_floor_ms: float
    tpot_floor_ms: float
    prefill_ms: float
    decode_ms: np.ndarray
    batch_limit: int

    def decode_ms_at(self, max_batch: int) -> float:
        """Decode time per request at the best batch up to `max_batch` and the batch limit."""
        return float(self.decode_ms[min(self.batch_limit, max_batch) - 1])


def phases(
    step: StepModel, inputs: np.ndarray, outputs: np.ndarray, slo: Targets, disaggregated: bool
) -> Phases:
    """Idle-replica latencies of every request (KV transfer added when disaggregated) against
    the SLO, and the best prefill and decode cost per request on these token lengths."""
    ttft = step.prefill_ms(1.0, inputs, 0.0)
    if disaggregated:
        ttft = ttft + step.kv_transfer_ms(inputs)
    tpot = step.decode_ms(1.0, inputs + outputs / 2.0)
    mean_ctx = float((inputs + outputs / 2.0).mean())
    kv_batch = step.memory.kv_budget_tokens / max(float((inputs + outputs).mean()), 1.0)
    sizes = np.arange(1, max(MAX_BATCHES) + 1, dtype=float)
    decode = step.decode_ms(sizes, mean_ctx)
    usable = sizes <= kv_batch
    if slo.tpot_ms is not None:
        usable &= decode <= slo.tpot_ms
    usable[0] = True
    return Phases(
        ttft_ok=ttft <= slo.ttft_ms if slo.ttft_ms is not None else np.ones(len(ttft), bool),
        tpot_ok=tpot <= slo.tpot_ms if slo.tpot_ms is not None else np.ones(len(tpot), bool),
        tpot_ms=tpot,
        ttft_floor_ms=float(np.quantile(ttft, slo.attainment)),
        tpot_floor_ms=float(np.quantile(tpot, slo.attainment)),
        prefill_ms=float(inputs.mean()) * _prefill_ms_per_token(step),
        decode_ms=float(outputs.mean()) * np.minimum.accumulate(decode / sizes),
        batch_limit=int(sizes[usable].max()),
    )


def bounds(cand: Candidate, ph: Phases, prefill: Phases | None = None) -> Bounds:
    """Latency floors and goodput ceiling of `cand` from its parallel plan's `ph` (and, on
    mixed hardware, its prefill side's `prefill`)."""
    first = prefill or ph
    decode_ms = ph.decode_ms_at(cand.max_batch)
    if cand.pd:
        p, d = cand.pd
        ceiling = min(p * 1000.0 / first.prefill_ms, d * 1000.0 / max(decode_ms, 1e-9))
    else:
        ceiling = 1000.0 / (ph.prefill_ms + decode_ms)
    return Bounds(
        latency_share=float((first.ttft_ok & ph.tpot_ok).mean()),
        ttft_floor_ms=first.ttft_floor_ms,
        tpot_floor_ms=ph.tpot_floor_ms,
        goodput_ceiling=ceiling,
        batch_limit=ph.batch_limit,
    )


def mixed_candidates(
    cands: Sequence[Candidate],
    per_plan: Mapping[int, Phases],
    inputs: np.ndarray,
    slo: Targets,
    ratios: Sequence[tuple[int, int]] | None = None,
) -> list[tuple[Candidate, Phases, Phases]]:
    """Disaggregated replicas whose prefill and decode instances run different parallel plans
    (another accelerator, or another layout of one), with each side's phases on these requests.

    Per accelerator, the plan whose instance prefills a request at the least cost (TTFT target
    met alone by the attainment share) is paired with every other accelerator's, and its own
    other layouts', plan that decodes a request at the least cost per max batch (TPOT target
    likewise), at every ratio: the pairs each side's own best would form. The prefill side's
    TTFT then carries the KV hand-off between the two (over the slower scale-out link between
    two types) instead of its own, as the simulator counts it: the first token reaches the
    client once the decode side holds the KV. `cands` are the same-hardware disaggregated
    candidates, `per_plan` their phases by id(model)."""
    attainment = slo.attainment
    plans = {id(c.model): c for c in cands if c.pd is not None}
    batches = sorted({c.max_batch for c in cands})
    prefill: dict[str, tuple[float, Candidate]] = {}
    decode: dict[tuple[str, int], tuple[float, Candidate]] = {}
    for key, c in plans.items():
        ph, price = per_plan[key], c.instance_gpus * c.accelerator.price_per_hour
        acc = c.accelerator.id
        if ph.ttft_ok.mean() >= attainment:
            prefill[acc] = min(
                prefill.get(acc, (np.inf, c)), (price * ph.prefill_ms, c), key=_first
            )
        if ph.tpot_ok.mean() >= attainment:
            for b in batches:
                here = (price * ph.decode_ms_at(b), c)
                decode[(acc, b)] = min(decode.get((acc, b), (np.inf, c)), here, key=_first)
    out = []
    for _, p_side in prefill.values():
        for (_, b), (_, d_side) in decode.items():
            if d_side.model is p_side.model:
                continue
            side = PrefillSide(p_side.accelerator, p_side.tp, p_side.pp, p_side.ep, p_side.model)
            prefilling = _with_handoff(per_plan[id(p_side.model)], side, d_side, inputs, slo)
            out += [
                (
                    Candidate(
                        d_side.accelerator,
                        d_side.tp,
                        d_side.pp,
                        d_side.ep,
                        "disaggregated",
                        r,
                        b,
                        d_side.model,
                        side,
                    ),
                    per_plan[id(d_side.model)],
                    prefilling,
                )
                for r in (pd_ratios() if ratios is None else ratios)
            ]
    return out


def _with_handoff(
    ph: Phases, side: PrefillSide, decode: Candidate, inputs: np.ndarray, slo: Targets
) -> Phases:
    """A prefill side's phases with each request's TTFT carrying its KV hand-off to `decode`
    (over the link between the two) in place of the hand-off within its own type."""
    link = handoff_gbs(side.model, decode.model)
    ttft = side.model.prefill_ms(1.0, inputs, 0.0) + side.model.kv_transfer_ms(inputs, link)
    ok = ttft <= slo.ttft_ms if slo.ttft_ms is not None else ph.ttft_ok
    return replace(ph, ttft_ok=ok, ttft_floor_ms=float(np.quantile(ttft, slo.attainment)))


def _first(pair: tuple[float, Candidate]) -> float:
    """The cost of a (cost, candidate) pair."""
    return pair[0]
