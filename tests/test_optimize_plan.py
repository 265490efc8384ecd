"""`planner plan` end to end on the embedded trace: plan file, CLI, and infeasibility reasons."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from planner.ingest import ingest_sample
from planner.optimize import make_plan, read_plan
from planner.store import open_store

SLOS = ["--slo", "ttft_p99=1000ms", "--slo", "tpot_p99=50ms"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the embedded azure-code trace."""
    db = tmp_path_factory.mktemp("plan") / "store.duckdb"
    con = open_store(db)
    ingest_sample(con, "azure-code")
    con.close()
    return db


@pytest.fixture(scope="module")
def planned(store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """One full `planner plan --json --out` run (shared by the checks below)."""
    out = tmp_path_factory.mktemp("out") / "PLAN.json"
    result = CliRunner().invoke(
        app,
        [
            "plan",
            "azure-code",
            "--model",
            "llama-3.1-8b",
            *SLOS,
            "--db",
            str(store),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), out


def test_plan_json_has_the_contract(planned):
    """Recommended replicas, frontier, schedule, three replays and the search size."""
    plan, out = planned
    assert read_plan(out) == plan
    rec = plan["recommended"]
    assert rec["replicas"] and all(g["count"] >= 1 for g in rec["replicas"])
    assert rec["cost_per_month"] == pytest.approx(rec["cost_per_hour"] * 730, rel=1e-3)
    assert plan["search"]["candidates"] >= 200
    assert any(p["pareto"] for p in plan["frontier"]) and any(p["chosen"] for p in plan["frontier"])
    assert {r["action"] for r in plan["schedule"]} <= {"start", "scale-up", "scale-down", "hold"}
    for policy in ("schedule", "static_peak", "reactive"):
        entry = plan["replay"][policy]
        assert 0 <= entry["slo_attainment"] <= 1 and entry["gpu_hours"] > 0
    assert plan["replay"]["schedule"]["slo_attainment"] >= 0.99
    assert plan["replay"]["static_peak"]["scaling_actions"] == 0


def test_plan_human_output(store):
    """A sentence and the tables, no traceback."""
    result = CliRunner().invoke(
        app,
        [
            "plan",
            "azure-code",
            "--model",
            "llama-3.1-8b",
            *SLOS,
            "--db",
            str(store),
            "--accelerators",
            "h100",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Run ") and "replay of the held-back" in result.stdout


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--model", "llama-3.1-405b", "--accelerators", "l4", *SLOS], "model too big: "),
        (
            ["--model", "llama-3.1-8b", "--slo", "ttft_p99=5ms"],
            "SLO unreachable: TTFT p99 <= 5 ms is below what any allowed accelerator reaches",
        ),
        (
            ["--model", "llama-3.1-8b", *SLOS, "--accelerators", "h100", "--available", "h100=1"],
            "availability too low for the peak: h100=1 GPUs serve at most",
        ),
        (
            ["--model", "llama-3.1-8b", *SLOS, "--accelerators", "h100", "--budget", "100/month"],
            r"budget too low: \$100/month is below .* the cheapest feasible budget is \$",
        ),
        (["--model", "llama-3.1-8b", "--slo", "ttft_p99=1s", "--budget", "lots"], "--budget"),
    ],
)
def test_infeasible_requests_explain_the_binding_constraint(store, args, reason):
    """One line on stderr naming the constraint, exit code 1."""
    result = CliRunner().invoke(app, ["plan", "azure-code", *args, "--db", str(store)])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert pytest.importorskip("re").search(reason, lines[0]), lines[0]


def test_buckets_split_the_mix(store):
    """--buckets plans short/medium/long requests separately, each bucket served."""
    con = open_store(store, read_only=True)
    plan = make_plan(
        con,
        "azure-code",
        "llama-3.1-8b",
        ["ttft_p99=2000ms", "tpot_p99=100ms"],
        accelerators=["a100", "l4"],
        buckets=True,
    )
    con.close()
    names = [b["name"] for b in plan["demand"]["buckets"]]
    assert names == ["short", "medium", "long"]
    assert {g["bucket"] for g in plan["recommended"]["replicas"]} == set(names)
