"""Serving simulator: closed forms, monotonicity, disaggregation, KV budget, inputs, CLI."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import Budget, FixedSteps, invoke, shared_path

from planner.costmodel import StepModel, load_catalog
from planner.errors import PlannerError
from planner.ingest import ingest_path, ingest_sample
from planner.simulate import (
    Scheduling,
    StepTable,
    Workload,
    goodput_search,
    load_workload,
    parse_disagg,
    parse_slos,
    simulate,
    synthetic_workload,
)
from planner.simulate.replica import Replica
from planner.store import open_store

SLOS = parse_slos(["ttft_p99=1000ms", "tpot_p99=50ms"])


ONE_AT_A_TIME = Scheduling(max_seqs=1, token_budget=16384)
PREFILL_FIRST = Scheduling(max_seqs=256, token_budget=16384, chunked=False, mixed=False)


class TightKv:
    """The real cost model with a smaller KV budget."""

    def __init__(self, model: StepModel, kv: int) -> None:
        """Wrap `model`."""
        self.model, self.memory = model, Budget(kv)

    def __getattr__(self, name: str):
        """Step times from the real model."""
        return getattr(self.model, name)


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory):
    """A store with the embedded Azure code and conversation traces."""
    connection = open_store(tmp_path_factory.mktemp("sim") / "store.duckdb")
    ingest_sample(connection, "azure-conv")
    ingest_sample(connection, "azure-code")
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def h100() -> StepTable:
    """llama-3.1-8b on one H100, tabulated once."""
    return StepTable(StepModel.build("llama-3.1-8b", "h100"))


def test_isolated_requests_match_the_cost_model(h100: StepTable) -> None:
    """Requests far apart: TTFT is the prefill step (one step when the budget holds the whole
    prompt, a little more when an 8,192-token budget chunks it), TPOT the batch-1 decode."""
    inputs = np.array([17, 300, 1200, 4000, 9000, 20000])
    outputs = np.array([2, 50, 200, 31, 400, 120])
    work = Workload(np.arange(len(inputs)) * 1000.0, inputs, outputs)
    result = simulate(work, h100, Scheduling(max_seqs=256, token_budget=32768))
    sm = h100.model
    np.testing.assert_allclose(result.ttft_ms, sm.prefill_ms(1, inputs, 0), rtol=0.005)
    chunked = simulate(work, h100, Scheduling(max_seqs=256, token_budget=8192))
    assert np.all(chunked.ttft_ms[inputs > 8192] > result.ttft_ms[inputs > 8192])
    np.testing.assert_allclose(chunked.ttft_ms, result.ttft_ms, rtol=0.05)
    pairs = zip(inputs, outputs, strict=True)
    steps = [sm.decode_ms(1, i + np.arange(o - 1)).mean() for i, o in pairs]
    np.testing.assert_allclose(result.tpot_ms, steps, rtol=0.01)
    mid = sm.decode_ms(1, inputs + outputs / 2)
    np.testing.assert_allclose(result.tpot_ms, mid, rtol=0.01)
    np.testing.assert_allclose(result.queue_ms, 0.0, atol=1e-9)


def test_step_table_matches_direct_sums(h100: StepTable) -> None:
    """A tabulated decode run equals the summed per-step cost model within 0.1 %."""
    sm = h100.model
    rng = np.random.default_rng(1)
    for batch in (1, 3, 64, 256):
        for context in rng.uniform(batch, 300_000, 8):
            steps, ms = h100.decode_run(batch, context, 150)
            exact = sm.decode_ms(batch, (context + batch * np.arange(steps)) / batch).sum()
            assert ms == pytest.approx(exact, rel=1e-3)
            cut, _ = h100.decode_run(batch, context, 150, span_ms=exact / 3)
            assert 0 < cut < steps


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_prefill_only_server_is_md1(rho: float) -> None:
    """Poisson arrivals, fixed service: mean wait is Pollaczek-Khinchine's rho S / 2(1 - rho)."""
    service_ms = 10.0
    count = 300_000
    rng = np.random.default_rng(7)
    gaps = rng.exponential(service_ms / 1000.0 / rho, count)
    work = Workload(np.cumsum(gaps), np.full(count, 100), np.ones(count, dtype=int))
    result = simulate(work, FixedSteps(service_ms), ONE_AT_A_TIME)
    expected = rho * service_ms / (2.0 * (1.0 - rho))
    assert result.queue_ms.mean() == pytest.approx(expected, rel=0.05)
    np.testing.assert_allclose(result.ttft_ms - result.queue_ms, service_ms, rtol=1e-9)


@pytest.mark.parametrize("router", ["round-robin", "least-loaded"])
def test_more_replicas_never_raise_p99_ttft(con, h100: StepTable, router: str) -> None:
    """At a fixed (overloading) rate, doubling replicas does not raise p99 TTFT."""
    work = load_workload(con, "azure-conv", end=900, rate_scale=4.0)
    p99 = [
        np.percentile(simulate(work, h100, replicas=r, router=router).ttft_ms, 99)
        for r in (1, 2, 4)
    ]
    assert p99[0] >= p99[1] >= p99[2]
    assert p99[0] > 2 * p99[2]


def test_attainment_falls_with_rate_scale(con, h100: StepTable) -> None:
    """SLO attainment is non-increasing over a grid of rate scales, from 1.0 down."""
    work = load_workload(con, "azure-conv", end=1200)
    attained = [simulate(work.scaled(s), h100).attainment(SLOS) for s in (0.5, 1, 2, 3, 4, 6, 8)]
    assert attained == sorted(attained, reverse=True)
    assert attained[0] == 1.0 and attained[-1] < 0.5


def test_goodput_brackets_the_attainment_target(con, h100: StepTable) -> None:
    """Attainment holds at the goodput scale and fails a little above it."""
    work = load_workload(con, "azure-conv", end=1200)
    found = goodput_search(work, h100, SLOS, 0.99)
    scale, rps = found.scale, found.rps
    assert rps == pytest.approx(scale * work.rate_rps)
    assert simulate(work.scaled(scale), h100).attainment(SLOS) >= 0.99
    assert simulate(work.scaled(scale * 1.05), h100).attainment(SLOS) < 0.99
    tight = parse_slos("ttft_p99=5ms")
    nothing = goodput_search(work, h100, tight)
    assert (nothing.scale, nothing.rps, nothing.result) == (0.0, 0.0, None)


def test_goodput_search_keeps_the_replay_it_answers_with(
    con, h100: StepTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search's replay is the one a fresh simulate() at its scale gives (same latencies);
    started from a workload already scaled near the answer, a small first step lands within the
    same tolerance as the default doubling, in fewer replays (a first step of 1 + tolerance, as
    the plan search re-measures with, in the fewest: two when started at the answer); a first
    step of 1 is refused."""
    work = load_workload(con, "azure-conv", end=1200)
    full = goodput_search(work, h100, SLOS, 0.99, 0.05)
    again = simulate(work.scaled(full.scale), h100, slos=SLOS)
    assert np.array_equal(full.result.ttft_ms, again.ttft_ms)
    assert np.array_equal(full.result.tpot_ms, again.tpot_ms, equal_nan=True)
    module = sys.modules["planner.simulate.goodput"]
    replays = []
    monkeypatch.setattr(module, "simulate", lambda *a, **k: replays.append(1) or simulate(*a, **k))
    near = work.scaled(full.scale * 0.97)
    counts = {}
    for step in (2.0, 1.25, 1.05):
        replays.clear()
        found = goodput_search(near, h100, SLOS, 0.99, 0.05, first_step=step)
        assert found.rps == pytest.approx(full.rps, rel=0.06)
        assert simulate(near.scaled(found.scale * 1.06), h100).attainment(SLOS) < 0.99
        counts[step] = len(replays)
    assert counts[1.05] <= counts[1.25] < counts[2.0], counts
    replays.clear()
    settled = goodput_search(work.scaled(full.scale), h100, SLOS, 0.99, 0.05, first_step=1.05)
    assert settled.rps == pytest.approx(full.rps) and len(replays) == 2
    with pytest.raises(PlannerError, match="first step"):
        goodput_search(work, h100, SLOS, 0.99, 0.05, first_step=1.0)


@pytest.mark.parametrize(("disagg", "tpot"), [(None, "20ms"), ((1, 1), "8ms")], ids=str)
def test_a_replay_stops_early_exactly_when_its_full_run_misses_the_target(
    con, h100: StepTable, disagg: tuple[int, int] | None, tpot: str
) -> None:
    """With stop_below, simulate() gives up once too many requests missed any of TTFT, TPOT or
    end-to-end (each request counted once), and only then: None where the full replay's
    attainment is below the target, the full replay's own latencies otherwise. Where every
    first token is in time (TTFT within 60 s) but TPOT misses, the replay stops too (it used
    to run to the end)."""
    work = load_workload(con, "azure-conv", end=1200)
    slos = parse_slos(["ttft_p99=60s", f"tpot_p99={tpot}", "e2e_p99=60s"])
    stopped_on_tpot = 0
    for scale in (1, 2, 4, 8):
        full = simulate(work.scaled(scale), h100, slos=slos, disagg=disagg)
        early = simulate(work.scaled(scale), h100, slos=slos, disagg=disagg, stop_below=0.99)
        assert (early is None) == (full.attainment() < 0.99), scale
        if early is not None:
            assert np.array_equal(early.ttft_ms, full.ttft_ms)
            assert np.array_equal(early.tpot_ms, full.tpot_ms, equal_nan=True)
        elif (full.ttft_ms <= 60_000).mean() >= 0.99:
            stopped_on_tpot += 1
    assert stopped_on_tpot >= 1


def test_mixed_hardware_disaggregation_prefills_on_one_part_and_decodes_on_another() -> None:
    """Prefill on H100, decode on L4, requests 20 s apart (each is done, at L4's ~58 ms a token,
    before the next arrives: no queueing, no shared batch): each request's decode time (done -
    first token, which the decode instance streams when it takes the request in) is the all-L4
    replica's, and its TTFT the all-H100 1P:1D replica's plus the difference of the two KV
    hand-offs: the mixed one crosses the slower side's scale-out link (L4, 1.25 GB/s per GPU),
    the H100-only one the H100's own interconnect."""
    rng = np.random.default_rng(5)
    count = 40
    inputs, outputs = rng.integers(200, 3000, count), rng.integers(20, 200, count)
    work = Workload(np.arange(count) * 20.0, inputs, outputs)
    h100 = StepTable(StepModel.build("llama-3.1-8b", "h100"))
    l4 = StepTable(StepModel.build("llama-3.1-8b", "l4"))
    mixed = simulate(work, l4, disagg=(1, 1), prefill_model=h100)
    fast, slow = (simulate(work, t, disagg=(1, 1)) for t in (h100, l4))
    decode = (mixed.e2e_ms - mixed.ttft_ms) - (slow.e2e_ms - slow.ttft_ms)
    np.testing.assert_allclose(decode, 0.0, atol=1e-6)
    link = min(h100.model.accelerator.scale_out_gbs, l4.model.accelerator.scale_out_gbs)
    assert link == l4.model.accelerator.scale_out_gbs == 1.25
    handoff = h100.model.kv_transfer_ms(inputs, link) - h100.model.kv_transfer_ms(inputs)
    np.testing.assert_allclose(mixed.ttft_ms - fast.ttft_ms, handoff, rtol=1e-6, atol=1e-6)
    assert (handoff > 0).all() and (mixed.e2e_ms < 20_000).all()
    with pytest.raises(PlannerError, match="P:D split"):
        simulate(work, l4, prefill_model=h100)


def test_disaggregated_first_token_reaches_the_client_through_the_decode_instance() -> None:
    """Closed form, 1P:1D, prefill 10 ms a prompt, decode 4 ms a step, free transfers: a request
    at 0 is prefilled by 10 and taken in by the idle decode instance at once (TTFT 10 ms); one
    at 5 ms waits for the prefill instance, is prefilled by 20, and joins the busy decode batch
    at its next step, 22 (TTFT 17 ms, not the prefill's 15); each then decodes a token every
    4 ms."""
    work = Workload(np.array([0.0, 0.005]), np.array([100, 100]), np.array([10, 10]))
    result = simulate(work, StepTable(FixedSteps(10.0, 4.0)), disagg=(1, 1))
    np.testing.assert_allclose(result.ttft_ms, [10.0, 17.0])
    np.testing.assert_allclose(result.tpot_ms, [4.0, 4.0])


def test_goodput_of_a_sample_too_small_to_saturate_a_replica_is_bounded() -> None:
    """A 240-request sample that a TP8 P:D 2:1 replica serves within TTFT p99 <= 2 s even when
    it all arrives at once: the goodput is the fastest replay the replica kept pace with (the
    last request done within twice the arrivals' span), not the search's ceiling of 4096x."""
    rng = np.random.default_rng(3)
    n = 240
    work = Workload(
        np.sort(rng.uniform(0, 120, n)), rng.integers(1500, 2500, n), rng.integers(50, 200, n)
    )
    table = StepTable(StepModel.build("llama-3.1-8b", "h100", tp=8))
    slos = parse_slos(["ttft_p99=2000ms"])
    at_once = simulate(work.scaled(1e6), table, replicas=1, disagg=(2, 1), slos=slos)
    assert at_once.attainment() >= 0.99 and not at_once.kept_pace()
    found = goodput_search(work, table, slos, 0.99, disagg=(2, 1))
    scale, rps = found.scale, found.rps
    assert 1 < scale < 4096 and rps == pytest.approx(scale * work.rate_rps)
    assert simulate(work.scaled(scale), table, disagg=(2, 1)).kept_pace()
    assert not simulate(work.scaled(scale * 1.05), table, disagg=(2, 1)).kept_pace()


def test_disaggregation_lowers_tpot_on_prefill_heavy_trace(con, h100: StepTable) -> None:
    """Azure code (long prompts): 1P+1D beats 2 aggregated replicas on TPOT p99."""
    work = load_workload(con, "azure-code", end=1800, rate_scale=2.0)
    aggregated = simulate(work, h100, replicas=2).summary()
    split = simulate(work, h100, disagg=(1, 1)).summary()
    assert split["tpot_ms"]["p99"] < aggregated["tpot_ms"]["p99"]
    assert split["served"] == aggregated["served"] == work.requests


def test_disaggregated_decode_frees_all_kv_of_finished_requests(h100: StepTable) -> None:
    """Requests one at a time through 1P+1D: the KV cache in use peaks at one request's
    prompt + output, however many went before (a token leaked per handed-over request once
    filled a decode instance's cache over a day-long replay)."""

    def peak(count: int) -> int:
        work = Workload(np.arange(count) * 100.0, np.full(count, 1000), np.full(count, 50))
        return simulate(work, h100, disagg=(1, 1)).summary()["peak_kv_tokens"]

    assert peak(300) == peak(1) <= 1000 + 50


def test_mixed_chunked_steps_smooth_tpot(con, h100: StepTable) -> None:
    """Small mixed chunks (vLLM-style) cut decode stalls: lower TPOT p99 than whole prompts
    in prefill-first steps that pause decoding."""
    work = load_workload(con, "azure-code", end=900, rate_scale=2.0)
    plain = simulate(work, h100, PREFILL_FIRST).summary()
    chunked = simulate(work, h100, Scheduling(max_seqs=256, token_budget=1024)).summary()
    assert chunked["tpot_ms"]["p99"] < plain["tpot_ms"]["p99"]
    assert chunked["served"] == work.requests


@pytest.mark.parametrize(
    "rules", [PREFILL_FIRST, Scheduling(max_seqs=256, token_budget=512)], ids=["whole", "chunked"]
)
def test_kv_budget_is_respected_with_preemption(h100: StepTable, rules: Scheduling) -> None:
    """Never more KV resident than the budget; a tight budget forces preemptions."""
    budget = 60_000
    count = 120
    work = Workload(np.zeros(count), np.full(count, 2000), np.full(count, 800))
    result = simulate(work, TightKv(h100.model, budget), rules)
    assert result.preemptions > 0
    assert 0.9 * budget < result.peak_kv_tokens <= budget
    assert result.served.all()
    roomy = simulate(work, h100, rules)
    assert roomy.preemptions == 0
    assert result.e2e_ms.max() > roomy.e2e_ms.max()


class NeverStalled(Replica):
    """A replica that tries to compose a step every time (the stall shortcut off)."""

    stalled = property(lambda self: False, lambda self, value: None)


@pytest.mark.parametrize(
    "rules",
    [
        Scheduling(max_seqs=64, token_budget=2048),
        Scheduling(max_seqs=64, token_budget=8192, chunked=False, reserve_output=True),
    ],
    ids=["vllm-like", "trtllm-like"],
)
@pytest.mark.parametrize("disagg", [None, (1, 1)], ids=str)
def test_a_stalled_queue_is_not_recomposed_until_a_sequence_leaves(
    con,
    h100: StepTable,
    rules: Scheduling,
    disagg: tuple[int, int] | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under KV pressure the queue's head waits for a sequence to finish or be preempted; the
    replica skips composing steps until then (the least-loaded router stops every replica at
    each arrival, where it would try again), and every request's latencies are those of a
    replica that tries to compose before every step, in fewer compositions."""
    work = load_workload(con, "azure-conv", end=600).scaled(8.0)
    model = TightKv(h100.model, 16_000)
    composed = []
    original = Replica._compose

    def counted(self: Replica, t: float, room: int):
        composed.append(1)
        return original(self, t, room)

    monkeypatch.setattr(Replica, "_compose", counted)
    fast = simulate(work, model, rules, replicas=2, disagg=disagg)
    shortcut = len(composed)
    composed.clear()
    for module in ("simulator", "disagg"):
        monkeypatch.setattr(sys.modules[f"planner.simulate.{module}"], "Replica", NeverStalled)
    slow = simulate(work, model, rules, replicas=2, disagg=disagg)
    assert np.array_equal(fast.ttft_ms, slow.ttft_ms)
    assert np.array_equal(fast.e2e_ms, slow.e2e_ms)
    assert fast.preemptions == slow.preemptions
    assert shortcut < len(composed)


def test_requests_larger_than_the_cache_are_rejected(h100: StepTable) -> None:
    """A request that cannot fit even alone is not served and fails every SLO."""
    work = Workload(np.array([0.0, 1.0]), np.array([500, 10]), np.array([10, 10]))
    result = simulate(work, TightKv(h100.model, 300))
    assert result.served.tolist() == [False, True]
    assert result.attainment(SLOS) == 0.5


def test_load_workload_slices_and_scales(con) -> None:
    """A slice keeps its requests, relative to its start; a rate scale compresses time."""
    full = load_workload(con, "azure-conv")
    part = load_workload(con, "azure-conv", start=600, end=1200)
    inside = (full.arrival_s >= 600) & (full.arrival_s < 1200)
    assert part.requests == inside.sum()
    np.testing.assert_allclose(part.arrival_s, full.arrival_s[inside] - 600)
    fast = load_workload(con, "azure-conv", start=600, end=1200, rate_scale=4)
    assert fast.rate_rps == pytest.approx(4 * part.rate_rps)
    np.testing.assert_array_equal(fast.input_tokens, part.input_tokens)
    with pytest.raises(PlannerError, match="no requests in"):
        load_workload(con, "azure-conv", start=10**7, end=10**7 + 1)


def test_synthetic_gamma_arrivals(con) -> None:
    """Gamma inter-arrivals have the asked rate and CV; lengths come from the trace; seeded."""
    work = synthetic_workload(con, rate_rps=20, cv=3, count=200_000, lengths="azure-code")
    gaps = np.diff(work.arrival_s)
    assert 1 / gaps.mean() == pytest.approx(20, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(3, rel=0.05)
    code = load_workload(con, "azure-code")
    assert set(work.input_tokens[:1000]) <= set(code.input_tokens)
    again = synthetic_workload(con, rate_rps=20, cv=3, count=200_000, lengths="azure-code")
    np.testing.assert_array_equal(work.arrival_s, again.arrival_s)


def test_rate_windows_replay_each_windows_rate(tmp_path: Path) -> None:
    """ServeGen windows: counts follow each window's rate, lengths its PMFs, seeded."""
    src = shared_path("traces", "alibaba_servegen", "data", "language", "m-large")
    folder = tmp_path / "servegen"
    folder.mkdir()
    for name in ("chunk-0-trace.csv", "chunk-0-dataset.json.gz", "chunk-1-trace.csv"):
        shutil.copy(src / name, folder)
    store = open_store(tmp_path / "s.duckdb")
    ingest_path(store, folder, name="m-large")
    rows = store.execute(
        "SELECT series, window_start_s, rate_rps FROM rate_windows "
        "WHERE window_start_s < 86400 AND rate_rps > 0"
    ).fetchall()
    work = load_workload(store, "m-large", start=0, end=86400, seed=3)
    expected = sum(rate * 600 for _, _, rate in rows)
    assert work.requests == pytest.approx(expected, rel=0.1)
    assert np.all(np.diff(work.arrival_s) >= 0) and work.arrival_s.max() < 86400
    support = {
        t
        for (t,) in store.execute(
            "SELECT DISTINCT tokens FROM length_dists WHERE which = 'input_tokens'"
        ).fetchall()
    }
    assert set(work.input_tokens.tolist()) <= support
    same = load_workload(store, "m-large", start=0, end=86400, seed=3)
    other = load_workload(store, "m-large", start=0, end=86400, seed=4)
    np.testing.assert_array_equal(work.arrival_s, same.arrival_s)
    assert work.requests != other.requests or not np.array_equal(work.arrival_s, other.arrival_s)
    store.close()


def test_slo_parsing() -> None:
    """SLOs parse in ms or s; a bad one names the accepted form."""
    ttft, tpot = parse_slos(["ttft_p99=1000ms", "TPOT_p90 = 0.05s"])
    assert (ttft.metric, ttft.percentile, ttft.limit_ms) == ("ttft", 99, 1000)
    assert (tpot.metric, tpot.percentile, tpot.limit_ms) == ("tpot", 90, 50)
    assert str(ttft) == "ttft_p99=1000ms"
    for bad in ("ttft=1s", "latency_p99=1s", "ttft_p99=fast", "ttft_p99=100", "ttft_p100=1s"):
        with pytest.raises(PlannerError, match=r"ttft_p99=1000ms|percentile"):
            parse_slos([bad])


def test_disagg_ratio_parsing() -> None:
    """P:D needs an instance on each side."""
    assert parse_disagg("2:3") == (2, 3)
    for bad in ("0:1", "1:0", "1-1", "a:b"):
        with pytest.raises(PlannerError, match="P:D"):
            parse_disagg(bad)


def _cli(db: Path, *args: str):
    """Run `planner simulate` on the conversation sample."""
    return invoke("simulate", "azure-conv", "--model", "llama-3.1-8b", "--db", db, *args)


@pytest.fixture(scope="module")
def cli_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store file with the conversation sample."""
    db = tmp_path_factory.mktemp("cli") / "store.duckdb"
    store = open_store(db)
    ingest_sample(store, "azure-conv")
    store.close()
    return db


def test_cli_json(cli_db: Path) -> None:
    """--json: percentiles, attainment, goodput and the plan."""
    result = _cli(
        cli_db,
        "--accelerator", "h100", "--end", "1200", "--replicas", "2", "--json",
        "--slo", "ttft_p99=1000ms", "--slo", "tpot_p99=50ms",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["ttft_ms"]) >= {"p50", "p90", "p99"}
    assert out["requests"] == out["served"] > 0
    assert 0.99 <= out["slo_attainment"] <= 1.0
    assert out["goodput_rps"] > 0
    assert out["plan"]["gpus"] == 2 and out["plan"]["replicas"] == 2


def test_cli_mixed_prefill_and_decode_hardware(cli_db: Path) -> None:
    """--prefill-accelerator h100 with --accelerator a100 --disagg 2:1: the plan block names
    both sides, and GPUs and $/hour add two H100 and one A100 per replica (catalog prices)."""
    result = _cli(
        cli_db, "--accelerator", "a100", "--disagg", "2:1", "--prefill-accelerator", "h100",
        "--prefill-tp", "2", "--end", "600", "--replicas", "2", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)["plan"]
    catalog = load_catalog()
    assert plan["prefill"]["accelerator"] == "h100" and plan["prefill"]["tp"] == 2
    assert plan["accelerator"] == "a100" and plan["tp"] == 1
    assert plan["gpus"] == 2 * (2 * 2 + 1)
    price = 2 * (2 * 2 * catalog["h100"].price_per_hour + catalog["a100"].price_per_hour)
    assert plan["cost_per_hour"] == pytest.approx(price)
    human = _cli(cli_db, "--accelerator", "a100", "--disagg", "2:1", "--prefill-accelerator",
                 "h100", "--end", "600", "--no-goodput")  # fmt: skip
    assert "3 GPUs, decode on a100" in human.stdout and "prefill on h100" in human.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--accelerator", "h100", "--model", "llama-3.1-405b"], "405b"),
        (["--accelerator", "h100", "--disagg", "0:1"], "P:D"),
        (["--accelerator", "h100", "--slo", "ttft<1s"], "ttft_p99=1000ms"),
        (["--accelerator", "h100", "--start", "99999999"], "no requests"),
        (["--accelerator", "nope"], "nope"),
        (["--accelerator", "a100", "--prefill-accelerator", "h100"], "--disagg"),
        (["--accelerator", "a100", "--disagg", "1:1", "--prefill-accelerator", "nope"], "nope"),
        (["--accelerator", "a100", "--disagg", "1:1", "--prefill-tp", "0"], "tp"),
    ],
)
def test_cli_bad_input_is_one_line_exit_1(cli_db: Path, args: list[str], message: str) -> None:
    """Unfit plan, bad ratio, bad SLO, empty slice: one line on stderr, exit code 1."""
    result = _cli(cli_db, *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
