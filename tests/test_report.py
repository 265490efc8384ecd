"""The capacity report: self-contained HTML, page-one figures, charts, exports and the CLI."""

import json
import re
import time
from html import escape as html_escape
from pathlib import Path

import polars as pl
import pytest
from markupsafe import escape
from report_plan import GENTD_COLD_STARTS, fixture_plan, fixture_store
from typer.testing import CliRunner

from cli import app
from planner.errors import PlannerError
from planner.optimize import write_plan
from planner.optimize.planfile import as_plan
from planner.planning import PlanOptions, make_plan
from planner.report import plan_tables, write_report
from planner.report.charts import TIMELINE_LABELS, replay_timeline
from planner.report.render import money, vega_bundle
from planner.store import open_store

MAX_BYTES = 5_000_000
PLAN_CHARTS = {
    "cost-comparison",
    "forecast",
    "pareto",
    "schedule",
    "replay-timeline",
    "replay-metrics",
}
STORE_CHARTS = {"request-rate", "interarrival-fit", "token-lengths", "keepalive"}
runner = CliRunner()


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The fixture plan over a store holding the embedded azure-code trace."""
    db = fixture_store(tmp_path_factory.mktemp("store") / "store.duckdb")
    return fixture_plan(db)


@pytest.fixture(scope="module")
def rendered(plan: dict, tmp_path_factory: pytest.TempPathFactory):
    """The report of the fixture plan with CSV and Parquet exports."""
    out = tmp_path_factory.mktemp("report") / "capacity.html"
    result = write_report(plan, out, ("csv", "parquet"))
    return result, out.read_text(encoding="utf-8")


def expected_charts() -> set[str]:
    """Every chart the fixture store allows (cold starts only where shared data exists)."""
    cold = {"cold-start-breakdown"} if GENTD_COLD_STARTS.exists() else set()
    return PLAN_CHARTS | STORE_CHARTS | cold


def test_html_is_self_contained_and_small(plan: dict, rendered) -> None:
    result, html = rendered
    assert plan["db"].startswith("/") and plan["db"] not in html  # no local paths
    assert f"from the store {Path(plan['db']).name}." in html
    assert result.bytes == len(html.encode("utf-8")) <= MAX_BYTES
    markup = re.sub(r"(<script\b[^>]*>).*?</script>", r"\1</script>", html, flags=re.S)
    tags = re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", markup, flags=re.IGNORECASE)
    assert tags, "expected inline <script> tags"
    assert not [t for t in tags if re.search(r"\b(?:src|href)\s*=", t, flags=re.IGNORECASE)]
    assert "window.vegaEmbed" in html and "vegaLite" in html
    assert "@import" not in html and not re.search(r"url\(\s*['\"]?https?:", html)
    assert not re.search(r"https?://", re.sub(r"<script\b.*?</script>", "", html, flags=re.S))


def test_every_chart_has_a_container_title_and_units(rendered) -> None:
    result, html = rendered
    assert set(result.charts) == expected_charts()
    containers = re.findall(r'data-chart="([^"]+)"', html)
    assert sorted(containers) == sorted(result.charts)
    specs = json.loads(re.search(r'id="chart-specs">(.*?)</script>', html, re.S).group(1))
    assert set(specs) == set(result.charts)
    for chart_id, spec in specs.items():
        assert spec["title"]["text"] and spec["title"]["subtitle"], chart_id
        titles = quantitative_axis_titles(spec)
        assert titles, f"{chart_id}: no quantitative axis titles"
        assert all("(" in t for t in titles), f"{chart_id}: axis title without a unit: {titles}"


def quantitative_axis_titles(node: object) -> list[str]:
    """Titles of every quantitative x / y encoding in a Vega-Lite spec."""
    found = []
    if isinstance(node, dict):
        for channel in ("x", "y"):
            enc = (node.get("encoding") or {}).get(channel)
            if isinstance(enc, dict) and enc.get("type") == "quantitative" and enc.get("title"):
                found.append(enc["title"])
        for value in node.values():
            found.extend(quantitative_axis_titles(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(quantitative_axis_titles(value))
    return found


def test_page_one_has_the_finance_figures(plan: dict, rendered) -> None:
    _, html = rendered
    page_one = html.split('id="traffic"')[0]
    rec, alts = plan["recommended"], plan["alternatives"]
    assert html_escape(rec["sentence"], quote=True).replace("&#x27;", "&#39;") in page_one
    for value in (
        rec["cost_per_month"],
        alts["static_peak"]["cost_per_month"] - rec["cost_per_month"],
        alts["best_single_accelerator"]["cost_per_month"] - rec["cost_per_month"],
    ):
        assert money(value) in page_one
    assert money(plan["cost_band"]["p50_cost_per_month"], 0) in page_one
    assert (
        f"${rec['cost_per_mtok']:,.2f}" in page_one or f"${rec['cost_per_mtok']:,.3f}" in page_one
    )
    assert "time to first token (p99) ≤ 1,000 ms" in page_one
    for acc in plan["accelerators"]:
        assert acc["name"] in page_one
        assert money(acc["price_per_hour"]) in page_one
    assert "AWS EC2 on-demand" in page_one
    assert "3 hours in 10 min steps" in page_one
    assert rec["scheduled_cost_per_hour"] < rec["cost_per_hour"]
    assert (
        f"{money(rec['scheduled_cost_per_hour'])} per hour on average under the scaling schedule"
        in page_one
    )
    assert f"{money(rec['cost_per_hour'])} per hour with every replica running" in page_one
    footer = page_one.split("<tfoot>")[1].split("</tfoot>")[0]
    assert (
        "the peak fleet, every replica running" in footer and money(rec["cost_per_hour"]) in footer
    )
    demand = plan["demand"]
    assert (
        f"observed mean {demand['mean_rps']:,.2f} req/s, peak {demand['peak_rps']:,.2f}" in page_one
    )
    assert "TP1 · PP1" in page_one


def test_replay_section_states_the_verdict(plan: dict, rendered) -> None:
    """The replay section ends with the cheapest policy that held the SLO, then how the
    hybrid's settings were chosen."""
    _, html = rendered
    verdict = plan["replay"]["verdict"]
    assert verdict["policy"] == "schedule"  # fixture: HPA misses 99 %, schedule beats static
    assert html_escape(verdict["sentence"]) in html
    tuned = str(escape(plan["replay"]["hybrid_tuning"]["sentence"]))  # Jinja's escaping
    assert html.index(html_escape(verdict["sentence"])) < html.index(tuned)


def test_replay_section_states_the_ceiling_only_when_requests_are_lost(
    plan: dict, rendered, tmp_path: Path
) -> None:
    """Requests lost even alone on an idle replica cap what any policy holds: the replay
    section says so with PLAN.json's figures; with none lost it says nothing."""
    _, html = rendered
    assert 'class="ceiling"' not in html
    ceiling = {
        "slo_attainment": 0.9805,
        "requests_lost": 734,
        "lost_input_p50": 8280.0,
        "lost_input_max": 29601,
        "sized_input_max": 13700,
    }
    out = tmp_path / "capped.html"
    write_report(plan | {"replay": plan["replay"] | {"ceiling": ceiling}}, out, ())
    capped = out.read_text(encoding="utf-8")
    assert (
        "Ceiling: no policy can hold more than 98.05% with these deployments: 734 replayed "
        "request(s) missed by every policy miss the SLO even alone on an idle replica (prompts "
        "p50 8,280, up to 29,601 tokens; the longest the plan was sized on: 13,700)." in capped
    )


def test_replay_timeline_draws_the_hybrids_floor_under_the_hybrid(plan: dict) -> None:
    """The ops chart of the replay draws the hybrid and, as its own series, its forecast floor
    (the hybrid less the floor: its burst replicas), step for step as PLAN.json has them (the
    last step repeated so that it is drawn)."""
    rows = [
        r | {"hybrid": r["schedule"] + (i % 3), "hybrid_floor": r["schedule"]}
        for i, r in enumerate(plan["replay"]["timeline"])
    ]
    chart = replay_timeline(as_plan(plan | {"replay": plan["replay"] | {"timeline": rows}}))
    assert chart is not None
    drawn = [v for data in chart.spec["datasets"].values() for v in data if "policy" in v]
    for key, label in (("hybrid", "hybrid"), ("hybrid_floor", "hybrid: its forecast floor")):
        series = [v["replicas"] for v in drawn if v["policy"] == label]
        assert series == [r[key] for r in rows] + [rows[-1][key]]
    assert "forecast floor" in chart.what


def test_a_day_long_replay_timeline_is_drawn_whole(plan: dict) -> None:
    """A held-back day at one-minute steps, six policies and the hybrid's floor: 10,094 points,
    over Altair's default limit of 5,000 (which failed the report of a ServeGen plan); every
    point is drawn."""
    first = plan["replay"]["timeline"][0]
    every = dict.fromkeys(("reactive_tokens", "kpa", "hybrid", "hybrid_floor"), 1)
    rows = [first | every | {"t": 60.0 * i, "schedule": 1 + i % 4} for i in range(1441)]
    chart = replay_timeline(as_plan(plan | {"replay": plan["replay"] | {"timeline": rows}}))
    assert chart is not None
    drawn = [v for data in chart.spec["datasets"].values() for v in data if "policy" in v]
    policies = {v["policy"] for v in drawn}
    assert len(drawn) == len(policies) * (len(rows) + 1) > 5_000
    series = [v["replicas"] for v in drawn if v["policy"] == TIMELINE_LABELS["schedule"]]
    assert series == [r["schedule"] for r in rows] + [rows[-1]["schedule"]]


def test_money_and_number_formats() -> None:
    assert money(6548.1) == "$6,548.10"
    assert money(-1234.5, 0) == "-$1,234"
    assert money(None) == "n/a"


def test_exports_equal_the_plan_tables(plan: dict, rendered) -> None:
    result, _ = rendered
    tables = plan_tables(plan)
    assert set(tables) == {"plan", "frontier", "schedule", "replay", "replay_timeline"}
    assert tables["schedule"].to_dicts() == plan["schedule"]
    assert tables["replay_timeline"].height == len(plan["replay"]["timeline"])
    assert tables["replay"]["policy"].to_list() == ["schedule", "static_peak", "reactive"]
    assert tables["plan"]["count"].to_list() == [
        r["count"] for r in plan["recommended"]["replicas"]
    ]
    written = {p.name: p for p in result.files}
    assert len(written) == 2 * len(tables)
    for name, frame in tables.items():
        parquet = pl.read_parquet(written[f"capacity-{name}.parquet"])
        assert parquet.equals(frame), name
        csv = pl.read_csv(written[f"capacity-{name}.csv"], schema=frame.schema)
        assert csv.equals(frame), name


def test_report_without_a_store_says_so(plan: dict, tmp_path: Path) -> None:
    result = write_report({**plan, "db": str(tmp_path / "gone.duckdb")}, tmp_path / "r.html")
    html = result.html.read_text(encoding="utf-8")
    assert set(result.charts) == PLAN_CHARTS
    assert "store unavailable" in result.notes["store"]
    assert "no store here yet" in html


def test_report_with_an_unknown_trace_and_empty_tables(plan: dict, tmp_path: Path) -> None:
    other = {**plan, "trace": {**plan["trace"], "name": "elsewhere"}, "frontier": []}
    other["replay"] = {**plan["replay"], "timeline": []}
    result = write_report(other, tmp_path / "r.html")
    html = result.html.read_text(encoding="utf-8")
    assert "pareto" not in result.charts and "replay-timeline" not in result.charts
    assert "The plan lists no evaluated candidates." in html
    assert "trace &#39;elsewhere&#39; is not in the store" in html


def test_write_report_rejects_a_bad_plan(plan: dict, tmp_path: Path) -> None:
    with pytest.raises(PlannerError, match="recommended"):
        write_report({k: v for k, v in plan.items() if k != "recommended"}, tmp_path / "r.html")
    replay = {k: v for k, v in plan["replay"].items() if k != "schedule"}
    with pytest.raises(PlannerError, match=r"replay\.schedule: Field required"):
        write_report({**plan, "replay": replay}, tmp_path / "r.html")
    alternatives = {"best_single_accelerator": plan["alternatives"]["best_single_accelerator"]}
    with pytest.raises(PlannerError, match=r"alternatives\.static_peak: Field required"):
        write_report({**plan, "alternatives": alternatives}, tmp_path / "r.html")
    with pytest.raises(PlannerError, match="unknown export format 'xlsx'"):
        write_report(plan, tmp_path / "r.html", ("xlsx",))
    with pytest.raises(PlannerError, match="does not exist"):
        write_report(plan, tmp_path / "missing" / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_cli_report_json(plan: dict, tmp_path: Path) -> None:
    plan_file = tmp_path / "PLAN.json"
    plan_file.write_text(json.dumps(plan))
    out = tmp_path / "out.html"
    started = time.perf_counter()
    result = runner.invoke(
        app, ["report", str(plan_file), "--out", str(out), "--format", "csv", "--json"]
    )
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["html"] == str(out) and data["bytes"] == out.stat().st_size
    assert {Path(f).name for f in data["files"]} == {
        f"out-{t}.csv" for t in ("plan", "frontier", "schedule", "replay", "replay_timeline")
    }
    assert 0 < data["seconds"] <= elapsed + 0.01  # the time it took, as a clock outside saw it


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot read plan"),
        ("{not json", "not valid JSON"),
        ('{"version": 1, "model": "x"}', "bad plan file at"),
        ('{"version": 7}', "version 7"),
        ("[1, 2]", "not a plan file: expected a JSON object, found an array"),
        ('"plan"', "expected a JSON object, found a string"),
        (b'{"version": 1, "model": "\xff"}', "not a UTF-8 text file"),
    ],
)
def test_cli_report_bad_plan_file(
    tmp_path: Path, content: str | bytes | None, fragment: str
) -> None:
    plan_file = tmp_path / "PLAN.json"
    if isinstance(content, bytes):
        plan_file.write_bytes(content)
    elif content is not None:
        plan_file.write_text(content)
    result = runner.invoke(app, ["report", str(plan_file), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(plan_file) in lines[0] and fragment in lines[0], lines
    assert not (tmp_path / "r.html").exists()


def test_cli_report_bad_format_names_the_known_ones(plan: dict, tmp_path: Path) -> None:
    plan_file = tmp_path / "PLAN.json"
    plan_file.write_text(json.dumps(plan))
    result = runner.invoke(
        app, ["report", str(plan_file), "--out", str(tmp_path / "r.html"), "--format", "xls"]
    )
    assert result.exit_code == 1
    assert "unknown export format 'xls'; formats: csv, parquet" in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_vega_bundle_is_cached_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    vega_bundle.cache_clear()
    try:
        bundle = vega_bundle()
        (cached,) = (tmp_path / "planner").glob("vega-bundle-*.js")
        assert cached.read_text(encoding="utf-8") == bundle
        assert "window.vegaEmbed" in bundle
    finally:
        vega_bundle.cache_clear()


def test_real_plan_end_to_end(plan: dict, tmp_path: Path) -> None:
    """make_plan on the stored trace, written as PLAN.json, rendered through the CLI; SLOs at
    other percentiles and on end-to-end latency are planned for and stated on page one."""
    db = Path(plan["db"])
    con = open_store(db, read_only=True)
    try:
        options = PlanOptions(
            "azure-code",
            "llama-3.2-1b",
            ["ttft_p90=1000ms", "tpot_p50=30ms", "e2e_p99=20000ms"],
            accelerators=["l4", "a100"],
            horizon="2h",
            db=str(db),
        )
        real = make_plan(con, options)
    finally:
        con.close()
    plan_file = write_plan(real, tmp_path / "PLAN.json")
    out = tmp_path / "real.html"
    result = runner.invoke(app, ["report", str(plan_file), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["charts"]) == expected_charts()
    html = out.read_text(encoding="utf-8")
    assert money(real.recommended.cost_per_month) in html
    assert data["bytes"] <= MAX_BYTES
    assert real.slo.limits() == {"ttft_p90_ms": 1000.0, "tpot_p50_ms": 30.0, "e2e_p99_ms": 20000.0}
    assert real.to_dict()["slo"] == real.slo.limits() | {"attainment": 0.99}
    page_one = html.split('id="traffic"')[0]
    for text in (
        "time to first token (p90) ≤ 1,000 ms",
        "time per output token (p50) ≤ 30 ms",
        "end-to-end latency (p99) ≤ 20,000 ms",
    ):
        assert text in page_one
