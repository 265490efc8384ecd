"""Served-model architecture cards (models/*.toml): the shapes the cost model needs."""

import tomllib
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from planner.costmodel.hf_config import read_hf_config
from planner.errors import PlannerError
from planner.resources import resource_dir

# Bytes per element, block scales included: NVFP4 carries one FP8 scale per 16 values, MXFP4
# one E8M0 scale per 32 (OCP MX spec), so fp4 weights cost 0.5625 and 0.53125 bytes.
DTYPE_BYTES = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "fp4": 0.5625,
    "mxfp4": 0.53125,
}
DTYPE_ALIASES = {"nvfp4": "fp4", "fp8_block": "fp8", "w8a8": "int8", "float16": "fp16"}
DTYPE_ALIASES |= {"bfloat16": "bf16", "float32": "fp32", "e4m3": "fp8", "w4a16": "int4"}
DTYPE_ALIASES |= {"int4_wo": "int4"}


def normalize_dtype(dtype: str) -> str:
    """The canonical name of a dtype spelling (nvfp4 -> fp4, bfloat16 -> bf16, ...)."""
    name = dtype.strip().lower()
    name = DTYPE_ALIASES.get(name, name)
    if name not in DTYPE_BYTES:
        known = ", ".join([*DTYPE_BYTES, *DTYPE_ALIASES])
        raise PlannerError(f"unknown dtype {dtype!r}; known dtypes: {known}")
    return name


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of a weight / KV dtype, or a PlannerError naming the known ones."""
    return DTYPE_BYTES[normalize_dtype(dtype)]


class ModelCard(BaseModel):
    """A decoder-only transformer's public configuration: dense, GQA, MoE and MLA variants.

    `dtype` is the shipped weight precision of the dense parts, `expert_dtype` that of the
    routed experts where it differs (gpt-oss: MXFP4 experts, BF16 attention). Sliding-window
    (or chunked local) attention layers see at most `sliding_window` tokens of context and
    keep no more KV than that per sequence. Linear-attention layers (Gated DeltaNet, Qwen3.5:
    `linear_*` heads and dims, a short convolution of `linear_conv` taps) keep a fixed
    recurrent state per sequence instead of a KV cache. Sparse attention (DeepSeek Sparse
    Attention, GLM-5) attends each query to the `index_topk` tokens a small indexer
    (`index_heads` x `index_head_dim`) scores over the whole context. `attention_gate`: the
    query projection also yields an output gate (Qwen3.5). `qk_norm_over_heads`: the
    query and key RMS norms span all of a layer's heads, not each head (MiniMax-M2's
    ``qk_norm_type: per_layer``), so tensor-parallel ranks all-reduce every token's sums of
    squares before they normalise. `mtp_layers` are the multi-token-
    prediction draft layers some checkpoints ship (DeepSeek-V3, GLM-4.5, MiniMax-M2).
    `aliases` are the Hugging Face repository paths that name this architecture
    (``Qwen/Qwen3-32B-FP8``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str = ""
    source: str = ""
    aliases: tuple[str, ...] = ()
    max_context: int = 0
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int = 0
    ffn: int
    vocab: int
    tied_embeddings: bool = False
    dtype: str = "bf16"
    mlp: str = "swiglu"
    qkv_bias: bool = False
    mlp_bias: bool = False
    experts: int = 0
    active_experts: int = 0
    expert_ffn: int = 0
    shared_experts: int = 0
    dense_layers: int = 0
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    expert_dtype: str = ""
    sliding_window: int = 0
    sliding_layers: int = 0
    mtp_layers: int = 0
    attention_gate: bool = False
    qk_norm_over_heads: bool = False
    index_topk: int = 0
    index_heads: int = 0
    index_head_dim: int = 0
    linear_layers: int = 0
    linear_key_heads: int = 0
    linear_value_heads: int = 0
    linear_key_dim: int = 0
    linear_value_dim: int = 0
    linear_conv: int = 0

    @model_validator(mode="after")
    def _check(self) -> "ModelCard":
        """Fill head_dim and expert_dtype; reject shapes the cost model cannot interpret."""
        if self.head_dim == 0:
            object.__setattr__(self, "head_dim", self.hidden // self.heads)
        object.__setattr__(self, "dtype", normalize_dtype(self.dtype))
        object.__setattr__(self, "expert_dtype", normalize_dtype(self.expert_dtype or self.dtype))
        if not 0 <= self.sliding_layers <= self.layers:
            raise ValueError(f"sliding_layers must be within 0..{self.layers}")
        if self.sliding_layers and self.sliding_window < 1:
            raise ValueError("sliding_layers needs a positive sliding_window")
        if not 0 <= self.linear_layers <= self.layers - self.sliding_layers:
            raise ValueError("linear_layers must fit beside the sliding layers within layers")
        linear = (self.linear_key_heads, self.linear_value_heads, self.linear_key_dim)
        if self.linear_layers and min(*linear, self.linear_value_dim) < 1:
            raise ValueError("linear_layers needs linear key/value heads and head dims")
        if self.index_topk and not (self.is_mla and self.index_heads and self.index_head_dim):
            raise ValueError("index_topk (sparse attention) needs MLA and the indexer's heads")
        if self.index_topk and self.sliding_layers:
            raise ValueError("index_topk and sliding_layers cannot be combined")
        if self.heads % self.kv_heads:
            raise ValueError(f"heads {self.heads} not a multiple of kv_heads {self.kv_heads}")
        if self.mlp not in ("swiglu", "gelu"):
            raise ValueError(f"mlp must be swiglu or gelu, not {self.mlp!r}")
        if self.experts and not (0 < self.active_experts <= self.experts and self.expert_ffn):
            raise ValueError("an MoE card needs 0 < active_experts <= experts and expert_ffn")
        return self

    @property
    def is_moe(self) -> bool:
        """Whether the MLP of (most) layers is a routed mixture of experts."""
        return self.experts > 0

    @property
    def is_mla(self) -> bool:
        """Whether attention is multi-head latent attention (compressed KV cache)."""
        return self.kv_lora_rank > 0

    @property
    def moe_layers(self) -> int:
        """Number of layers whose MLP is routed experts."""
        return self.layers - self.dense_layers if self.is_moe else 0

    @property
    def q_dim(self) -> int:
        """Width of the concatenated query heads."""
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of the concatenated key (or value) heads."""
        return self.kv_heads * self.head_dim

    @property
    def mlp_mats(self) -> int:
        """Weight matrices in one MLP: gate, up and down for SwiGLU; up and down for GELU."""
        return 3 if self.mlp == "swiglu" else 2

    @property
    def full_attention_layers(self) -> int:
        """Layers that attend to the whole context (not sliding-window or linear attention)."""
        return self.layers - self.sliding_layers - self.linear_layers

    @property
    def attention_window(self) -> int:
        """Most tokens one query attends to in the bounded layers: the sliding window, or the
        top-k tokens a sparse-attention indexer selects (DeepSeek-V3.2, GLM-5); 0 if none."""
        return self.sliding_window if self.sliding_layers else self.index_topk

    def kv_elements_per_token(self) -> int:
        """KV-cache elements one token of context occupies over the full-attention layers.

        Sliding-window layers hold at most `sliding_window` tokens per sequence and linear-
        attention layers a fixed recurrent state, bounded costs that do not grow with context,
        so the per-token figure leaves them out. A sparse-attention indexer caches one key of
        `index_head_dim` per token and layer beside the latent.
        """
        if self.is_mla:
            latent = self.kv_lora_rank + self.qk_rope_head_dim
            return self.layers * (latent + (self.index_head_dim if self.index_topk else 0))
        return self.full_attention_layers * 2 * self.kv_dim

    def attention_params(self) -> int:
        """Weights of one attention block (projections only)."""
        h = self.hidden
        if self.is_mla:
            qk = self.qk_nope_head_dim + self.qk_rope_head_dim
            q = h * self.q_lora_rank + self.q_lora_rank * self.heads * qk
            kv = h * (self.kv_lora_rank + self.qk_rope_head_dim)
            kv += self.kv_lora_rank * self.heads * (self.qk_nope_head_dim + self.v_head_dim)
            return q + kv + self.heads * self.v_head_dim * h
        gate = self.q_dim if self.attention_gate else 0
        return h * (self.q_dim + gate + 2 * self.kv_dim) + self.q_dim * h

    @property
    def linear_qkv_dim(self) -> int:
        """Width of a linear-attention layer's query, key and value channels (what its short
        convolution runs over)."""
        keys = self.linear_key_heads * self.linear_key_dim
        return 2 * keys + self.linear_value_heads * self.linear_value_dim

    def linear_attention_params(self) -> int:
        """Weights of one linear-attention (Gated DeltaNet) block: the query, key, value, gate
        and decay projections, the short convolution and the output projection."""
        values = self.linear_value_heads * self.linear_value_dim
        inputs = self.linear_qkv_dim + values + 2 * self.linear_value_heads
        return self.hidden * inputs + self.linear_qkv_dim * self.linear_conv + values * self.hidden

    def indexer_params(self) -> int:
        """Weights of one sparse-attention indexer: its query, key and head-weight projections."""
        if not self.index_topk:
            return 0
        width = self.index_heads * self.index_head_dim
        return self.q_lora_rank * width + self.hidden * (self.index_head_dim + self.index_heads)

    def params(self) -> dict[str, int]:
        """Parameter counts by part: attention, dense MLP, routed experts, shared, embeddings."""
        dense_mlp = self.mlp_mats * self.hidden * self.ffn
        expert = self.mlp_mats * self.hidden * self.expert_ffn
        embed = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return {
            "attention": (self.layers - self.linear_layers) * self.attention_params()
            + self.linear_layers * self.linear_attention_params()
            + self.layers * self.indexer_params(),
            "dense_mlp": (self.layers - self.moe_layers) * dense_mlp,
            "experts": self.moe_layers * self.experts * expert,
            "shared": self.moe_layers * (self.shared_experts * expert + self.hidden * self.experts),
            "embeddings": embed,
        }

    def total_params(self) -> int:
        """All parameters (embeddings counted once when tied)."""
        return sum(self.params().values())

    def active_matmul_params(self) -> int:
        """Weights every token multiplies through (routed experts: only the active ones; no
        embeddings): 2x this is a lower bound on FLOPs per token."""
        parts = self.params()
        routed = parts["experts"] * self.active_experts // max(self.experts, 1)
        return parts["attention"] + parts["dense_mlp"] + routed + parts["shared"]


def _cards_dir() -> Path:
    """The bundled models/ folder."""
    return resource_dir("models")


@cache
def _bundled_cards() -> dict[str, ModelCard]:
    """Every bundled card by id, parsed once per process."""
    return {path.stem: load_card_file(path) for path in sorted(_cards_dir().glob("*.toml"))}


def load_card_file(path: Path | str) -> ModelCard:
    """Parse one card file (TOML card or Hugging Face config.json), naming the file in errors."""
    path = Path(path)
    try:
        data = read_hf_config(path) if path.suffix == ".json" else tomllib.loads(path.read_text())
        return ModelCard(**data)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PlannerError(f"{path}: cannot read model card ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "card"
        raise PlannerError(f"{path}: bad model card field {where}: {first['msg']}") from None


def list_cards() -> list[str]:
    """Ids of the bundled model cards."""
    return list(_bundled_cards())


@cache
def _alias_index() -> dict[str, ModelCard]:
    """Every bundled card by id and by each Hugging Face path it lists (lower case)."""
    index = {alias.lower(): card for card in _bundled_cards().values() for alias in card.aliases}
    return index | _bundled_cards()


def load_card(model: str | Path | ModelCard) -> ModelCard:
    """A card by id or Hugging Face path (case-insensitive), or from a config.json / card file.

    A PlannerError lists the known ids when nothing matches.
    """
    if isinstance(model, ModelCard):
        return model
    text = str(model).strip()
    if text.lower().endswith((".json", ".toml")) and Path(text).is_file():
        return load_card_file(text)
    card = _alias_index().get(text.lower())
    if card is None:
        known = ", ".join(_bundled_cards())
        raise PlannerError(
            f"unknown model {text!r}; known models: {known} (or a path to a config.json)"
        )
    return card
