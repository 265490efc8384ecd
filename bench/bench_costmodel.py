"""Latency cost model throughput: 100,000 points through `planner latency`'s batch path.

Reference, measured in the same run on the same points: a plain numpy spec-sheet roofline
(max of 2 x params x tokens / peak FLOPs and weight bytes / HBM bandwidth per point), the
cheapest prediction one could make; the ratio says what the operator-level model costs on top.
"""

import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.costmodel import get_accelerator, load_card  # noqa: E402
from planner.costmodel.batch import predict_points  # noqa: E402

POINTS = 100_000
MODELS = ["llama-3.1-8b", "qwen2.5-7b", "llama-3.2-3b", "mixtral-8x7b"]
ACCELERATORS = ["h100", "a100", "h200", "b200"]
REPEATS = 5


def _points(n: int, seed: int = 0) -> pl.DataFrame:
    """Random prefill and decode points over several models and accelerators."""
    rng = np.random.default_rng(seed)
    decode = rng.random(n) < 0.5
    return pl.DataFrame(
        {
            "model": rng.choice(MODELS, n),
            "accelerator": rng.choice(ACCELERATORS, n),
            "phase": np.where(decode, "decode", "prefill"),
            "batch": rng.integers(1, 256, n),
            "tokens": np.where(decode, 1, rng.integers(16, 4096, n)),
            "context": rng.integers(0, 8192, n),
            "tp": rng.choice([2, 4], n),
        }
    )


def _reference(df: pl.DataFrame) -> np.ndarray:
    """Plain spec-sheet roofline of the same points (no efficiencies, attention or overheads)."""
    params = {m: load_card(m).total_params() for m in MODELS}
    peaks = {a: get_accelerator(a) for a in ACCELERATORS}
    p = df["model"].replace_strict(params, return_dtype=pl.Float64).to_numpy()
    flops = df["accelerator"].replace_strict(
        {a: acc.bf16_tflops * 1e12 for a, acc in peaks.items()}, return_dtype=pl.Float64
    )
    bw = df["accelerator"].replace_strict(
        {a: acc.hbm_tbs * 1e12 for a, acc in peaks.items()}, return_dtype=pl.Float64
    )
    tp = df["tp"].to_numpy()
    tokens = (df["batch"] * df["tokens"]).to_numpy()
    return np.maximum(2 * p * tokens / flops.to_numpy(), 2 * p / bw.to_numpy()) / tp * 1e3


def _best(fn, *args) -> tuple[float, object]:
    """Best wall time of REPEATS calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(REPEATS):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def run() -> dict:
    """Time 100k predictions (cost model, batch path) against the plain numpy roofline."""
    df = _points(POINTS)
    seconds, out = _best(predict_points, df)
    reference, _ = _best(_reference, df)
    assert out.height == POINTS and out["ms"].is_finite().all()
    plans = df.select("model", "accelerator", "tp").n_unique()
    return {
        "name": f"costmodel: latency of {POINTS:,} points ({plans} plans) vs numpy roofline",
        "points": POINTS,
        "seconds": round(seconds, 4),
        "reference_seconds": round(reference, 4),
        "ratio": round(seconds / reference, 2),
        "points_per_s": round(POINTS / seconds),
    }


if __name__ == "__main__":
    print(run())
