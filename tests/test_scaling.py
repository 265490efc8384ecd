"""Scaling: schedule hysteresis and lead, the HPA rule, provisioning delay, replay mechanics."""

from dataclasses import replace

import numpy as np
import pytest

from planner.costmodel import StepModel, get_accelerator
from planner.errors import PlannerError
from planner.forecast import forecast_trace
from planner.ingest import ingest_sample
from planner.optimize.mix import MixOption
from planner.scaling.autoscaler import HpaConfig, KpaConfig, hpa_replicas, kpa_replicas
from planner.scaling.delay import (
    Instance,
    default_delay,
    elastic_delay,
    measured_delay,
    provisioning_delay,
)
from planner.scaling.demand import demand_series, forecast_demand
from planner.scaling.holdout import HybridParams, Scene, Window
from planner.scaling.replay import (
    Controller,
    ReplicaPlan,
    Timeline,
    burst_deployments,
    hybrid_timeline,
    max_replicas,
    missed_alone,
    missed_while_starting,
    reactive_timeline,
    ready_from_requested,
    replay,
    replay_verdict,
    route,
    schedule_timeline,
    static_timeline,
)
from planner.scaling.schedule import Deployment, Schedule, build_schedule, hold_levels
from planner.simulate import StepTable, Workload, parse_slos, simulate
from planner.store import open_store

H100 = Deployment(MixOption("h100-tp1-agg-b64", "h100", 1, 12.29, (2.0,)), 0, "all")
L4 = Deployment(MixOption("l4-tp2-agg-b64", "l4", 2, 1.6, (0.5,)), 0, "all")


def test_hold_levels_suppresses_short_dips():
    """A one-interval dip inside the hold window keeps its level; a lasting drop releases."""
    need = np.array([[3.0], [1.0], [3.0], [3.0], [1.0], [1.0], [1.0], [1.0]])
    assert hold_levels(need, 2)[:, 0].tolist() == [3, 3, 3, 3, 1, 1, 1, 1]


def test_hold_levels_never_advances_a_rise():
    """A ramp keeps its timing (the provisioning lead starts replicas early, not the hold)."""
    need = np.array([[1.0], [1.0], [2.0], [4.0], [4.0], [1.0], [2.0], [1.0], [1.0], [1.0]])
    assert hold_levels(need, 2)[:, 0].tolist() == [1, 1, 2, 4, 4, 2, 2, 1, 1, 1]
    assert hold_levels(need, 0)[:, 0].tolist() == need[:, 0].tolist()


def test_a_dip_keeps_the_fleet_of_the_level_before_it_not_both_plans():
    """Big ($10/h, 10 req/s) and small ($2/h, 1 req/s) plans; demand 3, 6, 3, 6 req/s. 3 req/s
    alone is three small replicas and 6 one big one; the dip at the third interval keeps the
    big one (held on demand), where holding replica counts ran 1 big + 3 small ($16/h), dearer
    than the peak fleet. Without a hold the fleet swaps at every interval."""
    big = Deployment(MixOption("big", "h100", 8, 10.0, (10.0,)), 0, "all")
    small = Deployment(MixOption("small", "l4", 1, 2.0, (1.0,)), 0, "all")
    demand = np.array([3.0, 6.0, 3.0, 6.0])[:, None]
    times = np.arange(4) * 600.0
    held = build_schedule(times, demand, [big, small], 600.0, 0.0, hold_s=600.0)
    assert held.counts.tolist() == [[0, 3], [1, 0], [1, 0], [1, 0]]
    assert held.cost_per_hour().max() == float(held.peak_counts @ [10.0, 2.0]) == 10.0
    swapped = build_schedule(times, demand, [big, small], 600.0, 0.0, hold_s=0.0)
    assert swapped.counts.tolist() == [[0, 3], [1, 0], [0, 3], [1, 0]]


def test_schedule_covers_demand_and_leads_by_the_delay():
    """Counts cover each interval's demand; scale-ups are requested one delay early."""
    times = np.arange(6) * 600.0
    demand = np.array([1.0, 1.0, 5.0, 5.0, 1.0, 1.0])[:, None]
    sched = build_schedule(times, demand, [H100], 600.0, 120.0, hold_s=0.0)
    assert sched.counts[:, 0].tolist() == [1, 1, 3, 3, 1, 1]
    rows = sched.rows(changes_only=True)
    assert [(r["t"], r["action"], r["replicas"]) for r in rows] == [
        (0.0, "start", 1),
        (1200.0, "scale-up", 3),
        (2400.0, "scale-down", 1),
    ]
    assert rows[1]["start_at"] == 1080.0
    timeline = schedule_timeline(sched, 0.0, 3600.0, step_s=60.0)
    assert timeline.requested[18, 0] == 3 and timeline.ready[18, 0] == 1
    assert timeline.ready[20, 0] == 3


def test_capacity_curve_gives_small_fleets_less_per_replica():
    """With 1 replica serving 1 req/s but 4 serving 2 each, 1.5 req/s needs 2 replicas, not 1."""
    dep = Deployment(H100.option, 0, "all", curve=((1, 1.0), (2, 1.5), (4, 2.0)))
    sched = build_schedule(np.zeros(1), np.array([[1.5]]), [dep], 600.0, 0.0)
    assert sched.counts[0, 0] == 2


def test_schedule_mixes_plans_when_cheaper():
    """1.5 req/s: one H100 ($12.29) loses to three L4 pairs ($4.80)."""
    sched = build_schedule(np.zeros(1), np.array([[1.5]]), [H100, L4], 600.0, 0.0)
    assert sched.counts[0].tolist() == [0, 3]


def test_the_peak_fleet_is_the_busiest_intervals_not_each_groups_own_maximum():
    """A big plan ($10/h, 10 req/s) and a small one ($2/h, 1 req/s): 3 req/s runs three small
    replicas, 6 and 10 req/s one big one. Each group's maximum (1 big + 3 small, $16/h) never
    runs; the peak fleet is the 10 req/s interval's, 1 big at $10/h, and ties on demand go to
    the dearer interval."""
    big = Deployment(MixOption("big", "h100", 8, 10.0, (10.0,)), 0, "all")
    small = Deployment(MixOption("small", "l4", 1, 2.0, (1.0,)), 0, "all")
    demand = np.array([3.0, 10.0, 6.0, 3.0])[:, None]
    sched = build_schedule(np.arange(4) * 600.0, demand, [big, small], 600.0, 0.0, hold_s=0.0)
    assert sched.counts.tolist() == [[0, 3], [1, 0], [1, 0], [0, 3]]
    assert sched.counts.max(axis=0).tolist() == [1, 3]
    assert sched.peak_counts.tolist() == [1, 0]
    assert float(sched.peak_counts @ [10.0, 2.0]) == sched.cost_per_hour().max() == 10.0
    tied = replace(sched, counts=np.array([[0, 3], [1, 0], [1, 1], [0, 3]]), demand=demand * 0 + 1)
    assert tied.peak_counts.tolist() == [1, 1]


def test_hpa_rule_tolerance_and_scale_down_window():
    """Scales up at once to ceil(rate/target), holds within 10 %, scales down after 300 s."""
    burst = np.linspace(0.0, 600.0, 6000, endpoint=False)
    quiet = 600.0 + np.linspace(0.0, 1200.0, 1200, endpoint=False)
    times, counts = hpa_replicas(np.r_[burst, quiet], 0.0, 1800.0, HpaConfig(target_rps=2.0), 1)
    at = dict(zip(times.tolist(), counts.tolist(), strict=True))
    assert at[300.0] == 5
    assert at[660.0 + 240.0] == 5
    assert at[600.0 + 60.0 + 300.0 + 15.0] == 1


def test_hpa_scale_up_rate_limit():
    """From 1 replica the first step may add at most max(4, 100 %) replicas."""
    arrivals = np.linspace(0.0, 120.0, 12000, endpoint=False)
    _, counts = hpa_replicas(arrivals, 60.0, 120.0, HpaConfig(target_rps=1.0), 1)
    assert counts[0] == 5 and counts[1] == 10


def test_ready_lags_requested_by_the_delay():
    """A slot serves only after being requested for the whole delay; releases are immediate."""
    requested = np.array([1, 1, 3, 3, 3, 3, 2, 2, 3, 3])[:, None]
    ready = ready_from_requested(requested, 20.0, 10.0)[:, 0]
    assert ready.tolist() == [1, 1, 1, 1, 3, 3, 2, 2, 2, 2]


def test_default_delay_loads_shards_in_parallel_and_waits_for_the_slowest_replica():
    """Closed form: 30 s start + weights / (GB/s per GPU x GPUs per instance) + warm-up; the
    plan's delay is its slowest instance's; a catalog's load_gbs and its source are used."""
    h100 = get_accelerator("h100")
    one, tp4 = Instance(h100, 1), Instance(h100, 4)
    assert default_delay("m", 16.0, [one], 20.0).seconds == pytest.approx(30 + 16 + 20)
    assert default_delay("m", 140.0, [tp4], 20.0).seconds == pytest.approx(30 + 35 + 20)
    assert default_delay("m", 140.0, [tp4], 5.0).seconds == pytest.approx(30 + 35 + 5)
    fast = replace(h100, id="fast", load_gbs=4.0, load_source="local NVMe")
    mixed = default_delay("m", 32.0, [Instance(fast, 1), Instance(h100, 2)], 20.0)
    assert mixed.seconds == pytest.approx(30 + 16 + 20) and "on 2 x h100" in mixed.source
    quick = default_delay("m", 32.0, [Instance(fast, 1)], 20.0)
    assert quick.seconds == pytest.approx(30 + 8 + 20) and "(local NVMe)" in quick.source
    assert "planner/scaling/delay.py" in quick.source


def test_elastic_moe_delay_copies_shards_from_a_serving_replica(db_path):
    """Closed form: weights / (scale-out GB/s per GPU x GPUs per instance) + warm-up, no
    container start; the slowest link decides; far below the cold start of the same replica;
    refused together with a measured cold-start trace."""
    h200 = get_accelerator("h200")
    tp8 = Instance(h200, 8)
    elastic = elastic_delay("deepseek-v3", 671.0, [tp8], 20.0)
    assert elastic.seconds == pytest.approx(671 / (50 * 8) + 20, abs=0.05)
    assert default_delay("deepseek-v3", 671.0, [tp8], 20.0).seconds == pytest.approx(
        30 + 671 / 8 + 20, abs=0.05
    )
    slow = replace(h200, id="slow", scale_out_gbs=6.25)
    mixed = elastic_delay("m", 100.0, [tp8, Instance(slow, 2)], 20.0)
    assert mixed.seconds == pytest.approx(100 / 12.5 + 20) and "on 2 x slow" in mixed.source
    assert "no container start" in mixed.source and "2510.02613" in mixed.source
    con = open_store(db_path)
    with pytest.raises(PlannerError, match="give one of them"):
        provisioning_delay(con, "m", 1.0, "loads", [tp8], 20.0, elastic=True)


def test_measured_delay_from_cold_starts(db_path):
    """The median model-load time of a cold-start trace; a request trace is refused."""
    con = open_store(db_path)
    con.execute(
        "INSERT INTO traces (id, name, format, kind, source, content_hash) VALUES "
        "(1, 'loads', 'gentd26-load', 'cold_starts', 'x', 'h'), "
        "(2, 'reqs', 'csv', 'requests', 'y', 'g')"
    )
    con.execute(
        "INSERT INTO cold_starts (trace_id, time_s, total_s, model_load_s) VALUES "
        "(1, 0, 10, 9), (1, 1, 30, 21), (1, 2, 50, 40)"
    )
    delay = measured_delay(con, "loads")
    assert delay.seconds == 21.0 and "3 cold starts" in delay.source
    with pytest.raises(PlannerError, match="no cold starts"):
        measured_delay(con, "reqs")
    con.close()


def test_route_weights_by_goodput_and_only_ready_replicas():
    """Requests split by ready capacity; none go to a deployment with no ready replica."""
    timeline = static_timeline(np.array([1, 2]), 0.0, 100.0)
    arrivals = np.linspace(0.0, 99.0, 4000)
    dep, slot = route(arrivals, np.zeros(4000, dtype=int), [H100, L4], timeline)
    assert np.mean(dep == 0) == pytest.approx(2.0 / 3.0, abs=0.01)
    assert set(slot[dep == 1].tolist()) == {0, 1}
    empty = static_timeline(np.array([0, 0]), 0.0, 100.0)
    assert (route(arrivals, np.zeros(4000, dtype=int), [H100, L4], empty)[0] == -1).all()


def test_replay_totals_and_underprovisioning():
    """An undersized static fleet misses the SLO; the right one holds it; GPU-hours add up."""
    rng = np.random.default_rng(0)
    n = 3000
    work = Workload(np.sort(rng.uniform(0, 600, n)), np.full(n, 512), np.full(n, 64))
    dep = Deployment(MixOption("h100", "h100", 1, 12.29, (4.0,)), 0, "all")
    engine = ReplicaPlan(StepTable(StepModel.build("llama-3.1-8b", "h100")), 64, None)
    slos = parse_slos(["ttft_p99=500ms", "tpot_p99=50ms"])
    bucket = np.zeros(n, dtype=int)
    good = replay(work, bucket, [dep], [engine], static_timeline(np.array([2]), 0.0, 600.0), slos)
    assert good.slo_attainment > 0.99
    assert good.gpu_hours == pytest.approx(2 * 600 / 3600)
    assert good.replica_starts == 2 and good.scaling_actions == 0
    tiny = replay(work, bucket, [dep], [engine], static_timeline(np.array([0]), 0.0, 600.0), slos)
    assert tiny.slo_attainment == 0.0
    reactive = reactive_timeline(
        work.arrival_s, bucket, [dep], np.array([2]), np.array([1]), 60.0, 0.0, 600.0
    )
    assert reactive.requested.max() >= 2 and (reactive.ready <= reactive.requested).all()


def test_hpa_with_an_offset_sizes_only_the_load_the_offset_leaves():
    """10 req/s with 4 req/s served elsewhere and a 2 req/s target: ceil(6 / 2) = 3 replicas
    from zero once the 60 s metric window is full; an offset above the load asks for none."""
    arrivals = np.linspace(0.0, 600.0, 6000, endpoint=False)
    config = HpaConfig(target_rps=2.0, min_replicas=0)
    times, counts = hpa_replicas(arrivals, 0.0, 600.0, config, 0,
                                 offset=lambda t: np.full(len(t), 4.0))  # fmt: skip
    assert (counts[times >= 60.0] == 3).all() and counts[0] == 0
    _, none = hpa_replicas(arrivals, 0.0, 600.0, config, 0, offset=lambda t: np.full(len(t), 11.0))
    assert (none == 0).all()


def _two_types() -> list[Deployment]:
    """An H100 deployment at $3.07 per req/s of one replica and an L4 one at $5."""
    return [
        Deployment(MixOption("h100", "h100", 1, 12.29, (4.0,)), 0, "all"),
        Deployment(MixOption("l4", "l4", 1, 1.0, (0.2,)), 0, "all"),
    ]


def test_hybrid_keeps_its_floor_and_adds_burst_replicas_of_the_cheapest_type_only():
    """Floor: two L4 replicas. Quiet traffic the floor covers runs exactly the floor (an HPA per
    type would keep an H100 too); a burst to 20 req/s adds H100 replicas (the cheaper per
    request/s), never L4 ones, released after the burst; ready never below the floor's."""
    rng = np.random.default_rng(2)
    quiet = np.sort(rng.uniform(0.0, 1200.0, 120))
    burst = np.sort(rng.uniform(600.0, 660.0, 1200))
    arrivals = np.sort(np.r_[quiet, burst])
    deps = _two_types()
    assert burst_deployments(deps) == {0: 0}
    floor = static_timeline(np.array([0, 2]), 0.0, 1200.0)
    bucket = np.zeros(len(arrivals), dtype=int)
    hybrid = hybrid_timeline(arrivals, bucket, deps, floor, np.array([1, 2]), 60.0, 0.8,
                             Controller())  # fmt: skip
    per_type = reactive_timeline(arrivals, bucket, deps, np.array([1, 2]), np.array([0, 2]),
                                 60.0, 0.0, 1200.0)  # fmt: skip
    assert (hybrid.requested[:, 1] == 2).all() and (hybrid.ready >= floor.ready).all()
    before = hybrid.index(np.array([300.0]))[0]
    assert hybrid.requested[before, 0] == 0 and per_type.requested[before, 0] >= 1
    assert hybrid.requested[:, 0].max() >= 4 and hybrid.requested[-1, 0] == 0
    assert (hybrid.ready <= hybrid.requested).all()


def test_a_flat_floor_runs_the_schedules_busiest_fleet_all_window_and_meets_an_early_burst():
    """A schedule of 1, 3 and 2 replicas over three 10-minute intervals and a burst at 60-120 s:
    held flat, the hybrid's floor runs the busiest interval's 3 replicas from the first second
    (static provisioning at the forecast's peak), so the burst meets replicas already serving,
    where on the schedule floor it meets 1 and burst replicas that serve a delay later; the
    hybrid never runs below either floor."""
    dep = Deployment(MixOption("h100", "h100", 1, 12.29, (2.0,)), 0, "all")
    sched = Schedule(np.array([0.0, 600.0, 1200.0]), 600.0, 60.0, (dep,),
                     np.array([[1], [3], [2]]), np.array([[1.0], [6.0], [4.0]]))  # fmt: skip
    rng = np.random.default_rng(4)
    arrivals = np.sort(np.r_[rng.uniform(0.0, 1800.0, 900), rng.uniform(60.0, 120.0, 300)])
    tokens = np.full(len(arrivals), 500)
    work = Workload(arrivals, tokens, tokens)
    edges = np.array([0.0, 600.0, 1200.0, 1800.0])
    window = Window(work, np.zeros(len(arrivals), dtype=int), edges, np.zeros(3), np.zeros(0))
    scene = Scene(sched, window, np.array([1000.0]), None)
    flat, ramp = scene.floor_timeline(sched, flat=True), scene.floor_timeline(sched)
    assert (flat.requested == 3).all() and (flat.ready == 3).all()
    assert ramp.ready[0, 0] == 1 and ramp.ready.max() == 3
    params = HybridParams("p95", 0.8, 300.0, flat_floor=True)
    on_flat, on_ramp = scene.hybrid(flat, params), scene.hybrid(ramp, params)
    assert (on_flat.ready >= flat.ready).all() and (on_ramp.ready >= ramp.ready).all()
    early = on_flat.index(np.array([90.0]))[0]
    assert on_flat.ready[early, 0] == 3 > on_ramp.ready[early, 0]


def test_hybrid_runs_no_replica_where_its_floor_is_zero_and_no_traffic_comes():
    """With a floor of 0 and no requests in the second half, the hybrid releases every replica
    (after the 300 s stabilisation), where the plain HPA keeps its minimum of one; in the busy
    first half both serve."""
    arrivals = np.sort(np.random.default_rng(3).uniform(0.0, 600.0, 600))
    dep = Deployment(MixOption("h100", "h100", 1, 12.29, (2.0,)), 0, "all")
    floor = static_timeline(np.array([0]), 0.0, 1800.0)
    bucket = np.zeros(len(arrivals), dtype=int)
    hybrid = hybrid_timeline(arrivals, bucket, [dep], floor, np.array([1]), 60.0, 0.8,
                             Controller())  # fmt: skip
    args = (arrivals, bucket, [dep], np.array([1]), np.array([1]))
    plain = reactive_timeline(*args, 60.0, 0.0, 1800.0)
    busy = hybrid.index(np.array([300.0]))[0]
    assert hybrid.requested[busy, 0] >= 1 and plain.requested[busy, 0] >= 1
    assert hybrid.requested[-1, 0] == 0 and plain.requested[-1, 0] == 1


def test_hpa_on_tokens_follows_longer_prompts_that_a_request_rate_hpa_misses():
    """Same request rate, prompts 3x longer than the sized mix in the second half: the HPA on
    tokens/s scales up there (closed form: ceil(rate x tokens / (0.8 x goodput x mean)))
    while the HPA on requests/s stays put."""
    arrivals = np.linspace(0.0, 1200.0, 2400, endpoint=False)
    tokens = np.where(arrivals < 600.0, 1000, 3000)
    dep = Deployment(MixOption("h100", "h100", 1, 12.29, (2.0,)), 0, "all")
    args = (arrivals, np.zeros(2400, dtype=int), [dep], np.array([8]), np.array([1]), 0.0)
    on_tokens = Controller(tokens=tokens, mean_tokens=np.array([1000.0]))
    by_tokens = reactive_timeline(*args, 0.0, 1200.0, controller=on_tokens)
    by_rate = reactive_timeline(*args, 0.0, 1200.0)
    assert by_rate.requested[-1, 0] == by_rate.requested[len(by_rate.requested) // 2 - 1, 0] == 2
    assert by_tokens.requested[len(by_tokens.requested) // 2 - 1, 0] == 2  # ceil(2 / 1.6)
    assert by_tokens.requested[-1, 0] == 4  # ceil(2 x 3000 / (1.6 x 1000))


def test_kpa_panics_on_a_burst_and_holds_until_a_stable_window_passes():
    """A 10 s burst at 20x the base rate: the 6 s panic window sees it first and the KPA scales
    to the panic count at once, never down while panicking; a stable window (60 s) after the
    burst it steps down, at most halving per tick, to the stable count."""
    base = np.linspace(0.0, 600.0, 600, endpoint=False)  # 1 req/s
    burst = np.linspace(300.0, 310.0, 200, endpoint=False)  # +20 req/s for 10 s
    arrivals = np.sort(np.r_[base, burst])
    times, counts = kpa_replicas(arrivals, 0.0, 600.0, KpaConfig(target_rps=2.0), 1)
    during = counts[(times >= 306.0) & (times < 310.0)]
    assert during.min() >= 10  # ceil(21 / 2) from the panic window
    panicking = (times >= 310.0) & (times < 355.0)  # the last trigger is after t = 300
    assert (counts[panicking] >= during.max()).all()
    after = counts[times >= 370.0]
    assert after[-1] == 1 and (after[1:] >= np.ceil(after[:-1] / 2)).all()


def test_reactive_target_is_one_replicas_goodput():
    """6 req/s, one replica serves 2 (four serve 4 each): HPA at 80 % of 2 runs 4, not 2."""
    arrivals = np.linspace(0.0, 600.0, 3600, endpoint=False)
    peak_option = MixOption("h100", "h100", 1, 12.29, (4.0,))
    dep = Deployment(peak_option, 0, "all", curve=((1, 2.0), (4, 4.0)))
    timeline = reactive_timeline(
        arrivals, np.zeros(3600, dtype=int), [dep], np.array([4]), np.array([1]), 0.0, 0.0, 600.0
    )
    assert timeline.requested[-1, 0] == 4  # ceil(6 / (0.8 x 2.0))


def test_demand_forecast_is_the_public_forecast_from_an_origin(db_path):
    """forecast_demand is forecast_trace(end=origin) in requests/s, times the rate scale."""
    con = open_store(db_path)
    ingest_sample(con, "azure-code")
    demand = demand_series(con, "azure-code", "5min", rate_scale=2.0)
    fc = forecast_demand(con, demand, 6, 3)
    ref = forecast_trace(con, "azure-code", freq="5min", horizon="15min", total=True, end=1800)
    (series,) = ref["series"]
    assert fc.origin_s == 1800.0 and fc.method == series["method"]
    assert fc.level("p95") == pytest.approx([p["p95"] * 2.0 / 300 for p in series["points"]])
    with pytest.raises(PlannerError, match="at least 2"):
        forecast_demand(con, demand, 1, 3)
    con.close()


def _policy(attainment: float, cost: float) -> dict:
    return {"slo_attainment": attainment, "cost": cost}


@pytest.mark.parametrize(
    ("results", "policy", "phrase"),
    [
        (
            {
                "schedule": _policy(0.995, 90),
                "static_peak": _policy(1, 200),
                "reactive": _policy(0.98, 80),
            },
            "schedule",
            "the forecast schedule held the SLO at the least cost: $90.00",
        ),
        (
            {
                "schedule": _policy(0.995, 90),
                "static_peak": _policy(1, 200),
                "reactive": _policy(0.991, 80),
            },
            "reactive",
            "the reactive autoscaler (HPA) held the SLO at the least cost: $80.00",
        ),
        (
            {
                "schedule": _policy(0.97, 90),
                "static_peak": _policy(1, 200),
                "reactive": _policy(0.95, 80),
                "hybrid": _policy(0.992, 110),
            },
            "hybrid",
            "the hybrid (forecast schedule as a floor, HPA on tokens/s above it) held the SLO "
            "at the least cost: $110.00",
        ),
        (
            {
                "schedule": _policy(0.9, 90),
                "static_peak": _policy(0.95, 200),
                "reactive": _policy(0.5, 80),
            },
            None,
            "the best, static peak provisioning, held 95.00%",
        ),
    ],
)
def test_replay_verdict_names_the_cheapest_policy_holding_the_target(results, policy, phrase):
    """Only policies at or above the attainment target compete on cost."""
    verdict = replay_verdict(results, 0.99)
    assert verdict["policy"] == policy
    assert phrase in verdict["sentence"]


def test_verdict_advises_a_higher_quantile_only_when_one_adds_replicas():
    """The advice names the quantile that would change the plan, and is absent otherwise."""
    missed = {k: _policy(0.9, 90) for k in ("schedule", "static_peak", "reactive")}
    assert (
        "--quantile p99 provisions more replicas" in replay_verdict(missed, 0.99, "p99")["sentence"]
    )
    plain = replay_verdict(missed, 0.99)["sentence"]
    assert "--quantile" not in plain and "no higher forecast quantile would add" in plain


def test_below_the_ceiling_the_verdict_advises_no_quantile():
    """When requests miss even alone on an idle replica so often that no fleet reaches the
    target, the verdict says what the most is instead of advising a higher quantile."""
    missed = {k: _policy(0.97, 90) for k in ("schedule", "static_peak", "reactive")}
    sentence = replay_verdict(missed, 0.99, "p99", ceiling=0.9805)["sentence"]
    assert "--quantile" not in sentence
    assert "98.05% is the most any policy holds with these deployments" in sentence
    assert "--quantile p99" in replay_verdict(missed, 0.99, "p99", ceiling=0.995)["sentence"]


def test_misses_while_replicas_start_are_those_where_requested_exceeds_ready():
    """Hand-computed: on a 5 s grid the policy asks for 3 replicas at 10 s, ready at 20 s; of the
    four requests it missed (at 7, 12, 17, 22 s) the two at 12 and 17 s came while two replicas
    were starting; the verdict says so (with the start-up) only when the hybrid missed."""
    requested = np.array([[1], [1], [3], [3], [3]])
    ready = np.array([[1], [1], [1], [1], [3]])
    timeline = Timeline(0.0, 5.0, requested, ready)
    meets = np.array([True, False, False, False, False])
    found = missed_while_starting(timeline, np.array([2.0, 7.0, 12.0, 17.0, 22.0]), meets)
    assert found == {"missed": 4, "while_starting": 2}
    starting = found | {"start_up_s": 66.0}
    missed = {k: _policy(0.97, 90) for k in ("schedule", "static_peak", "hybrid")}
    phrase = "Of the hybrid's misses, 50% arrived while replicas it had asked for were still"
    assert phrase in replay_verdict(missed, 0.99, starting=starting)["sentence"]
    assert (
        "starting (66 s start-up)." in replay_verdict(missed, 0.99, starting=starting)["sentence"]
    )
    held = missed | {"hybrid": _policy(0.995, 120)}
    assert "hybrid's misses" not in replay_verdict(held, 0.99, starting=starting)["sentence"]


def test_missed_alone_flags_the_suspects_that_miss_on_their_own_idle_replica():
    """Independent check: each suspect simulated in a workload of its own (one request, an idle
    replica); prompts a TP1 H100 cannot prefill within 500 ms are lost whatever the fleet,
    short ones are not, and a request that is not a suspect is never flagged."""
    dep = Deployment(MixOption("h100", "h100", 1, 12.29, (4.0,)), 0, "all")
    engine = ReplicaPlan(StepTable(StepModel.build("llama-3.1-8b", "h100")), 64, None)
    slos = parse_slos(["ttft_p99=500ms", "tpot_p99=50ms"])
    inputs = np.array([512, 30_000, 1_000, 60_000, 40_000, 2_000])
    work = Workload(np.zeros(6), inputs, np.full(6, 64))
    suspects = np.array([True, True, True, True, False, False])
    lost = missed_alone(work, np.zeros(6, dtype=int), [dep], [engine], slos, suspects)
    alone = [
        not simulate(work.take(np.array([i])), engine.table).meets(slos)[0]
        for i in range(len(inputs))
    ]
    assert lost.tolist() == [a and s for a, s in zip(alone, suspects, strict=True)]
    assert lost.tolist() == [False, True, False, True, False, False]


def test_higher_quantile_is_the_lowest_that_adds_replicas():
    """H100 serves 2 req/s: p95 at 3.9 and p99 at 4.0 both need 2 replicas; p99.9-like 4.5
    (named p999 here) needs 3, so from p50 or p95 the advice is p999, from p999 none."""
    from planner.scaling.demand import DemandForecast
    from planner.scaling.holdout import higher_quantile

    levels = {"p50": 2.5, "p95": 3.9, "p99": 4.0, "p999": 4.5}
    forecast = DemandForecast(0.0, 600, "level", {q: np.full(3, v) for q, v in levels.items()})
    for quantile, expected in (("p50", "p999"), ("p95", "p999"), ("p999", None)):
        sched = build_schedule(
            forecast.times, forecast.level(quantile)[:, None], [H100], 600.0, 0.0
        )
        found = higher_quantile(forecast, quantile, sched, 0.0, None)
        assert found == expected, quantile


def test_plan_interval_errors_name_the_plan_option(db_path):
    """The plan's demand is read and forecast at `planner plan`'s --interval, named in errors."""
    con = open_store(db_path)
    ingest_sample(con, "azure-code")
    for interval in ("7s", "7min"):
        demand = demand_series(con, "azure-code", interval)
        with pytest.raises(PlannerError, match=f"^--interval {interval}: a day is not a whole"):
            forecast_demand(con, demand, 6, 3)
    con.close()


def test_schedule_runs_the_most_the_limits_allow_when_they_cannot_serve_the_peak():
    """H100 at 2 req/s and L4 pairs at 0.5 with h100=2, l4=4: at most 5 req/s; a 9 req/s peak
    gets that fleet (2 H100 + 2 L4 pairs) at every interval it cannot serve, a 3 req/s interval
    the cheapest fleet covering it."""
    sched = build_schedule(
        np.arange(3) * 600.0,
        np.array([3.0, 9.0, 9.0]),
        [H100, L4],
        600.0,
        0.0,
        {"h100": 2, "l4": 4},
    )
    assert sched.counts.tolist() == [[1, 2], [2, 2], [2, 2]]
    assert (sched.counts[:, 0] <= 2).all() and (2 * sched.counts[:, 1] <= 4).all()


def test_hpa_max_replicas_share_the_available_gpus():
    """Two H100 deployments at 3 and 1 replicas on h100=8: maxReplicas 6 and 2 (their shares of
    the GPUs), never below the peak count; no limit where the accelerator has none."""
    other = Deployment(MixOption("h100-tp1-b", "h100", 1, 12.29, (2.0,)), 0, "all")
    assert max_replicas([H100, other, L4], np.array([3, 1, 2]), {"h100": 8}) == [6, 2, None]
    assert max_replicas([H100, other], np.array([3, 1]), {"h100": 2}) == [3, 1]


def test_hpa_max_replicas_of_a_replica_spanning_two_accelerators():
    """A mixed-hardware deployment (2 H100 prefill + 1 A100 decode GPUs per replica) at 2
    replicas beside the H100 one at 3: on h100=14 its share is 4 of 7 H100 GPUs (8 GPUs, so 4
    replicas), on a100=3 it has all 3 (3 replicas): the tighter, 3; the H100 one keeps 3 of 7
    (6 replicas)."""
    mixed = Deployment(
        MixOption("h100-tp1-pd2:1-a100-tp1", "h100+a100", 3, 29.7, (1.9,), 0.0,
                  (("h100", 2), ("a100", 1))),
        0, "all",
    )  # fmt: skip
    assert max_replicas([mixed, H100], np.array([2, 3]), {"h100": 14, "a100": 3}) == [3, 6]
    assert max_replicas([mixed, H100], np.array([2, 3]), {"a100": 1}) == [2, None]
