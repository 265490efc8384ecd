"""Latency cost model: operator counts, parallelism, memory, calibration accuracy, bad input."""

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, shared_path

from planner.costmodel import (
    Accelerator,
    Calibration,
    MemoryPlan,
    ModelCard,
    StepModel,
    get_accelerator,
    list_cards,
    load_card,
    load_catalog,
    load_default_calibration,
)
from planner.costmodel.batch import predict_points
from planner.costmodel.calibrate import calibrate, read_profile
from planner.costmodel.engine import load_engine
from planner.costmodel.operators import (
    FEATURES,
    Precision,
    StepShape,
    busiest_share,
    features,
    step_operators,
)
from planner.costmodel.parallel import Parallel
from planner.costmodel.params import COMM_FITTED, FITTED, SERVING_FITTED, EfficiencyParams
from planner.costmodel.predict import operator_matrices, operator_times, time_coefficients
from planner.errors import PlannerError
from planner.resources import resource_dir

GIB = 2**30
H200_STEPS = resource_dir("datasets") / "profiles" / "h200_dense_steps.jsonl"
SPEC_MODELS = [
    "llama-3.2-1b",
    "llama-3.2-3b",
    "llama-3.1-8b",
    "llama-3.1-70b",
    "llama-3.1-405b",
    "qwen2.5-7b",
    "qwen2.5-14b",
    "qwen2.5-32b",
    "qwen2.5-72b",
    "qwen3-32b",
    "mixtral-8x7b",
    "qwen3-30b-a3b",
    "deepseek-v3",
]
SPEC_ACCELERATORS = ["h100", "h200", "a100", "l4", "l40s", "b200", "mi300x"]
SPEC_ACCELERATORS += ["ascend-910b", "ascend-910c"]


def _op_costs(card: ModelCard, feats: np.ndarray, tp: int = 1) -> dict[str, tuple[float, float]]:
    """FLOPs and bytes of one occurrence of every operator at a single point."""
    prec = Precision(card.dtype, card.expert_dtype, "bf16")
    ops = step_operators(card, Parallel(tp=tp), prec)
    return {op.name: tuple(float(v[0]) for v in op.cost(feats)) for op in ops}


def _point(card: ModelCard, pb=0.0, pt=0.0, pc=0.0, db=0.0, dc=0.0) -> np.ndarray:
    """Feature matrix of one point."""
    a = [np.array([float(v)]) for v in (pb, pt, pc, db, dc)]
    return features(card, Parallel(), StepShape.uniform(float(card.attention_window), *a))


def test_catalogs_cover_the_spec() -> None:
    """Every SPEC section 7 model and accelerator is bundled, with sources on every figure."""
    assert set(SPEC_MODELS) <= set(list_cards())
    catalog = load_catalog()
    assert set(SPEC_ACCELERATORS) <= set(catalog)
    for acc in catalog.values():
        assert acc.spec_source and acc.spec_date and acc.price_source and acc.price_date
    for model in SPEC_MODELS:
        assert load_card(model).source.startswith("https://huggingface.co/")
    assert abs(load_card("llama-3.1-8b").total_params() / 1e9 - 8.03) < 0.01
    assert abs(load_card("deepseek-v3").total_params() / 1e9 - 671.0) < 1.0
    assert abs(load_card("mixtral-8x7b").total_params() / 1e9 - 46.7) < 0.1


def test_dense_layer_flops_and_bytes_by_hand() -> None:
    """llama-3.1-8b prefill of 2 x 128 tokens: projections, attention and MLP counts."""
    card = load_card("llama-3.1-8b")
    costs = _op_costs(card, _point(card, pb=2, pt=128))
    n, h, q, kv, f = 256, 4096, 4096, 1024, 14336
    assert costs["qkv"] == (
        2 * n * h * (q + 2 * kv),
        h * (q + 2 * kv) * 2 + 2 * n * (h + q + 2 * kv),
    )
    assert costs["o_proj"][0] == 2 * n * q * h
    pairs = 2 * (128 * 129 // 2)
    assert costs["attention"][0] == 4 * 32 * 128 * pairs
    assert costs["attention"][1] == 2 * n * q * 2 + 2 * 128 * 2 * kv * 2
    assert costs["mlp_up"] == (2 * n * h * 2 * f, h * 2 * f * 2 + 2 * n * (h + 2 * f))
    assert costs["mlp_down"][0] == 2 * n * f * h
    assert costs["lm_head"][0] == 2 * 2 * h * 128256


def test_decode_attention_reads_the_kv_cache() -> None:
    """A decode step of 8 sequences at context 1000 reads 8 x 1001 tokens of K and V."""
    card = load_card("llama-3.1-8b")
    costs = _op_costs(card, _point(card, db=8, dc=1000))
    assert costs["attention"][0] == 4 * 32 * 128 * 8 * 1001
    assert costs["attention"][1] == 2 * 8 * 4096 * 2 + 8 * 1001 * 2 * 1024 * 2


def test_moe_layer_flops_and_bytes_by_hand() -> None:
    """mixtral-8x7b decode of 4 tokens: top-2 of 8 experts, expected distinct experts read."""
    card = load_card("mixtral-8x7b")
    costs = _op_costs(card, _point(card, db=4, dc=100))
    touched = 8 * (1 - (6 / 8) ** 4)
    h, fe = 4096, 14336
    flops, data = costs["experts_up"]
    assert flops == 2 * 4 * 2 * h * 2 * fe
    assert data == pytest.approx(touched * h * 2 * fe * 2 + 2 * 4 * 2 * (h + 2 * fe))
    assert costs["experts_down"][0] == 2 * 4 * 2 * fe * h
    assert costs["router"][0] == 2 * 4 * h * 8


def test_tp2_halves_a_compute_bound_step_plus_the_all_reduce() -> None:
    """Prefill of 8 x 4096 tokens on h100: tp=2 takes about t1 / 2 plus 2 all-reduces a layer."""
    t1 = StepModel.build("llama-3.1-8b", "h100").prefill_ms(8, 4096)[0]
    sm2 = StepModel.build("llama-3.1-8b", "h100", tp=2)
    t2 = sm2.prefill_ms(8, 4096)[0]
    p, acc = sm2.params, sm2.accelerator
    message = 8 * 4096 * 4096 * 2
    ring = 2 * (2 - 1) / 2 * message / (acc.interconnect_gbs * 1e9 * p.link_eff) * 1e3
    all_reduce = 2 * 32 * (p.collective_ms + ring)
    assert all_reduce > 0.05 * t1
    assert t2 == pytest.approx(t1 / 2 + all_reduce, rel=0.05)


def test_70b_bf16_needs_two_80gb_gpus() -> None:
    """llama-3.1-70b bf16 does not fit one h100 (short by ~63 GB), fits tp=2 with a KV budget."""
    with pytest.raises(PlannerError, match=r"short by 6\d\.\d GB"):
        StepModel.build("llama-3.1-70b", "h100")
    plan = StepModel.build("llama-3.1-70b", "h100", tp=2).memory
    assert isinstance(plan, MemoryPlan) and plan.fits
    weights = 70.55e9 * 2 / 2
    kv_per_gpu = 80 * 2 * 4 * 128 * 2
    free = 0.9 * 80 * GIB - weights - plan.workspace_gb * GIB
    assert plan.weights_gb == pytest.approx(weights / GIB, rel=0.01)
    assert plan.kv_budget_tokens == pytest.approx(free / kv_per_gpu, rel=0.02)
    assert 15_000 < plan.kv_budget_tokens < 30_000


def test_fp8_weights_and_kv_are_separate() -> None:
    """FP8 weights halve the layer bytes (embeddings stay BF16); the KV cache keeps BF16 unless
    --kv-dtype asks for FP8, which then halves the KV bytes and raises the KV budget."""
    bf16 = StepModel.build("llama-3.1-8b", "h100")
    fp8 = StepModel.build("llama-3.1-8b", "h100", dtype="fp8")
    embed_gb = 2 * 128256 * 4096 * 2 / GIB
    assert fp8.memory.weights_gb - embed_gb == pytest.approx(
        (bf16.memory.weights_gb - embed_gb) / 2
    )
    assert fp8.memory.kv_bytes_per_token == bf16.memory.kv_bytes_per_token
    assert fp8.decode_ms(1, 1024)[0] < 0.7 * bf16.decode_ms(1, 1024)[0]
    kv8 = StepModel.build("llama-3.1-8b", "h100", dtype="fp8", kv_dtype="fp8")
    assert kv8.memory.kv_bytes_per_token == fp8.memory.kv_bytes_per_token / 2
    assert kv8.memory.kv_budget_tokens == pytest.approx(2 * fp8.memory.kv_budget_tokens, rel=0.01)


def test_methods_are_vectorised_and_decode_depends_on_context_sum() -> None:
    """Arrays in, arrays out; element-wise equal to scalar calls; mixed >= either part."""
    sm = StepModel.build("qwen2.5-7b", "h100")
    batch, context = np.array([1, 8, 64]), np.array([100, 2000, 8000])
    many = sm.decode_ms(batch, context)
    one = [sm.decode_ms(int(b), int(c))[0] for b, c in zip(batch, context, strict=True)]
    assert many == pytest.approx(one)
    assert sm.prefill_ms([1, 2], 512, 0).shape == (2,)
    mixed = sm.mixed_ms(512, 0, 32, 1000)[0]
    assert mixed >= max(sm.prefill_ms(1, 512)[0], sm.decode_ms(32, 1000)[0])
    assert sm.kv_transfer_ms(1000, bandwidth_gb_s=50)[0] == pytest.approx(
        1000 * sm.memory.kv_bytes_per_token / 50e9 * 1e3 + sm.params.collective_ms
    )


@pytest.mark.parametrize("engine", [None, "vllm", "sglang", "trtllm"])
def test_one_step_in_floats_prices_as_the_array_path(engine: str | None) -> None:
    """A step shape of floats (the simulator's one-step-at-a-time call) is priced in plain
    floats from each operator's nonzero coefficients; it matches the array path to rounding on
    random prefill, mixed and decode steps across dense, MoE, sliding-window, TP and attention
    data-parallel plans, with and without an engine's host costs and CUDA-graph limits."""
    rng = np.random.default_rng(11)
    profile = None if engine is None else load_engine(engine)
    plans = [
        ("llama-3.1-8b", "h100", {}),
        ("llama-3.1-70b", "a100", {"tp": 4}),
        ("qwen3-30b-a3b", "h100", {"dp": 4, "ep": 4}),
        ("gpt-oss-20b", "h100", {}),
    ]
    for model, accelerator, plan in plans:
        sm = StepModel.build(model, accelerator, engine=profile, **plan)
        for _ in range(200):
            tokens = float(rng.choice([0, rng.integers(1, 9000)]))
            seqs = float(rng.integers(1, 6)) if tokens else 0.0
            fields = (tokens, seqs, tokens * tokens / 2.0, tokens + 50.0, tokens * 40.0)
            fields += (min(tokens, 128.0), float(rng.integers(0, 600)), float(rng.integers(0, 4e6)))
            one = sm.step_ms(StepShape(*fields))
            many = sm.step_ms(StepShape(*(np.array([f]) for f in fields)))
            assert one.shape == (1,) and one[0] == pytest.approx(many[0], rel=1e-12)


def test_moe_and_mla_models_predict() -> None:
    """DeepSeek-V3 (MLA + MoE, fp8) and Qwen3-30B-A3B build and give positive, growing times."""
    ds = StepModel.build("deepseek-v3", "h200", tp=8)
    assert ds.memory.kv_bytes_per_token == 61 * (512 + 64) * 2
    assert StepModel.build(
        "deepseek-v3", "h200", tp=8, kv_dtype="fp8"
    ).memory.kv_bytes_per_token == 61 * (512 + 64)
    assert ds.gpus == 8 and ds.cost_per_hour == pytest.approx(8 * ds.accelerator.price_per_hour)
    times = ds.decode_ms([1, 64, 256], 4096)
    assert np.all(np.diff(times) > 0)
    ep = StepModel.build("qwen3-30b-a3b", "h100", dp=2, ep=2)
    assert ep.gpus == 2 and ep.decode_ms(64, 1000)[0] > 0


def test_extrapolation_flags() -> None:
    """In-range h100 points are not flagged; unprofiled accelerators and huge batches are."""
    h100 = StepModel.build("llama-3.1-8b", "h100")
    flags = h100.extrapolated(
        np.array(["decode", "decode", "prefill"]), [8, 4096, 1], 1, [512, 512, 0]
    )
    assert flags.tolist() == [False, True, False]
    a100 = StepModel.build("llama-3.1-8b", "a100")
    assert a100.plan_extrapolation and a100.extrapolated(np.array(["decode"]), 1, 1, 100).all()


def test_unknown_ids_list_the_known_ones() -> None:
    """Unknown model or accelerator: a one-line PlannerError naming the known ids."""
    with pytest.raises(PlannerError, match="known models: .*llama-3.1-8b"):
        StepModel.build("llama-9", "h100")
    with pytest.raises(PlannerError, match="known accelerators: h100, h200"):
        StepModel.build("llama-3.1-8b", "tpu-v9")
    assert get_accelerator("H100-SXM").id == "h100"


def test_tp_must_divide_heads() -> None:
    """llama-3.2-3b has 24 heads: tp=16 is refused with the reason."""
    with pytest.raises(PlannerError, match="tp=16 does not divide the 24 attention heads"):
        StepModel.build("llama-3.2-3b", "h100", tp=16)


def test_user_accelerator_file_overrides_and_adds(tmp_path: Path) -> None:
    """A user TOML changes a price and adds a device; a new device missing figures is refused."""
    user = tmp_path / "mine.toml"
    user.write_text(
        '[h100]\nprice_per_hour = 2.5\n\n[mi355x]\nname = "AMD MI355X"\nbf16_tflops = 2300\n'
        "hbm_gb = 288\nhbm_tbs = 8\ninterconnect_gbs = 512\nprice_per_hour = 4\n"
    )
    catalog = load_catalog(user)
    assert catalog["h100"].price_per_hour == 2.5 and catalog["h100"].hbm_gb == 80
    assert isinstance(catalog["mi355x"], Accelerator)
    sm = StepModel.build("llama-3.1-8b", "mi355x", catalog=catalog)
    assert sm.cost_per_hour == 4 and sm.decode_ms(1, 100)[0] > 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[newchip]\nbf16_tflops = 100\n")
    with pytest.raises(PlannerError, match="needs hbm_gb, hbm_tbs"):
        load_catalog(bad)


def test_profile_with_missing_columns(tmp_path: Path) -> None:
    """A step profile without `ms` or a Splitwise CSV without token_time names the column."""
    steps = tmp_path / "steps.jsonl"
    steps.write_text(
        json.dumps(
            {
                "model": "m",
                "hidden": 64,
                "layers": 2,
                "heads": 4,
                "kv_heads": 4,
                "ffn": 128,
                "vocab": 100,
                "phase": "decode",
                "batch": 1,
                "tokens": 1,
                "context": 10,
            }
        )
        + "\n"
    )
    with pytest.raises(PlannerError, match="missing column.*ms"):
        read_profile(steps)
    csv = tmp_path / "perf.csv"
    csv.write_text("model,hardware,prompt_size,batch_size,token_size,prompt_time,tensor_parallel\n")
    with pytest.raises(PlannerError, match="missing column.*token_time"):
        read_profile(csv)


@pytest.fixture(scope="module")
def report() -> dict:
    """Calibration report from the shared profiles and the shipped H200 one (a few seconds)."""
    steps = shared_path("profiles", "h100_dense_steps.jsonl")
    splitwise = shared_path("profiles", "splitwise", "perf_model.csv")
    cal, rep = calibrate([steps, H200_STEPS, splitwise], report=True)
    rep["calibration"] = cal
    return rep


def test_accuracy_gate_leave_one_model_out(report: dict) -> None:
    """LOMO MAPE on the H100 profile: prefill <= 7 %, decode <= 5 % (a worse model fails)."""
    overall = {
        r["phase"]: r["mape"]
        for r in report["leave_one_model_out"]
        if r["source"] == "h100_dense_steps" and "model" not in r
    }
    assert overall["prefill"] <= 7.0
    assert overall["decode"] <= 5.0


def test_accuracy_gate_h200_profile() -> None:
    """LOMO MAPE on the shipped H200 profile (committed 7.0 % prefill, 31.3 % decode): worse by
    more than 2 points fails. Decode is weak: this PyTorch's attention over many sequences is
    slower than the roofline's single attention efficiency can follow across head sizes."""
    _, rep = calibrate([H200_STEPS], report=True)
    overall = {r["phase"]: r["mape"] for r in rep["leave_one_model_out"] if "model" not in r}
    assert overall["prefill"] <= 9.0
    assert overall["decode"] <= 33.3


def test_h200_profile_covers_the_h100_grid() -> None:
    """The shipped H200 profile measured every shape of the H100 profile (same models, same
    points) and adds only decode points whose KV cache fits the H200 and not 32 GiB."""
    h100 = read_profile(shared_path("profiles", "h100_dense_steps.jsonl")).points
    h200 = read_profile(H200_STEPS).points
    assert set(h200["accelerator"]) == {"h200"}
    keys = ["model", "phase", "batch", "tokens", "context"]
    extra = h200.join(h100, on=keys, how="anti")
    assert h200.join(h100, on=keys, how="semi").height == h100.height == 320
    assert set(extra["phase"]) == {"decode"} and extra.height == 16
    cards = read_profile(H200_STEPS).cards
    for model, batch, context in extra.select("model", "batch", "context").rows():
        kv = batch * context * cards[model].kv_elements_per_token() * 2 / GIB
        assert 32 < kv <= 64


def _mape_by_phase(cal: Calibration) -> dict[str, float]:
    """MAPE by phase of `cal`'s predictions of the shipped H200 step profile."""
    points = read_profile(H200_STEPS).points
    pred = predict_points(points.drop("source", "ms"), cal, load_catalog())
    err = (pred["ms"] / points["ms"] - 1).abs() * 100
    return {ph: float(err.filter(points["phase"] == ph).mean()) for ph in ("prefill", "decode")}


def test_measured_h200_beats_borrowing_h100() -> None:
    """The H200 fitted on its own measured steps predicts them better than the H100's
    efficiencies scaled by the spec sheets, which make decode 16 % too fast (measured, its
    small-batch decode steps take 0.79-0.97 of the H100's time, not the bandwidths' 0.70)."""
    cal = load_default_calibration()
    borrowed = Calibration(
        {k: e for k, e in cal.entries.items() if e.accelerator != "h200"}, cal.meta, cal.engines
    )
    own, other = _mape_by_phase(cal), _mape_by_phase(borrowed)
    assert own["decode"] <= 11.0 and other["decode"] >= 15.0
    assert own["prefill"] < other["prefill"]


def test_accuracy_gate_splitwise(report: dict) -> None:
    """Splitwise A100/H100 TP 2/4/8 points: MAPE <= 15 % per accelerator and per TP degree."""
    rows = [r for r in report["fit"] if r["source"] == "splitwise"]
    overall = {r["accelerator"]: r["mape"] for r in rows if r["tp"] == "all"}
    assert set(overall) == {"a100", "h100"}
    assert all(mape <= 15.0 for mape in overall.values())
    by_tp = [r for r in rows if r["tp"] != "all"]
    assert {r["tp"] for r in by_tp} == {2, 4, 8}
    assert all(r["mape"] <= 15.0 for r in by_tp)


def test_steps_only_takes_every_reference_source() -> None:
    """steps_only() restores each default entry from its own reference source (the H100's and
    the H200's), and reads a file written before there were several (`reference_source`)."""
    cal = load_default_calibration()
    steps = cal.steps_only()
    for acc in ("h100", "h200"):
        assert steps.entries[acc] == cal.entries[f"{acc}@{acc}_dense_steps"]
    assert cal.entries["h100"] != cal.entries["h100@h100_dense_steps"]
    old = Calibration(dict(cal.entries), {"reference_source": "h100_dense_steps"})
    assert old.steps_only().entries["h100"] == cal.entries["h100@h100_dense_steps"]
    assert old.steps_only().entries["h200"] == cal.entries["h200"]


def test_shipped_calibration_is_current(report: dict) -> None:
    """datasets/calibration.json matches a refit of the shared step profiles in every value
    the step fit sets (regenerate if not); the measured-benchmark fit adds engine host costs
    and sets the MoE / FP8 efficiencies and the all-reduce latency of the accelerator it ran on
    (SERVING_FITTED), which the step fit leaves at its own values there."""
    shipped = load_default_calibration()
    fresh: Calibration = report["calibration"]
    assert set(shipped.entries) == set(fresh.entries)
    for key, entry in fresh.entries.items():
        served = shipped.entries[key].serving is not None
        for name in [n for n in FITTED + COMM_FITTED if not (served and n in SERVING_FITTED)]:
            assert getattr(shipped.entries[key].params, name) == pytest.approx(
                getattr(entry.params, name), rel=0.02, abs=1e-3
            )
    assert set(shipped.engines) == {"vllm", "sglang", "trtllm"}


def test_features_have_stable_names() -> None:
    """The feature list is part of the operator contract."""
    assert FEATURES == (
        "ONE",
        "N",
        "ND",
        "SP",
        "KP",
        "SD",
        "KD",
        "SWP",
        "SWD",
        "KWP",
        "KWD",
        "R",
        "X",
        "NT",
    )


def test_cli_latency_passes_columns_through(tmp_path: Path) -> None:
    """`planner latency` keeps every input column and adds ms and extrapolated; --json parses."""
    points = tmp_path / "points.csv"
    points.write_text(
        "model,accelerator,phase,batch,tokens,context,tp,label\n"
        "llama-3.1-8b,h100,prefill,1,2048,0,1,x\n"
        "llama-3.1-70b,h100-sxm,decode,32,1,2048,4,y\n"
    )
    out = tmp_path / "pred.csv"
    result = invoke("latency", "--in", str(points), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["points"] == 2 and summary["extrapolated"] == 1
    lines = out.read_text().splitlines()
    assert lines[0] == "model,accelerator,phase,batch,tokens,context,tp,label,ms,extrapolated"
    assert lines[2].startswith("llama-3.1-70b,h100-sxm,decode,32,1,2048,4,y,")
    expected = StepModel.build("llama-3.1-8b", "h100").prefill_ms(1, 2048)[0]
    assert float(lines[1].split(",")[8]) == pytest.approx(expected)


def test_cli_latency_errors_are_one_line(tmp_path: Path) -> None:
    """Unknown accelerator and an infeasible plan: exit 1 with one line on stderr."""
    points = tmp_path / "points.csv"
    points.write_text(
        "model,accelerator,phase,batch,tokens,context\nllama-3.1-8b,tpu,decode,1,1,9\n"
    )
    result = invoke("latency", "--in", str(points), "--out", str(tmp_path / "o.csv"))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "known accelerators: h100" in result.stderr
    points.write_text(
        "model,accelerator,phase,batch,tokens,context\nllama-3.1-405b,l4,decode,1,1,9\n"
    )
    result = invoke("latency", "--in", str(points), "--out", str(tmp_path / "o.csv"))
    assert result.exit_code == 1 and "short by" in result.stderr


def test_cli_calibrate_report_and_json(tmp_path: Path) -> None:
    """`planner calibrate --report` prints LOMO by phase; --json output is a calibration file."""
    steps = shared_path("profiles", "h100_dense_steps.jsonl")
    out = tmp_path / "cal.json"
    result = invoke("calibrate", str(steps), "--report", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Leave-one-model-out" in result.stdout and "prefill" in result.stdout
    assert "h100" in Calibration.load(out).entries
    result = invoke("calibrate", str(steps), "--json")
    assert result.exit_code == 0
    assert "h100" in json.loads(result.stdout)["entries"]


def test_cli_calibrate_missing_column(tmp_path: Path) -> None:
    """A profile with a missing column fails with the column's name and exit code 1."""
    bad = tmp_path / "perf.csv"
    bad.write_text("model,hardware,prompt_size,batch_size,token_size,token_time,tensor_parallel\n")
    result = invoke("calibrate", str(bad))
    assert result.exit_code == 1 and "prompt_time" in result.stderr


def test_hugging_face_config_json_is_a_model(tmp_path: Path) -> None:
    """--model accepts a config.json: shapes, shipped precision, sliding windows and MoE."""
    folder = tmp_path / "my-oss"
    folder.mkdir()
    config = {
        "model_type": "gpt_oss",
        "num_hidden_layers": 4,
        "hidden_size": 2880,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "intermediate_size": 2880,
        "vocab_size": 201088,
        "num_local_experts": 32,
        "experts_per_token": 4,
        "layer_types": ["sliding_attention", "full_attention"] * 2,
        "sliding_window": 128,
        "attention_bias": True,
        "quantization_config": {"quant_method": "mxfp4"},
        "max_position_embeddings": 131072,
    }
    (folder / "config.json").write_text(json.dumps(config))
    card = load_card(str(folder / "config.json"))
    assert (card.id, card.layers, card.experts, card.active_experts) == ("my-oss", 4, 32, 4)
    assert (card.dtype, card.expert_dtype, card.sliding_layers) == ("bf16", "mxfp4", 2)
    assert card.kv_elements_per_token() == 2 * 2 * 8 * 64
    assert StepModel.build(str(folder / "config.json"), "h100").decode_ms(8, 1000)[0] > 0
    (folder / "config.json").write_text('{"hidden_size": 10}')
    with pytest.raises(PlannerError, match="config.json has no 'num_hidden_layers'"):
        load_card(str(folder / "config.json"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("linear_layers = 9", "linear_layers must fit beside the sliding layers"),
        ("linear_layers = 2", "linear_layers needs linear key/value heads"),
        ("index_topk = 512", "index_topk (sparse attention) needs MLA"),
    ],
)
def test_inconsistent_attention_cards_fail_in_one_line(
    tmp_path: Path, extra: str, message: str
) -> None:
    """A card whose linear-attention or sparse-attention fields cannot be costed is refused
    with a one-line error naming the file."""
    card = tmp_path / "odd.toml"
    card.write_text(
        f'id = "odd"\nlayers = 8\nhidden = 512\nheads = 8\nkv_heads = 8\nffn = 1024\n'
        f"vocab = 1000\n{extra}\n"
    )
    with pytest.raises(PlannerError, match=re.escape(message)) as err:
        load_card(str(card))
    assert str(card) in str(err.value) and "\n" not in str(err.value)


def test_hybrid_sparse_and_int4_config_json(tmp_path: Path) -> None:
    """config.json fields of Qwen3.5 (linear-attention layers, gated attention), GLM-5 (the
    sparse-attention indexer) and Kimi K2.5 (compressed-tensors INT4 experts) reach the card."""
    base = {"hidden_size": 1024, "num_attention_heads": 8, "vocab_size": 1000}
    hybrid = base | {
        "num_hidden_layers": 8,
        "num_key_value_heads": 2,
        "head_dim": 256,
        "layer_types": ["linear_attention"] * 3 + ["full_attention"] + ["linear_attention"] * 4,
        "linear_num_key_heads": 4,
        "linear_num_value_heads": 8,
        "linear_key_head_dim": 64,
        "linear_value_head_dim": 32,
        "linear_conv_kernel_dim": 4,
        "attn_output_gate": True,
    }
    sparse = base | {
        "num_hidden_layers": 4,
        "kv_lora_rank": 64,
        "q_lora_rank": 128,
        "qk_rope_head_dim": 16,
        "qk_nope_head_dim": 32,
        "v_head_dim": 32,
        "index_topk": 512,
        "index_n_heads": 4,
        "index_head_dim": 32,
    }
    int4 = {
        "quant_method": "compressed-tensors",
        "config_groups": {"g": {"weights": {"num_bits": 4, "type": "int"}}},
        "ignore": ["lm_head", "re:.*self_attn.*"],
    }
    moe = base | {
        "num_hidden_layers": 2,
        "n_routed_experts": 8,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 256,
        "quantization_config": int4,
    }
    cards = {}
    for name, config in (("hybrid", hybrid), ("sparse", sparse), ("int4", moe)):
        (tmp_path / f"{name}.json").write_text(json.dumps(config))
        cards[name] = load_card(str(tmp_path / f"{name}.json"))
    h = cards["hybrid"]
    assert (h.linear_layers, h.full_attention_layers, h.attention_gate) == (7, 1, True)
    assert (h.linear_value_heads, h.linear_value_dim, h.linear_conv) == (8, 32, 4)
    assert h.kv_elements_per_token() == 1 * 2 * 2 * 256
    assert (cards["sparse"].attention_window, cards["sparse"].index_heads) == (512, 4)
    assert (cards["int4"].dtype, cards["int4"].expert_dtype) == ("bf16", "int4")
    assert StepModel.build(str(tmp_path / "hybrid.json"), "h100").decode_ms(8, 1000)[0] > 0


def test_hugging_face_paths_resolve_to_cards() -> None:
    """Repository paths name the bundled cards, case-insensitively; bundled cards match the
    published parameter counts."""
    assert load_card("Qwen/Qwen3-32B-FP8").id == "qwen3-32b"
    assert load_card("deepseek-ai/DeepSeek-R1").id == "deepseek-v3"
    assert load_card("minimaxai/minimax-m2.5").id == "minimax-m2"
    assert load_card("moonshotai/Kimi-K2.5").expert_dtype == "int4"
    assert load_card("nvidia/DeepSeek-V3.1-NVFP4").id == "deepseek-v3"
    sizes = {"gpt-oss-120b": 116.8, "kimi-k2": 1026.4, "llama-4-maverick": 400.7}
    sizes |= {"qwen3-235b-a22b": 235.1, "glm-4.5": 352.8}
    for model, billions in sizes.items():
        assert load_card(model).total_params() / 1e9 == pytest.approx(billions, rel=0.01)
    with pytest.raises(PlannerError, match="or a path to a config.json"):
        load_card("acme/unknown")


def test_low_precision_peaks_fall_back_to_bf16() -> None:
    """FP8/INT8/FP4 math runs at the device's peak for that format, BF16 where it has none."""
    h100, b200, a100 = (get_accelerator(a) for a in ("h100", "b200", "a100"))
    assert h100.peak_flops("fp8") == pytest.approx(2 * h100.peak_flops("bf16"), rel=1e-3)
    assert h100.peak_flops("fp4") == h100.peak_flops("bf16")
    assert b200.peak_flops("fp4") == pytest.approx(2 * b200.peak_flops("fp8"))
    assert a100.peak_flops("fp8") == a100.peak_flops("bf16")
    assert h100.link_gbs(8) == h100.interconnect_gbs and h100.link_gbs(16) == h100.scale_out_gbs
    b300, gb200 = get_accelerator("b300_sxm"), get_accelerator("gb200")
    assert b300.int8_tops < b300.bf16_tflops and b300.peak_flops("int8") == b300.peak_flops("bf16")
    assert b300.peak_flops("fp4") > 3 * b300.peak_flops("fp8")
    assert gb200.link_gbs(72) == gb200.interconnect_gbs and gb200.link_gbs(73) == 50


def test_linear_attention_layers_by_hand() -> None:
    """Qwen3.5's Gated DeltaNet layers: no KV cache, a per-sequence FP32 state read and written
    each step, ~6 key x value FLOPs per head and token (plus the chunked form's in-chunk
    attention for prompt tokens); only the 15 full layers grow the KV cache."""
    card = load_card("Qwen/Qwen3.5-397B-A17B")
    assert (card.linear_layers, card.full_attention_layers) == (45, 15)
    assert card.kv_elements_per_token() == 15 * 2 * 2 * 256
    assert card.total_params() / 1e9 == pytest.approx(397, rel=0.01)
    heads, state = 64, 128 * 128
    decode = _op_costs(card, _point(card, db=8, dc=5000))["linear_recurrence"]
    assert decode[0] == pytest.approx(8 * heads * 6 * state)
    act = 2 * (2 * 16 * 128 + 64 * 128 + 2 * 64 * 128)
    assert decode[1] == pytest.approx(8 * act + 8 * heads * state * 4 * 2)
    prefill = _op_costs(card, _point(card, pb=1, pt=100))["linear_recurrence"]
    assert prefill[0] == pytest.approx(100 * heads * (6 * state + 2 * 64 * 256))
    longer = _op_costs(card, _point(card, db=8, dc=50000))["linear_recurrence"]
    assert longer == decode


def test_sparse_attention_caps_attended_tokens() -> None:
    """GLM-5's DeepSeek Sparse Attention: a query attends to at most index_topk tokens, so
    MLA attention stops growing past 2,048 of context while the indexer scoring every cached
    token keeps growing; below the cap it is the dense MLA cost."""
    card = load_card("zhipuai/GLM-5")
    dense = card.model_copy(update={"index_topk": 0, "index_heads": 0, "index_head_dim": 0})
    short, long, longer = (_op_costs(card, _point(card, db=4, dc=c)) for c in (1000, 8000, 16000))
    assert (
        short["mla_decode_attention"]
        == _op_costs(dense, _point(dense, db=4, dc=1000))["mla_decode_attention"]
    )
    assert long["mla_decode_attention"] == longer["mla_decode_attention"]
    assert short["mla_decode_attention"][0] < long["mla_decode_attention"][0]
    score = 2 * 32 * 128
    assert longer["indexer_scores"][0] == pytest.approx(4 * 16001 * score)
    assert long["indexer_scores"][0] == pytest.approx(4 * 8001 * score)
    assert card.kv_elements_per_token() == 78 * (512 + 64 + 128)
    assert card.total_params() / 1e9 == pytest.approx(744, rel=0.01)


def test_expert_parallel_splits_expert_work_over_all_gpus() -> None:
    """Attention DP x expert EP: each GPU computes 1 / tp of every rank token's routed rows."""
    card = load_card("qwen3-30b-a3b")
    shape = StepShape.uniform(0.0, *(np.array([v]) for v in (0.0, 0.0, 0.0, 64.0, 100.0)))
    flops = {}
    for plan in (Parallel(tp=4), Parallel(tp=1, dp=4, ep=4), Parallel(tp=2, dp=2, ep=4)):
        ops = step_operators(card, plan, Precision("bf16", "bf16", "bf16"))
        feats = features(card, plan, shape)
        flops[plan] = sum(op.count * float(op.cost(feats)[0][0]) for op in ops if op.kind == "moe")
    values = list(flops.values())
    assert values[0] == pytest.approx(values[1]) == pytest.approx(values[2])
    with pytest.raises(PlannerError, match="ep=3 must divide the tp x dp = 4"):
        StepModel.build("qwen3-30b-a3b", "h100", dp=4, ep=3)


BF16 = Precision("bf16", "bf16", "bf16")


def _op_bytes(card: ModelCard, plan: Parallel, shape: StepShape, name: str) -> float:
    """Bytes one occurrence of the named operator moves on one GPU for a one-point shape."""
    ops = step_operators(card, plan, BF16)
    op = next(op for op in ops if op.name == name)
    return float(op.cost(features(card, plan, shape))[1][0])


def test_one_prompt_on_dp_ranks_costs_a_whole_rank() -> None:
    """A rank holds whole sequences and ranks run in lockstep: one prompt on a 4-rank instance
    costs its attention rank what it costs a one-rank instance (not a quarter), while a
    balanced decode batch of 64 is split 16 per rank."""
    card = load_card("qwen3-30b-a3b")
    one_prompt = StepShape.uniform(0.0, *(np.array([v]) for v in (1.0, 4096.0, 0.0, 0.0, 0.0)))
    decodes = StepShape.uniform(0.0, *(np.array([v]) for v in (0.0, 0.0, 0.0, 64.0, 2048.0)))
    alone, ranks = Parallel(tp=1, ep=1), Parallel(tp=1, dp=4, ep=4)
    qkv_alone = _op_bytes(card, alone, one_prompt, "qkv")
    assert _op_bytes(card, ranks, one_prompt, "qkv") == pytest.approx(qkv_alone)
    attn = _op_bytes(card, ranks, decodes, "attention")
    assert attn == pytest.approx(_op_bytes(card, alone, decodes, "attention") / 4, rel=1e-6)
    assert busiest_share(np.array([1.0, 3.0, 4.0, 5.0, 64.0]), 4) == pytest.approx(
        [1.0, 1 / 3, 1 / 4, 2 / 5, 1 / 4]
    )
    assert busiest_share(np.array([2.5]), 1) == pytest.approx([1.0])


def test_expert_dispatch_gathers_few_ranks_and_sends_rows_at_wide_ep() -> None:
    """Few DP ranks: an all-gather of the other ranks' tokens (bf16), (dp - 1) / dp of the
    instance's tokens whatever a token's routing. Wide EP: an all-to-all of the routed rows,
    k (ep - 1) / (ep dp), far less than gathering 159 / 160 of them. No dispatch without DP."""
    card = load_card("qwen3-30b-a3b")
    shape = StepShape.uniform(0.0, *(np.array([v]) for v in (4.0, 1000.0, 0.0, 0.0, 0.0)))
    plan = Parallel(tp=1, dp=4, ep=4)
    gathered = 4000 * card.hidden * 2.0 * 3 / 4
    assert _op_bytes(card, plan, shape, "expert_dispatch") == pytest.approx(gathered)
    routed_more = card.model_copy(update={"active_experts": card.active_experts * 2})
    assert _op_bytes(routed_more, plan, shape, "expert_dispatch") == pytest.approx(gathered)
    wide = Parallel(tp=1, dp=64, ep=64)
    k = card.active_experts
    sent = 4000 * card.hidden * 2.0 * k * 63 / (64 * 64)
    assert sent < 4000 * card.hidden * 2.0 * 63 / 64
    assert _op_bytes(card, wide, shape, "expert_dispatch") == pytest.approx(sent)
    names = {op.name for op in step_operators(card, Parallel(tp=4, ep=4), BF16)}
    assert "expert_dispatch" not in names


def test_qk_norm_over_all_heads_all_reduces_its_statistics_under_tp(tmp_path: Path) -> None:
    """MiniMax-M2's QK norm spans a layer's heads (config.json qk_norm_type "per_layer"): under
    TP every layer all-reduces each token's q and k sums of squares (two FP32 values), one
    collective per layer that costs a decode step its latency; per-head QK norms (Qwen3) and
    one GPU need none."""
    card = load_card("minimax-m2")
    assert card.qk_norm_over_heads and not load_card("qwen3-32b").qk_norm_over_heads
    shape = StepShape.uniform(0.0, *(np.array([v]) for v in (0.0, 0.0, 0.0, 8.0, 2000.0)))
    plan = Parallel(tp=4, ep=4)
    op = next(o for o in step_operators(card, plan, BF16) if o.name == "qk_norm_all_reduce")
    assert (op.kind, op.count, op.span) == ("allreduce", card.layers, 4)
    assert _op_bytes(card, plan, shape, "qk_norm_all_reduce") == pytest.approx(8 * 2 * 4.0)
    for other, tp in ((card, 1), (load_card("qwen3-32b"), 4)):
        names = {o.name for o in step_operators(other, Parallel(tp=tp), BF16)}
        assert "qk_norm_all_reduce" not in names
    per_head = card.model_copy(update={"qk_norm_over_heads": False})
    args = (np.array([8.0]), np.array([2000.0]))
    with_norm = StepModel.build(card, "h100", tp=4, ep=4).decode_ms(*args)[0]
    without = StepModel.build(per_head, "h100", tp=4, ep=4).decode_ms(*args)[0]
    assert with_norm - without >= card.layers * 0.01
    config = {
        "num_hidden_layers": 2,
        "hidden_size": 256,
        "num_attention_heads": 4,
        "vocab_size": 100,
        "use_qk_norm": True,
    }
    for norm_type, expected in (("per_layer", True), ("per_head", False)):
        (tmp_path / f"{norm_type}.json").write_text(
            json.dumps(config | {"qk_norm_type": norm_type})
        )
        assert load_card(str(tmp_path / f"{norm_type}.json")).qk_norm_over_heads is expected


def test_engine_memory_policies() -> None:
    """vLLM takes 90 % of all memory, SGLang all but a reserve, TensorRT-LLM 90 % of what the
    weights leave free: different KV budgets for the same plan."""
    from planner.costmodel.engine import load_engine

    budgets = {
        e: StepModel.build("qwen3-32b", "h100", tp=2, engine=load_engine(e)).memory
        for e in ("vllm", "sglang", "trtllm")
    }
    assert budgets["vllm"].usable_gb == pytest.approx(0.9 * 80)
    assert budgets["sglang"].usable_gb == pytest.approx(80 - 13.1)
    assert budgets["trtllm"].usable_gb == pytest.approx(80)
    assert len({b.kv_budget_tokens for b in budgets.values()}) == 3


def test_moe_tile_padding_costs_touched_experts_not_dense_layers() -> None:
    """moe_pad_rows adds a tile of rows per touched expert to the grouped GEMMs: every MoE step
    pays it, a 256-sequence decode step (16 rows per expert) far more than an 8k-token prefill
    (about 500 rows per expert), and dense models not at all."""
    rows = (np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 8192.0]))
    decodes = np.array([4.0, 256.0, 0.0])
    for model in ("qwen3-30b-a3b", "llama-3.1-8b"):
        sm = StepModel.build(model, "h100")
        matrices = operator_matrices(sm.card, sm.plan, sm.precision)
        shape = StepShape.uniform(
            0.0, rows[0], rows[1], 0.0 * decodes, decodes, 2000.0 + 0 * decodes
        )
        feats = features(sm.card, sm.plan, shape)
        base, padded = (
            operator_times(
                time_coefficients(
                    matrices, sm.accelerator, replace(sm.params, moe_eff=0.2, moe_pad_rows=pad)
                ),
                feats,
            ).sum(axis=0)
            for pad in (0.0, 64.0)
        )
        if sm.card.is_moe:
            growth = padded / base - 1.0
            assert np.all(growth > 0.02) and growth[1] > 1.5 * growth[2]
        else:
            np.testing.assert_allclose(padded, base)


def test_serving_kernel_values_come_from_a_serving_fit_of_the_same_vendor() -> None:
    """The MoE and low-precision GEMM values fitted on serving benchmarks (H100 only) reach
    devices of the same vendor, whether they have step efficiencies of their own (H200,
    measured) or borrow them (B200); across vendors (Ascend 910C) the spec-sheet defaults
    stand, and the plan says so."""
    cal = load_default_calibration()
    h100, h200 = cal.entries["h100"], cal.entries["h200"]
    assert h100.serving == "h100" and h200.serving is None
    own = StepModel.build("qwen3-30b-a3b", "h200", calibration=cal)
    same = StepModel.build("qwen3-30b-a3b", "b200", calibration=cal)
    other = StepModel.build("qwen3-30b-a3b", "ascend-910c", calibration=cal)
    assert own.borrowed_from is None and same.borrowed_from in ("h100", "h200")
    assert other.borrowed_from in ("h100", "h200")
    for name in FITTED:
        assert getattr(own.params, name) == getattr(h200.params, name)
    defaults = EfficiencyParams()
    for name in SERVING_FITTED:
        assert getattr(own.params, name) == getattr(same.params, name) == getattr(h100.params, name)
        assert getattr(other.params, name) == getattr(defaults, name)
    donor = cal.entries[other.borrowed_from].params
    assert other.params.gemm_eff == donor.gemm_eff and other.params.mem_eff == donor.mem_eff
    assert "another vendor's kernels" in other.plan_extrapolation[0]
    assert "another vendor" not in same.plan_extrapolation[0]
    assert Calibration.from_json(cal.to_json()).entries["h100"].serving == "h100"
