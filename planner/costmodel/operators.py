"""Operators of one engine step: FLOPs and bytes per GPU as linear functions of step features.

A step is summarised by a few features of its busiest attention data-parallel rank (below):

==========  ==================================================================================
``ONE``     1: constant terms (weights read once per step)
``N``       new tokens in the step (prefill chunks plus one per decoding sequence)
``ND``      new tokens that are decode tokens (MLA runs those with absorbed projections)
``SP``      query-key pairs of prefill sequences: sum of t x c + t (t + 1) / 2
``KP``      KV-cache tokens read by prefill sequences: sum of c + t
``SD``      query-key pairs of decode sequences: sum of c + 1
``KD``      KV-cache tokens read by decode sequences (equal to ``SD``)
``SWP``     query-key pairs of prefill sequences within the attention window (sliding-window
            layers; the top-k tokens of sparse attention)
``SWD``     the same for decode sequences
``KWP``     KV-cache tokens prefill sequences read within the window
``KWD``     KV-cache tokens decode sequences read within the window
``R``       LM-head rows: one per sequence (last position of a prompt chunk, every decode token)
``X``       distinct routed experts touched per MoE layer on this GPU
``NT``      new tokens of the whole instance (every DP rank): what routed experts and the
            expert dispatch see
==========  ==================================================================================

(t: new tokens of a sequence in the step, c: tokens it already has in the KV cache.) Each
operator knows, per occurrence, its FLOPs and bytes (plus, for attention, its query-key pairs
per head, which cost a softmax exponential each) as coefficient vectors over these features,
the precision its math runs in, and for collectives how many GPUs they span, so a whole batch
of points is a few small matrix products.
"""

from dataclasses import dataclass

import numpy as np

from planner.costmodel.cards import ModelCard, dtype_bytes
from planner.costmodel.parallel import Parallel

FEATURES = ("ONE", "N", "ND", "SP", "KP", "SD", "KD", "SWP", "SWD", "KWP", "KWD", "R", "X", "NT")
F = {name: i for i, name in enumerate(FEATURES)}
ACT_BYTES = 2.0
ACT_DTYPE = "bf16"
QK_NORM_STAT_BYTES = 4.0
KINDS = ("gemm", "moe", "attn", "mem", "allreduce", "alltoall", "p2p")


@dataclass(frozen=True)
class Precision:
    """Weight dtypes of the dense parts and of the routed experts, and the KV-cache dtype."""

    dense: str
    experts: str
    kv: str


@dataclass(frozen=True)
class Operator:
    """One kernel (or collective) repeated `count` times per step, with FLOP/byte coefficients.

    `dtype` is the precision the math runs in (picks the accelerator's peak); `span` is how
    many GPUs a collective spans (picks the scale-up or the scale-out bandwidth).
    """

    name: str
    kind: str
    count: int
    flops: np.ndarray
    bytes: np.ndarray
    pairs: np.ndarray | None = None
    dtype: str = ACT_DTYPE
    span: int = 1

    def cost(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FLOPs and bytes of one occurrence for features of shape (len(FEATURES), points)."""
        return self.flops @ features, self.bytes @ features


def _vec(**terms: float) -> np.ndarray:
    """A coefficient vector over FEATURES from keyword terms (e.g. N=2.0, ONE=1e6)."""
    out = np.zeros(len(FEATURES))
    for name, value in terms.items():
        out[F[name]] = value
    return out


def _gemm(
    name: str, count: int, k: float, n: float, dtype: str, rows: str = "N", kind: str = "gemm"
) -> Operator:
    """A (rows x k) @ (k x n) GEMM: 2kn FLOPs and k, n activations per row, kn weights."""
    flops = _vec(**{rows: 2.0 * k * n})
    data = _vec(ONE=k * n * dtype_bytes(dtype), **{rows: ACT_BYTES * (k + n)})
    return Operator(name, kind, count, flops, data, dtype=dtype)


def _all_reduce(name: str, count: int, bytes_per_token: float, tp: int) -> Operator:
    """An all-reduce over the `tp` ranks of `bytes_per_token` per new token."""
    return Operator(name, "allreduce", count, _vec(), _vec(N=bytes_per_token), span=tp)


def _mem(name: str, count: int, bytes_per_token: float, rows: str = "N") -> Operator:
    """An elementwise / normalisation kernel streaming `bytes_per_token` per `rows` token."""
    return Operator(name, "mem", count, _vec(), _vec(**{rows: bytes_per_token}))


def _attention(card: ModelCard, plan: Parallel, kv_w: float) -> list[Operator]:
    """Attention over the KV cache: full layers, sliding-window layers, or MLA prefill/decode."""
    heads = card.heads / plan.tp
    if not card.is_mla:
        kv_dim = card.kv_dim / min(plan.tp, card.kv_heads)
        pair = 4.0 * heads * card.head_dim
        q_bytes = 2 * ACT_BYTES * heads * card.head_dim
        ops = [
            Operator(
                "attention",
                "attn",
                card.full_attention_layers,
                _vec(SP=pair, SD=pair),
                _vec(N=q_bytes, KP=2 * kv_dim * kv_w, KD=2 * kv_dim * kv_w),
                _vec(SP=heads, SD=heads),
            )
        ]
        if card.sliding_layers:
            ops.append(
                Operator(
                    "sliding_attention",
                    "attn",
                    card.sliding_layers,
                    _vec(SWP=pair, SWD=pair),
                    _vec(N=q_bytes, KWP=2 * kv_dim * kv_w, KWD=2 * kv_dim * kv_w),
                    _vec(SWP=heads, SWD=heads),
                )
            )
        return [op for op in ops if op.count]
    latent = card.kv_lora_rank + card.qk_rope_head_dim
    qk = card.qk_nope_head_dim + card.qk_rope_head_dim
    up = card.kv_lora_rank * heads * (card.qk_nope_head_dim + card.v_head_dim)
    sparse = card.index_topk > 0
    sp, kp, sd, kd = ("SWP", "KWP", "SWD", "KWD") if sparse else ("SP", "KP", "SD", "KD")
    prefill = Operator(
        "mla_prefill_attention",
        "attn",
        card.layers,
        _vec(**{sp: heads * (2.0 * qk + 2.0 * card.v_head_dim), kp: 2.0 * up}),
        _vec(**{"N": ACT_BYTES * heads * (qk + card.v_head_dim), kp: latent * kv_w}),
        _vec(**{sp: heads}),
    )
    decode = Operator(
        "mla_decode_attention",
        "attn",
        card.layers,
        _vec(**{sd: heads * (2.0 * latent + 2.0 * card.kv_lora_rank), "ND": 2.0 * up}),
        _vec(**{"ND": ACT_BYTES * heads * (qk + card.v_head_dim), kd: latent * kv_w}),
        _vec(**{sd: heads}),
    )
    return [prefill, decode, *_indexer(card)] if sparse else [prefill, decode]


def _indexer(card: ModelCard) -> list[Operator]:
    """Sparse attention's indexer (DeepSeek Sparse Attention): every query scores every cached
    token with `index_heads` small FP8 heads over FP8 index keys, and the attention proper then
    runs over the top `index_topk` (the windowed features). Its weights are not sharded by TP."""
    width, w = card.index_heads * card.index_head_dim, ACT_DTYPE
    score = 2.0 * width
    return [
        _gemm("indexer_q", card.layers, card.q_lora_rank, width, w),
        _gemm("indexer_k", card.layers, card.hidden, card.index_head_dim + card.index_heads, w),
        Operator(
            "indexer_scores",
            "attn",
            card.layers,
            _vec(SP=score, SD=score),
            _vec(N=ACT_BYTES * width, KP=card.index_head_dim, KD=card.index_head_dim),
            dtype="fp8",
        ),
    ]


def _linear_attention(card: ModelCard, plan: Parallel, w: str) -> list[Operator]:
    """Linear-attention layers (Gated DeltaNet): projections, short convolution, recurrence.

    Each value head keeps a `linear_key_dim` x `linear_value_dim` FP32 state per sequence that
    every step reads and writes once per sequence (R: sequences in the step); a token costs
    about 6 key x value FLOPs per head (decay, delta update, readout), and a prompt token
    another 2 x 64 x (key + value) for the chunked form's in-chunk attention (64-token chunks,
    flash-linear-attention's default). Heads split over TP.
    """
    h, tp, count = card.hidden, plan.tp, card.linear_layers
    vheads = card.linear_value_heads / tp
    kd, vd = card.linear_key_dim, card.linear_value_dim
    qkv = card.linear_qkv_dim / tp
    values = vheads * vd
    chunk = vheads * 2.0 * 64 * (kd + vd)
    return [
        _gemm("linear_in_proj", count, h, qkv + values + 2 * vheads, w),
        _mem("linear_conv", count, 2 * ACT_BYTES * qkv),
        Operator(
            "linear_recurrence",
            "attn",
            count,
            _vec(N=vheads * 6.0 * kd * vd + chunk, ND=-chunk),
            _vec(N=ACT_BYTES * (qkv + 2 * values), R=2 * 4.0 * vheads * kd * vd),
        ),
        _gemm("linear_out_proj", count, values, h, w),
    ]


def _projections(card: ModelCard, plan: Parallel, w: str) -> list[Operator]:
    """QKV (or MLA down/up) projections and the output projection."""
    h, tp, count = card.hidden, plan.tp, card.layers
    if card.is_mla:
        qk = card.qk_nope_head_dim + card.qk_rope_head_dim
        kv_up = card.kv_lora_rank * (card.heads / tp) * (card.qk_nope_head_dim + card.v_head_dim)
        latent = card.q_lora_rank + card.kv_lora_rank + card.qk_rope_head_dim
        return [
            _gemm("q_a_kv_a", count, h, latent, w),
            _gemm("q_b", count, card.q_lora_rank, card.heads * qk / tp, w),
            Operator("kv_b_weights", "mem", count, _vec(), _vec(ONE=kv_up * dtype_bytes(w))),
            _gemm("o_proj", count, card.heads * card.v_head_dim / tp, h, w),
        ]
    kv = card.kv_dim / min(tp, card.kv_heads)
    count -= card.linear_layers
    gate = card.q_dim / tp if card.attention_gate else 0.0
    return [
        _gemm("qkv", count, h, card.q_dim / tp + gate + 2 * kv, w),
        _gemm("o_proj", count, card.q_dim / tp, h, w),
    ]


def _mlp(name: str, count: int, card: ModelCard, ffn: float, w: str) -> list[Operator]:
    """A dense MLP of (per-GPU) width `ffn`: up (+gate), activation, down."""
    h = card.hidden
    up_width = ffn * (card.mlp_mats - 1)
    return [
        _gemm(f"{name}_up", count, h, up_width, w),
        _mem(f"{name}_act", count, ACT_BYTES * (up_width + ffn)),
        _gemm(f"{name}_down", count, ffn, h, w),
    ]


def _expert_gemm(name: str, count: int, rows: float, k: float, n: float, we: str) -> Operator:
    """Grouped GEMM over this GPU's touched experts: `rows` routed rows per instance token."""
    return Operator(
        name,
        "moe",
        count,
        _vec(NT=2.0 * rows * k * n),
        _vec(X=k * n * dtype_bytes(we), NT=ACT_BYTES * rows * (k + n)),
        dtype=we,
    )


def _experts(card: ModelCard, plan: Parallel, prec: Precision) -> list[Operator]:
    """Routed experts: router, grouped up/down GEMMs over touched experts, shared, dispatch.

    A token is routed to k experts spread over ep groups of moe_tp GPUs, so one GPU computes
    k / ep rows per token of the instance, each over 1 / moe_tp of the expert width. With
    attention data parallelism the tokens are dispatched to the experts and combined back in
    one of two ways, and the engines offer both (vLLM's --all2all-backend, SGLang's
    --moe-a2a-backend, TensorRT-LLM's alltoall): an all-gather / reduce-scatter over the DP
    ranks (vLLM's default; every GPU receives the other ranks' tokens once, whatever their
    routing) or an all-to-all (DeepEP, wide EP: each routed row goes to its expert's GPU). The
    cheaper moves (dp - 1) / dp of a token against k (ep - 1) / (ep dp): a few ranks gather,
    wide EP (CloudMatrix's 320 experts over 160 NPUs) sends rows; the step pays the cheaper.
    """
    h, count = card.hidden, card.moe_layers
    rows = card.active_experts / plan.ep
    width = card.expert_ffn / plan.moe_tp
    up = width * (card.mlp_mats - 1)
    ops = [
        _gemm("router", count, h, card.experts, ACT_DTYPE),
        _expert_gemm("experts_up", count, rows, h, up, prec.experts),
        _mem("experts_act", count, ACT_BYTES * rows * (up + width), rows="NT"),
        _expert_gemm("experts_down", count, rows, width, h, prec.experts),
    ]
    if card.shared_experts:
        shared = card.shared_experts * card.expert_ffn / plan.tp
        ops += _mlp("shared", count, card, shared, prec.dense)
    if plan.dp > 1:
        gather = (plan.dp - 1) / plan.dp
        alltoall = card.active_experts * (plan.ep - 1) / (plan.ep * plan.dp)
        ops.append(
            Operator(
                "expert_dispatch",
                "alltoall",
                2 * count,
                _vec(),
                _vec(NT=ACT_BYTES * h * min(gather, alltoall)),
                span=plan.stage_gpus,
            )
        )
    return ops


def step_operators(card: ModelCard, plan: Parallel, prec: Precision) -> list[Operator]:
    """Every operator of one step through all `card.layers` layers on one GPU of the plan."""
    w, kv_w = prec.dense, dtype_bytes(prec.kv)
    h, tp = card.hidden, plan.tp
    dense_layers, moe_layers = card.layers - card.moe_layers, card.moe_layers
    ops = [_mem("embedding", 1, ACT_BYTES * h)]
    ops += [_mem("norms_residual", card.layers, 2 * 3 * ACT_BYTES * h)]
    ops += _projections(card, plan, w)
    ops += _attention(card, plan, kv_w)
    if card.linear_layers:
        ops += _linear_attention(card, plan, w)
    if dense_layers:
        ops += _mlp("mlp", dense_layers, card, card.ffn / tp, w)
    if moe_layers:
        ops += _experts(card, plan, prec)
    if tp > 1:
        ops.append(_all_reduce("tp_all_reduce", 2 * card.layers, ACT_BYTES * h, tp))
    if tp > 1 and card.qk_norm_over_heads:
        attention_layers = card.layers - card.linear_layers
        ops.append(_all_reduce("qk_norm_all_reduce", attention_layers, 2 * QK_NORM_STAT_BYTES, tp))
    if plan.pp > 1:
        ops.append(
            Operator(
                "pp_handoff", "p2p", plan.pp - 1, _vec(), _vec(N=ACT_BYTES * h), span=plan.gpus
            )
        )
    ops.append(_gemm("lm_head", 1, h, card.vocab / tp, w, rows="R"))
    return ops


def window_pairs(tokens: np.ndarray, context: np.ndarray, window: float) -> np.ndarray:
    """Query-key pairs of `tokens` new tokens after `context` cached, each seeing <= window."""
    if window <= 0:
        return np.zeros_like(np.asarray(tokens, dtype=float))
    t, c = np.asarray(tokens, dtype=float), np.asarray(context, dtype=float)
    first, last = c + 1.0, c + t
    inside = (first + last) * t / 2.0
    straddle = (first + window) * (window - first + 1.0) / 2.0 + (last - window) * window
    return np.where(last <= window, inside, np.where(first > window, t * window, straddle))


@dataclass(frozen=True)
class StepShape:
    """What one engine step carries, summed over an instance's sequences (one entry per point).

    Prefill terms are sums over the sequences that add prompt tokens in the step (a whole
    prompt or a chunk); decode terms cover the sequences that generate one token each.
    """

    prefill_tokens: np.ndarray
    prefill_seqs: np.ndarray
    prefill_pairs: np.ndarray
    prefill_kv: np.ndarray
    prefill_window_pairs: np.ndarray
    prefill_window_kv: np.ndarray
    decode_seqs: np.ndarray
    decode_context: np.ndarray

    @classmethod
    def uniform(
        cls,
        window: float,
        prefill_batch: np.ndarray,
        prefill_tokens: np.ndarray,
        prefill_context: np.ndarray,
        decode_batch: np.ndarray,
        decode_context: np.ndarray,
    ) -> "StepShape":
        """A step of `prefill_batch` equal prompt chunks plus `decode_batch` equal decodes."""
        pb, pt, pc = prefill_batch, prefill_tokens, prefill_context
        kv = pc + pt
        return cls(
            prefill_tokens=pb * pt,
            prefill_seqs=pb,
            prefill_pairs=pb * (pt * pc + pt * (pt + 1.0) / 2.0),
            prefill_kv=pb * kv,
            prefill_window_pairs=pb * window_pairs(pt, pc, window),
            prefill_window_kv=pb * (np.minimum(kv, window) if window else 0.0 * kv),
            decode_seqs=decode_batch,
            decode_context=decode_batch * decode_context,
        )


def busiest_share(seqs: np.ndarray, dp: int) -> np.ndarray:
    """Share of `seqs` sequences' work on the busiest of `dp` attention data-parallel ranks.

    A rank holds whole sequences, so it carries ceil(seqs / dp) of them, and the ranks run
    their steps in lockstep (each waits at the expert dispatch for the others): one 8k prompt
    on a four-rank instance costs its rank what it costs on one rank, not a quarter of it.
    The routed experts and the dispatch see every rank's tokens (the ``NT`` feature).
    """
    if dp == 1:
        return 1.0 + 0.0 * seqs
    s = np.maximum(seqs, 1.0)
    return np.ceil(s / dp) / s


def features(
    card: ModelCard, plan: Parallel, shape: StepShape, decode_tokens: int = 1
) -> np.ndarray:
    """Feature matrix (len(FEATURES), points) of one GPU's step on the busiest DP rank.

    With speculative decoding each decoding sequence verifies `decode_tokens` tokens (its own
    plus the drafts) against a KV cache it reads once. Prefill and decode sequences are
    spread over the ranks separately (`busiest_share`). (Plain arithmetic throughout: the same
    code prices one step from Python floats as fast as many from arrays.)
    """
    db = shape.decode_seqs
    verify = db * decode_tokens
    n = shape.prefill_tokens + verify
    reads = shape.decode_context + db
    window = card.attention_window
    decode_window = np.minimum(reads, db * window) if window else 0.0 * db
    p = busiest_share(shape.prefill_seqs, plan.dp)
    d = busiest_share(db, plan.dp)
    rows = [
        1.0 + 0.0 * n,
        shape.prefill_tokens * p + verify * d,
        verify * d,
        shape.prefill_pairs * p,
        shape.prefill_kv * p,
        reads * decode_tokens * d,
        reads * d,
        shape.prefill_window_pairs * p,
        decode_window * decode_tokens * d,
        shape.prefill_window_kv * p,
        decode_window * d,
        shape.prefill_seqs * p + verify * d,
        expert_touch(card, n, plan.ep),
        n,
    ]
    return np.array(rows, dtype=float).reshape(len(FEATURES), -1)


def expert_touch(card: ModelCard, tokens: np.ndarray, ep: int) -> np.ndarray:
    """Expected distinct routed experts one GPU's shard reads for `tokens` routed tokens."""
    if not card.is_moe:
        return 0.0 * tokens
    miss = (1.0 - card.active_experts / card.experts) ** tokens
    return card.experts * (1.0 - miss) / ep
