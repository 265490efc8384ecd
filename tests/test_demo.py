"""`planner demo`: the whole pipeline on the embedded trace, as the README's quick start runs it."""

import json
import re
from pathlib import Path

import polars as pl
from conftest import invoke

from planner.optimize import read_plan


def test_demo_writes_every_artefact_and_a_consistent_plan(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = invoke("demo", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    for name in ("planner.duckdb", "analysis.json", "forecast.json", "PLAN.json", "report.html"):
        assert (out / name).exists(), name
    plan = read_plan(out / "PLAN.json")
    assert summary["recommendation"] == plan["recommended"]["sentence"]
    assert plan["trace"]["name"] == "azure-code" and plan["trace"]["requests"] == 8819
    assert plan["model"] == "llama-3.1-8b"
    assert plan["search"]["candidates"] >= 200
    gpus = sum(r["gpus"] * r["count"] for r in plan["recommended"]["replicas"])
    assert gpus >= 1
    analysis = json.loads((out / "analysis.json").read_text())
    assert analysis["requests"] == 8819
    html = (out / "report.html").read_text()
    assert plan["recommended"]["sentence"].split(":")[0] in html
    assert not re.search(r"<script[^>]+src=[\"']https?://", html)
    assert not re.search(r"<link[^>]+href=[\"']https?://", html)
    assert len(html.encode()) <= 5_000_000
    exported = pl.read_csv(out / "report-frontier.csv")
    assert exported.height == len(plan["frontier"])


def test_demo_human_output_names_the_report_and_recommendation(tmp_path: Path) -> None:
    result = invoke("demo", "--out", tmp_path / "d")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("report: ") and "report.html" in lines[-1]
    assert any(line.startswith("Run ") for line in lines)
