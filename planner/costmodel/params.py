"""Efficiency parameters of the roofline: what calibration fits, per accelerator."""

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class EfficiencyParams:
    """Achieved fractions of peak, fixed latencies and host overheads for one accelerator.

    A GEMM of M rows takes 2 (M + gemm_pad_rows) K N / (peak * gemm_eff): it reaches
    gemm_eff * M / (M + gemm_pad_rows) of peak, so efficiency grows with the operator's size.
    Attention pays softmax_flops tensor-FLOP equivalents per query-key pair and head for its
    exponential (H100: 989 TFLOPS tensor vs ~3.9 TFLOPS exp, per FlashAttention-3), so small
    head dims run at a lower fraction of peak. Elementwise kernels (norms, activations, residual
    adds) reach elementwise_eff of peak bandwidth on the minimal traffic (less when unfused).
    An operator's compute and memory times combine as a smooth maximum of order roofline_q
    (a large order is the plain roofline; real kernels lose some overlap near the ridge).
    Routed experts run as grouped GEMMs at moe_eff of peak, each touched expert's rows padded
    by moe_pad_rows (the kernel's row tile: vLLM's fused MoE aligns every expert's tokens to
    its BLOCK_SIZE_M, so a decode step that routes a few tokens to many experts computes whole
    tiles for each). GEMMs whose math runs in FP8, INT8 or FP4 reach lowp_eff times the BF16
    efficiency of their (higher) peak. A collective
    pays collective_ms per round on top of its bytes at link_eff of the link bandwidth: one
    round for an all-reduce inside the scale-up domain (one-shot kernels), log2(n) rounds of a
    tree or recursive-doubling exchange for an all-to-all over n GPUs or any collective that
    leaves the domain. Single-GPU step profiles cannot show it; serving benchmarks at several
    tensor-parallel sizes fit it (the engines' own all-reduce kernels, not NCCL's).
    """

    gemm_eff: float = 0.7
    attn_eff: float = 0.5
    moe_eff: float = 0.5
    lowp_eff: float = 1.0
    roofline_q: float = 8.0
    mem_eff: float = 0.85
    elementwise_eff: float = 0.5
    gemm_pad_rows: float = 64.0
    moe_pad_rows: float = 0.0
    kernel_ms: float = 0.004
    host_layer_prefill_ms: float = 0.1
    host_layer_decode_ms: float = 0.0
    host_step_ms: float = 0.5
    overlap: float = 4.0
    collective_ms: float = 0.02
    link_eff: float = 0.8
    softmax_flops: float = 256.0

    def to_dict(self) -> dict[str, float]:
        """Plain dict for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> "EfficiencyParams":
        """From a JSON dict, ignoring unknown keys from newer files."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in data.items() if k in names})


FITTED = (
    "roofline_q",
    "gemm_eff",
    "attn_eff",
    "mem_eff",
    "elementwise_eff",
    "gemm_pad_rows",
    "kernel_ms",
    "host_layer_prefill_ms",
    "host_layer_decode_ms",
    "host_step_ms",
    "overlap",
)
COMM_FITTED = ("collective_ms", "link_eff")
SERVING_FITTED = ("moe_eff", "moe_pad_rows", "lowp_eff", "collective_ms")
LOWER = {
    "roofline_q": 1.5,
    "moe_eff": 0.05,
    "lowp_eff": 0.2,
    "gemm_eff": 0.05,
    "attn_eff": 0.05,
    "mem_eff": 0.2,
    "elementwise_eff": 0.05,
    "gemm_pad_rows": 0.0,
    "moe_pad_rows": 0.0,
    "kernel_ms": 0.0,
    "host_layer_prefill_ms": 0.0,
    "host_layer_decode_ms": 0.0,
    "host_step_ms": 0.0,
    "overlap": 1.0,
    "collective_ms": 0.0,
    "link_eff": 0.05,
}
UPPER = {
    "roofline_q": 64.0,
    "moe_eff": 1.0,
    "lowp_eff": 1.5,
    "gemm_eff": 1.0,
    "attn_eff": 1.0,
    "mem_eff": 1.0,
    "elementwise_eff": 1.0,
    "gemm_pad_rows": 4096.0,
    "moe_pad_rows": 128.0,
    "kernel_ms": 0.1,
    "host_layer_prefill_ms": 5.0,
    "host_layer_decode_ms": 5.0,
    "host_step_ms": 50.0,
    "overlap": 16.0,
    "collective_ms": 1.0,
    "link_eff": 1.0,
}
