"""Memory plan of one replica: weights, workspace and KV cache per GPU -> KV token budget."""

from dataclasses import dataclass

from planner.costmodel.cards import ModelCard, dtype_bytes
from planner.costmodel.catalog import Accelerator
from planner.costmodel.engine import MemoryPolicy
from planner.costmodel.operators import Precision
from planner.costmodel.parallel import Parallel

GIB = 2**30
DEFAULT_MEMORY = MemoryPolicy(fraction=0.9, of="total")
RUNTIME_RESERVE_GIB = 1.0
WORKSPACE_TOKENS = 8192
MIN_KV_TOKENS = 1024


@dataclass(frozen=True)
class MemoryPlan:
    """Per-GPU memory of a plan (GB = 2**30 bytes, like HBM capacities) and its KV budget.

    kv_bytes_per_token is for the whole replica (all layers, all shards): what one token of
    context costs to store or to ship; kv_budget_tokens is how many tokens of context the
    replica can cache at once (summed over its sequences and attention-DP ranks).
    """

    weights_gb: float
    kv_bytes_per_token: float
    kv_budget_tokens: int
    workspace_gb: float
    usable_gb: float
    fits: bool
    reason: str


def weight_bytes_per_gpu(card: ModelCard, plan: Parallel, prec: Precision) -> float:
    """Weight bytes on the fullest GPU: dense parts split tp x pp, experts over all GPUs."""
    parts = card.params()
    dense = parts["attention"] + parts["dense_mlp"] + parts["shared"]
    tables = 2 if (plan.pp == 1 and not card.tied_embeddings) else 1
    per_gpu = dense / (plan.tp * plan.pp) * dtype_bytes(prec.dense)
    per_gpu += parts["experts"] / plan.gpus * dtype_bytes(prec.experts)
    return per_gpu + tables * card.vocab * card.hidden / plan.tp * dtype_bytes("bf16")


def kv_bytes_per_token_per_gpu(card: ModelCard, plan: Parallel, kv_dtype: str) -> float:
    """KV-cache bytes one token of context takes on one GPU (MLA latents are not head-split)."""
    split = 1 if card.is_mla else min(plan.tp, card.kv_heads)
    return card.kv_elements_per_token() * dtype_bytes(kv_dtype) / (split * plan.pp)


def workspace_bytes(card: ModelCard, tp: int) -> float:
    """Runtime reserve plus activations of a WORKSPACE_TOKENS-token step on one GPU."""
    mlp = card.active_experts * card.expert_ffn if card.is_moe else card.ffn
    per_token = (8 * card.hidden + 3 * mlp / tp) * 2.0
    return RUNTIME_RESERVE_GIB * GIB + WORKSPACE_TOKENS * per_token


def plan_memory(
    card: ModelCard,
    acc: Accelerator,
    plan: Parallel,
    prec: Precision,
    policy: MemoryPolicy = DEFAULT_MEMORY,
) -> MemoryPlan:
    """Whether the plan fits in memory, its KV budget, and if not, by how much it falls short.

    The engine manages `policy.fraction` of the device memory (vLLM, SGLang) or of what the
    weights and workspace leave free (TensorRT-LLM), after a fixed reserve for its runtime
    (SGLang); the KV cache gets what remains.
    """
    weights = weight_bytes_per_gpu(card, plan, prec)
    workspace = workspace_bytes(card, plan.tp)
    device = acc.hbm_bytes - policy.reserve_gb * GIB
    if policy.of == "total":
        usable = policy.fraction * device
        free = usable - weights - workspace
    else:
        usable = device
        free = policy.fraction * (usable - weights - workspace)
    kv_gpu = kv_bytes_per_token_per_gpu(card, plan, prec.kv)
    budget = max(int(free // kv_gpu), 0) * plan.dp
    fits = budget >= MIN_KV_TOKENS
    where = f"{card.id} {prec.dense} on {acc.id} {plan.label()}"
    if fits:
        reason = f"{where}: fits, KV budget {budget:,} tokens"
    else:
        need = weights + workspace + MIN_KV_TOKENS * kv_gpu / plan.dp
        share = f"{policy.fraction:.0%} of {device / GIB:.1f} GB" if policy.of == "total" else "all"
        reason = (
            f"{where} does not fit: weights {weights / GIB:.1f} GB + workspace "
            f"{workspace / GIB:.1f} GB + KV for {MIN_KV_TOKENS} tokens need {need / GIB:.1f} GB "
            f"per GPU but {usable / GIB:.1f} GB is usable ({share}): "
            f"short by {(need - usable) / GIB:.1f} GB"
        )
    return MemoryPlan(
        weights_gb=weights / GIB,
        kv_bytes_per_token=card.kv_elements_per_token() * dtype_bytes(prec.kv),
        kv_budget_tokens=budget,
        workspace_gb=workspace / GIB,
        usable_gb=usable / GIB,
        fits=fits,
        reason=reason,
    )
