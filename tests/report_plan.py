"""TEST FIXTURE: a PLAN.json-shaped dict built from a real ingested trace, for report tests.

Demand, history and the forecast's spread come from the trace in the store, prices and
sources from the bundled accelerator catalog. The candidate plans' latencies and goodputs,
the schedule and the replay are made-up but self-consistent numbers: they exercise the report,
they are not the optimizer's output.
"""

import math
from pathlib import Path

import numpy as np
from conftest import SHARED_DATA

from planner.costmodel import load_catalog
from planner.forecast.series import load_series
from planner.ingest import ingest_path, ingest_sample
from planner.scaling.holdout import HybridParams
from planner.scaling.replay import replay_verdict
from planner.store import get_trace, open_store

HOURS_PER_MONTH = 730
# (accelerator, tp, max_batch, goodput req/s per replica, TTFT p99 ms, TPOT p99 ms)
CANDIDATES = [
    ("h100", 1, 64, 3.1, 610.0, 21.0),
    ("h100", 1, 128, 4.1, 820.0, 27.0),
    ("h100", 2, 128, 7.4, 380.0, 15.0),
    ("h100", 4, 256, 12.5, 240.0, 11.0),
    ("a100", 1, 64, 1.5, 930.0, 38.0),
    ("a100", 1, 128, 1.9, 990.0, 46.0),
    ("a100", 2, 128, 3.4, 560.0, 26.0),
    ("a100", 4, 256, 6.0, 350.0, 18.0),
    ("l4", 1, 32, 0.21, 2400.0, 95.0),
    ("l4", 2, 64, 0.45, 1300.0, 61.0),
    ("l4", 4, 64, 0.8, 900.0, 48.0),
]


def fixture_plan(db: Path, trace: str = "azure-code") -> dict:
    """A complete plan dict (schema version 1) for `trace` in the store `db`."""
    con = open_store(db, read_only=True)
    try:
        info = get_trace(con, trace)
        minute = load_series(con, trace, "1min", total=True)
        tokens = con.execute(
            "SELECT avg(input_tokens), avg(output_tokens) FROM requests WHERE trace_id = ?",
            [info.id],
        ).fetchall()[0]
    finally:
        con.close()
    catalog = load_catalog()
    rps = minute["requests"].to_numpy() / 60.0
    t = minute["t"].to_numpy()
    mean_rps = float(info.rows / info.span_s)
    tokens_per_hour = mean_rps * (tokens[0] + tokens[1]) * 3600
    quantiles = {
        q: float(np.quantile(rps, int(q[1:]) / 100)) for q in ("p10", "p50", "p90", "p95", "p99")
    }
    scale = {q: v / quantiles["p50"] for q, v in quantiles.items()}
    step = 600
    horizon = 3 * 3600
    points = []
    for k in range(horizon // step):
        at = info.span_s + k * step
        base = float(
            np.mean(rps[(t % 3600 >= (k * step) % 3600) & (t % 3600 < (k * step) % 3600 + step)])
        )
        points.append({"t": at, **{q: base * s for q, s in scale.items()}})
    demand = quantiles["p95"]

    frontier = []
    for acc, tp, batch, goodput, ttft, tpot in CANDIDATES:
        price = catalog[acc].price_per_hour * tp
        frontier.append(
            {
                "id": f"{acc}-tp{tp}-agg-b{batch}",
                "accelerator": acc,
                "tp": tp,
                "pp": 1,
                "ep": 1,
                "mode": "aggregated",
                "pd": None,
                "max_batch": batch,
                "gpus": tp,
                "goodput_rps": goodput,
                "cost_per_hour": price,
                "cost_per_mtok": price / (goodput * (tokens[0] + tokens[1]) * 3600 / 1e6),
                "ttft_p99_ms": ttft,
                "tpot_p99_ms": tpot,
                "pareto": False,
                "chosen": False,
            }
        )
    feasible = [f for f in frontier if f["ttft_p99_ms"] <= 1000 and f["tpot_p99_ms"] <= 50]
    for f in frontier:
        f["pareto"] = not any(
            o["cost_per_mtok"] <= f["cost_per_mtok"]
            and o["ttft_p99_ms"] < f["ttft_p99_ms"]
            or o["cost_per_mtok"] < f["cost_per_mtok"]
            and o["ttft_p99_ms"] <= f["ttft_p99_ms"]
            for o in frontier
        )

    def fleet(cand: dict, rate: float) -> tuple[int, float]:
        count = max(1, math.ceil(rate / cand["goodput_rps"]))
        return count, count * cand["cost_per_hour"]

    def scheduled(cand: dict, q: str) -> tuple[int, float, float]:
        """Peak count, peak $/hour and mean $/hour of a fleet following the `q` forecast."""
        counts = [fleet(cand, p[q])[0] for p in points]
        return (
            max(counts),
            max(counts) * cand["cost_per_hour"],
            float(np.mean(counts)) * (cand["cost_per_hour"]),
        )

    best = min(feasible, key=lambda f: fleet(f, demand)[1])
    best["chosen"] = True
    count, per_hour, scheduled_hour = scheduled(best, "p95")
    p50_hour = scheduled(best, "p50")[2]
    peak_count, peak_hour = fleet(best, float(rps.max()))
    other = min(
        (f for f in feasible if f["accelerator"] != best["accelerator"]),
        key=lambda f: fleet(f, demand)[1],
    )
    other_count, other_peak_hour, other_hour = scheduled(other, "p95")

    def replicas(cand: dict, n: int) -> list[dict]:
        keys = ("accelerator", "tp", "pp", "ep", "mode", "pd", "max_batch", "goodput_rps")
        return [{**{k: cand[k] for k in keys}, "count": n, "gpus": n * cand["gpus"]}]

    schedule, timeline = [], []
    previous = 0
    for p in points:
        n, _ = fleet(best, p["p95"])
        action = "scale-up" if n > previous else "scale-down" if n < previous else "hold"
        schedule.append(
            {
                "t": p["t"] - 120,
                "plan": best["id"],
                "replicas": n,
                "action": action,
                "demand_rps": p["p95"],
            }
        )
        previous = n
    for at, r in zip(t, rps, strict=True):
        n_sched = fleet(best, quantiles["p95"] * max(1.0, r / quantiles["p95"]))[0]
        timeline.append(
            {
                "t": float(at),
                "schedule": n_sched,
                "static_peak": peak_count,
                "reactive": fleet(best, r)[0],
                "demand_rps": float(r),
            }
        )
    price = best["cost_per_hour"]

    def replay(counts: list[int], attainment: float) -> dict:
        hours = sum(counts) / 60 * best["gpus"]
        changes = sum(a != b for a, b in zip(counts, counts[1:], strict=False))
        starts = counts[0] + sum(max(0, b - a) for a, b in zip(counts, counts[1:], strict=False))
        return {
            "slo_attainment": attainment,
            "gpu_hours": hours,
            "cost": hours * price / best["gpus"],
            "replica_starts": starts,
            "scaling_actions": changes,
        }

    model = "llama-3.1-8b"
    sentence = (
        f"Run {count} × {catalog[best['accelerator']].name} (TP{best['tp']}, aggregated) for "
        f"{model}: ${scheduled_hour * HOURS_PER_MONTH:,.0f}/month, "
        f"${scheduled_hour / (tokens_per_hour / 1e6):,.2f} per 1M tokens, "
        "holding TTFT p99 ≤ 1000 ms and TPOT p99 ≤ 50 ms for 99% of requests."
    )
    accels = sorted({f["accelerator"] for f in frontier})
    policies = {
        "schedule": replay([x["schedule"] for x in timeline], 0.995),
        "static_peak": replay([x["static_peak"] for x in timeline], 0.999),
        "reactive": replay([x["reactive"] for x in timeline], 0.962),
    }
    return {
        "version": 1,
        "created_at": "2026-11-22T21:00:00Z",
        "db": str(Path(db).resolve()),
        "trace": {
            "name": info.name,
            "format": info.format,
            "table": info.kind,
            "requests": info.rows,
            "span_s": info.span_s,
        },
        "model": model,
        "engine": {
            "id": "vllm",
            "release": None,
            "name": "vLLM (V1 engine, vllm serve)",
            "version": "0.12.0 - 0.18.0",
        },
        "slo": {"ttft_p99_ms": 1000.0, "tpot_p99_ms": 50.0, "attainment": 0.99},
        "accelerators": [
            {
                "id": a,
                "name": catalog[a].name,
                "price_per_hour": catalog[a].price_per_hour,
                "price_source": f"{catalog[a].price_source} ({catalog[a].price_date})",
            }
            for a in accels
        ],
        "horizon_s": horizon,
        "interval_s": step,
        "quantile": "p95",
        "demand": {
            "unit": "requests/s",
            "mean_in_tokens": tokens[0],
            "mean_out_tokens": tokens[1],
            "peak_rps": float(rps.max()),
            "mean_rps": mean_rps,
            "forecast_mean_rps": float(np.mean([p["p50"] for p in points])),
            "forecast_peak_rps": max(p["p95"] for p in points),
            "sized_for_rps": max(p["p95"] for p in points),
        },
        "recommended": {
            "sentence": sentence,
            "replicas": replicas(best, count),
            "cost_per_hour": per_hour,
            "scheduled_cost_per_hour": scheduled_hour,
            "cost_per_month": scheduled_hour * HOURS_PER_MONTH,
            "cost_per_mtok": scheduled_hour / (tokens_per_hour / 1e6),
        },
        "alternatives": {
            "static_peak": {
                "cost_per_hour": peak_hour,
                "cost_per_month": peak_hour * HOURS_PER_MONTH,
                "cost_per_mtok": peak_hour / (tokens_per_hour / 1e6),
                "replicas": replicas(best, peak_count),
            },
            "best_single_accelerator": {
                "accelerator": other["accelerator"],
                "cost_per_hour": other_peak_hour,
                "scheduled_cost_per_hour": other_hour,
                "cost_per_month": other_hour * HOURS_PER_MONTH,
                "cost_per_mtok": other_hour / (tokens_per_hour / 1e6),
                "replicas": replicas(other, other_count),
            },
        },
        "cost_band": {
            "p50_cost_per_month": p50_hour * HOURS_PER_MONTH,
            "p95_cost_per_month": scheduled_hour * HOURS_PER_MONTH,
        },
        "frontier": frontier,
        "forecast": {
            "series": "total",
            "method": "fixture",
            "freq": "10min",
            "history": [{"t": float(a), "rps": float(r)} for a, r in zip(t, rps, strict=True)],
            "points": points,
        },
        "schedule": schedule,
        "provisioning_delay_s": 120.0,
        "provisioning_source": "test fixture default",
        "replay": policies
        | {
            "verdict": replay_verdict(policies, 0.99),
            "hybrid_tuning": HybridParams("p95").to_dict()
            | {"chosen_by": "default", "sentence": "The hybrid's floor is the p95 schedule."},
            "timeline": timeline,
        },
        "search": {"candidates": len(CANDIDATES), "feasible": len(feasible), "seconds": 0.1},
    }


GENTD_COLD_STARTS = (
    SHARED_DATA / "traces" / "alibaba_gentd26" / "basemodel_update_latency_anon.tar.gz"
)


def fixture_store(db: Path) -> Path:
    """A store with the embedded azure-code trace and, where ../shared/data is present, real
    GPU-serverless model-load cold starts (GenTD26 base-model updates)."""
    con = open_store(db)
    try:
        ingest_sample(con, "azure-code")
        if GENTD_COLD_STARTS.exists():
            ingest_path(con, GENTD_COLD_STARTS, fmt="gentd26-load", name="gentd26-basemodel")
    finally:
        con.close()
    return db
