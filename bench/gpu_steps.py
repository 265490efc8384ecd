"""Measure dense-decoder step latencies on a CUDA GPU, in the step-profile JSONL that
`planner calibrate` reads: how a new accelerator gets its own efficiencies instead of borrowing.

Needs PyTorch and a GPU (not part of `bench/run.py`). Method as `h100_dense_steps.jsonl`:
Llama-shaped decoders with random bf16 weights; fused QKV and gate-up GEMMs, SDPA attention
with GQA (flash backend), RMSNorm, SwiGLU, no RoPE; logits for the last position only.
Prefill: batch 1-32 x 64-16384 fresh tokens, batch x tokens <= 32768, median of 7 timed runs
after 3 warm-ups. Decode: batch 1-512 x context 128-32768 cached tokens while the KV cache fits
in --kv-gib (32 GiB reproduces the H100 grid), one CUDA graph per shape, median of 20 replays
after 5. Rows are written as they are measured, so a run cut short keeps what it measured.

    python bench/gpu_steps.py --out h200_dense_steps.jsonl --kv-gib 64 --budget-s 420
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

EPS = 1e-5
GQA = True
CONTEXTS = (128, 512, 1024, 2048, 4096, 8192, 16384, 32768)


@dataclass(frozen=True)
class Shape:
    """A Llama-style decoder's dimensions (from its public config.json)."""

    model: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int = 128256

    @property
    def head_dim(self) -> int:
        """Per-head width."""
        return self.hidden // self.heads

    def kv_bytes_per_token(self) -> int:
        """Bytes of K and V cached per token over all layers, in bf16."""
        return self.layers * 2 * self.kv_heads * self.head_dim * 2


SHAPES = (
    Shape("llama-3.2-1b", 2048, 16, 32, 8, 8192),
    Shape("llama-3.2-3b", 3072, 28, 24, 8, 8192),
    Shape("llama-3.1-8b", 4096, 32, 32, 8, 14336),
)


def weights(s: Shape, device: str) -> dict[str, list[torch.Tensor] | torch.Tensor]:
    """Random bf16 weights (random, not zeros: tensor cores run faster on zeros)."""

    def w(*size: int) -> torch.Tensor:
        """One normal(0, 0.02) bf16 tensor."""
        return torch.randn(*size, device=device, dtype=torch.bfloat16) * 0.02

    d, qkv = s.head_dim, (s.heads + 2 * s.kv_heads) * s.head_dim
    return {
        "emb": w(s.vocab, s.hidden),
        "lm": w(s.vocab, s.hidden),
        "norm": torch.ones(s.hidden, device=device, dtype=torch.bfloat16),
        "qkv": [w(qkv, s.hidden) for _ in range(s.layers)],
        "o": [w(s.hidden, s.heads * d) for _ in range(s.layers)],
        "gu": [w(2 * s.ffn, s.hidden) for _ in range(s.layers)],
        "down": [w(s.hidden, s.ffn) for _ in range(s.layers)],
    }


def param_count(s: Shape) -> int:
    """Matrix parameters of `weights` (untied embeddings; norms not counted, as in the H100
    profile), so `planner calibrate` reads the shape as untied."""
    d = s.head_dim
    layer = (s.heads + 2 * s.kv_heads) * d * s.hidden + s.hidden * s.heads * d
    return 2 * s.vocab * s.hidden + s.layers * (layer + 3 * s.ffn * s.hidden)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """SDPA with grouped KV heads; where the flash kernel takes no GQA, KV heads expanded."""
    if GQA:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def flash_takes_gqa() -> bool:
    """Whether the flash backend runs grouped-query attention without expanding KV heads."""
    q = torch.randn(1, 8, 16, 64, device="cuda", dtype=torch.bfloat16)
    kv = torch.randn(1, 2, 16, 64, device="cuda", dtype=torch.bfloat16)
    try:
        F.scaled_dot_product_attention(q, kv, kv, is_causal=True, enable_gqa=True)
    except RuntimeError as exc:
        print(f"flash attention without GQA ({exc}); KV heads expanded")
        return False
    return True


def forward(
    s: Shape, w: dict, ids: torch.Tensor, cache: list[torch.Tensor] | None, pos: int
) -> torch.Tensor:
    """One step: prefill when `cache` is None (causal over the fresh tokens), else one decode
    token per sequence written at `pos` and attending to the pos + 1 cached positions."""
    b, t = ids.shape
    d, h = s.head_dim, s.hidden
    norm = w["norm"]
    x = F.embedding(ids, w["emb"])
    for i in range(s.layers):
        y = F.rms_norm(x, (h,), norm, EPS)
        q, k, v = F.linear(y, w["qkv"][i]).split(
            [s.heads * d, s.kv_heads * d, s.kv_heads * d], dim=-1
        )
        q = q.view(b, t, s.heads, d).transpose(1, 2)
        k = k.view(b, t, s.kv_heads, d).transpose(1, 2)
        v = v.view(b, t, s.kv_heads, d).transpose(1, 2)
        if cache is None:
            o = attention(q, k, v, True)
        else:
            kc, vc = cache[2 * i], cache[2 * i + 1]
            kc[:, :, pos : pos + 1].copy_(k)
            vc[:, :, pos : pos + 1].copy_(v)
            o = attention(q, kc[:, :, : pos + 1], vc[:, :, : pos + 1], False)
        x = x + F.linear(o.transpose(1, 2).reshape(b, t, s.heads * d), w["o"][i])
        g, u = F.linear(F.rms_norm(x, (h,), norm, EPS), w["gu"][i]).chunk(2, dim=-1)
        x = x + F.linear(F.silu(g) * u, w["down"][i])
    return F.linear(F.rms_norm(x[:, -1], (h,), norm, EPS), w["lm"])


def timed(run: Callable[[], object], warmup: int, reps: int) -> list[float]:
    """Milliseconds of `reps` runs after `warmup`, each between CUDA events."""
    for _ in range(warmup):
        run()
    out = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end))
    return out


def prefill_ms(s: Shape, w: dict, batch: int, tokens: int) -> list[float]:
    """Timed prefill steps of `batch` fresh prompts of `tokens` tokens."""
    ids = torch.randint(0, s.vocab, (batch, tokens), device="cuda")
    return timed(lambda: forward(s, w, ids, None, 0), 3, 7)


def decode_ms(s: Shape, w: dict, batch: int, context: int) -> list[float]:
    """Timed CUDA-graph replays of one decode step over `context` cached tokens."""
    ids = torch.randint(0, s.vocab, (batch, 1), device="cuda")
    size = (batch, s.kv_heads, context + 1, s.head_dim)
    cache = [
        torch.empty(size, device="cuda", dtype=torch.bfloat16).normal_()
        for _ in range(2 * s.layers)
    ]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            forward(s, w, ids, cache, context)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        forward(s, w, ids, cache, context)
    try:
        return timed(graph.replay, 5, 20)
    finally:
        del graph, cache
        torch.cuda.empty_cache()


def grid(s: Shape, kv_gib: float) -> Iterator[tuple[str, int, int, int]]:
    """(phase, batch, tokens, context) of every point: prefill, then decode by KV size."""
    for batch in (1, 2, 4, 8, 16, 32):
        for tokens in (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384):
            if batch * tokens <= 32768:
                yield "prefill", batch, tokens, 0
    per = s.kv_bytes_per_token()
    decode = [(2**i, c) for i in range(10) for c in CONTEXTS]
    for low, high in ((0, 32 * 2**30), (32 * 2**30, kv_gib * 2**30)):
        for batch, context in decode:
            if low < batch * context * per <= high:
                yield "decode", batch, 1, context


def main() -> None:
    """Measure every point of every shape within the time budget, one JSON line each."""
    global GQA
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--kv-gib", type=float, default=32.0)
    ap.add_argument("--budget-s", type=float, default=600.0)
    args = ap.parse_args()
    gpu = torch.cuda.get_device_name().replace(" ", "_")
    deadline = time.monotonic() + args.budget_s
    torch.backends.cuda.matmul.allow_tf32 = False
    with (
        open(args.out, "w") as out,
        torch.no_grad(),
        sdpa_kernel(SDPBackend.FLASH_ATTENTION),
    ):
        GQA = flash_takes_gqa()
        for s in SHAPES:
            w = weights(s, "cuda")
            for phase, batch, tokens, context in grid(s, args.kv_gib):
                if time.monotonic() > deadline:
                    print(f"budget spent: stopped before {s.model} {phase} {batch}x{context}")
                    return
                try:
                    if phase == "prefill":
                        ms = prefill_ms(s, w, batch, tokens)
                    else:
                        ms = decode_ms(s, w, batch, context)
                except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
                    print(f"skipped {s.model} {phase} b={batch} t={tokens} c={context}: {exc}")
                    torch.cuda.empty_cache()
                    continue
                row = {
                    "gpu": gpu,
                    "model": s.model,
                    "params": param_count(s),
                    "hidden": s.hidden,
                    "layers": s.layers,
                    "heads": s.heads,
                    "kv_heads": s.kv_heads,
                    "ffn": s.ffn,
                    "vocab": s.vocab,
                    "dtype": "bf16",
                    "phase": phase,
                    "batch": batch,
                    "tokens": tokens,
                    "context": context,
                    "ms": statistics.median(ms),
                    "ms_min": min(ms),
                    "ms_max": max(ms),
                    "tp": 1,
                    "attention": "flash" if GQA else "flash, KV heads expanded",
                }
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(f"{s.model} {phase} b={batch} t={tokens} c={context} {row['ms']:.3f} ms")
            del w
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
