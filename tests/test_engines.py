"""Engine profiles, the step composition each engine's scheduler implies, and benchmark mode."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FixedSteps, invoke

from planner.costmodel import Speculative, StepModel
from planner.costmodel.calibration import Calibration, load_default_calibration
from planner.costmodel.engine import HostCosts, bundled_engines, load_engine
from planner.errors import PlannerError
from planner.simulate import Benchmark, Scheduling, StepTable, run_benchmark
from planner.simulate.disagg import run_disaggregated_benchmark
from planner.simulate.replica import Replica, Requests, Step


def test_bundled_profiles_cite_their_sources() -> None:
    """vLLM, SGLang and TensorRT-LLM ship as profiles, each default with a source."""
    engines = bundled_engines()
    assert set(engines) == {"vllm", "sglang", "trtllm"}
    for profile in engines.values():
        assert profile.version and len(profile.sources) >= 4
        assert any(s.startswith("https://") for s in profile.sources)
    vllm, sglang, trt = engines["vllm"], engines["sglang"], engines["trtllm"]
    assert vllm.scheduler.chunked_prefill and vllm.scheduler.mixed_batches
    assert not sglang.scheduler.mixed_batches
    assert not trt.scheduler.chunked_prefill and trt.scheduler.kv_admission == "prompt+output"
    assert trt.memory.of == "free"


def test_overrides_by_release_device_and_flags() -> None:
    """Older releases and device sizes change defaults; launch flags hold over both."""
    assert load_engine("vllm").resolve(80).runtime.overlap_scheduler
    assert not load_engine("vllm@0.12.0").resolve(80).runtime.overlap_scheduler
    assert load_engine("vllm").resolve(24).scheduler.token_budget == 2048
    assert load_engine("sglang").resolve(180).scheduler.token_budget == 16384
    assert load_engine("sglang@0.5.1").resolve(80).memory.reserve_gb == 10.0
    flagged = load_engine("vllm").with_flags(token_budget=4096, max_seqs=8).resolve(24)
    assert (flagged.scheduler.token_budget, flagged.scheduler.max_seqs) == (4096, 8)
    trt = load_engine("trtllm").resolve(80).runtime
    assert trt.graphed(32) and not trt.graphed(48)
    assert load_engine("trtllm").with_flags(cuda_graph_max_batch=48).resolve(80).runtime.graphed(48)


def test_engine_errors_are_one_line(tmp_path: Path) -> None:
    """Unknown engine, bad release, bad profile field: a PlannerError naming what is wrong."""
    with pytest.raises(PlannerError, match="unknown engine 'tgi'; engines: sglang, trtllm, vllm"):
        load_engine("tgi")
    with pytest.raises(PlannerError, match="no version number"):
        load_engine("vllm@latest")
    mine = tmp_path / "mine.toml"
    text = (Path(__file__).parents[1] / "datasets" / "engines" / "vllm.toml").read_text()
    mine.write_text(text.replace("token_budget = 8192", "token_budget = -1"))
    with pytest.raises(PlannerError, match=r"mine.toml: bad engine profile field scheduler.token"):
        load_engine(str(mine))
    mine.write_text(text.replace("token_budget = 8192", "token_budget = 4096"))
    assert load_engine(f"{mine}@0.12.0").resolve(80).scheduler.token_budget == 4096


def _log(rules: Scheduling, prompts: list[int], outputs: list[int]) -> list[Step]:
    """The steps one replica takes for requests all arriving at time 0."""
    reqs = Requests(prompts, outputs, [0.0] * len(prompts))
    log: list[Step] = []
    replica = Replica(reqs, StepTable(FixedSteps(10.0, 2.0)), rules, log=log)
    for rid in range(len(prompts)):
        replica.push(rid, 0.0)
    replica.run()
    return log


def test_vllm_packs_prompts_and_chunks_the_last() -> None:
    """Mixed chunked steps: 3 prompts of 1000 in a 2048 budget -> 2000 + 48, then the rest."""
    log = _log(Scheduling(max_seqs=8, token_budget=2048), [1000, 1000, 1000], [4, 4, 4])
    steps = [s for s in log if s.prefill_tokens]
    assert [s.prefill_tokens for s in steps] == [2048, 952]
    assert steps[1].decode_seqs == 2
    assert steps[1].prefill_pairs == pytest.approx(952 * 48 + 952 * 953 / 2)


def test_trtllm_schedules_whole_prompts_only() -> None:
    """No chunking: a prompt that does not fit the rest of the budget waits for the next step."""
    rules = Scheduling(max_seqs=8, token_budget=2048, chunked=False)
    log = _log(rules, [1500, 1500], [4, 4])
    assert [s.prefill_tokens for s in log if s.prefill_tokens] == [1500, 1500]


def test_sglang_pauses_decoding_for_prefill_steps() -> None:
    """Prefill-first: a step carrying prompts carries no decodes."""
    rules = Scheduling(max_seqs=8, token_budget=1024, mixed=False)
    log = _log(rules, [1000, 1000, 1000], [50, 50, 50])
    prefill = [s for s in log if s.prefill_tokens]
    assert len(prefill) >= 3 and all(s.decode_seqs == 0 for s in prefill)


@pytest.mark.parametrize(("interval", "ttft_ms"), [(1, 10.5), (8, 20.5)])
def test_receive_interval_holds_arrivals_until_the_next_poll(interval: int, ttft_ms: float) -> None:
    """SGLang's --scheduler-recv-interval N: while sequences decode, arrivals are taken in only
    every N decode steps (a prefill step counts as N). Prefill 10 ms, decode 2 ms: request 0's
    prompt ends at 10 ms; request 1 arrives at 15.5 ms. Polling every step it waits for the
    decode step under way (to 16 ms) and prefills by 26 ms; with N = 8 the polls fall at 10 and
    26 ms, so it prefills by 36 ms."""
    rules = Scheduling(max_seqs=8, token_budget=1024, mixed=False, recv_interval=interval)
    reqs = Requests([100, 100], [1000, 5], [0.0, 0.0155])
    replica = Replica(reqs, StepTable(FixedSteps(10.0, 2.0)), rules)
    replica.push(0, 0.0)
    replica.push(1, 0.0155)
    replica.run()
    assert reqs.first[0] * 1000 == pytest.approx(10.0)
    assert (reqs.first[1] - 0.0155) * 1000 == pytest.approx(ttft_ms)
    assert all(done > 0 for done in reqs.done)


def test_admission_reserving_the_output_holds_fewer_sequences() -> None:
    """No-evict admission (TensorRT-LLM) keeps fewer requests in flight on a small cache."""

    reqs_counts = []
    for reserve in (False, True):
        rules = Scheduling(max_seqs=64, token_budget=8192, reserve_output=reserve)
        reqs = Requests([1000] * 8, [1000] * 8, [0.0] * 8)
        log: list[Step] = []
        replica = Replica(reqs, StepTable(FixedSteps(kv=10_000)), rules, log=log)
        for rid in range(8):
            replica.push(rid, 0.0)
        replica.run()
        reqs_counts.append(max(s.decode_seqs + s.prefill_seqs for s in log))
        assert all(d > 0 for d in reqs.done)
    assert reqs_counts[1] < reqs_counts[0]


def test_benchmark_closed_loop_obeys_littles_law() -> None:
    """N clients, no think time: throughput x mean latency = N; TPOT is the decode step."""
    rules = Scheduling(max_seqs=64, token_budget=8192)
    bench = Benchmark(16, 1000, 64, requests=400, warmup=32)
    run = run_benchmark(StepTable(FixedSteps(10.0, 2.0)), rules, bench, delay_ms=0.0)
    summary = run.summary()
    assert summary["completed"] == 400
    assert summary["request_throughput"] * summary["mean_e2el_ms"] / 1000 == pytest.approx(
        16, rel=0.05
    )
    assert 2.0 <= summary["median_tpot_ms"] <= 2.0 + 16 * 10.0 / 63


def test_measured_phase_starts_together_after_the_warm_up() -> None:
    """aiperf waits for every warm-up response, then starts all clients at once: the measured
    first wave is sent when the last warm-up request completes, none before; with no
    warm-up phase (fewer warm-up requests than clients) clients never wait."""
    rules = Scheduling(max_seqs=64, token_budget=8192)
    bench = Benchmark(4, 300, 20, requests=40, warmup=8)
    lengths = Benchmark(4, 300, 20, requests=40, warmup=8, osl_std=6.0)
    for load in (bench, lengths):
        run = run_benchmark(StepTable(FixedSteps(10.0, 2.0)), rules, load, delay_ms=0.0)
        reqs = run.reqs
        last_warm_up = max(reqs.done[:8])
        wave = np.asarray(reqs.arrival[8:12])
        np.testing.assert_allclose(wave, last_warm_up)
        assert min(reqs.arrival[8:]) == pytest.approx(last_warm_up)
        assert run.summary()["completed"] == 40
    loose = run_benchmark(
        StepTable(FixedSteps(10.0, 2.0)), rules, Benchmark(4, 300, 20, 40, 2, osl_std=6.0), 0.0
    )
    assert min(loose.reqs.arrival[4:]) == pytest.approx(min(loose.reqs.done[:4]))


def test_range_ratio_draws_lengths_like_vllm_random_dataset() -> None:
    """--random-range-ratio 0.8: integer lengths uniform over [0.8 x, 1 x] the nominal ones,
    both ends reached, mean 0.9 x; 1 keeps every length fixed; a ratio outside [0, 1] fails."""
    isl, osl = Benchmark(50, 1000, 200, requests=4000, range_ratio=0.8).lengths()
    for drawn, n in ((isl, 1000), (osl, 200)):
        assert drawn.min() == int(0.8 * n) and drawn.max() == n
        assert drawn.mean() == pytest.approx(0.9 * n, rel=0.01)
        assert len(np.unique(drawn)) == n - int(0.8 * n) + 1
    fixed = Benchmark(50, 1000, 200, requests=400).lengths()
    assert set(fixed[0]) == {1000} and set(fixed[1]) == {200}
    with pytest.raises(PlannerError, match="range ratio"):
        Benchmark(4, 100, 10, range_ratio=1.5)


def test_spread_lengths_break_the_prefill_convoy() -> None:
    """Four clients, 100 ms per prompt a step carries, 1 ms decodes, a budget that takes all
    four prompts in one step: with equal lengths the clients that start together finish
    together and send their prompts into one step again, round after round (every TTFT four
    prompts long); with lengths spread as InferenceX draws them they drift apart and most
    prompts share their step with fewer others."""
    rules = Scheduling(max_seqs=64, token_budget=4000, chunked=False)
    table = StepTable(FixedSteps(100.0, 1.0))
    fixed = run_benchmark(table, rules, Benchmark(4, 900, 900, requests=200), 0.0)
    spread = run_benchmark(table, rules, Benchmark(4, 900, 900, 200, range_ratio=0.8), 0.0)
    np.testing.assert_allclose(fixed.ttft_ms, 4 * 100.0)
    assert spread.ttft_ms.mean() < 0.6 * fixed.ttft_ms.mean()


def test_single_client_sees_the_bare_steps() -> None:
    """One client: TTFT is the front end plus one prefill step, TPOT one decode step."""
    rules = Scheduling(max_seqs=64, token_budget=8192)
    run = run_benchmark(StepTable(FixedSteps(10.0, 2.0)), rules, Benchmark(1, 500, 33), 0.0)
    np.testing.assert_allclose(run.ttft_ms, 10.0)
    np.testing.assert_allclose(run.tpot_ms, 2.0)
    model = StepModel.build("llama-3.1-8b", "h100", engine=load_engine("vllm"))
    real = run_benchmark(StepTable(model), rules, Benchmark(1, 2000, 65), 0.0)
    assert real.ttft_ms.mean() == pytest.approx(model.prefill_ms(1, 2000)[0], rel=0.01)
    decode = model.decode_ms(1, 2000 + np.arange(64)).mean()
    assert real.tpot_ms.mean() == pytest.approx(decode, rel=0.02)


def test_engine_attention_cost_per_sequence_and_layer_is_added_to_the_gpu_time() -> None:
    """With no CPU costs, an engine's `seq_layer_ms` lengthens a graphed decode step by exactly
    that much per sequence per layer (llama-3.1-8b: 32 layers), and a prefill step by it per
    prompt; zero leaves the step as the kernels price it."""
    base = load_default_calibration()
    bare = HostCosts(step_ms=0.0, seq_ms=0.0, layer_ms=0.0, frontend_ms=0.0)
    models = [
        StepModel.build(
            "llama-3.1-8b",
            "h100",
            engine=load_engine("vllm"),
            calibration=Calibration(
                base.entries, base.meta, {"vllm": bare.model_copy(update={"seq_layer_ms": x})}
            ),
        )
        for x in (0.0, 0.001)
    ]
    plain, extra = (m.decode_ms(64, 2000)[0] for m in models)
    assert extra - plain == pytest.approx(0.001 * 64 * 32, rel=1e-6)
    plain, extra = (m.prefill_ms(2, 1000)[0] for m in models)
    assert extra - plain == pytest.approx(0.001 * 2 * 32, rel=1e-3)


def test_disaggregated_benchmark_completes_every_request() -> None:
    """1 prefill + 2 decode workers in a closed loop: all measured requests finish, and TTFT
    is at least the prefill step."""
    rules = Scheduling(max_seqs=64, token_budget=8192)
    table = StepTable(FixedSteps(10.0, 2.0))
    bench = Benchmark(8, 1000, 32, requests=200, warmup=16)
    run = run_disaggregated_benchmark(table, table, rules, rules, (1, 2), bench, 1.0)
    summary = run.summary()
    assert summary["completed"] == 200
    assert np.all(run.ttft_ms >= 10.0)
    assert summary["request_throughput"] * summary["mean_e2el_ms"] / 1000 == pytest.approx(
        8, rel=0.1
    )


def test_disaggregated_decode_takes_each_request_in_at_its_next_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1 prefill + 1 decode worker, 16 clients with spread output lengths, no KV or sequence
    limit on the decode side: every request whose KV arrives joins the decode batch at its next
    step boundary (within one 2 ms step), which is when its first token reaches the client. The
    decode side's own completions send the next prompts to the prefill side; it must not run
    past the time those come back (it once ran on to its next completion, seconds late)."""
    arrived: dict[int, float] = {}
    push = Replica.push

    def recording(self: Replica, rid: int, t: float) -> None:
        """Note when each prefilled request reaches the decode side."""
        if not self.prefill_only:
            arrived[rid] = t
        push(self, rid, t)

    monkeypatch.setattr(Replica, "push", recording)
    rules = Scheduling(max_seqs=1024, token_budget=8192)
    table = StepTable(FixedSteps(10.0, 2.0))
    bench = Benchmark(16, 1000, 200, requests=320, warmup=32, range_ratio=0.3)
    run = run_disaggregated_benchmark(table, table, rules, rules, (1, 1), bench, 1.0)
    first = np.asarray(run.reqs.first)
    lag = np.array([first[rid] - t for rid, t in arrived.items()]) * 1000.0
    assert len(arrived) == 352 and lag.min() >= 0.0 and lag.max() <= 2.0 + 1e-9


def test_speculative_decoding_prices_decode_per_expected_token() -> None:
    """A verify step of k+1 tokens plus k draft passes, per 1 + a + ... + a^k tokens."""
    spec = Speculative(1, 0.7)
    assert spec.tokens_per_step == pytest.approx(1.7)
    assert Speculative.parse("3:0.5").tokens_per_step == pytest.approx(1.875)
    plain = StepModel.build("deepseek-v3", "h200", tp=8)
    mtp = StepModel.build("deepseek-v3", "h200", tp=8, speculative=spec)
    for batch in (1, 64):
        ratio = mtp.decode_ms(batch, 2000)[0] / plain.decode_ms(batch, 2000)[0]
        assert 1 / 1.7 < ratio < 1.0
    assert mtp.prefill_ms(1, 2000)[0] == pytest.approx(plain.prefill_ms(1, 2000)[0])
    for bad in ("0:0.5", "1:1.0", "x"):
        with pytest.raises(PlannerError, match="speculative"):
            Speculative.parse(bad)


def test_cli_benchmark_mode_json_and_engine_line() -> None:
    """`planner simulate --concurrency`: vllm-bench-like keys; the human output names the
    engine it assumed."""
    args = ["simulate", "--model", "llama-3.1-8b", "--concurrency", "4", "--isl", "512"]
    args += ["--osl", "32", "--requests", "40"]
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["completed"] == 40 and out["max_concurrency"] == 4
    assert 0 < out["mean_ttft_ms"] < 1000 and 0 < out["mean_tpot_ms"] < 50
    assert out["plan"]["engine"] == "vllm" and out["plan"]["token_budget"] == 8192
    sglang = json.loads(invoke(*args, "--engine", "sglang@0.5.1", "--json").stdout)
    assert sglang["plan"]["engine"] == "sglang@0.5.1"
    human = invoke(*args)
    assert "engine: vllm (vLLM (V1 engine, vllm serve)" in human.stdout
    bad = invoke("simulate", "--engine", "tgi", "--concurrency", "2")
    assert bad.exit_code == 1 and "unknown engine 'tgi'" in bad.stderr
    assert invoke("simulate").exit_code == 1
