"""The headline matches the replay: the sentence quotes the attainment the schedule held on the
held-back replay, the plan warns where it is more than a point off the target, and the replay's
diagnosis names the cause it measured (length drift, a burst above the forecast band, capacity).
"""

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from conftest import invoke, sample_store, shared_path
from markupsafe import escape

from planner.forecast import tokens
from planner.planning import PlanOptions, make_plan, setting
from planner.report.narrative import replay_warning
from planner.scaling import holdout
from planner.scaling.diagnose import DRIFT_D, diagnose, length_shifts
from planner.scaling.holdout import replayed_intervals
from planner.scaling.replay import POLICY_NAMES, replay_verdict
from planner.simulate import Workload
from planner.store import open_store

RNG_SEED = 11


def _work(inputs: np.ndarray, outputs: np.ndarray | None = None, span_s: float = 600.0):
    """A workload with evenly spread arrivals over `span_s` and the given lengths."""
    n = len(inputs)
    outs = np.full(n, 100) if outputs is None else outputs
    return Workload(np.linspace(0.0, span_s, n, endpoint=False), inputs, outs)


def _lognormal(median: float, n: int, seed: int) -> np.ndarray:
    """`n` token lengths around `median` (lognormal, sigma 0.3)."""
    rng = np.random.default_rng(seed)
    return np.round(median * rng.lognormal(0.0, 0.3, n)).astype(np.int64)


def _diagnose(
    sized: Workload,
    replayed: Workload,
    meets: np.ndarray,
    band: float,
    lost: np.ndarray | None = None,
) -> dict:
    """`diagnose` over 10 one-minute intervals with a flat forecast `band` (requests/s); `lost`:
    the requests that miss even alone on an idle replica."""
    edges = np.linspace(0.0, 600.0, 11)
    observed = np.histogram(replayed.arrival_s, bins=edges)[0] / 60.0
    return diagnose(sized, replayed, meets, edges, observed, np.full(10, band), 0.99, "p95", lost)


def test_ks_statistic_is_the_largest_gap_between_the_two_ecdfs():
    """Independent check: D = max |F_sized - F_replayed| over the pooled lengths."""
    sized = _work(_lognormal(2000, 800, 1), _lognormal(150, 800, 2))
    replayed = _work(_lognormal(2600, 1500, 3), _lognormal(150, 1500, 4))
    for shift in length_shifts(sized, replayed):
        a = np.sort(getattr(sized, f"{shift.which}_tokens"))
        b = np.sort(getattr(replayed, f"{shift.which}_tokens"))
        pooled = np.concatenate([a, b])
        gap = np.abs(
            np.searchsorted(a, pooled, side="right") / len(a)
            - np.searchsorted(b, pooled, side="right") / len(b)
        )
        assert shift.ks_d == pytest.approx(gap.max(), abs=1e-12)
        assert shift.sized_p50 == np.median(a) and shift.replayed_p50 == np.median(b)
    by = {s.which: s for s in length_shifts(sized, replayed)}
    assert by["input"].drifted and by["input"].longer and by["input"].ks_d >= DRIFT_D
    assert not by["output"].drifted


def test_longer_prompts_missing_within_the_band_are_length_drift():
    """Every interval within the band, prompts twice as long, most requests missing."""
    sized = _work(_lognormal(2000, 1000, 1))
    replayed = _work(_lognormal(4000, 1200, 2))
    meets = np.arange(1200) % 2 == 0
    found = _diagnose(sized, replayed, meets, band=10.0)
    assert found["causes"] == ["length drift"]
    assert found["band"]["above_intervals"] == 0 and found["band"]["within_attainment"] == 0.5
    assert found["lengths"]["input"]["drifted"] and not found["lengths"]["output"]["drifted"]
    assert found["sentence"].startswith("length drift: held-back prompts longer (p50 ")


def test_misses_only_in_intervals_above_the_band_are_a_burst():
    """Same lengths; one interval runs at 5x the rest and above the band, and only its requests
    miss: the cause is the burst, not lengths and not capacity."""
    per_minute = np.r_[np.full(9, 60), 300]
    arrivals = np.concatenate(
        [k * 60.0 + np.linspace(0, 60, n, endpoint=False) for k, n in enumerate(per_minute)]
    )
    n = len(arrivals)
    replayed = Workload(arrivals, _lognormal(2000, n, 2), np.full(n, 100))
    meets = arrivals < 540.0
    found = _diagnose(_work(_lognormal(2000, 1000, 1)), replayed, meets, band=2.0)
    assert found["causes"] == ["burst above the forecast band"]
    assert found["band"]["above_intervals"] == 1 and found["band"]["above_requests"] == 300
    assert found["band"]["above_attainment"] == 0.0 and found["band"]["within_attainment"] == 1.0
    assert "1 of 10 intervals ran above the p95 forecast" in found["sentence"]


@pytest.mark.parametrize("replayed_median", [2000, 1000])
def test_misses_within_the_band_without_longer_prompts_are_capacity(replayed_median):
    """Same lengths, or shorter prompts (a drift that cannot explain a miss): capacity."""
    replayed = _work(_lognormal(replayed_median, 1200, 2))
    meets = np.arange(1200) % 10 != 0
    found = _diagnose(_work(_lognormal(2000, 1000, 1)), replayed, meets, band=10.0)
    assert found["causes"] == ["capacity"]
    assert "the schedule held 90.0%" in found["sentence"]


@pytest.mark.parametrize(("lost_every", "named"), [(40, True), (200, False)])
def test_requests_lost_even_alone_are_beyond_any_replica_when_they_cap_the_target(
    lost_every, named
):
    """Requests that miss even alone on an idle replica are named as a cause when there are so
    many that no fleet reaches the target (1 in 40 > the 1 % the target allows), and not when
    there are fewer (1 in 200); the other misses are still told apart (here capacity)."""
    replayed = _work(_lognormal(2000, 1200, 2))
    lost = np.arange(1200) % lost_every == 0
    meets = ~lost & (np.arange(1200) % 10 != 1)
    found = _diagnose(_work(_lognormal(2000, 1000, 1)), replayed, meets, 10.0, lost)
    assert ("beyond any replica" in found["causes"]) is named
    if named:
        assert found["causes"][0] == "beyond any replica"
        assert found["sentence"].startswith(
            f"beyond any replica: 30 of the 1,200 requests replayed (2.50%) miss the SLO even "
            f"alone on an idle replica (prompts p50 {np.median(replayed.input_tokens[lost]):,.0f}"
        )
        assert "so no policy holds more than 97.50% with these deployments" in found["sentence"]
    else:
        assert found["causes"] == ["capacity"]


def test_no_cause_when_the_schedule_held_the_target():
    """A drift measured while the schedule held: reported in figures, named as no cause."""
    replayed = _work(_lognormal(4000, 1200, 2))
    found = _diagnose(_work(_lognormal(2000, 1000, 1)), replayed, np.ones(1200, bool), 10.0)
    assert found["causes"] == [] and found["sentence"] == ""
    assert found["lengths"]["input"]["drifted"]


def test_verdict_carries_the_cause():
    """The verdict says why the schedule missed, and says nothing more when no cause is given."""
    policy = {"gpu_hours": 1.0, "cost": 3.0, "replica_starts": 1, "scaling_actions": 0}
    results = {k: policy | {"slo_attainment": 0.9} for k in ("schedule", "static_peak", "reactive")}
    cause = "length drift: held-back prompts longer"
    assert replay_verdict(results, 0.99, None, cause)["sentence"].endswith(
        f" Why the schedule missed: {cause}."
    )
    assert "Why" not in replay_verdict(results, 0.99)["sentence"]


@pytest.mark.parametrize(
    ("target", "held", "expected"),
    [
        (0.99, 1.0, None),
        (0.99, 0.98, None),
        (0.99, 0.9799, "1.0 points below the 99% it was sized for: drift"),
        (0.95, 1.0, "5.0 points above the 95% it was sized for: the plan may run more"),
        (
            0.995,
            0.905,
            "held 90.5% of requests within the SLO on the held-back replay, 9.0 points ",
        ),
    ],
)
def test_replay_warning_only_beyond_one_point(target, held, expected):
    """Exactly one point is no warning (a float gap of 1.0000000001 is not two points)."""
    warned = replay_warning(target, held, "drift")
    assert warned == expected if expected is None else expected in warned


def _growing_trace(path: Path, growth: float) -> Path:
    """SYNTHETIC Mooncake-format trace: Poisson arrivals at 2 req/s for 20 minutes, prompts
    lognormal around a median that grows linearly from 2,000 tokens to `growth` times that."""
    rng = np.random.default_rng(RNG_SEED)
    arrivals = np.cumsum(rng.exponential(0.5, 3000))
    arrivals = arrivals[arrivals < 1200.0]
    median = 2000.0 * (1.0 + (growth - 1.0) * arrivals / 1200.0)
    inputs = np.round(median * rng.lognormal(0.0, 0.3, len(arrivals))).astype(int)
    outputs = rng.integers(50, 200, len(arrivals))
    rows = (
        json.dumps(
            {"timestamp": int(t * 1000), "input_length": int(i), "output_length": int(o)}
            | {"hash_ids": []}
        )
        for t, i, o in zip(arrivals, inputs, outputs, strict=True)
    )
    path.write_text("\n".join(rows) + "\n")
    return path


def _plan_mooncake(tmp_path: Path, source: Path, slo: str) -> tuple[dict, str, str, str]:
    """Ingest a Mooncake file and plan llama-3.1-8b on H100 for the last 10 minutes: the plan,
    stderr, the report's first page and stdout."""
    db, out, report = tmp_path / "s.duckdb", tmp_path / "PLAN.json", tmp_path / "report.html"
    assert (
        invoke("ingest", source, "--format", "mooncake", "--name", "mc", "--db", db).exit_code == 0
    )
    result = invoke(
        "plan", "mc", "--model", "llama-3.1-8b", "--slo", slo, "--accelerators", "h100",
        "--horizon", "10min", "--interval", "1min", "--db", db, "--out", out, "--report", report,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    page_one = report.read_text(encoding="utf-8").split('id="traffic"')[0]
    return json.loads(out.read_text()), result.stderr, page_one, result.stdout


def _check_headline_and_warnings(plan: dict, stderr: str, page_one: str) -> float:
    """The sentence quotes the replayed attainment; the replay warning is there exactly when it
    is more than a point off the target, the same words on stderr, in PLAN.json and on page
    one. Returns the gap in points."""
    held, target = plan["replay"]["schedule"]["slo_attainment"], plan["slo"]["attainment"]
    assert f"the schedule held {held:.1%}." in plan["recommended"]["sentence"]
    gap = round((held - target) * 100, 6)
    warned = [w for w in plan["warnings"] if "held-back replay" in w]
    assert len(warned) == (abs(gap) > 1)
    ceiling = plan["replay"]["ceiling"]["slo_attainment"]
    for policy in POLICY_NAMES:  # lost requests are missed by every policy: none holds more
        assert plan["replay"][policy]["slo_attainment"] <= ceiling + 1e-5, policy
    hybrid, schedule = plan["replay"]["hybrid"], plan["replay"]["schedule"]
    if plan["replay"]["hybrid_tuning"]["floor_quantile"] == plan["quantile"]:
        assert hybrid["gpu_hours"] >= schedule["gpu_hours"]  # the schedule is the hybrid's floor
    for w in plan["warnings"]:
        assert f"warning: {w}" in stderr.splitlines()
        assert str(escape(w)) in page_one
    return gap


def test_growing_prompts_are_sized_on_the_forecast_mix_and_hold(tmp_path: Path) -> None:
    """Prompts growing 8x over the trace: a trend over the recent windows beats the recent mix
    on the backtest, the plan sizes on the lengths it forecasts for the horizon (longer than
    any the history held) and the held-back replay is within a point of the promise."""
    source = _growing_trace(tmp_path / "grow.jsonl", 8.0)
    plan, stderr, page_one, stdout = _plan_mooncake(tmp_path, source, "ttft_p99=2000ms")
    assert abs(_check_headline_and_warnings(plan, stderr, page_one)) <= 1
    assert plan["warnings"] == [] and plan["replay"]["diagnosis"]["causes"] == []
    forecast = plan["demand"]["length_forecast"]
    assert forecast["input"]["method"] == "linear" and forecast["output"]["method"] == "recent"
    assert forecast["sentence"] in stdout
    assert str(escape(forecast["sentence"].removeprefix("token mix: "))) in page_one
    trend, recent = forecast["input"]["backtest_log_error"].values()
    assert trend <= tokens.DRIFT_GAIN * recent
    factors = forecast["input"]["factors"]
    # the median grows linearly from 2,000 tokens to 8x that over 20 minutes: a line read at the
    # horizon's end (minute 30) gives 23,000 against the sample's 5,500 near minute 5: the cap
    assert factors["p50"] == tokens.DRIFT_CAP
    assert set(forecast["output"]["factors"].values()) == {1.0}


def test_growing_prompts_sized_on_the_recent_mix_warn_and_name_length_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same trace with the length forecast off (the recent mix as it was): the plan sized
    on the early prompts misses on the held-back part, and says so, naming length drift (not a
    burst: arrivals are Poisson)."""
    monkeypatch.setattr(setting, "length_drift", lambda *args: None)
    source = _growing_trace(tmp_path / "grow.jsonl", 8.0)
    plan, stderr, page_one, _ = _plan_mooncake(tmp_path, source, "ttft_p99=2000ms")
    assert plan["demand"]["length_forecast"] is None
    gap = _check_headline_and_warnings(plan, stderr, page_one)
    assert gap < -1
    diagnosis = plan["replay"]["diagnosis"]
    assert diagnosis["causes"] == ["length drift"]
    assert (
        diagnosis["lengths"]["input"]["replayed_p50"] > diagnosis["lengths"]["input"]["sized_p50"]
    )
    assert diagnosis["sentence"] in plan["warnings"][0]
    assert diagnosis["sentence"] in plan["replay"]["verdict"]["sentence"]


def test_steady_prompts_hold_within_a_point_and_do_not_warn(tmp_path: Path) -> None:
    """The same trace without the growth: the replay is within a point, no warning, no cause."""
    source = _growing_trace(tmp_path / "steady.jsonl", 1.0)
    plan, stderr, page_one, _ = _plan_mooncake(tmp_path, source, "ttft_p99=2000ms")
    assert abs(_check_headline_and_warnings(plan, stderr, page_one)) <= 1
    assert plan["warnings"] == [] and "warning:" not in stderr
    assert plan["replay"]["diagnosis"]["causes"] == []


def test_shared_mooncake_trace_holds_its_promise_or_names_length_drift(tmp_path: Path) -> None:
    """The real Mooncake trace, whose prompts grow over its span: within a point of the
    promise, or a warning naming length drift."""
    source = shared_path("traces", "mooncake_fast25", "synthetic_trace.jsonl")
    plan, stderr, page_one, _ = _plan_mooncake(tmp_path, source, "ttft_p99=5000ms")
    gap = _check_headline_and_warnings(plan, stderr, page_one)
    if abs(gap) > 1:
        assert "length drift" in plan["replay"]["diagnosis"]["causes"]
        assert "length drift" in plan["warnings"][0]


def test_every_miss_has_a_cause_and_every_hold_none():
    """Property over random per-request outcomes, bursts and length shifts: the schedule
    missed exactly when a cause is named."""
    rng = np.random.default_rng(RNG_SEED)
    for _ in range(60):
        per_minute = rng.integers(20, 200, 10)
        arrivals = np.concatenate(
            [k * 60.0 + np.sort(rng.uniform(0, 60, n)) for k, n in enumerate(per_minute)]
        )
        n = len(arrivals)
        replayed = Workload(
            arrivals, _lognormal(rng.choice([1000, 2000, 4000]), n, 2), np.full(n, 99)
        )
        meets = rng.random(n) < rng.choice([0.95, 0.985, 0.99, 0.995, 1.0])
        found = _diagnose(_work(_lognormal(2000, 1000, 1)), replayed, meets, rng.uniform(0.5, 3))
        assert bool(found["causes"]) == (meets.mean() < 0.99), found


def test_replayed_intervals_are_the_busiest_that_fit():
    """All intervals under the budget; over it the busiest in order while they fit, and the
    busiest always (even alone over the budget)."""
    counts = np.array([5, 50, 20, 40])
    assert replayed_intervals(counts, 115).tolist() == [True] * 4
    assert replayed_intervals(counts, 100).tolist() == [False, True, False, True]
    assert replayed_intervals(counts, 10).tolist() == [False, True, False, False]


def test_a_capped_replay_simulates_the_busiest_intervals_and_bills_the_whole_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Azure code's held-back 20 minutes replayed whole, then with room for one interval's
    requests: the busiest interval only (its count checked with SQL on the store), the same
    fleet, GPU-hours and cost for every policy (the timelines do not depend on the sample),
    and a sentence that says what was replayed."""
    db = sample_store(tmp_path / "s.duckdb", "azure-code")
    opts = PlanOptions(
        "azure-code", "llama-3.1-8b", ["ttft_p99=1000ms"], accelerators=["h100"], db=str(db)
    )

    def planned() -> dict:
        con = open_store(db, read_only=True)
        try:
            return make_plan(con, opts).to_dict()
        finally:
            con.close()

    first = planned()
    whole = first["replay"]
    window = whole["window"]
    assert "replayed on the held-back trace, the schedule held" in first["recommended"]["sentence"]
    assert window["replayed_requests"] == window["requests"] and window["replayed_intervals"] == 2
    monkeypatch.setattr(holdout, "MAX_REPLAY_REQUESTS", 100)
    capped_plan = planned()
    capped = capped_plan["replay"]
    start, end = window["start_s"], window["end_s"]
    con = duckdb.connect(str(db), read_only=True)
    [(busiest,)] = con.sql(
        f"SELECT max(n) FROM (SELECT floor((arrival_s - {start}) / 600) AS k, count(*) AS n "
        f"FROM requests WHERE arrival_s >= {start} AND arrival_s < {end} GROUP BY k)"
    ).fetchall()
    con.close()
    assert capped["window"]["replayed_intervals"] == 1
    assert capped["window"]["replayed_requests"] == busiest < window["requests"]
    for policy in ("schedule", "static_peak", "reactive"):
        for key in ("gpu_hours", "cost", "replica_starts", "scaling_actions"):
            assert capped[policy][key] == whole[policy][key]
    assert capped["timeline"] == whole["timeline"]
    assert (
        f"replayed on the busiest intervals of the held-back trace ({busiest:,} of its "
        f"{window['requests']:,} requests), the schedule held "
        f"{capped['schedule']['slo_attainment']:.1%}." in capped_plan["recommended"]["sentence"]
    )
