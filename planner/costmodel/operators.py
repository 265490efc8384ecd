"""Operators of one engine step: FLOPs and bytes per GPU as linear functions of step features.

A step is summarised by a few features (per GPU, after expert-parallel data split):

==========  ==================================================================================
``ONE``     1: constant terms (weights read once per step)
``N``       new tokens in the step (batch x tokens)
``ND``      new tokens that are decode tokens (MLA runs those with absorbed projections)
``SP``      query-key pairs of prefill sequences: batch x (tokens x context + tokens(tokens+1)/2)
``KP``      KV-cache tokens read by prefill sequences: batch x (context + tokens)
``SD``      query-key pairs of decode sequences: batch x (context + 1)
``KD``      KV-cache tokens read by decode sequences (equal to ``SD``)
``R``       LM-head rows: one per sequence (last position of a prompt, every decode token)
``X``       distinct routed experts touched per MoE layer on this GPU
==========  ==================================================================================

Each operator knows, per occurrence, its FLOPs and bytes (plus, for attention, its query-key
pairs per head, which cost a softmax exponential each) as coefficient vectors over these
features, so a whole batch of points is a few small matrix products.
"""

from dataclasses import dataclass

import numpy as np

from planner.costmodel.cards import ModelCard, dtype_bytes

FEATURES = ("ONE", "N", "ND", "SP", "KP", "SD", "KD", "R", "X")
F = {name: i for i, name in enumerate(FEATURES)}
ACT_BYTES = 2.0
KINDS = ("gemm", "attn", "mem", "allreduce", "alltoall", "p2p")


@dataclass(frozen=True)
class Operator:
    """One kernel (or collective) repeated `count` times per step, with FLOP/byte coefficients."""

    name: str
    kind: str
    count: int
    flops: np.ndarray
    bytes: np.ndarray
    pairs: np.ndarray | None = None

    def cost(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FLOPs and bytes of one occurrence for features of shape (len(FEATURES), points)."""
        return self.flops @ features, self.bytes @ features


def _vec(**terms: float) -> np.ndarray:
    """A coefficient vector over FEATURES from keyword terms (e.g. N=2.0, ONE=1e6)."""
    out = np.zeros(len(FEATURES))
    for name, value in terms.items():
        out[F[name]] = value
    return out


def _gemm(name: str, count: int, k: float, n: float, w: float, rows: str = "N") -> Operator:
    """A (rows x k) @ (k x n) GEMM: 2kn FLOPs and k, n activations per row, kn weights."""
    flops = _vec(**{rows: 2.0 * k * n})
    data = _vec(ONE=k * n * w, **{rows: ACT_BYTES * (k + n)})
    return Operator(name, "gemm", count, flops, data)


def _mem(name: str, count: int, bytes_per_token: float) -> Operator:
    """An elementwise / normalisation kernel streaming `bytes_per_token` per new token."""
    return Operator(name, "mem", count, _vec(), _vec(N=bytes_per_token))


def _attention(card: ModelCard, count: int, tp: int, kv_w: float) -> list[Operator]:
    """Attention over the KV cache: prefill (causal, incl. context) and decode terms."""
    heads = card.heads / tp
    if not card.is_mla:
        kv_dim = card.kv_dim / min(tp, card.kv_heads)
        pair = 4.0 * heads * card.head_dim
        flops = _vec(SP=pair, SD=pair)
        data = _vec(
            N=2 * ACT_BYTES * heads * card.head_dim, KP=2 * kv_dim * kv_w, KD=2 * kv_dim * kv_w
        )
        return [Operator("attention", "attn", count, flops, data, _vec(SP=heads, SD=heads))]
    latent = card.kv_lora_rank + card.qk_rope_head_dim
    qk = card.qk_nope_head_dim + card.qk_rope_head_dim
    up = card.kv_lora_rank * heads * (card.qk_nope_head_dim + card.v_head_dim)
    prefill = Operator(
        "mla_prefill_attention",
        "attn",
        count,
        _vec(SP=heads * (2.0 * qk + 2.0 * card.v_head_dim), KP=2.0 * up),
        _vec(N=ACT_BYTES * heads * (qk + card.v_head_dim), KP=latent * kv_w),
        _vec(SP=heads),
    )
    decode = Operator(
        "mla_decode_attention",
        "attn",
        count,
        _vec(SD=heads * (2.0 * latent + 2.0 * card.kv_lora_rank), ND=2.0 * up),
        _vec(ND=ACT_BYTES * heads * (qk + card.v_head_dim), KD=latent * kv_w),
        _vec(SD=heads),
    )
    return [prefill, decode]


def _projections(card: ModelCard, count: int, tp: int, w: float) -> list[Operator]:
    """QKV (or MLA down/up) projections and the output projection."""
    h = card.hidden
    if card.is_mla:
        qk = card.qk_nope_head_dim + card.qk_rope_head_dim
        kv_up = card.kv_lora_rank * (card.heads / tp) * (card.qk_nope_head_dim + card.v_head_dim)
        return [
            _gemm(
                "q_a_kv_a",
                count,
                h,
                card.q_lora_rank + card.kv_lora_rank + card.qk_rope_head_dim,
                w,
            ),
            _gemm("q_b", count, card.q_lora_rank, card.heads * qk / tp, w),
            Operator("kv_b_weights", "mem", count, _vec(), _vec(ONE=kv_up * w)),
            _gemm("o_proj", count, card.heads * card.v_head_dim / tp, h, w),
        ]
    kv = card.kv_dim / min(tp, card.kv_heads)
    return [
        _gemm("qkv", count, h, card.q_dim / tp + 2 * kv, w),
        _gemm("o_proj", count, card.q_dim / tp, h, w),
    ]


def _mlp(name: str, count: int, card: ModelCard, ffn: float, w: float) -> list[Operator]:
    """A dense MLP of (per-GPU) width `ffn`: up (+gate), activation, down."""
    h = card.hidden
    up_width = ffn * (card.mlp_mats - 1)
    return [
        _gemm(f"{name}_up", count, h, up_width, w),
        _mem(f"{name}_act", count, ACT_BYTES * (up_width + ffn)),
        _gemm(f"{name}_down", count, ffn, h, w),
    ]


def _experts(card: ModelCard, count: int, tp: int, ep: int, w: float) -> list[Operator]:
    """Routed experts: router, grouped up/down GEMMs over the touched experts, all-to-all."""
    h, k, fe = card.hidden, card.active_experts, card.expert_ffn / tp
    up_width = fe * (card.mlp_mats - 1)
    ops = [
        _gemm("router", count, h, card.experts, w),
        Operator(
            "experts_up",
            "gemm",
            count,
            _vec(N=2.0 * k * h * up_width),
            _vec(X=h * up_width * w, N=ACT_BYTES * k * (h + up_width)),
        ),
        _mem("experts_act", count, ACT_BYTES * k * (up_width + fe)),
        Operator(
            "experts_down",
            "gemm",
            count,
            _vec(N=2.0 * k * h * fe),
            _vec(X=h * fe * w, N=ACT_BYTES * k * (h + fe)),
        ),
    ]
    if card.shared_experts:
        ops += _mlp("shared", count, card, card.shared_experts * fe, w)
    if ep > 1:
        a2a = ACT_BYTES * k * h * (ep - 1) / ep
        ops.append(Operator("expert_all_to_all", "alltoall", 2 * count, _vec(), _vec(N=a2a)))
    return ops


def step_operators(card: ModelCard, tp: int, pp: int, ep: int, dtype: str) -> list[Operator]:
    """Every operator of one step through all `card.layers` layers on one GPU of the plan."""
    w = dtype_bytes(dtype)
    kv_w = w
    h = card.hidden
    dense_layers, moe_layers = card.layers - card.moe_layers, card.moe_layers
    ops = [_mem("embedding", 1, ACT_BYTES * h)]
    ops += [_mem("norms_residual", card.layers, 2 * 3 * ACT_BYTES * h)]
    ops += _projections(card, card.layers, tp, w)
    ops += _attention(card, card.layers, tp, kv_w)
    if dense_layers:
        ops += _mlp("mlp", dense_layers, card, card.ffn / tp, w)
    if moe_layers:
        ops += _experts(card, moe_layers, tp, ep, w)
    if tp > 1:
        ops.append(
            Operator("tp_all_reduce", "allreduce", 2 * card.layers, _vec(), _vec(N=ACT_BYTES * h))
        )
    if pp > 1:
        ops.append(Operator("pp_handoff", "p2p", pp - 1, _vec(), _vec(N=ACT_BYTES * h)))
    ops.append(_gemm("lm_head", 1, h, card.vocab / tp, w, rows="R"))
    return ops


def expert_touch(card: ModelCard, tokens: np.ndarray, ep: int) -> np.ndarray:
    """Expected distinct routed experts one GPU's shard reads for `tokens` routed tokens."""
    if not card.is_moe:
        return np.zeros_like(tokens, dtype=float)
    miss = (1.0 - card.active_experts / card.experts) ** tokens
    return card.experts * (1.0 - miss) / ep


def features(
    card: ModelCard,
    ep: int,
    prefill_batch: np.ndarray,
    prefill_tokens: np.ndarray,
    prefill_context: np.ndarray,
    decode_batch: np.ndarray,
    decode_context: np.ndarray,
) -> np.ndarray:
    """Feature matrix (len(FEATURES), points) of a step with a prefill part and a decode part."""
    pb, pt, pc = prefill_batch, prefill_tokens, prefill_context
    db, dc = decode_batch, decode_context
    n_prefill = pb * pt
    n = n_prefill + db
    sd = db * (dc + 1.0)
    out = np.empty((len(FEATURES), np.shape(n)[0]))
    out[F["ONE"]] = 1.0
    out[F["N"]] = n / ep
    out[F["ND"]] = db / ep
    out[F["SP"]] = pb * (pt * pc + pt * (pt + 1.0) / 2.0) / ep
    out[F["KP"]] = pb * (pc + pt) / ep
    out[F["SD"]] = sd / ep
    out[F["KD"]] = sd / ep
    out[F["R"]] = (pb + db) / ep
    out[F["X"]] = expert_touch(card, n, ep)
    return out
