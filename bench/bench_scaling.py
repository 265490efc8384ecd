"""Scaling policies swept over real ServeGen clients: every replayed policy's attainment and cost.

Clients (real data: ServeGen m-large and m-mid, 14 days of 10-minute windows) are chosen by
a rule, not by hand. Among the clients averaging at least `MIN_DAILY_REQUESTS` requests a day
with requests in at least `MIN_ACTIVE_SHARE` of the intervals (not one burst in two weeks) and
their length PMFs released (a `-dataset.json.gz` file: 35 m-mid and 15 m-large clients have none),
three features of their 10-minute request counts (gaps skipped) rank them:

- diurnal: the autocorrelation at a one-day lag (a repeating daily shape);
- spiky: the 99th percentile over the mean (bursts far above the usual level, ~1.4 intervals a
  day; the maximum would rank one outlier in two weeks);
- batch-like: the share of idle (zero-request) intervals (work that comes in runs).

The top `PER_KIND` clients of each ranking are taken in turn (diurnal, spiky, batch-like; a
client already taken is skipped), `PER_KIND` x 3 clients in all. Each runs at two loads: its
rate scaled so its mean is `LOADS_RPS` requests/s: 4, which one H100 replica of the 8B model
serves many times over at the mean (a small deployment), and 16, whose peaks need several
replicas. (At 1 req/s, a third of the cells ran the same one or two replicas all day under every
policy, so a cell said nothing about scaling; above 16 req/s a spiky client's busiest ten
minutes alone exceed the replay's request budget several times over.) Every cell is a
`make_plan` of llama-3.1-8b (TTFT p99 <= 1 s, TPOT p99 <= 50 ms, 99 % attainment; defaults
otherwise), whose replay of the held-back last day runs every policy
(planner/scaling/holdout.py). A policy holds a cell when its replayed attainment reaches the
target. The reference is static provisioning at the schedule's peak in the same cell: GPU-hours
are reported relative to it, over all cells and over the cells it held (where the schedule's
peak falls short of a spiky client's bursts, static peak misses the SLO, and a policy that holds
must run more than it: a saving is only a saving against a fleet that did the job).

Summary per policy: the share of cells it held, its median GPU-hours relative to static peak,
and its median cost relative to the cheapest policy that held the cell (cells no policy held
are left out of that median). A cell's ceiling is the most any policy could hold with the
plan's deployments (PLAN.json `replay.ceiling`: requests every policy missed that miss even
alone on an idle replica are lost whatever the fleet); the summary counts the cells whose
ceiling reaches the target and each policy's share held among them.
"""

import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_forecast import SERVEGEN, TRACES  # noqa: E402

from planner.forecast import read_series  # noqa: E402
from planner.ingest import ingest_path  # noqa: E402
from planner.planning import PlanOptions, make_plan  # noqa: E402
from planner.store import open_store  # noqa: E402

MIN_DAILY_REQUESTS = 2_000
MIN_ACTIVE_SHARE = 0.25
PER_KIND = 4
LOADS_RPS = (4.0, 16.0)
MODEL = "llama-3.1-8b"
SLOS = ("ttft_p99=1000ms", "tpot_p99=50ms")
TARGET = 0.99
POLICIES = ("schedule", "static_peak", "reactive", "reactive_tokens", "kpa", "hybrid")


def features(y: np.ndarray, day: int) -> dict[str, float]:
    """Diurnal (lag-one-day autocorrelation), spiky (p99 / mean) and batch-like (idle share)."""
    x = y[~np.isnan(y)]
    a, b = y[day:], y[:-day]
    ok = ~(np.isnan(a) | np.isnan(b))
    diurnal = float(np.corrcoef(a[ok], b[ok])[0, 1]) if np.std(a[ok]) > 0 else 0.0
    return {
        "diurnal": diurnal,
        "spiky": float(np.percentile(x, 99) / x.mean()),
        "batch": float(np.mean(x == 0)),
    }


def choose_clients() -> list[dict]:
    """The clients the rule picks, with their pool, kind, features and mean rate."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        con = open_store(Path(tmp) / "pick.duckdb")
        for pool in TRACES:
            ingest_path(con, SERVEGEN / pool, name=pool)
            data = read_series(con, pool, "10min")
            day = data.steps_per_day
            for i, sid in enumerate(data.ids):
                y = data.requests[i]
                seen = y[~np.isnan(y)]
                daily = float(seen.sum()) / (len(seen) / day)
                lengths = (SERVEGEN / pool / f"{sid}-dataset.json.gz").exists()
                busy = daily >= MIN_DAILY_REQUESTS and np.mean(seen > 0) >= MIN_ACTIVE_SHARE
                if lengths and busy:
                    mean_rps = float(np.nanmean(y)) / data.freq_s
                    rows.append(
                        {"pool": pool, "client": sid, "mean_rps": mean_rps, **features(y, day)}
                    )
        con.close()
    chosen: list[dict] = []
    for kind in ("diurnal", "spiky", "batch"):
        taken = {(c["pool"], c["client"]) for c in chosen}
        ranked = sorted(rows, key=lambda r: r[kind], reverse=True)
        fresh = [r for r in ranked if (r["pool"], r["client"]) not in taken][:PER_KIND]
        chosen += [{**r, "kind": kind} for r in fresh]
    return chosen


def ingest_client(client: dict, tmp: Path) -> duckdb.DuckDBPyConnection:
    """A store holding only this client's trace and length PMFs."""
    folder = tmp / f"{client['pool']}-{client['client']}"
    folder.mkdir()
    for suffix in ("trace.csv", "dataset.json.gz"):
        shutil.copy(SERVEGEN / client["pool"] / f"{client['client']}-{suffix}", folder)
    con = open_store(tmp / f"{folder.name}.duckdb")
    ingest_path(con, folder, name=client["client"])
    return con


def plan_cell(con: duckdb.DuckDBPyConnection, client: dict, load_rps: float) -> dict:
    """One cell: the client at `load_rps` mean, planned and replayed; its policies' figures."""
    scale = load_rps / client["mean_rps"]
    options = PlanOptions(client["client"], MODEL, list(SLOS), TARGET, rate_scale=scale)
    replay = make_plan(con, options).to_dict()["replay"]
    cell = {"client": f"{client['pool']}/{client['client']}", "kind": client["kind"]}
    cell |= {"load_rps": load_rps, "rate_scale": round(scale, 3)}
    for policy in POLICIES:
        got = replay[policy]
        cell[policy] = (got["slo_attainment"], got["cost"], got["gpu_hours"])
    cell["ceiling"] = replay["ceiling"]["slo_attainment"]
    tuned = replay["hybrid_tuning"]
    floor = tuned["floor_quantile"] + (" peak held flat" if tuned["flat_floor"] else "")
    cell["hybrid_settings"] = (
        f"{floor}, {tuned['utilisation']:g}, {tuned['scale_down_window_s']:g} s"
    )
    return cell


def summarize_cells(cells: list[dict]) -> dict:
    """Cells some fleet of the plan's deployments could hold; per policy: the share of cells
    held (of all, and of those), median GPU-hours / static peak's (over all cells, and over
    those static peak held), median cost / the cheapest holding policy's."""
    holdable = [c for c in cells if c["ceiling"] >= TARGET]
    out: dict = {"holdable_cells": len(holdable)}
    for policy in POLICIES:
        held = [c[policy][0] >= TARGET for c in cells]
        held_holdable = [c[policy][0] >= TARGET for c in holdable]
        out[f"{policy}_held_share_of_holdable"] = round(
            float(np.mean(held_holdable)) if holdable else 0.0, 3
        )
        gpu = [c[policy][2] / c["static_peak"][2] for c in cells if c["static_peak"][2] > 0]
        gpu_held = [
            c[policy][2] / c["static_peak"][2]
            for c in cells
            if c["static_peak"][2] > 0 and c["static_peak"][0] >= TARGET
        ]
        rel = []
        for c in cells:
            holding = [c[p][1] for p in POLICIES if c[p][0] >= TARGET]
            if holding:
                rel.append(c[policy][1] / min(holding))
        out[f"{policy}_held_share"] = round(float(np.mean(held)), 3)
        out[f"{policy}_median_gpu_hours_vs_static"] = round(float(np.median(gpu)), 3)
        out[f"{policy}_median_gpu_hours_vs_static_where_static_held"] = round(
            float(np.median(gpu_held)) if gpu_held else float("nan"), 3
        )
        out[f"{policy}_median_cost_vs_cheapest_holding"] = round(float(np.median(rel)), 3)
    return out


def cell_line(cell: dict) -> str:
    """One cell as a table row: attainment % and $ per policy."""
    figures = ", ".join(f"{p} {100 * cell[p][0]:.1f}% ${cell[p][1]:,.0f}" for p in POLICIES)
    return (
        f"{cell['client']} ({cell['kind']}) at {cell['load_rps']:g} req/s: {figures} "
        f"(hybrid floor, utilisation, scale-down: {cell['hybrid_settings']}; ceiling "
        f"{100 * cell['ceiling']:.2f}%)"
    )


def run() -> dict:
    """Pick the clients, plan every cell, summarise per policy."""
    started = time.perf_counter()
    clients = choose_clients()
    cells = []
    with tempfile.TemporaryDirectory() as tmp:
        for client in clients:
            con = ingest_client(client, Path(tmp))
            for load in LOADS_RPS:
                cells.append(plan_cell(con, client, load))
                print(cell_line(cells[-1]), file=sys.stderr)
            con.close()
    result = {
        "name": f"scaling sweep: {len(clients)} ServeGen clients x {len(LOADS_RPS)} loads, "
        f"{MODEL}, every policy replayed on the held-back day",
        "cells": len(cells),
        "seconds": round(time.perf_counter() - started, 1),
        "reference": "static provisioning at the schedule's peak, same cell",
        **summarize_cells(cells),
    }
    for i, cell in enumerate(cells):
        result[f"cell_{i + 1:02d}"] = cell_line(cell)
    return result


if __name__ == "__main__":
    print(run())
