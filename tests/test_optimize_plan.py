"""`planner plan` end to end on the embedded trace: plan file, CLI, and infeasibility reasons."""

import json
import re
from pathlib import Path

import duckdb
import numpy as np
import pytest
from conftest import group_hourly, invoke, sample_store
from typer.testing import Result

from planner.costmodel import get_accelerator, load_card, load_catalog
from planner.ingest import sample_path
from planner.optimize import read_plan, write_plan
from planner.optimize.candidates import (
    Targets,
    enumerate_candidates,
    expert_degrees,
    pd_ratios,
)
from planner.optimize.goodput import GoodputEvaluator
from planner.optimize.planfile import PlanFile, ReplicaGroup, SingleAccelerator
from planner.optimize.search import search
from planner.report.narrative import label as sentence_label
from planner.report.narrative import sentence
from planner.report.render import finance, money, percent
from planner.simulate import Workload, parse_slos

SLOS = ["--slo", "ttft_p99=1000ms", "--slo", "tpot_p99=50ms"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the embedded azure-code trace."""
    return sample_store(tmp_path_factory.mktemp("plan") / "store.duckdb", "azure-code")


def run_plan(store: Path, *extra: str) -> Result:
    """`planner plan azure-code` for llama-3.1-8b under SLOS on `store`, plus `extra` options."""
    args = ["plan", "azure-code", "--model", "llama-3.1-8b", *SLOS, "--db", str(store), *extra]
    return invoke(*args)


@pytest.fixture(scope="module")
def planned(store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, Path]:
    """One full `planner plan --json --out --report` run (shared by the checks below)."""
    folder = tmp_path_factory.mktemp("out")
    out, report = folder / "PLAN.json", folder / "report.html"
    result = run_plan(store, "--out", str(out), "--report", str(report), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), out, report


def test_plan_json_has_the_contract(planned):
    """Recommended replicas, frontier, schedule, three replays and the search size."""
    plan, out, _ = planned
    assert read_plan(out).to_dict() == plan
    rec = plan["recommended"]
    assert rec["replicas"] and all(g["count"] >= 1 for g in rec["replicas"])
    assert plan["search"]["candidates"] >= 200
    assert any(p["pareto"] for p in plan["frontier"]) and any(p["chosen"] for p in plan["frontier"])
    assert {r["action"] for r in plan["schedule"]} <= {"start", "scale-up", "scale-down", "hold"}
    for policy in ("schedule", "static_peak", "reactive"):
        entry = plan["replay"][policy]
        assert 0 <= entry["slo_attainment"] <= 1 and entry["gpu_hours"] > 0
    assert plan["replay"]["schedule"]["slo_attainment"] >= 0.99
    assert plan["replay"]["static_peak"]["scaling_actions"] == 0


def test_plan_file_round_trips_byte_for_byte(planned, tmp_path):
    """PLAN.json read into the plan file model and written again is the same file, key order
    included: the model carries every key the planner writes, JSON only at the edges."""
    _, out, _ = planned
    plan = read_plan(out)
    assert plan.recommended.replicas and plan.slo.limits() == {
        "ttft_p99_ms": 1000.0,
        "tpot_p99_ms": 50.0,
    }
    again = write_plan(plan, tmp_path / "again.json")
    assert again.read_bytes() == out.read_bytes()


def test_cost_keys_say_peak_fleet_or_schedule(planned):
    """cost_per_hour is the peak fleet; cost_per_month is the scheduled mean x 730, everywhere."""
    plan, _, _ = planned
    rec, alts = plan["recommended"], plan["alternatives"]
    price = {a["id"]: a["price_per_hour"] for a in plan["accelerators"]}
    fleet = sum(group_hourly(g, price) for g in rec["replicas"])
    assert rec["cost_per_hour"] == pytest.approx(fleet, rel=1e-3)
    assert rec["scheduled_cost_per_hour"] <= rec["cost_per_hour"] + 1e-6
    assert rec["cost_per_month"] == pytest.approx(rec["scheduled_cost_per_hour"] * 730, rel=1e-4)
    single = alts["best_single_accelerator"]
    assert single["cost_per_month"] == pytest.approx(single["scheduled_cost_per_hour"] * 730)
    assert alts["static_peak"]["cost_per_month"] == pytest.approx(rec["cost_per_hour"] * 730)


def test_saving_in_the_sentence_is_the_page_one_saving(planned):
    """The sentence's "mixing saves" is best single minus recommended, as page one shows it."""
    plan, _, report = planned
    rec, single = plan["recommended"], plan["alternatives"]["best_single_accelerator"]
    saved = single["cost_per_month"] - rec["cost_per_month"]
    assert saved >= 0, "the recommendation must not cost more than the best single accelerator"
    page_one = report.read_text(encoding="utf-8").split('id="traffic"')[0]
    assert money(saved) in page_one and percent(saved / single["cost_per_month"]) in page_one
    if saved > 0:
        assert (
            f"saves ${saved:,.0f}/month ({saved / single['cost_per_month']:.1%})" in rec["sentence"]
        )
    else:
        assert "saves" not in rec["sentence"]


def test_sentence_saving_cases():
    """Saves (with the same dollars and share as page one), ties, and one accelerator type."""
    targets = Targets.of(parse_slos(["ttft_p99=1000ms"]), 0.99)
    groups = [
        ReplicaGroup(
            accelerator=a,
            count=1,
            tp=1,
            pp=1,
            ep=1,
            mode="aggregated",
            pd=None,
            max_batch=64,
            gpus=1,
            goodput_rps=1.0,
        )
        for a in ("a100", "h100")
    ]
    cost = {"cost_per_hour": 10.0, "cost_per_month": 900.0, "cost_per_mtok": 1.0}
    single = SingleAccelerator(
        accelerator="h100",
        replicas=groups[1:],
        cost_per_hour=11.0,
        scheduled_cost_per_hour=1.37,
        cost_per_month=1000.0,
        cost_per_mtok=1.2,
    )
    assert (
        "Mixing a100, h100 saves $100/month (10.0%) against the best single accelerator "
        "(h100, $1,000/month" in sentence("m", "vLLM", groups, cost, targets, single, 0.99)
    )
    tie = sentence("m", "vLLM", groups, cost | {"cost_per_month": 1000.0}, targets, single, 0.99)
    assert "saves" not in tie and "costs the same" in tie and "$10.00 vs $11.00" in tie
    one = sentence("m", "vLLM", groups[1:], cost, targets, single, 0.99)
    assert "A single accelerator type is cheapest here" in one


def test_demand_mean_and_peak_are_of_one_series(planned):
    """mean/peak: the observed series the history holds; forecast figures named as such."""
    plan, _, _ = planned
    demand, fc = plan["demand"], plan["forecast"]
    observed = [h["rps"] for h in fc["history"]]
    assert demand["mean_rps"] == pytest.approx(sum(observed) / len(observed), abs=1e-3)
    assert demand["peak_rps"] == pytest.approx(max(observed), abs=1e-3)
    assert demand["mean_rps"] < demand["peak_rps"]
    p50 = [p["p50"] for p in fc["points"]]
    assert demand["forecast_mean_rps"] == pytest.approx(sum(p50) / len(p50), abs=1e-3)
    assert demand["forecast_peak_rps"] == pytest.approx(
        max(p["p95"] for p in fc["points"]), abs=1e-3
    )
    assert demand["sized_for_rps"] >= demand["forecast_peak_rps"]


def test_replay_timeline_is_whole_replicas_in_steps(planned):
    """Whole replica counts; a row at every interval edge of the window and at each change."""
    plan, _, _ = planned
    timeline, window = plan["replay"]["timeline"], plan["replay"]["window"]
    times = [r["t"] for r in timeline]
    assert times == sorted(set(times))
    assert times[0] == window["start_s"] and times[-1] == window["end_s"]
    edges = range(int(window["start_s"]), int(window["end_s"]) + 1, int(plan["interval_s"]))
    assert set(edges) <= set(times)
    policies = ("schedule", "static_peak", "reactive", "reactive_tokens", "kpa", "hybrid")
    for row in timeline:
        assert all(type(row[p]) is int for p in policies), row
    for prev, row in zip(timeline, timeline[1:], strict=False):
        if row["t"] not in edges:
            assert any(row[p] != prev[p] for p in policies)


def test_plan_report_option_writes_the_html(planned):
    """--report writes the capacity report; with --json stdout still holds only the plan."""
    plan, _, report = planned
    html = report.read_text(encoding="utf-8")
    assert (
        html.startswith("<!DOCTYPE html>") and money(plan["recommended"]["cost_per_month"]) in html
    )
    assert 'data-chart="replay-timeline"' in html and 'data-chart="schedule"' in html


def test_the_recommended_fleet_is_the_cheapest_schedule_compared(planned):
    """Every fleet the plan scheduled is in PLAN.json with its figures; the chosen one is the
    recommendation, to the cent, and no compared fleet's schedule bills less."""
    plan, _, _ = planned
    rec, rows = plan["recommended"], plan["alternatives"]["fleets_compared"]
    assert rows[0]["fleet"] == "least-cost mix at the peak"
    (chosen,) = [r for r in rows if r["chosen"]]
    assert chosen["cost_per_month"] == rec["cost_per_month"]
    assert chosen["scheduled_cost_per_hour"] == rec["scheduled_cost_per_hour"]
    assert chosen["replicas"] == [f"{g['count']} x {g['plan']}" for g in rec["replicas"]]
    assert all(r["scheduled_cost_per_hour"] >= chosen["scheduled_cost_per_hour"] for r in rows)


def test_a_one_plan_fleet_billing_less_than_the_mix_at_the_peak_is_recommended(store):
    """llama-3.1-70b on H100 and A100 (TTFT p99 <= 2 s, TPOT p99 <= 50 ms): the least-cost mix
    at the peak, priced on the goodput each plan showed in the search (six H100 TP2 P/D 4:1
    replicas with the default calibration), bills more than a one-plan fleet sized on the goodput
    measured at its own fleet size (seven H100 TP2 P/D 3:1). The plan recommends that fleet,
    names what it compared, its replay holds the SLO, and the best single accelerator is that
    fleet too (the search's goodput is measured at another fleet size; each one-plan fleet is
    sized on its own)."""
    args = ["plan", "azure-code", "--model", "llama-3.1-70b", "--db", str(store), "--json"]
    args += ["--slo", "ttft_p99=2000ms", "--slo", "tpot_p99=50ms", "--accelerators", "h100,a100"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    rows = {r["fleet"]: r for r in plan["alternatives"]["fleets_compared"] if not r["chosen"]}
    (chosen,) = [r for r in plan["alternatives"]["fleets_compared"] if r["chosen"]]
    assert chosen["fleet"] == "one plan" and len(chosen["replicas"]) == 1
    at_peak = rows["least-cost mix at the peak"]
    assert len(at_peak["replicas"]) == 1 and at_peak["replicas"] != chosen["replicas"]
    assert chosen["cost_per_month"] < at_peak["cost_per_month"]
    single = plan["alternatives"]["best_single_accelerator"]
    assert (
        single["cost_per_month"]
        == chosen["cost_per_month"]
        == plan["recommended"]["cost_per_month"]
    )
    assert plan["replay"]["schedule"]["slo_attainment"] >= 0.99


def test_plan_human_output(store):
    """A sentence and the tables, no traceback."""
    result = run_plan(store, "--accelerators", "h100")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Run ") and "replay of the held-back" in result.stdout
    assert "held the SLO at the least cost" in result.stdout


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--model", "llama-3.1-405b", "--accelerators", "l4", *SLOS], "model too big: "),
        (
            ["--model", "llama-3.1-8b", "--slo", "ttft_p99=5ms"],
            "SLO unreachable: TTFT p99 <= 5 ms is below what any allowed accelerator reaches",
        ),
        (
            ["--model", "llama-3.1-8b", *SLOS, "--accelerators", "h100", "--available", "h100=1"]
            + ["--strict"],
            "availability too low for the peak: h100=1 GPUs serve at most",
        ),
        (
            ["--model", "llama-3.1-8b", *SLOS, "--accelerators", "h100", "--budget", "100/month"],
            r"budget too low: \$100/month is below .* the cheapest feasible budget is \$",
        ),
        (["--model", "llama-3.1-8b", "--slo", "ttft_p99=1s", "--budget", "lots"], "--budget"),
        (
            ["--model", "llama-3.1-8b", *SLOS, "--elastic-moe"],
            "--elastic-moe: llama-3.1-8b is not a mixture-of-experts model",
        ),
    ],
)
def test_infeasible_requests_explain_the_binding_constraint(store, args, reason):
    """One line on stderr naming the constraint, exit code 1."""
    result = invoke("plan", "azure-code", *args, "--db", store)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert re.search(reason, lines[0]), lines[0]


def test_scarce_inventory_plans_the_best_it_allows_and_says_it_falls_short(store, tmp_path):
    """--available h100=1 against a 5 req/s peak: exit 0 with the best one-GPU plan, a warning
    with what it serves and what its schedule held on the replay, every policy within the one
    GPU, and a sentence that claims no target it misses (--strict refuses: test above)."""
    out = tmp_path / "PLAN.json"
    args = ["--accelerators", "h100", "--available", "h100=1", "--out", str(out)]
    result = run_plan(store, *args)
    assert result.exit_code == 0, result.stderr
    plan = json.loads(out.read_text())
    short, rec = plan["recommended"]["shortfall"], plan["recommended"]
    assert short["available"] == {"h100": 1} and short["servable_rps"] < short["peak_rps"]
    assert sum(g["gpus"] for g in rec["replicas"]) <= 1
    assert max(row["replicas"] for row in plan["schedule"]) <= 1
    capacity = sum(g["count"] * g["goodput_rps"] for g in rec["replicas"])
    assert short["servable_rps"] == pytest.approx(capacity, rel=1e-3)
    assert short["served_share"] == pytest.approx(short["servable_rps"] / short["peak_rps"], 1e-3)
    window = plan["replay"]["window"]
    hours = (window["end_s"] - window["start_s"]) / 3600
    held = plan["replay"]["schedule"]["slo_attainment"]
    for policy in ("schedule", "static_peak", "reactive"):
        assert plan["replay"][policy]["gpu_hours"] <= hours + 1e-3
    assert held < plan["slo"]["attainment"]
    [warning] = [w for w in plan["warnings"] if w.startswith("availability too low")]
    assert f"warning: {warning}" in result.stderr.splitlines()
    assert f"serve at most {short['servable_rps']:.3g} of the {short['peak_rps']:.3g}" in warning
    assert f"its schedule held {held:.1%}" in warning and "--strict refuses" in warning
    assert not any("points below" in w for w in plan["warnings"]), "one warning, not two"
    assert "sized to hold" not in rec["sentence"]
    assert "the most the available GPUs (h100=1) allow" in rec["sentence"]


def _check_pools_agree(plan: dict) -> dict:
    """Every split planned is listed (one pool first), one is chosen, it is the cheapest on its
    schedule (one pool on a tie), and it is the recommendation: the same bill and pools, each
    pool served. Returns the chosen row."""
    rows = plan["alternatives"]["length_pools"]
    assert rows[0]["max_input_tokens"] == [] and rows[0]["pools"] == ["all"] and len(rows) >= 3
    costs = [r["cost_per_month"] for r in rows if "cost_per_month" in r]
    [chosen] = [r for r in rows if r["chosen"]]
    assert chosen["cost_per_month"] == min(costs) == plan["recommended"]["cost_per_month"]
    assert chosen is rows[0] or chosen["cost_per_month"] < rows[0]["cost_per_month"]
    assert [b["name"] for b in plan["demand"]["buckets"]] == chosen["pools"]
    served = {g.get("bucket", "all") for g in plan["recommended"]["replicas"]}
    assert served == set(chosen["pools"])
    return chosen


def test_buckets_keep_a_split_that_costs_less(store, tmp_path):
    """Azure code on A100/L4: short and long prompts on their own pools cost less than one
    pool, so --buckets recommends the split; its one-pool row is what a plan without --buckets
    recommends (the same search, run independently)."""
    slos = ["--slo", "ttft_p99=2000ms", "--slo", "tpot_p99=100ms", "--accelerators", "a100,l4"]
    args = ["plan", "azure-code", "--model", "llama-3.1-8b", *slos, "--db", str(store), "--json"]
    split = invoke(*args, "--buckets")
    assert split.exit_code == 0, split.stderr
    plan = json.loads(split.stdout)
    chosen = _check_pools_agree(plan)
    assert chosen["max_input_tokens"] != [] and len(chosen["pools"]) >= 2
    plain = json.loads(invoke(*args).stdout)
    assert "length_pools" not in plain["alternatives"]
    one_pool = plan["alternatives"]["length_pools"][0]["cost_per_month"]
    assert plain["recommended"]["cost_per_month"] == one_pool > chosen["cost_per_month"]


def test_buckets_keep_one_pool_when_splitting_costs_more(tmp_path):
    """Azure conversation on L4 (the split was 1.7x dearer, and used to be recommended): one
    pool is kept, and the CLI and the report's first page show every split's cost."""
    db = sample_store(tmp_path / "conv.duckdb", "azure-conv")
    out, report = tmp_path / "PLAN.json", tmp_path / "report.html"
    result = invoke(
        "plan", "azure-conv", "--model", "llama-3.1-8b", *SLOS, "--accelerators", "l4",
        "--horizon", "2h", "--buckets", "--db", db, "--out", out, "--report", report,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    plan = json.loads(out.read_text())
    assert _check_pools_agree(plan) is plan["alternatives"]["length_pools"][0]
    assert "bucket" not in plan["recommended"]["replicas"][0]
    page_one = report.read_text(encoding="utf-8").split('id="traffic"')[0]
    assert "length pools planned" in result.stdout and "Length pools compared" in page_one
    for row in plan["alternatives"]["length_pools"][1:]:
        assert row["cost_per_month"] > plan["recommended"]["cost_per_month"]
        assert money(row["cost_per_month"], 0) in page_one
        assert f"{row['cost_per_month']:,.0f}" in result.stdout


@pytest.mark.parametrize(
    ("option", "target", "reason"),
    [
        ("--out", "missing/PLAN.json", r"PLAN.json: folder .*missing does not exist"),
        ("--out", "", r"is a folder; give a file name for the plan"),
        ("--report", "file.txt/report.html", r"cannot write report: .*file.txt is not a folder"),
        ("--csv", "file.txt", r"file.txt: is a file; give a folder for the plan tables"),
        ("--csv", "/proc/planner-tables", r"cannot write plan tables in /proc"),
    ],
)
def test_unwritable_outputs_fail_before_the_search(store, tmp_path, option, target, reason):
    """A path that cannot be written is refused at once, in one line, before any simulation
    (the run would take a minute; these return in about a second and write nothing)."""
    (tmp_path / "file.txt").write_text("not a folder")
    before = sorted(p.name for p in tmp_path.iterdir())
    path = target if target.startswith("/") else str(tmp_path / target)
    result = run_plan(store, option, path)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(reason, lines[0]), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_plan_csv_writes_the_report_tables(planned, tmp_path):
    """--csv writes the same tables the report exports, one CSV per table, in the folder."""
    from planner.report import Artefacts, plan_tables

    plan = planned[0]
    files = Artefacts(tables_dir=tmp_path / "tables").write(plan).files
    tables = plan_tables(plan)
    assert sorted(f.name for f in files) == sorted(f"{name}.csv" for name in tables)
    schedule = pytest.importorskip("polars").read_csv(tmp_path / "tables" / "schedule.csv")
    assert schedule.height == len(plan["schedule"])


def test_requests_over_the_context_are_left_out(tmp_path: Path) -> None:
    """Azure code with every 400th prompt made 200,000 tokens long (SYNTHETIC edit of the real
    trace), planned for llama-3.1-8b (131,072-token context): PLAN.json counts exactly those
    requests, the CLI warns, and --strict refuses the trace writing nothing."""
    source = tmp_path / "long.csv"
    sample = str(sample_path("azure-code")).replace("'", "''")
    duckdb.sql(
        "COPY (SELECT TIMESTAMP, CASE WHEN (row_number() OVER (ORDER BY TIMESTAMP)) % 400 = 0 "
        "THEN 200000 ELSE ContextTokens END AS ContextTokens, GeneratedTokens "
        f"FROM read_csv('{sample}', types={{'TIMESTAMP': 'VARCHAR'}})) TO '{source}' (HEADER)"
    )
    [(expected,)] = duckdb.sql(
        f"SELECT count(*) FROM read_csv('{source}') WHERE ContextTokens + GeneratedTokens > 131072"
    ).fetchall()
    db = tmp_path / "store.duckdb"
    assert invoke("ingest", source, "--db", db).exit_code == 0
    args = ["plan", "long", "--model", "llama-3.1-8b", "--slo", "ttft_p99=2000ms", "--db", db]
    strict = invoke(*args, "--accelerators", "h100", "--strict", "--out", tmp_path / "no.json")
    assert strict.exit_code == 1 and strict.stderr.count("\n") == 1
    assert f"{expected} request(s)" in strict.stderr and "131,072-token context" in strict.stderr
    assert not (tmp_path / "no.json").exists()
    out = tmp_path / "PLAN.json"
    planned = invoke(*args, "--accelerators", "h100", "--out", out)
    assert planned.exit_code == 0, planned.stderr
    over = json.loads(out.read_text())["demand"]["over_context"]
    assert (over["requests"], over["max_context"]) == (expected, 131072) and expected >= 20
    assert "warning:" in planned.stderr and "left out of sizing and replay" in planned.stderr
    warned = json.loads(out.read_text())["warnings"]
    assert [w for w in warned if "131,072-token context" in w] == [
        line.removeprefix("warning: ") for line in planned.stderr.splitlines() if "context" in line
    ]


def test_elastic_moe_plans_scale_ups_into_the_running_deployment(store, tmp_path):
    """qwen3-30b-a3b with --elastic-moe: the plan's delay is the closed form for its own
    instances (weights over the scale-out link, no container start), far below their cold
    start, and the plan file names where it came from."""
    out = tmp_path / "PLAN.json"
    args = ["plan", "azure-code", "--model", "qwen3-30b-a3b", *SLOS, "--accelerators", "h100"]
    result = invoke(*args, "--elastic-moe", "--db", store, "--out", out)
    assert result.exit_code == 0, result.output
    plan = read_plan(out)
    h100 = get_accelerator("h100")
    found = re.search(r"on (\d+) x h100", plan.provisioning_source)
    per = int(found.group(1))
    assert all(group.gpus % per == 0 for group in plan.recommended.replicas)
    weights_gb = load_card("qwen3-30b-a3b").total_params() * 2 / 1e9
    link = weights_gb / (h100.scale_out_gbs * per)
    assert plan.provisioning_delay_s == pytest.approx(link + 20, abs=0.05)
    assert plan.provisioning_delay_s < 30 + weights_gb / (h100.load_gbs * per)
    assert "no container start" in plan.provisioning_source


def test_wide_expert_parallelism_is_enumerated_up_to_the_scale_up_domain():
    """DeepSeek-V3 (256 routed experts): EP up to 256 on a CloudMatrix384 (one instance may
    span its 384 NPUs) and to 32 on B200 (over the scale-out network), every degree a power of
    two dividing the experts; a dense model gets EP 1 only; every instance within its limit."""
    catalog = load_catalog()
    accs = [get_accelerator(a, catalog) for a in ("ascend-910c", "b200")]
    found = enumerate_candidates("deepseek-v3", accs, catalog, max_batches=(64,), ratios=())
    eps = {a.id: {c.ep for c in found.candidates if c.accelerator.id == a.id} for a in accs}
    assert max(eps["ascend-910c"]) == 256 and max(eps["b200"]) == 32
    assert all(256 % e == 0 for es in eps.values() for e in es)
    for cand in found.candidates:
        assert cand.tp * cand.pp * cand.ep <= max(32, cand.accelerator.scale_up_domain)
    assert expert_degrees(0) == [1] and expert_degrees(8) == [1, 2, 4, 8]
    assert expert_degrees(384) == [1, 2, 4, 8, 16, 32, 64, 128]
    dense = enumerate_candidates("llama-3.1-8b", accs, catalog, max_batches=(64,), ratios=())
    assert {c.ep for c in dense.candidates} == {1}


def test_pd_ratios_are_every_ratio_in_lowest_terms_up_to_the_instance_limit():
    """Against a brute force over P and D: each ratio once (2:2 is 1:1 twice over), both sides
    at least one, at most eight instances, smaller replicas first."""
    from fractions import Fraction

    brute = {Fraction(p, d) for p in range(1, 8) for d in range(1, 8) if p + d <= 8}
    got = pd_ratios()
    assert len(got) == len(set(got)) == len(brute) == 21
    assert {Fraction(p, d) for p, d in got} == brute
    assert got[:3] == ((1, 1), (1, 2), (2, 1)) and max(p + d for p, d in got) == 8
    assert [p + d for p, d in got] == sorted(p + d for p, d in got)
    assert pd_ratios(3) == ((1, 1), (1, 2), (2, 1))


def test_ratio_search_finds_the_prefill_heavy_split_that_fixed_ratios_miss():
    """Long prompts (about 8,000 tokens) and short answers (about 40) on H100 TP1 (SYNTHETIC
    Poisson workload): prefill is most of the work, so the best disaggregated replica has several
    prefill instances per decode one. Searching every ratio up to 8 instances finds one above
    2:1 whose simulated $/(req/s) beats, by at least 15 %, the best plan the old fixed ratios
    (1:1, 1:2, 2:1) and the aggregated mode reach; the ratios it did not simulate are counted."""
    catalog = load_catalog()
    rng = np.random.default_rng(0)
    count, rate = 1500, 4.0
    arrivals = np.cumsum(rng.exponential(1.0 / rate, count))
    work = Workload(
        arrivals - arrivals[0],
        rng.integers(4000, 12000, count),
        rng.integers(20, 60, count),
        name="synthetic prefill-heavy",
    )
    slos = parse_slos(["ttft_p99=1000ms", "tpot_p99=50ms"])
    best = {}
    for label, ratios in (("fixed", pd_ratios(3)), ("searched", None)):
        found = enumerate_candidates("llama-3.1-8b", [catalog["h100"]], catalog, ratios=ratios)
        cands = [c for c in found.candidates if c.tp == 1 and c.pp == 1]
        result = search(
            cands, GoodputEvaluator([work], slos, 0.99), Targets.of(slos, 0.99), [4 * rate]
        )
        served = [e for e in result.evaluations if e.goodput_rps > 0]
        best[label] = min(served, key=lambda e: e.candidate.cost_per_hour / e.goodput_rps)
        if ratios is None:
            assert result.ratio_pruned > 0
    fixed, searched = best["fixed"], best["searched"]
    per_rps = {k: e.candidate.cost_per_hour / e.goodput_rps for k, e in best.items()}
    assert searched.candidate.pd is not None and searched.candidate.pd not in pd_ratios(3)
    assert searched.candidate.pd[0] > 2 * searched.candidate.pd[1]
    assert per_rps["searched"] <= 0.85 * per_rps["fixed"], (fixed.candidate.id, per_rps)


def _plan_json(store: Path, *extra: str) -> dict:
    """PLAN.json of `planner plan azure-code` on `store` with `extra` options."""
    result = run_plan(store, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_mixed_hardware_pd_plan_is_cheaper_than_every_same_hardware_plan(store):
    """Azure code (long prompts) on H100 and A100 with --mixed-pd: a replica of H100 prefill
    and A100 decode instances is recommended, and it costs strictly less per month than the plan
    searched without mixed-hardware replicas (the default: every same-hardware replica, and
    mixes of them across types); its figures agree: GPUs per group from both sides, $/hour at
    each side's price."""
    mixed = _plan_json(store, "--accelerators", "h100,a100", "--mixed-pd")
    same = _plan_json(store, "--accelerators", "h100,a100")
    groups = mixed["recommended"]["replicas"]
    sides = [g for g in groups if g["prefill"]]
    assert sides and {(g["prefill"]["accelerator"], g["accelerator"]) for g in sides} == {
        ("h100", "a100")
    }
    assert not any(g["prefill"] for g in same["recommended"]["replicas"])
    assert same["search"]["mixed_hardware"] == 0 < mixed["search"]["mixed_hardware"]
    assert mixed["recommended"]["cost_per_month"] < same["recommended"]["cost_per_month"]
    price = {k: a.price_per_hour for k, a in load_catalog().items()}
    hourly = sum(group_hourly(g, price) for g in groups)
    assert mixed["recommended"]["cost_per_hour"] == pytest.approx(hourly, rel=1e-6)
    assert "prefill on H100 TP1" in mixed["recommended"]["sentence"]
    page_one = finance(PlanFile.model_validate(mixed))["rows"]
    assert sum(r["cost_per_hour"] for r in page_one) == pytest.approx(hourly, rel=1e-6)
    single = mixed["alternatives"]["best_single_accelerator"]
    assert not any(g["prefill"] for g in single["replicas"])


def test_mixed_hardware_pd_is_not_recommended_where_it_does_not_pay(store):
    """Azure code on H100 and L4: replicas pairing the two are built and searched, but an L4
    decode instance misses the 50 ms TPOT once the KV cache crosses its 1.25 GB/s link, and an
    L4 prefill side costs more per request than H100's own: the plan costs what the one searched
    without them costs, to the dollar, on H100s only (goodput per replica may differ within the
    search's 5 % tolerance, measured from another first guess, so two TP1 groups and one TP2
    group can tie)."""
    mixed = _plan_json(store, "--accelerators", "h100,l4", "--mixed-pd")
    same = _plan_json(store, "--accelerators", "h100,l4")
    assert mixed["search"]["mixed_hardware"] > 0
    assert not any(g["prefill"] for g in mixed["recommended"]["replicas"])
    assert mixed["recommended"]["cost_per_month"] == same["recommended"]["cost_per_month"]
    fleets = [
        sorted({g["accelerator"] for g in p["recommended"]["replicas"]}) for p in (mixed, same)
    ]
    assert fleets[0] == fleets[1] == ["h100"]


def test_a_mixed_group_names_its_prefill_side_alike_everywhere():
    """A P:D 2:1 group of A100 TP1 decode and H100 TP2 PP2 prefill instances: the sentence, the
    report's mode column and the CLI table name its prefill side the same way, PP included."""
    import cli
    from planner.report.render import serving_mode

    group = ReplicaGroup(
        accelerator="a100", count=3, tp=1, pp=1, ep=1, mode="disaggregated", pd=[2, 1],
        prefill={"accelerator": "h100", "tp": 2, "pp": 2, "ep": 1}, max_batch=64, gpus=27,
        goodput_rps=1.0,
    )  # fmt: skip
    side = "prefill on H100 TP2 PP2"
    assert sentence_label(group) == f"3 x A100 (TP1, P:D 2:1, {side})"
    assert serving_mode(group) == f"disaggregated (P:D 2:1, {side})"
    assert cli._group_mode(group) == f"P:D 2:1, {side}"
