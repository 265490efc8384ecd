"""Forecasting: metric math by hand, quantile shape, no look-ahead, bad input, real-data gate."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, shared_path
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import PlannerError
from planner.forecast import METHODS, backtest_trace, forecast_trace, format_duration, load_series
from planner.forecast.backtest import (
    PINBALL_LEVELS,
    SeriesTask,
    coverage,
    insample_scale,
    mase,
    pinball_loss,
    rolling_origins,
    score_forecast,
    score_series,
    select_method,
    summarize,
)
from planner.forecast.forecast import ForecastTask, forecast_series
from planner.forecast.methods import (
    AUTO_CANDIDATES,
    COMBO_MEMBERS,
    LEVELS,
    SCALES,
    Method,
    MethodUnavailable,
    Scale,
    choose_scale,
    clear_point_cache,
    conformal_offsets,
    fill_gaps,
    point_path,
    quantile_forecast,
)
from planner.forecast.tokens import DRIFT_GAIN, TOKEN_LEVELS, LengthDrift, length_drift
from planner.ingest import ingest_path, ingest_sample
from planner.store import get_trace, open_store

DAY = 4  # intervals per "day" in the tiny hand-computed series


def write_servegen(folder: Path, clients: dict[int, np.ndarray]) -> Path:
    """A ServeGen-shaped folder: one chunk-N-trace.csv of 10-minute rates per client."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, requests in clients.items():
        lines = [f"{i * 600},{r / 600},1.0,Gamma,1.0,1.0" for i, r in enumerate(requests)]
        (folder / f"chunk-{n}-trace.csv").write_text("\n".join(lines) + "\n")
    return folder


def synthetic_day(days: int, seed: int, level: float = 50.0) -> np.ndarray:
    """`days` days of 10-minute Poisson counts with a daily cycle."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * 144)
    return rng.poisson(level * (1.5 + np.sin(2 * np.pi * t / 144))).astype(float)


@pytest.fixture
def store(db_path, tmp_path):
    """A store with a synthetic 5-day ServeGen trace: two busy clients and an all-zero one."""
    con = open_store(db_path)
    clients = {0: synthetic_day(5, 1), 1: synthetic_day(5, 2, 5.0), 2: np.zeros(5 * 144)}
    ingest_path(con, write_servegen(tmp_path / "sg", clients), name="sg")
    yield con
    con.close()


# --- metrics against hand computation ----------------------------------------------------------
def test_insample_scale_is_one_day_seasonal_naive_mae():
    y = np.array([1, 2, 3, 4, 2, 4, 3, 8], dtype=float)
    # |2-1|, |4-2|, |3-3|, |8-4| -> (1 + 2 + 0 + 4) / 4
    assert insample_scale(y, DAY) == pytest.approx(7 / 4)
    # under a day and a step: no seasonal pair, so the one-step naive MAE |2-1|, |3-2|, |4-3|
    assert insample_scale(y[:4], DAY) == pytest.approx(1.0)


def test_mase_pinball_coverage_by_hand():
    actual = np.array([3.0, 5.0, 0.0, 10.0])
    point = np.array([4.0, 5.0, 1.0, 6.0])
    # MAE = (1 + 0 + 1 + 4) / 4 = 1.5; scale 0.5 -> 3
    assert mase(actual, point, 0.5) == pytest.approx(3.0)
    assert np.isnan(mase(actual, point, 0.0))
    # tau 0.9: under-forecasts cost 0.9 per unit, over-forecasts 0.1
    # errors a-q: -1, 0, -1, 4 -> 0.1 + 0 + 0.1 + 3.6 = 3.8 / 4
    assert pinball_loss(actual, point, 0.9) == pytest.approx(0.95)
    assert pinball_loss(actual, point, 0.5) == pytest.approx(0.75)
    lo, hi = np.array([2.0, 5.0, 0.5, 0.0]), np.array([3.0, 6.0, 2.0, 9.0])
    assert coverage(actual, lo, hi) == pytest.approx(0.5)  # 3 in [2,3], 5 in [5,6]


def test_conformal_offsets_are_finite_sample_order_statistics():
    errors = np.arange(1.0, 10.0)  # m = 9
    off = conformal_offsets(errors)
    assert off[LEVELS.index(0.9)] == 9.0  # ceil(10 * 0.9) = 9th smallest
    assert off[LEVELS.index(0.1)] == 1.0  # floor(10 * 0.1) = 1st smallest
    assert off[LEVELS.index(0.5)] == 0.0
    assert off[LEVELS.index(0.975)] == 9.0  # ceil(9.75) = 10 > m: clamped to the largest


def test_score_series_seasonal_naive_by_hand():
    y = np.array([1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6], dtype=float)
    res = score_series(SeriesTask("s", y, DAY, DAY, (8,), ("snaive_day",), calibration_days=1))
    rec = res["scores"]["snaive_day"][0]
    # forecast [2,3,4,5] vs actual [3,4,5,6]: MAE 1; scale mean |y[t]-y[t-4]| = 1 -> MASE 1
    assert rec["mase"] == pytest.approx(1.0)
    p50 = rec["pinball"][PINBALL_LEVELS.index(0.5)]
    assert p50 == pytest.approx(0.5)  # p50 pinball 0.5 * 1, scaled by 1
    assert rec["n"] == 4


def test_relative_mase_and_pooled_coverage_by_hand():
    def rec(m: float, n: int, c80: int, c95: int) -> dict:
        return {
            "n": n,
            "scale": 1.0,
            "mase": m,
            "pinball": [m] * len(PINBALL_LEVELS),
            "seconds": 0.0,
            "coverage_80": c80,
            "coverage_95": c95,
        }

    results = [
        {
            "id": sid,
            "active": 1.0,
            "scores": {
                "snaive_day": [rec(2.0, 10, 7, 9), rec(2.0, 10, 7, 9), rec(base, 10, 8, 10)],
                "profile": [rec(1.0, 10, 8, 10), rec(1.0, 10, 8, 10), rec(own, 10, 9, 10)],
            },
        }
        for sid, base, own in (("a", 2.0, 1.0), ("b", 4.0, 4.0), ("c", 1.0, 0.5))
    ]
    out = summarize(results, [0, 4, 8], 1, 4)
    # per-series relative MASE at the last origin: 0.5, 1.0, 0.5 -> median 0.5
    assert out["methods"]["profile"]["rel_mase_median"] == pytest.approx(0.5)
    assert out["methods"]["profile"]["mase_median"] == pytest.approx(1.0)
    # pooled: (9 + 9 + 9) / 30 for profile's 80 % interval
    assert out["methods"]["profile"]["coverage_80"] == pytest.approx(0.9)
    assert out["methods"]["snaive_day"]["coverage_95"] == pytest.approx(1.0)
    # selection at the last origin saw only the two earlier ones, where profile was better
    assert all(s["picked"] == ["profile"] for s in out["per_series"])
    assert out["selected"]["rel_mase_median"] == pytest.approx(0.5)


def test_select_method_never_uses_the_scored_origin():
    scores = {
        "combo": [{"mase": 1.0}, {"mase": 1.0}],
        "ets": [{"mase": 0.95}, {"mase": 0.1}],
    }
    assert select_method(scores, [0]) == "combo"  # 5 % better is within the noise margin
    scores["ets"][0]["mase"] = 0.75
    assert select_method(scores, [0]) == "combo"  # 25 % better: still within the margin
    scores["ets"][0]["mase"] = 0.65
    assert select_method(scores, [0]) == "ets"
    scores["ets"][0]["mase"] = 0.95
    assert select_method(scores, [0, 1]) == "ets"  # mean 0.525 < 0.7 × 1.0
    assert select_method(scores, []) == "combo"


def test_rolling_origins_are_a_day_apart_and_end_a_horizon_early():
    assert rolling_origins(20, DAY, DAY, 3) == [8, 12, 16]
    assert rolling_origins(20, DAY, 2, 2) == [14, 18]


# --- quantile shape --------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=24, max_size=48),
    st.sampled_from(["snaive_day", "profile", "ets", "combo", "level"]),
)
def test_quantiles_monotone_and_non_negative(values, name):
    q = quantile_forecast(METHODS[name], np.array(values), 7, 6)
    assert q.shape == (len(LEVELS), 7)
    assert np.all(q >= 0)
    assert np.all(np.diff(q, axis=0) >= 0)


@pytest.mark.parametrize("name", ["snaive_week", "ets", "stl_ar", "profile", "combo"])
def test_every_method_gives_monotone_non_negative_quantiles(name):
    y = synthetic_day(9, 3, 2.0)
    q = quantile_forecast(METHODS[name], y, 144, 144)
    assert np.all(q >= 0) and np.all(np.diff(q, axis=0) >= 0)
    assert np.all(np.isfinite(q))


@pytest.mark.parametrize("scale", SCALES)
def test_every_error_scale_inverts(scale: Scale):
    y = np.array([0.0, 0.5, 3.0, 40.0, 7e5])
    assert scale.inverse(scale.forward(y, 12.0), 12.0) == pytest.approx(y, abs=1e-6)


def _pairs(noise: str, days: int = 7) -> list[tuple[np.ndarray, np.ndarray]]:
    """Day-ahead (actual, predicted) pairs of a daily cycle between 5 and 500 requests, with
    noise of a constant size (additive) or a constant share of the level (multiplicative)."""
    rng = np.random.default_rng(3)
    level = 5 + 495 * (0.5 - 0.5 * np.cos(np.linspace(0, 2 * np.pi, 144)))
    pairs = []
    for _ in range(days):
        if noise == "additive":
            actual = (level + rng.normal(0, 20, 144)).clip(0)
        else:
            actual = level * np.exp(rng.normal(0, 0.3, 144))
        pairs.append((actual, level))
    return pairs


def test_error_scale_follows_how_the_noise_grows_with_the_level():
    """Multiplicative noise keeps the log scale of the recent mean's half; noise of a constant
    size takes a scale closer to linear (a larger c), so peaks get no wider intervals than
    troughs."""
    mean = 252.5
    assert choose_scale(_pairs("multiplicative"), mean) == Scale("log", 0.5)
    additive = choose_scale(_pairs("additive"), mean)
    assert additive in (Scale("log", 10.0), Scale("log", 2.0))
    assert choose_scale(_pairs("additive")[:1], mean) == SCALES[0]  # no origin to hold out


def test_gaps_are_filled_from_the_day_before():
    y = np.array([1, 2, 3, 4, 5, np.nan, 7, 8])
    assert fill_gaps(y, DAY).tolist() == [1, 2, 3, 4, 5, 2, 7, 8]


# --- no look-ahead ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["snaive_day", "ets", "stl_ar", "profile", "combo"])
def test_methods_never_see_data_after_the_origin(name, monkeypatch):
    y = synthetic_day(6, 4)
    origin = 4 * 144
    seen: list[int] = []
    method = METHODS[name]
    spy = method.__class__(
        method.name,
        method.description,
        lambda hist, h, p: seen.append(len(hist)) or method.point(hist, h, p),
        method.min_days,
    )
    monkeypatch.setitem(METHODS, name, spy)
    task = SeriesTask("s", y, 144, 144, (origin,), (name,))
    first = score_series(task)["scores"][name][0]
    assert seen and max(seen) <= origin
    perturbed = y.copy()
    perturbed[origin + 144 :] = 1e9  # beyond the scored window: must change nothing
    again = score_series(SeriesTask("s", perturbed, 144, 144, (origin,), (name,)))
    assert again["scores"][name][0]["mase"] == first["mase"]
    future = y.copy()
    future[origin:] *= 3  # the scored window itself: the forecast stays, the error moves
    shifted = score_series(SeriesTask("s", future, 144, 144, (origin,), (name,)))
    q_before = quantile_forecast(METHODS[name], y[:origin], 144, 144)
    q_after = quantile_forecast(METHODS[name], future[:origin], 144, 144)
    assert np.array_equal(q_before, q_after)
    assert shifted["scores"][name][0]["mase"] != first["mase"]


# --- series, forecast and backtest on a store --------------------------------------------------
def test_load_series_columns_and_resolution(store):
    df = load_series(store, "sg", freq="1h")
    assert df.columns == ["series", "t", "requests", "input_tokens", "output_tokens"]
    assert df.filter(df["series"] == "chunk-0").height == 5 * 24
    assert df["input_tokens"].null_count() == df.height  # rates only: token sums unknown
    total = load_series(store, "sg", total=True)
    assert total["series"].unique().to_list() == ["total"]
    with pytest.raises(PlannerError, match="10min windows"):
        load_series(store, "sg", freq="1min")


def test_request_trace_series_counts_and_token_sums(db_path):
    con = open_store(db_path)
    ingest_sample(con, "azure-code")
    df = load_series(con, "azure-code")
    raw = con.execute(
        "SELECT count(*), sum(input_tokens) FROM requests WHERE arrival_s < 3000"
    ).fetchall()[0]
    assert df["requests"].sum() == raw[0] and df["input_tokens"].sum() == raw[1]
    out = forecast_trace(con, "azure-code", freq="10min", horizon="1h")
    con.close()
    s = out["series"][0]
    assert s["method"] == "level" and len(s["points"]) == 6
    assert any("fell back to level" in n for n in out["notes"])
    assert s["tokens"]["input"][0]["p50"] > 0 and out["unit"] == "requests per 10min interval"


def test_multi_day_request_trace_token_mix_by_hour(db_path, tmp_path):
    rng = np.random.default_rng(5)
    ts = np.sort(rng.uniform(0, 3 * 86400, 6000))
    hour = (ts % 86400) // 3600
    inp = np.where(hour < 12, 100, 1000)  # short prompts by night, long by day
    csv = tmp_path / "reqs.csv"
    rows = [f"{t:.3f},{i},{i // 10}" for t, i in zip(ts, inp, strict=True)]
    csv.write_text("ts,inp,out\n" + "\n".join(rows) + "\n")
    con = open_store(db_path)
    ingest_path(
        con, csv, fmt="csv", name="reqs", mapping={"ts": "ts", "input": "inp", "output": "out"}
    )
    out = forecast_trace(con, "reqs", freq="1h", horizon="1d", method="snaive_day")
    con.close()
    tokens = out["series"][0]["tokens"]
    assert "hour of day" in tokens["basis"]
    by_hour = {int(p["t"] % 86400 // 3600): p["p50"] for p in tokens["input"]}
    assert by_hour[3] == 100 and by_hour[15] == 1000
    out_by_hour = {int(p["t"] % 86400 // 3600): p["mean"] for p in tokens["output"]}
    assert out_by_hour[3] == 10 and out_by_hour[15] == 100


def _lengths_store(
    db_path: Path, tmp_path: Path, inputs, span_s: float = 7200.0, every_s: float = 2.0
) -> tuple:
    """SYNTHETIC: a store holding one request every `every_s` for `span_s` (two hours), prompt
    lengths `inputs(t)`, outputs 100; the connection and the trace's id."""
    ts = np.arange(0.0, span_s, every_s)
    csv = tmp_path / "lengths.csv"
    rows = [f"{t},{int(i)},100" for t, i in zip(ts, inputs(ts), strict=True)]
    csv.write_text("ts,inp,out\n" + "\n".join(rows) + "\n")
    con = open_store(db_path)
    ingest_path(
        con, csv, fmt="csv", name="l", mapping={"ts": "ts", "input": "inp", "output": "out"}
    )
    return con, get_trace(con, "l").id


@pytest.mark.parametrize(
    ("method", "inputs", "at"),
    [
        # the pooled median is the length at 1 h (half the requests come before it)
        (
            "exponential",
            lambda t: np.rint(1000 * 2 ** (t / 3600)),
            lambda t: 1000 * 2 ** (t / 3600),
        ),
        ("linear", lambda t: np.rint(1000 + t / 2), lambda t: 1000 + t / 2),
    ],
)
def test_length_drift_forecasts_the_trend_the_lengths_follow(
    db_path, tmp_path, method, inputs, at
) -> None:
    """Prompts growing exactly exponentially (or linearly): that trend wins the backtest and the
    median's factor is the closed form: its length at the end of the window ahead over the
    length at the middle of the history; outputs do not move."""
    con, trace_id = _lengths_store(db_path, tmp_path, inputs)
    drift = length_drift(con, trace_id, 7200.0, (7200.0, 9000.0), 86_400.0)
    con.close()
    assert drift.methods == {"input": method, "output": "recent"}
    assert drift.factors["input"][1] == pytest.approx(at(9000.0) / at(3600.0), rel=0.01)
    assert drift.factors["output"] == (1.0,) * len(TOKEN_LEVELS)
    assert drift.errors["input"][0] <= DRIFT_GAIN * drift.errors["input"][1]


def test_length_drift_keeps_the_recent_mix_for_steady_lengths(db_path, tmp_path) -> None:
    """Lengths drawn from one lognormal throughout: no trend beats the recent mix; a history
    with fewer windows of DRIFT_MIN_REQUESTS requests than the backtest needs: no forecast."""
    rng = np.random.default_rng(3)
    con, trace_id = _lengths_store(
        db_path, tmp_path, lambda t: np.rint(2000 * rng.lognormal(0, 0.6, len(t)))
    )
    drift = length_drift(con, trace_id, 7200.0, (7200.0, 9000.0), 86_400.0)
    short = length_drift(con, trace_id, 300.0, (300.0, 600.0), 86_400.0)
    con.close()
    assert drift.methods == {"input": "recent", "output": "recent"}
    assert not drift.trending("input") and "no length trend" in drift.sentence()
    assert short is None  # 150 requests in 6 windows of 25


@pytest.mark.parametrize("growth", [1.0, 1.1])
def test_length_drift_over_days_sees_a_trend_not_the_daily_pattern(
    db_path, tmp_path, growth
) -> None:
    """Six days, a request a minute, prompts 2.5x longer in the second half of each day and
    growing `growth`x a day: the windows are whole days, so the daily pattern alone keeps the
    recent mix (four-hour windows of the last day would see prompts rise all afternoon), and the
    growth is an exponential trend whose median factor for the day ahead is about growth^1.5
    (the last day's median lies mid-day)."""
    day = 86_400.0
    con, trace_id = _lengths_store(
        db_path,
        tmp_path,
        lambda t: np.rint(np.where(t % day < day / 2, 400.0, 1000.0) * growth ** (t / day)),
        span_s=6 * day,
        every_s=60.0,
    )
    drift = length_drift(con, trace_id, 6 * day, (6 * day, 7 * day), day)
    con.close()
    assert drift.windows == 6
    if growth == 1.0:
        assert drift.methods == {"input": "recent", "output": "recent"}
    else:
        assert drift.methods["input"] == "exponential"
        assert growth < drift.factors["input"][1] < growth**2


def test_length_drift_scales_each_length_by_its_quantile_factor() -> None:
    """Constant factors scale every length; rising ones leave the shortest alone and move the
    longest most, preserving the order."""
    lengths = np.arange(1, 1001, dtype=np.int64)
    flat = LengthDrift({"input": "linear"}, {"input": (2.0,) * 5}, {"input": (0.1, 0.5)}, 6)
    np.testing.assert_array_equal(flat.scale("input", lengths), 2 * lengths)
    rising = LengthDrift({"input": "linear"}, {"input": (1.0, 1.0, 2.0, 3.0, 4.0)}, {}, 6)
    scaled = rising.scale("input", lengths[::-1].copy())[::-1]
    assert scaled[:100].tolist() == lengths[:100].tolist()  # below p10: factor 1
    assert scaled[-1] == 4 * lengths[-1] and np.all(np.diff(scaled) > 0)


def test_forecast_json_shape_and_all_zero_series(store):
    out = forecast_trace(store, "sg", horizon="1d")
    ids = {s["id"]: s for s in out["series"]}
    assert set(ids) == {"chunk-0", "chunk-1", "chunk-2"}
    zero = ids["chunk-2"]
    assert zero["method"] == "zero"
    assert all(p["p99"] == 0 for p in zero["points"])
    assert any("all-zero" in n for n in out["notes"])
    busy = ids["chunk-0"]["points"]
    assert len(busy) == 144 and busy[0]["t"] == 5 * 86400
    for p in busy:
        assert 0 <= p["p10"] <= p["p50"] <= p["p90"] <= p["p95"] <= p["p99"]
    json.dumps(out)


def test_forecast_end_ignores_everything_after_it(db_path, tmp_path):
    """Data after `end` (days 4-5 changed here) changes nothing, auto-selection included."""
    con = open_store(db_path)
    base = {0: synthetic_day(6, 1), 1: synthetic_day(6, 2, 5.0)}
    changed = {k: np.concatenate([v[: 4 * 144], 7 * v[4 * 144 :] + 3]) for k, v in base.items()}
    ingest_path(con, write_servegen(tmp_path / "a", base), name="a")
    ingest_path(con, write_servegen(tmp_path / "b", changed), name="b")
    end = 4 * 86400
    first = forecast_trace(con, "a", end=end, workers=1)
    again = forecast_trace(con, "b", end=end, workers=1)
    full = forecast_trace(con, "a", workers=1)
    unaligned = forecast_trace(con, "b", end=end + 300, workers=1)
    con.close()
    assert first["origin_s"] == end and first["series"][0]["points"][0]["t"] == end
    assert [s["method"] for s in first["series"]] == [s["method"] for s in again["series"]]
    assert first["series"] == again["series"] == unaligned["series"]
    assert any("rounded down" in n for n in unaligned["notes"])
    assert full["origin_s"] == 6 * 86400 and full["series"] != first["series"]
    assert format_duration(end) == "4d" and format_duration(90) == "90s"


def test_point_path_cache_is_keyed_by_the_whole_history():
    """Cached paths equal direct fits, differ when any history value differs, are read-only;
    the combo is the log-space median of its members' direct fits."""
    clear_point_cache()
    y = synthetic_day(9, 3)
    direct = METHODS["profile"].point(y, 144, 144)
    assert np.array_equal(point_path("profile", y, 144, 144), direct)
    changed = y.copy()
    changed[0] += 1.0  # the cache key is every byte of the history
    assert point_path("profile", changed, 144, 144) is not point_path("profile", y, 144, 144)
    assert not point_path("profile", y, 144, 144).flags.writeable
    members = [np.log1p(METHODS[m].point(y, 144, 144).clip(0)) for m in COMBO_MEMBERS]
    expected = np.expm1(np.median(members, axis=0))
    assert np.allclose(point_path("combo", y, 144, 144), expected, rtol=1e-12)
    with pytest.raises(MethodUnavailable, match="needs 1008 intervals"):
        point_path("snaive_week", y[:500], 144, 144)


def test_backtest_on_synthetic_store(store):
    heard: list[str] = []
    out = backtest_trace(
        store, "sg", origins=1, methods=["snaive_day", "profile"], workers=1, progress=heard.append
    )
    n = len(heard)
    assert n >= out["selected"]["series"] and heard == [
        f"backtesting series {k}/{n}" for k in range(1, n + 1)
    ]
    # seasonal naive by hand: the last day of history repeated, MAE over the held-back day
    # divided by the history's mean |y[t] - y[t - 1 day]|; the median of two series is the mean
    day = 144
    by_hand = []
    for y in (synthetic_day(5, 1), synthetic_day(5, 2, 5.0)):
        history, actual = y[:-day], y[-day:]
        scale = np.mean(np.abs(history[day:] - history[:-day]))
        by_hand.append(np.mean(np.abs(actual - history[-day:])) / scale)
    snaive = out["methods"]["snaive_day"]
    assert snaive["mase_median"] == pytest.approx(np.mean(by_hand), rel=1e-6)
    assert snaive["pinball_p50"] == pytest.approx(np.mean(by_hand) / 2, rel=1e-6)  # MAE / 2
    assert out["selected"]["series"] == 2
    assert any("all-zero" in n for n in out["notes"])
    assert out["methods"]["profile"]["rel_mase_median"] < 1.0  # Poisson noise: averaging wins


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: load_series(c, "nope"), "unknown trace 'nope'"),
        (lambda c: load_series(c, "sg", series="chunk-9"), "unknown series chunk-9"),
        (lambda c: forecast_trace(c, "sg", freq="1min"), "1min: finer than the trace's resolution"),
        (lambda c: forecast_trace(c, "sg", method="magic"), "unknown method 'magic'"),
        (lambda c: backtest_trace(c, "sg", origins=3), "needs at least"),
        (lambda c: forecast_trace(c, "sg", horizon="soon"), "--horizon 'soon'"),
        (lambda c: forecast_trace(c, "sg", end=0), "--end 0"),
        (lambda c: forecast_trace(c, "sg", end=6 * 86400), "end of the trace"),
    ],
)
def test_bad_input_is_a_planner_error(store, call, match):
    with pytest.raises(PlannerError, match=match):
        call(store)


def test_cli_forecast_and_backtest(store, db_path):
    store.close()
    res = invoke("forecast", "sg", "--db", db_path, "--json")
    assert res.exit_code == 0, res.output
    # the busy client's forecast against the process that generated it (50 x (1.5 + sin) per
    # 10 minutes): the median within 10 % of it, the 95 % interval holding it almost always
    points = json.loads(res.stdout)["series"][0]["points"]
    day = np.array([p["t"] for p in points]) / 600 % 144
    truth = 50.0 * (1.5 + np.sin(2 * np.pi * day / 144))
    median = np.array([p["p50"] for p in points])
    assert len(points) == 144 and points[0]["t"] == 5 * 86400
    assert np.mean(np.abs(median - truth)) <= 0.1 * np.mean(truth)
    inside = [p["p2.5"] <= m <= p["p97.5"] for p, m in zip(points, truth, strict=True)]
    assert np.mean(inside) >= 0.9
    args = ["backtest", "sg", "--origins", "1", "--method", "snaive_day,profile"]
    res = invoke(*args, "--db", db_path, "--json")
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.stdout)["methods"]) == {"snaive_day", "profile"}
    res = invoke(*args, "--db", db_path, env={"COLUMNS": "60"})
    assert res.exit_code == 0, res.output
    words = res.stdout.split()
    assert {"selected", "rel_mase_median", "coverage_95", "snaive_day"} <= set(words)
    assert "…" not in res.stdout  # a narrow terminal gets wide lines, not cut cells
    res = invoke("forecast", "sg", "--freq", "1min", "--db", db_path)
    assert res.exit_code == 1
    assert res.stderr.strip().count("\n") == 0 and "1min" in res.stderr


# --- degenerate traces: finite scores, and every failure one `error:` line (issue 18) ----------
def repeating_days(days: int, seed: int, level: float = 50.0) -> np.ndarray:
    """SYNTHETIC: one day of 10-minute Poisson counts repeated exactly `days` times, like
    bench/synth.py's replayed trace (whose days repeat exactly)."""
    return np.tile(synthetic_day(1, seed, level), days)


def write_requests(con, tmp_path: Path, name: str, arrivals) -> None:
    """Ingest a tiny request trace: one row per arrival time (s)."""
    csv = tmp_path / f"{name}.csv"
    csv.write_text("ts,inp,out\n" + "".join(f"{t:.3f},100,10\n" for t in arrivals))
    mapping = {"ts": "ts", "input": "inp", "output": "out"}
    ingest_path(con, csv, fmt="csv", name=name, mapping=mapping)


@pytest.fixture
def tiny(db_path, tmp_path) -> Path:
    """A closed store of degenerate traces (the CLI opens it again):
    one: a single request (spans 0 s); short: 50 requests over 50 minutes;
    sg1: a single 10-minute window; flat: 5 days of a constant rate; zero: 5 days of nothing;
    rep: 5 days that repeat exactly (two clients)."""
    con = open_store(db_path)
    write_requests(con, tmp_path, "one", [0.0])
    write_requests(con, tmp_path, "short", np.linspace(0, 3000, 50))
    traces = {
        "sg1": {0: np.array([5.0])},
        "flat": {0: np.full(5 * 144, 7.0)},
        "zero": {0: np.zeros(5 * 144)},
        "rep": {0: repeating_days(5, 1), 1: repeating_days(5, 2, 5.0)},
    }
    for name, clients in traces.items():
        ingest_path(con, write_servegen(tmp_path / name, clients), name=name)
    con.close()
    return db_path


def assert_one_error_line(res, *fragments: str) -> str:
    """Exit code 1 and a single `error:` line on stderr (no traceback) holding `fragments`."""
    assert res.exit_code == 1, (res.exit_code, res.output)
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in res.output, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_insample_scale_falls_back_when_the_seasonal_naive_error_is_zero():
    day = np.array([1.0, 4.0, 2.0, 5.0])
    # days repeat exactly: one-step naive MAE of 1,4,2,5,1,4,2,5 = (3+2+3+4+3+2+3) / 7
    assert insample_scale(np.tile(day, 2), DAY) == pytest.approx(20 / 7)
    noisy = np.tile(day, 2) * (1 + 1e-15 * np.arange(8))  # float noise only: still "exact"
    assert insample_scale(noisy, DAY) == pytest.approx(20 / 7)
    assert insample_scale(np.full(8, 3.0), DAY) == 3.0  # constant too: the mean level
    assert np.isnan(insample_scale(np.zeros(8), DAY))  # no demand at all: not scored
    # a zero scale gives NaN scores (never ZeroDivisionError), which selection ranks last
    actual = np.array([1.0, 2.0])
    rec = score_forecast(actual, np.tile(actual, (len(LEVELS), 1)), 0.0, 0.0)
    assert np.isnan(rec["mase"]) and all(np.isnan(rec["pinball"]))


def test_score_series_on_days_that_repeat_exactly():
    """The unit-level regression: an exactly repeating history (scale 0 at lag one day)."""
    y = repeating_days(5, 3)
    task = SeriesTask("s", y, 144, 144, (3 * 144, 4 * 144), AUTO_CANDIDATES)
    scores = score_series(task)["scores"]
    assert scores.pop("snaive_week") == [None, None]  # needs 8 days: skipped, as before
    for recs in scores.values():
        for r in recs:
            assert np.isfinite(r["mase"]) and np.all(np.isfinite(r["pinball"]))
    assert scores["snaive_day"][0]["mase"] == 0.0  # exact, and scored as exact
    assert select_method(scores, [0, 1]) in AUTO_CANDIDATES


def test_days_that_repeat_exactly_forecast_and_backtest(tiny):
    """Issue 18 regression: `planner forecast` / `plan` / `backtest` on a trace whose days repeat
    exactly (bench/synth.py's) died with ZeroDivisionError in the pinball loss. `rep` is built
    in the `tiny` fixture: one day repeated five times; the store keeps rates per second, so the
    counts read back carry float noise, as the synth trace's do."""
    con = open_store(tiny, read_only=True)
    bt = backtest_trace(con, "rep", origins=1, workers=1)
    fc = forecast_trace(con, "rep", workers=1)
    # as planning's forecast_demand calls it: the total, from an origin inside the trace
    plan_like = forecast_trace(con, "rep", horizon="12h", total=True, end=4 * 86400, workers=1)
    con.close()
    for out in (bt, fc, plan_like):
        json.dumps(out, allow_nan=False)  # no NaN or inf anywhere
    assert bt["selected"]["series"] == 2
    assert bt["methods"]["snaive_day"]["mase_median"] == 0.0
    assert bt["methods"]["snaive_day"]["rel_mase_median"] == 1.0
    for m in (*bt["methods"].values(), bt["selected"]):
        assert all(np.isfinite(m[k]) for k in ("mase_median", "pinball_p50", "pinball_p99"))
    assert any("repeat exactly" in n for n in bt["notes"])
    for out in (fc, plan_like):
        for s in out["series"]:
            assert s["method"] in METHODS
            assert all(np.isfinite(v) for p in s["points"] for v in p.values())
    assert [s["id"] for s in plan_like["series"]] == ["total"]
    res = invoke("forecast", "rep", "--db", tiny)
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output


def test_short_history_is_one_planner_error(tiny):
    """A history under two intervals used to raise MethodUnavailable from `level`."""
    con = open_store(tiny, read_only=True)
    with pytest.raises(PlannerError) as err:
        forecast_trace(con, "short", freq="30min")
    msg = str(err.value)
    assert "trace 'short' has 1 interval of 30min" in msg and "needs at least 2" in msg
    assert "a finer --freq, like 15min" in msg
    with pytest.raises(PlannerError, match="has 1 interval of 10min .*use a longer trace"):
        forecast_trace(con, "sg1")
    with pytest.raises(PlannerError, match="before --end 600; .*a later --end"):
        forecast_trace(con, "flat", end=600)
    with pytest.raises(PlannerError, match="a finer --interval, like 15min"):
        forecast_trace(con, "short", freq="30min", freq_option="--interval")
    con.close()
    assert_one_error_line(
        invoke("forecast", "short", "--freq", "30min", "--db", tiny), "'short'", "--freq"
    )


def test_a_named_method_that_cannot_fit_is_one_planner_error(tiny):
    """`--method ets` on a short history: no silent fallback, no traceback."""
    con = open_store(tiny, read_only=True)
    with pytest.raises(PlannerError) as err:
        forecast_trace(con, "short", method="ets")
    con.close()
    msg = str(err.value)
    assert msg.startswith("--method ets: trace 'short' has 5 intervals of 10min")
    assert "ets needs 432" in msg and "--method auto" in msg
    assert_one_error_line(
        invoke("forecast", "short", "--method", "snaive_week", "--db", tiny),
        "snaive_week needs 1152",
    )


def test_a_fit_that_fails_is_an_error_when_named_and_a_fallback_under_auto(monkeypatch):
    """A method whose fit fails at the final origin: PlannerError if named, `level` if auto."""

    def broken(y, h, period):
        raise MethodUnavailable("combo: singular fit")

    clear_point_cache()
    monkeypatch.setitem(METHODS, "combo", Method("combo", "broken", broken, 2))
    y = synthetic_day(3, 11)
    named = forecast_series(ForecastTask("s", y, 144, 144, "combo"))
    assert "singular fit" in named["error"] and "q" not in named
    # horizon 2 days: no backtest origin fits, so auto takes combo untried, which then fails
    auto = forecast_series(ForecastTask("s", y, 144, 288, "auto"))
    assert auto["method"] == "level" and auto["q"].shape == (len(LEVELS), 288)
    assert any("singular fit; fell back to level" in n for n in auto["notes"])
    clear_point_cache()


def test_a_failed_named_fit_reaches_the_cli_as_one_line(store, db_path, monkeypatch):
    def broken(y, h, period):
        raise MethodUnavailable("profile: singular fit")

    store.close()
    clear_point_cache()
    monkeypatch.setitem(METHODS, "profile", Method("profile", "broken", broken, 2))
    res = invoke("forecast", "sg", "--method", "profile", "--db", db_path)
    clear_point_cache()
    assert_one_error_line(res, "--method profile: cannot forecast series", "--method auto")


@pytest.mark.parametrize(
    ("freq", "expected", "absent"),
    [
        ("7s", "--freq 7s: a day is not a whole number of 7s intervals", "--horizon"),
        ("2d", "--freq 2d: coarser than one day", "--horizon"),
        ("15min", "--freq 15min: not a whole number of windows", "finer"),
        ("1min", "--freq 1min: finer than the trace's resolution", "coarser"),
    ],
)
def test_freq_errors_name_freq_and_the_right_direction(store, db_path, freq, expected, absent):
    for call in (forecast_trace, backtest_trace):
        with pytest.raises(PlannerError) as err:
            call(store, "sg", freq=freq)
        assert str(err.value).startswith(expected) and absent not in str(err.value)
    store.close()
    for command in ("forecast", "backtest"):
        err = assert_one_error_line(invoke(command, "sg", "--freq", freq, "--db", db_path))
        assert expected in err and absent not in err


def test_freq_suggestions_are_usable(store):
    with pytest.raises(PlannerError, match=re.escape("multiple of 10min, like 10min or 20min")):
        forecast_trace(store, "sg", freq="15min")
    with pytest.raises(PlannerError, match="divides a day, like 6s or 8s"):
        forecast_trace(store, "sg", freq="7s")
    with pytest.raises(PlannerError, match="^--interval 15min: not a whole number"):
        forecast_trace(store, "sg", freq="15min", freq_option="--interval")


def test_backtest_too_short_says_what_fits(store):
    with pytest.raises(PlannerError, match="needs at least 864 .*use --origins 1 or --horizon 1d"):
        backtest_trace(store, "sg", origins=2, horizon="2d")
    with pytest.raises(PlannerError, match="has 720 intervals .*use --origins 2$"):
        backtest_trace(store, "sg", origins=3)


def test_degenerate_traces_backtest_and_forecast_without_tracebacks(tiny):
    """Constant, all-zero, single-window and single-request traces: a result or one line."""
    con = open_store(tiny, read_only=True)
    flat = backtest_trace(con, "flat", origins=1, methods=["snaive_day", "snaive_week"])
    assert flat["selected"]["mase_median"] == 0.0 and flat["selected"]["coverage_95"] == 1.0
    assert any(n.startswith("snaive_week: not scored; it needs 1152") for n in flat["notes"])
    zero = backtest_trace(con, "zero", origins=1, methods=["snaive_day"])
    assert zero["series"] == 0 and any("all-zero" in n for n in zero["notes"])
    (quiet,) = forecast_trace(con, "zero")["series"]
    assert quiet["method"] == "zero"
    (steady,) = forecast_trace(con, "flat", method="snaive_day")["series"]
    assert all(p["p10"] == p["p99"] == pytest.approx(7.0) for p in steady["points"])
    con.close()
    for args, fragments in (
        (("forecast", "one"), ("spans 0 s",)),
        (("backtest", "one"), ("spans 0 s",)),
        (("forecast", "sg1"), ("has 1 interval of 10min", "needs at least 2")),
        (("backtest", "sg1"), ("has 1 interval of 10min", "a longer trace")),
        (("backtest", "short", "--freq", "1h"), ("--freq 1h:", "use a finer --freq")),
        (("forecast", "flat", "--end", "600"), ("before --end 600",)),
    ):
        assert_one_error_line(invoke(*args, "--db", tiny), *fragments)
    ok = (("backtest", "flat", "--origins", "1"), ("forecast", "zero"), ("backtest", "zero"))
    for args in ok:
        res = invoke(*args, "--db", tiny, "--json")
        assert res.exit_code == 0, res.output
        assert not re.search(r"\b(NaN|-?Infinity)\b", res.stdout), args


# --- real data: the accuracy gate --------------------------------------------------------------
GATE_CLIENTS = 24


@pytest.fixture(scope="module")
def servegen_backtest(tmp_path_factory) -> dict:
    """The default backtest of the busiest m-mid clients (real ServeGen data)."""
    source = shared_path("traces", "alibaba_servegen", "data", "language", "m-mid")
    busiest = sorted(
        source.glob("chunk-*-trace.csv"), key=lambda p: p.stat().st_size, reverse=True
    )[:GATE_CLIENTS]
    folder = tmp_path_factory.mktemp("gate") / "m-mid-subset"
    folder.mkdir()
    for path in busiest:
        shutil.copy(path, folder / path.name)
    con = open_store(folder.parent / "store.duckdb")
    ingest_path(con, folder, name="m-mid-subset")
    out = backtest_trace(con, "m-mid-subset")
    con.close()
    return out


def test_servegen_coverage_gate(servegen_backtest):
    """Pooled coverage: the 80 % interval in its target, the 95 % one near it (regression guard)."""
    sel = servegen_backtest["selected"]
    assert sel["series"] >= GATE_CLIENTS // 2
    assert 0.77 <= sel["coverage_80"] <= 0.83
    assert 0.93 <= sel["coverage_95"] <= 0.985


# The selected row's upper-quantile pinball on the gate subset, committed 2026-12-03 (before
# the per-series error scale: p90 0.292, p95 not scored, p99 0.0827); a change may lose at
# most SHARPNESS_SLACK of it, like the cost model's accuracy gate.
SHARPNESS_BASELINE = {"pinball_p90": 0.2495, "pinball_p95": 0.164, "pinball_p99": 0.0637}
SHARPNESS_SLACK = 1.05


def test_servegen_quantile_sharpness_gate(servegen_backtest):
    """Upper quantiles no blunter than the committed baseline (pinball scaled like MASE)."""
    sel = servegen_backtest["selected"]
    for key, baseline in SHARPNESS_BASELINE.items():
        assert sel[key] <= baseline * SHARPNESS_SLACK, (key, sel[key], baseline)


def test_servegen_coverage_95_target(servegen_backtest):
    """The issue's target: the 95 % interval covers 93-97 % of held-back points."""
    assert 0.93 <= servegen_backtest["selected"]["coverage_95"] <= 0.97


def test_servegen_beats_seasonal_naive(servegen_backtest):
    """The selected method, `profile` and `combo` beat seasonal naive (regression guard)."""
    assert servegen_backtest["selected"]["rel_mase_median"] <= 0.95
    assert servegen_backtest["methods"]["profile"]["rel_mase_median"] <= 0.95
    assert servegen_backtest["methods"]["combo"]["rel_mase_median"] <= 0.95


@pytest.mark.xfail(
    strict=True,
    reason="issue target rel MASE <= 0.85 not met by the selected row on the scored days 12-13 "
    "(full pools: 0.884 m-large, 0.841 m-mid; the combo default alone 0.844 / 0.831)",
)
def test_servegen_relative_mase_target(servegen_backtest):
    """The issue's target: median relative MASE of the selected method <= 0.85."""
    assert servegen_backtest["selected"]["rel_mase_median"] <= 0.85
