"""Memory plan of one replica: weights, workspace and KV cache per GPU -> KV token budget."""

from dataclasses import dataclass

from planner.costmodel.cards import ModelCard, dtype_bytes
from planner.costmodel.catalog import Accelerator

GIB = 2**30
MEMORY_UTILIZATION = 0.9
RUNTIME_RESERVE_GIB = 1.0
WORKSPACE_TOKENS = 8192
MIN_KV_TOKENS = 1024


@dataclass(frozen=True)
class MemoryPlan:
    """Per-GPU memory of a plan (GB = 2**30 bytes, like HBM capacities) and its KV budget.

    kv_bytes_per_token is for the whole replica (all layers, all shards): what one token of
    context costs to store or to ship; kv_budget_tokens is how many tokens of context the
    replica can cache at once (summed over its sequences).
    """

    weights_gb: float
    kv_bytes_per_token: float
    kv_budget_tokens: int
    workspace_gb: float
    usable_gb: float
    fits: bool
    reason: str


def weight_bytes_per_gpu(card: ModelCard, tp: int, pp: int, ep: int, dtype: str) -> float:
    """Weight bytes on the fullest GPU: dense parts split tp*pp, experts tp*ep*pp, vocab tp."""
    parts = card.params()
    dense = parts["attention"] + parts["dense_mlp"] + parts["shared"]
    tables = 2 if (pp == 1 and not card.tied_embeddings) else 1
    per_gpu = dense / (tp * pp) + parts["experts"] / (tp * ep * pp)
    per_gpu += tables * card.vocab * card.hidden / tp
    return per_gpu * dtype_bytes(dtype)


def kv_bytes_per_token_per_gpu(card: ModelCard, tp: int, pp: int, dtype: str) -> float:
    """KV-cache bytes one token of context takes on one GPU (MLA latents are not head-split)."""
    split = 1 if card.is_mla else min(tp, card.kv_heads)
    return card.kv_elements_per_token() * dtype_bytes(dtype) / (split * pp)


def workspace_bytes(card: ModelCard, tp: int) -> float:
    """Runtime reserve plus activations of a WORKSPACE_TOKENS-token step on one GPU."""
    mlp = card.active_experts * card.expert_ffn if card.is_moe else card.ffn
    per_token = (8 * card.hidden + 3 * mlp / tp) * 2.0
    return RUNTIME_RESERVE_GIB * GIB + WORKSPACE_TOKENS * per_token


def plan_memory(
    card: ModelCard, acc: Accelerator, tp: int, pp: int, ep: int, dtype: str
) -> MemoryPlan:
    """Whether the plan fits in memory, its KV budget, and if not, by how much it falls short."""
    weights = weight_bytes_per_gpu(card, tp, pp, ep, dtype)
    workspace = workspace_bytes(card, tp)
    usable = MEMORY_UTILIZATION * acc.hbm_bytes
    kv_gpu = kv_bytes_per_token_per_gpu(card, tp, pp, dtype)
    free = usable - weights - workspace
    budget = max(int(free // kv_gpu), 0) * ep
    fits = budget >= MIN_KV_TOKENS
    plan = f"{card.id} {dtype} on {acc.id} tp={tp} pp={pp} ep={ep}"
    if fits:
        reason = f"{plan}: fits, KV budget {budget:,} tokens"
    else:
        need = weights + workspace + MIN_KV_TOKENS * kv_gpu / ep
        reason = (
            f"{plan} does not fit: weights {weights / GIB:.1f} GB + workspace "
            f"{workspace / GIB:.1f} GB + KV for {MIN_KV_TOKENS} tokens need {need / GIB:.1f} GB "
            f"per GPU but {usable / GIB:.1f} GB is usable ({MEMORY_UTILIZATION:.0%} of "
            f"{acc.hbm_gb:g} GB): short by {(need - usable) / GIB:.1f} GB"
        )
    return MemoryPlan(
        weights_gb=weights / GIB,
        kv_bytes_per_token=card.kv_elements_per_token() * dtype_bytes(dtype),
        kv_budget_tokens=budget,
        workspace_gb=workspace / GIB,
        usable_gb=usable / GIB,
        fits=fits,
        reason=reason,
    )
