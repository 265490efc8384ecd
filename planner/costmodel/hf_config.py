"""Model cards from Hugging Face `config.json` files, so an unlisted model needs no code change.

Reads the architecture fields the cost model needs from the families served in 2025-26:
Llama / Mistral / Qwen2-3 (dense, GQA), Mixtral and Qwen-MoE (routed experts), DeepSeek-V2/V3,
Kimi-K2 and GLM-4.5 (shared experts, first-k dense layers, MLA where present, MTP layers),
gpt-oss (sliding-window layers, MXFP4 experts), MiniMax-M2 and Llama-4 (text_config nested,
interleaved MoE layers, chunked local attention), Qwen3-Next / Qwen3.5 (Gated DeltaNet
linear-attention layers, gated attention), DeepSeek-V3.2 and GLM-5 (sparse attention's
indexer). The shipped weight precision comes from `quantization_config` (fp8, mxfp4, NVFP4 /
ModelOpt, compressed-tensors INT4 / INT8 / FP8), else from `torch_dtype`.
"""

import json
from pathlib import Path
from typing import Any

from planner.errors import PlannerError

_MOE_EXPERTS = ("n_routed_experts", "num_local_experts", "num_experts")
_MOE_TOPK = ("num_experts_per_tok", "experts_per_token", "moe_topk")
_MOE_FFN = ("moe_intermediate_size",)


def _first(config: dict[str, Any], keys: tuple[str, ...], default: Any = 0) -> Any:
    """The first present, non-null value of `keys`."""
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return default


def _quant_dtype(config: dict[str, Any]) -> tuple[str | None, bool]:
    """(weight dtype of the quantised parts, whether only the experts are quantised)."""
    quant = config.get("quantization_config") or {}
    method = str(quant.get("quant_method", "")).lower()
    algo = str(quant.get("quant_algo", "")).lower()
    if method == "mxfp4":
        return "mxfp4", True
    if "nvfp4" in algo or method == "nvfp4":
        return "fp4", False
    if method == "fp8" or "fp8" in algo or str(quant.get("fmt", "")).startswith(("e4m3", "float8")):
        return "fp8", False
    if method == "compressed-tensors":
        return _compressed_tensors(quant)
    return None, False


def _compressed_tensors(quant: dict[str, Any]) -> tuple[str | None, bool]:
    """A compressed-tensors scheme's weight dtype (Kimi K2.5: INT4 groups), and whether it
    leaves attention unquantised (its `ignore` list names self_attn): experts-only then."""
    groups = quant.get("config_groups") or {}
    weights = next(iter(groups.values()), {}).get("weights") or {}
    kind, bits = str(weights.get("type", "")), int(weights.get("num_bits") or 0)
    dtype = {("int", 4): "int4", ("int", 8): "int8", ("float", 8): "fp8"}.get((kind, bits))
    experts_only = any("self_attn" in str(pattern) for pattern in quant.get("ignore") or [])
    return dtype, experts_only and dtype is not None


def _moe_layers(config: dict[str, Any], layers: int) -> int:
    """Layers whose MLP is routed experts (first-k dense, sparse step, interleave, mlp-only)."""
    dense_first = int(config.get("first_k_dense_replace", 0) or 0)
    step = int(config.get("interleave_moe_layer_step", config.get("decoder_sparse_step", 1)) or 1)
    mlp_only = set(config.get("mlp_only_layers") or [])
    return sum(
        1 for i in range(layers) if i >= dense_first and (i + 1) % step == 0 and i not in mlp_only
    )


def _sliding(config: dict[str, Any], layers: int) -> tuple[int, int]:
    """(window, layers using it): gpt-oss layer_types, Llama-4 chunked attention, Qwen windows."""
    types = config.get("layer_types")
    if types and config.get("sliding_window"):
        return int(config["sliding_window"]), sum(t == "sliding_attention" for t in types)
    if config.get("attention_chunk_size"):
        no_rope = config.get("no_rope_layers")
        chunked = sum(no_rope) if no_rope else layers - layers // 4
        return int(config["attention_chunk_size"]), chunked
    if config.get("use_sliding_window") and config.get("sliding_window"):
        full = int(config.get("max_window_layers", layers))
        return int(config["sliding_window"]), max(layers - full, 0)
    return 0, 0


def _linear_attention(config: dict[str, Any]) -> dict[str, Any]:
    """Gated DeltaNet layers of a hybrid model (Qwen3-Next, Qwen3.5: layer_types entries
    'linear_attention', else every `full_attention_interval`-th layer full) and their shapes."""
    if not config.get("linear_num_value_heads"):
        return {}
    layers = int(config["num_hidden_layers"])
    types = config.get("layer_types")
    interval = int(config.get("full_attention_interval") or 1)
    linear = sum(t == "linear_attention" for t in types) if types else layers - layers // interval
    return {
        "linear_layers": linear,
        "linear_key_heads": int(config["linear_num_key_heads"]),
        "linear_value_heads": int(config["linear_num_value_heads"]),
        "linear_key_dim": int(config["linear_key_head_dim"]),
        "linear_value_dim": int(config["linear_value_head_dim"]),
        "linear_conv": int(config.get("linear_conv_kernel_dim") or 0),
    }


def card_fields(config: dict[str, Any], card_id: str, source: str = "") -> dict[str, Any]:
    """ModelCard fields from a parsed Hugging Face config.json (text_config used when nested)."""
    text = {**config, **config.get("text_config", {})}
    layers = int(text["num_hidden_layers"])
    heads = int(text["num_attention_heads"])
    hidden = int(text["hidden_size"])
    experts = int(_first(text, _MOE_EXPERTS))
    quant, experts_only = _quant_dtype(text)
    torch_dtype = str(text.get("torch_dtype") or text.get("dtype") or "bf16")
    dtype = torch_dtype if (quant is None or experts_only) else quant
    window, sliding_layers = _sliding(text, layers)
    fields: dict[str, Any] = {
        "id": card_id,
        "name": card_id,
        "source": source,
        "layers": layers,
        "hidden": hidden,
        "heads": heads,
        "kv_heads": int(text.get("num_key_value_heads") or heads),
        "head_dim": int(text.get("head_dim") or hidden // heads),
        "ffn": int(text.get("intermediate_size_mlp") or text.get("intermediate_size") or 0),
        "vocab": int(text["vocab_size"]),
        "tied_embeddings": bool(text.get("tie_word_embeddings", False)),
        "dtype": dtype,
        "qkv_bias": bool(text.get("attention_bias", False) or text.get("model_type") == "qwen2"),
        "max_context": int(text.get("max_position_embeddings") or 0),
        "sliding_window": window,
        "sliding_layers": sliding_layers,
        "mtp_layers": int(
            text.get("num_nextn_predict_layers")
            or text.get("num_mtp_modules")
            or text.get("mtp_num_hidden_layers")
            or 0
        ),
        "attention_gate": bool(text.get("attn_output_gate", False)),
        "qk_norm_over_heads": bool(text.get("use_qk_norm"))
        and text.get("qk_norm_type") == "per_layer",
        **_linear_attention(text),
    }
    if text.get("index_topk"):
        fields |= {
            "index_topk": int(text["index_topk"]),
            "index_heads": int(text["index_n_heads"]),
            "index_head_dim": int(text["index_head_dim"]),
        }
    if experts:
        moe_layers = _moe_layers(text, layers)
        expert_ffn = int(_first(text, _MOE_FFN) or text.get("intermediate_size") or 0)
        shared_ffn = int(text.get("shared_expert_intermediate_size") or 0)
        shared = int(text.get("n_shared_experts") or 0)
        if text.get("model_type", "").startswith("llama4"):
            shared = 1
        fields |= {
            "experts": experts,
            "active_experts": int(_first(text, _MOE_TOPK)),
            "expert_ffn": expert_ffn,
            "shared_experts": shared or (round(shared_ffn / expert_ffn) if shared_ffn else 0),
            "dense_layers": layers - moe_layers,
            "expert_dtype": quant if experts_only else dtype,
        }
    if text.get("kv_lora_rank"):
        fields |= {
            k: int(text.get(k) or 0)
            for k in (
                "q_lora_rank",
                "kv_lora_rank",
                "qk_rope_head_dim",
                "qk_nope_head_dim",
                "v_head_dim",
            )
        }
        fields["head_dim"] = fields["qk_nope_head_dim"]
    return fields


def read_hf_config(path: Path) -> dict[str, Any]:
    """Card fields of a config.json file, the card named after its folder (or the file stem)."""
    try:
        config = json.loads(path.read_text())
    except OSError as exc:
        raise PlannerError(f"{path}: cannot read config.json ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise PlannerError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise PlannerError(f"{path}: a Hugging Face config.json holds one JSON object")
    stem = path.parent.name if path.stem == "config" else path.stem
    try:
        return card_fields(config, stem.lower(), str(path))
    except KeyError as exc:
        raise PlannerError(f"{path}: config.json has no {exc.args[0]!r} field") from None
    except (TypeError, ValueError) as exc:
        raise PlannerError(f"{path}: cannot read the architecture ({exc})") from None
