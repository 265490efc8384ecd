"""Measured serving benchmarks: readers, replay, `planner validate`, the accuracy gate and the
CloudMatrix384 reproduction."""

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, shared_path

from planner.costmodel import Speculative, StepModel, load_default_calibration
from planner.errors import PlannerError
from planner.validate import lomo, predict, read_measured, validation_summary
from planner.validate import measured as measured_module
from planner.validate.fit import Retimer, _names, theta_of
from planner.validate.measured import (
    AIPERF,
    INFERENCEX,
    INFERENCEX_WARM,
    Measured,
    read_bench_json,
    read_silicon_csv,
)
from planner.validate.predict import (
    Prediction,
    decoding,
    feeding_prefills,
    holding_decoders,
    replay_load,
    step_model,
)

BASELINE = Path(__file__).parent / "measured_baseline.json"
HEADER = (
    "id,silicon_data_source,backend,backend_version,model_path,system,precision,mode,isl,osl,"
    "gemm_quant_mode,moe_quant_mode,batch_size,tp_size,pp_size,attention_dp_size,moe_tp_size,"
    "moe_ep_size,prefill_batch_size,prefill_num_workers,prefill_tp_size,prefill_pp_size,"
    "prefill_attention_dp_size,prefill_moe_tp_size,prefill_moe_ep_size,decode_batch_size,"
    "decode_num_workers,decode_tp_size,decode_pp_size,decode_attention_dp_size,"
    "decode_moe_tp_size,decode_moe_ep_size,silicon_ttft_ms,silicon_tpot_ms"
)
ROWS = [
    "a,src; silicon_concurrency=8,vllm,0.12.0,Qwen/Qwen3-32B,h100_sxm,,agg,1024,128,,,8,2,1,,1,1"
    ",,,,,,,,,,,,,,,154.2,18.0",
    "b,src,trtllm,1.0.0rc3,meta-llama/Llama-3.1-8B-Instruct,h100_sxm,,agg,512,64,,,4,1,1,1,1,1"
    ",,,,,,,,,,,,,,,60.5,7.1",
    "c,src; silicon_concurrency=6,trtllm,0.8.1,deepseek-ai/DeepSeek-V3,h100_sxm,fp8,disagg,1024,"
    "256,fp8,fp8,,,,,,,1,1,1,1,16,1,16,2,3,16,1,1,1,16,5052.4,19.9",
]


def _silicon(tmp_path: Path, rows: list[str], name: str = "measured.csv") -> Path:
    """A silicon CSV with the given rows."""
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_silicon_rows_become_deployments(tmp_path: Path) -> None:
    """Agg rows: clients = batch x attention DP, AIConfigurator's flags for vLLM/TRT-LLM;
    disagg rows: worker layouts and counts, concurrency from the data source."""
    agg, trt, disagg = read_silicon_csv(_silicon(tmp_path, ROWS))
    assert (agg.engine, agg.version, agg.mode, agg.concurrency) == ("vllm", "0.12.0", "agg", 8)
    assert (agg.agg.tp, agg.isl, agg.osl, agg.ttft_ms) == (2, 1024, 128, 154.2)
    assert agg.flags == {"token_budget": 8 + 1024 + 1500, "max_seqs": 8, "cuda_graph_max_batch": 8}
    assert trt.flags["token_budget"] == 4 + 512 + 1500 and trt.line == 3
    assert disagg.mode == "disagg" and disagg.concurrency == 6 and not disagg.flags
    assert (disagg.prefill.dp, disagg.prefill.ep, disagg.prefill.count) == (16, 16, 1)
    assert (disagg.decode.tp, disagg.decode.batch, disagg.decode.count) == (16, 2, 3)
    spread = ROWS[0].replace("Qwen/Qwen3-32B,h100", "Qwen/Qwen3-235B-A22B-FP8,h200")
    spread = spread.replace(",8,2,1,,1,1,", ",8,1,1,,2,1,")
    (moe,) = read_silicon_csv(_silicon(tmp_path, [spread], "moe.csv"))
    assert (moe.agg.tp, moe.agg.dp, moe.agg.ep) == (1, 2, 1)


def test_row_precision_and_dev_engine_versions(tmp_path: Path) -> None:
    """Experts run the row's format up to the checkpoint's bytes (an MXFP4 checkpoint's NVFP4
    row stays MXFP4; an INT4 checkpoint's NVFP4 row is a requantised release and runs NVFP4);
    a dev image's version label predicts with the engine's defaults and says so."""
    kimi = ROWS[0].replace("Qwen/Qwen3-32B,h100_sxm,,agg", "moonshotai/Kimi-K2.5,b200_sxm,,agg")
    kimi = kimi.replace(",1024,128,,,8,2,1,,1,1,", ",1024,128,{q},{q},8,8,1,,1,8,")
    oss = ROWS[1].replace("meta-llama/Llama-3.1-8B-Instruct", "openai/gpt-oss-120b")
    oss = oss.replace(",512,64,,,4,1,1,1,1,1", ",512,64,nvfp4,nvfp4,4,1,1,1,1,1")
    dev = oss.replace("1.0.0rc3", "gpt-oss-dev")
    rows = [kimi.format(q="nvfp4"), kimi.format(q="int4_wo"), oss, dev]
    fp4, int4, mx, dev_row = (predict(r) for r in read_silicon_csv(_silicon(tmp_path, rows)))
    assert fp4.models[0].precision.experts == "fp4" and fp4.models[0].precision.dense == "bf16"
    assert int4.models[0].precision.experts == "int4" and int4.models[0].precision.kv == "bf16"
    assert mx.models[0].precision.experts == "mxfp4"
    assert dev_row.predicted and dev_row.ttft_ms == mx.ttft_ms
    assert "'gpt-oss-dev' names no release" in dev_row.notes[0] and not mx.notes


def test_wide_expert_parallel_rows_run_attention_data_parallel(tmp_path: Path) -> None:
    """DeepSeek-R1 at 'tp 48' on GB200 (48 does not divide 128 heads) is read as 48 attention
    data-parallel ranks of tp 1 with the experts over all 48 GPUs, and says so."""
    wide = ROWS[0].replace("Qwen/Qwen3-32B,h100_sxm,,agg", "deepseek-ai/DeepSeek-R1,gb200,fp8,agg")
    wide = wide.replace(",1024,128,,,8,2,1,,1,1,", ",1024,128,fp8,fp8,8,48,1,,48,1,")
    (row,) = read_silicon_csv(_silicon(tmp_path, [wide]))
    pred = predict(row)
    model = pred.models[0]
    assert pred.predicted and (model.tp, model.dp, model.plan.moe_tp) == (1, 48, 48)
    assert "tp=48 does not divide the 128 attention heads" in pred.notes[0]


def test_inferencex_vllm_rows_run_the_kv_cache_dtype_of_their_script(tmp_path: Path) -> None:
    """InferenceX's MiniMax-M2.5 FP8 vLLM scripts passed no --kv-cache-dtype (vLLM's 'auto':
    a BF16 cache, the checkpoint declaring no KV quantisation) until the B200 one added fp8 on
    2026-04-03 (bddbf4031); its Llama-3.1-70B
    FP8 scripts always passed fp8. AIConfigurator's own FP8 rows keep the FP8 cache its
    generator writes. A BF16 cache holds half the tokens of an FP8 one."""
    minimax = ROWS[0].replace(
        "Qwen/Qwen3-32B,h100_sxm,,agg", "MiniMaxAI/MiniMax-M2.5,{gpu},fp8,agg"
    )
    minimax = minimax.replace(",1024,128,,,8,2,1,,1,1,", ",1024,128,fp8,fp8,8,4,1,,1,4,")
    source = "a,src; silicon_concurrency=8"
    export = "x,source_file=2026-04-06.csv; measured={day}"
    rows = [
        minimax.format(gpu="h100_sxm").replace(source, export.format(day="2026-03-27")),
        minimax.format(gpu="b200_sxm").replace(source, export.format(day="2026-03-27")),
        minimax.format(gpu="b200_sxm").replace(source, export.format(day="2026-04-10")),
        minimax.format(gpu="h100_sxm"),
    ]
    h100, before, after, aic = read_silicon_csv(_silicon(tmp_path, rows))
    assert [r.kv_dtype for r in (h100, before, after, aic)] == ["bf16", "bf16", "fp8", ""]
    plain, own = (step_model(r, r.agg, None, None) for r in (h100, aic))
    assert (plain.precision.kv, own.precision.kv) == ("bf16", "fp8")
    assert plain.memory.kv_bytes_per_token == 2 * own.memory.kv_bytes_per_token


def _first_of_unknown_load(tmp_path: Path, lines: list[str]) -> tuple[list[Measured], Prediction]:
    """The silicon rows read from `lines`, and the first one's prediction (a skip, here)."""
    rows = read_silicon_csv(_silicon(tmp_path, lines))
    return rows, predict(rows[0])


def test_rows_from_a_client_fault_window_are_skipped_with_the_reason(tmp_path: Path) -> None:
    """InferenceX's H100 gpt-oss vLLM script ran its client at concurrency 512 against servers
    holding the sweep's 4-64 from 2025-11-21 to 2025-12-08: its rows exported at 512 in that
    window are skipped, naming the script and the fix; the same point measured after the fix,
    at another concurrency, or on another GPU is predicted."""
    oss = (
        ROWS[0]
        .replace("Qwen/Qwen3-32B", "openai/gpt-oss-120b")
        .replace(",8,2,1,,1,1,", ",512,2,1,,2,1,")
    )
    source = "a,src; silicon_concurrency=8"
    faulty = oss.replace(source, "x,source_file=2026-04-06.csv; measured=2025-12-08; wip=False")
    fixed = faulty.replace("2025-12-08", "2025-12-09")
    other = faulty.replace(",512,2,1,,2,1,", ",64,2,1,,2,1,")
    h200 = faulty.replace("h100_sxm", "h200_sxm")
    rows, pred = _first_of_unknown_load(tmp_path, [faulty, fixed, other, h200])
    assert [bool(r.unknown_load) for r in rows] == [True, False, False, False]
    assert not pred.predicted and "gptoss_fp4_h100_docker.sh" in pred.skipped
    assert "fixed in 4e135fd3f" in pred.skipped and "load that ran is unknown" in pred.skipped


def test_rows_that_record_no_concurrency_are_skipped_with_the_reason(tmp_path: Path) -> None:
    """An aiperf row whose id leaves the concurrency blank (``_c_tp``) and whose source gives no
    silicon_concurrency records no load: skipped, aggregated or disaggregated; the same row
    with either the source's concurrency or a named one in its id is predicted."""
    agg = ROWS[0].replace("a,src; silicon_concurrency=8", "q_4000x1000_c_tp2_0_epnone_3,src")
    disagg = ROWS[2].replace("c,src; silicon_concurrency=6", "d_disagg_c_tpnone_epnone_1,src")
    recorded = agg.replace(",src,", ",src; silicon_concurrency=8,")
    named = agg.replace("_c_tp2", "_c8_tp2")
    rows, skipped = _first_of_unknown_load(tmp_path, [agg, disagg, recorded, named])
    assert [bool(r.unknown_load) for r in rows] == [True, True, False, False]
    assert not skipped.predicted and "records no concurrency" in skipped.skipped
    assert predict(rows[3]).predicted


def test_inferencex_rows_are_replayed_as_their_client_ran_them(tmp_path: Path) -> None:
    """A row whose source is a dated export or a dump of InferenceX's results database (its
    nightly results) was measured with vLLM's benchmark_serving.py as InferenceX runs it: 10
    requests per client, lengths drawn between 0.8 x and 1 x, against --max-num-batched-tokens
    8192 and --max-num-seqs CONC, with a wave of 2 x CONC warm-ups first when measured from
    2026-01-21 on (the measured date, else the export's); AIConfigurator's own rows keep aiperf's
    template and flags."""
    source = "a,src; silicon_concurrency=8"
    old = ROWS[0].replace(source, "x,source_file=2026-04-06.csv; measured=2025-12-08; wip=False")
    new = ROWS[0].replace(source, "y,source_file=2026-04-06.csv; measured=2026-03-27")
    undated = ROWS[0].replace(source, "z,source_file=2026-01-20.csv")
    dump = ROWS[0].replace(source, "d,db-dump/2026-04-27; config_id=7; measured=2025-11-18")
    rows = [ROWS[0], old, new, undated, dump]
    aic, before, after, export, database = read_silicon_csv(_silicon(tmp_path, rows))
    assert aic.load is AIPERF and before.load is INFERENCEX and export.load is INFERENCEX
    assert after.load is INFERENCEX_WARM and database.load is INFERENCEX
    assert before.flags == after.flags == {"token_budget": 8192, "max_seqs": 8}
    bench = replay_load(before)
    assert (bench.measured, bench.warmup, bench.range_ratio) == (80, 0, 0.8)
    bench = replay_load(after)
    assert (bench.measured, bench.warmup, bench.range_ratio) == (80, 16, 0.8)
    bench = replay_load(aic)
    assert (bench.measured, bench.warmup, bench.range_ratio) == (160, 16, 1.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h, r: (h.replace(",silicon_tpot_ms", ""), r), "missing column(s) silicon_tpot_ms"),
        (
            lambda h, r: (h, [r[0], r[1].replace("60.5", "abc")]),
            "line 3: column 'silicon_ttft_ms': 'abc' is not a number",
        ),
        (
            lambda h, r: (h, [r[0].replace(",vllm,", ",tgi,")]),
            "line 2: column 'backend': unknown engine 'tgi'; engines: vllm, sglang, trtllm",
        ),
        (lambda h, r: (h, [r[1].replace("7.1", "-7.1")]), "line 2: column 'silicon_tpot_ms'"),
        (lambda h, r: (h, [r[0].replace(",8,2,1,", ",x,2,1,")]), "column 'batch_size'"),
    ],
)
def test_bad_measured_files_fail_in_one_line(tmp_path: Path, change, message: str) -> None:
    """Missing column, non-numeric or negative latency, unknown engine, bad count: one line
    naming file, line and column; exit 1 and no prediction file written."""
    header, rows = change(HEADER, ROWS[:2])
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    with pytest.raises(PlannerError, match="bad.csv"):
        read_silicon_csv(path)
    out = tmp_path / "pred.csv"
    result = invoke("validate", path, "--out", out)
    assert result.exit_code == 1
    assert message in result.stderr and str(path) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_bench_json_reads_lengths_from_totals_and_deployment_from_metadata(tmp_path: Path) -> None:
    """vllm bench serve --save-result: mean lengths from token totals; flags from metadata; its
    own load (the completed requests over the clients, no warm-up wave)."""
    path = tmp_path / "run.json"
    data = {
        "model_id": "meta-llama/Llama-3.1-8B-Instruct",
        "max_concurrency": 16,
        "completed": 100,
        "total_input_tokens": 102400,
        "total_output_tokens": 12800,
        "mean_ttft_ms": 120.0,
        "mean_tpot_ms": 9.5,
        "tp": 2,
        "max_num_batched_tokens": 4096,
    }
    path.write_text(json.dumps(data))
    row = read_bench_json(path, {"accelerator": "h100"})
    assert (row.isl, row.osl, row.concurrency, row.agg.tp) == (1024, 128, 16, 2)
    assert row.flags == {"token_budget": 4096} and row.engine == "vllm"
    bench = replay_load(row)
    assert (bench.measured, bench.warmup, bench.range_ratio) == (96, 0, 1.0)
    path.write_text(json.dumps(data | {"dp": 2}))
    ranks = read_bench_json(path, {"accelerator": "h100"})
    assert ranks.concurrency == 32 and replay_load(ranks).measured == 96
    with pytest.raises(PlannerError, match="no accelerator"):
        read_bench_json(path, {})
    folder = read_measured([tmp_path], {"accelerator": "h100"})
    assert len(folder) == 1 and predict(folder[0]).predicted
    del data["mean_tpot_ms"]
    path.write_text(json.dumps(data))
    with pytest.raises(PlannerError, match="missing key.*mean_tpot_ms"):
        read_bench_json(path, {"accelerator": "h100"})


def test_rows_measured_under_another_load_are_not_fitted(tmp_path: Path) -> None:
    """A row flagged as having run fewer sequences than its concurrency is re-timed and scored,
    but no fit (calibrate, or a leave-one-model-out fold) learns from it."""
    agg, trt = read_silicon_csv(_silicon(tmp_path, ROWS[:2]))
    preds = [predict(agg, log=True), predict(trt, log=True)]
    preds[1].fewer_in_flight = True
    retimer = Retimer(preds)
    assert len(retimer.rows) == 2 and retimer.fitted() == [0]
    assert retimer.fitted(leave_out=agg.model) == []
    assert retimer.means(
        theta_of(load_default_calibration(), ["vllm", "trtllm"], ["h100"])
    ).shape == (2, 2)


def test_tensor_parallel_rows_fit_the_all_reduce_latency(tmp_path: Path) -> None:
    """The all-reduce latency is fitted only where a row runs tensor parallel: re-timed, the tp 2
    Qwen3-32B row's TPOT moves by its 2 x 64 all-reduces per step and the tp 1 row's not at all."""
    agg, trt = read_silicon_csv(_silicon(tmp_path, ROWS[:2]))
    retimer = Retimer([predict(agg, log=True), predict(trt, log=True)])
    name = ("kernel", "h100", "collective_ms")
    assert name in _names(retimer, [0]) and name not in _names(retimer, [1])
    theta = theta_of(load_default_calibration(), ["vllm", "trtllm"], ["h100"])
    slow, fast = (retimer.means(theta.with_vector([name], np.array([v]))) for v in (0.03, 0.01))
    assert fast[1] == pytest.approx(slow[1])
    assert slow[0, 1] - fast[0, 1] == pytest.approx(2 * 64 * 0.02, rel=0.05)


def test_rows_replay_or_say_why_not(tmp_path: Path) -> None:
    """Known rows predict positive latencies (HF paths resolve to cards); an unknown model or
    quantisation is skipped with its reason; a disagg row without workers gets the fewest decode
    workers that hold its clients (one here) and, decoding MoE over 16 GPUs, attention DP."""
    rows = read_silicon_csv(_silicon(tmp_path, ROWS))
    agg = predict(rows[0])
    assert agg.predicted and 20 < agg.ttft_ms < 5000 and 5 < agg.tpot_ms < 100
    assert agg.models[0].card.id == "qwen3-32b" and agg.models[0].tp == 2
    unknown = [ROWS[1].replace("meta-llama/Llama-3.1-8B-Instruct", "acme/Giant-9T")]
    odd = [ROWS[1].replace(",,,4,1,1,1,1,1", ",w3a7,,4,1,1,1,1,1")]
    skipped = [predict(r) for r in read_silicon_csv(_silicon(tmp_path, unknown + odd, "s.csv"))]
    assert "unknown model 'acme/Giant-9T'" in skipped[0].skipped
    assert "unknown dtype 'w3a7'" in skipped[1].skipped
    assert not skipped[0].predicted and not skipped[1].predicted
    bare = [ROWS[2].replace(",1,1,1,1,16,1,16,2,3,", ",,,1,1,16,1,16,,,")]
    disagg = predict(read_silicon_csv(_silicon(tmp_path, bare, "d.csv"))[0])
    assert disagg.predicted and len(disagg.notes) == 2
    assert "decode over 16 GPUs read as attention data-parallel" in disagg.notes[0]
    assert "1 decode worker(s) assumed, the fewest decode" in disagg.notes[1]


def test_missing_worker_counts_assume_prefills_that_feed_the_decoder(tmp_path: Path) -> None:
    """A disagg row without worker counts gets the fewest prefill workers whose prompt rate
    (a full token budget per prefill step) covers one decode worker's completions at the row's
    concurrency; more concurrency needs more prefill workers. Past what one decode worker's
    sequence slots or KV cache hold, it gets the fewest decode workers that hold every client
    (prompt and output), each fed."""
    counts = []
    for clients in (6, 600):
        row = ROWS[2].replace("silicon_concurrency=6", f"silicon_concurrency={clients}")
        row = row.replace(",1,1,1,1,16,1,16,2,3,", ",,,1,1,16,1,16,,,")
        row = row.replace("disagg,1024,256,", "disagg,1024,64,")
        (measured,) = read_silicon_csv(_silicon(tmp_path, [row], f"c{clients}.csv"))
        prefill = step_model(measured, measured.prefill, None, None)
        decode = step_model(measured, measured.decode, None, None)
        fed = feeding_prefills(prefill, decode, measured)
        demand = clients / (64 * decode.decode_ms(clients, 1024 + 32)[0] / 1000)
        per_step = 8192 // 1024
        supply = per_step / (prefill.prefill_ms(per_step, 1024)[0] / 1000)
        assert fed * supply >= demand and (fed == 1 or (fed - 1) * supply < demand)
        assert holding_decoders(decode, measured) == 1
        counts.append(fed)
    assert counts[0] == 1 < counts[1]
    many = replace(measured, concurrency=5000)
    slots, kv = decode.engine.scheduler.max_seqs, decode.memory.kv_budget_tokens
    held = holding_decoders(decode, many)
    holds = [n * slots >= 5000 and n * kv >= 5000 * (1024 + 64) for n in (held - 1, held)]
    assert held > 1 and holds == [False, True]
    per = -(-5000 // held)
    demand = held * per / (64 * decode.decode_ms(per, 1024 + 32)[0] / 1000)
    fed = feeding_prefills(prefill, decode, many, held)
    assert fed * supply >= demand > (fed - 1) * supply


INFERENCEX_ROW = (
    "x,source_file=2026-03-25.csv; model=DeepSeek-R1; silicon_concurrency=9; measured=2026-02-08,"
    "trtllm,0.8.1.post3,deepseek-ai/DeepSeek-R1,h100_sxm,fp8,disagg,1024,1024,fp8,fp8,,,,,,,,,"
    "16,1,1,1,16,,,16,1,1,1,16,7137.3,15.2"
)


def test_inferencex_rows_take_worker_counts_from_its_recipe(tmp_path: Path) -> None:
    """An InferenceX disagg row without worker counts takes them, and whether each role ran
    attention data-parallel, from InferenceX's recipe for the point (dsr1-fp8-h100-dynamo-trt,
    1k/1k, 9 clients: one prefill worker with attention DP over 16 GPUs, three TP16 decode
    workers); the simulator then spreads the clients over three decoders (a faster TPOT than
    one decoder holding all nine). An aiperf row is not looked up."""
    aiperf = INFERENCEX_ROW.replace("source_file=2026-03-25.csv; ", "")
    looked_up, fallback = read_silicon_csv(_silicon(tmp_path, [INFERENCEX_ROW, aiperf]))
    p, d = looked_up.prefill, looked_up.decode
    assert (p.tp, p.dp, p.ep, p.count) == (1, 16, 16, 1)
    assert (d.tp, d.dp, d.ep, d.count) == (16, 1, 16, 3)
    assert "recipe dsr1-fp8-h100-dynamo-trt: 1 prefill and 3 decode" in looked_up.notes[0]
    assert fallback.decode.count == 0 and not fallback.notes
    three, one = predict(looked_up), predict(fallback)
    assert not any("assumed" in n for n in three.notes) and "assumed" in one.notes[-1]
    assert three.tpot_ms < one.tpot_ms


def test_inferencex_trtllm_rows_run_the_flags_of_their_script(tmp_path: Path) -> None:
    """InferenceX's aggregated TensorRT-LLM rows run the flags its script for the model, system
    and precision launched: dsr1_fp8_h200_trt.sh's budget of CONC + ISL + 64 rounded up to 64
    (64 + 1024 + 64 -> 1,152), at least 8,192 in runs from 2026-01-21, padded CUDA graphs up to
    128; gptoss_fp4_b200_trt.sh's 20,000 tokens and graphs up to CONC. A model without a script
    keeps TensorRT-LLM's defaults."""
    source = "source_file=2026-03-25.csv; model=X; silicon_concurrency=64; measured={day}"
    dsr1 = (
        f"r,{source},trtllm,1.2.0,deepseek-ai/DeepSeek-R1,h200_sxm,fp8,agg,1024,1024,fp8,fp8,"
        "64,8,1,1,1,8" + ",,,,,,,,,,,,,," + ",900.0,20.0"
    )
    oss = dsr1.replace("deepseek-ai/DeepSeek-R1,h200_sxm,fp8", "openai/gpt-oss-120b,b200_sxm,fp4")
    other = dsr1.replace("deepseek-ai/DeepSeek-R1", "Qwen/Qwen3-32B")
    rows = [dsr1.format(day="2025-12-15"), dsr1.format(day="2026-01-28")]
    rows += [oss.format(day="2026-01-28"), other.format(day="2026-01-28")]
    early, late, gptoss, qwen = read_silicon_csv(_silicon(tmp_path, rows))
    assert early.flags == {"max_seqs": 64, "token_budget": 1152, "cuda_graph_max_batch": 128}
    assert late.flags["token_budget"] == 8192 and late.flags["cuda_graph_max_batch"] == 128
    assert gptoss.flags == {"max_seqs": 64, "token_budget": 20000, "cuda_graph_max_batch": 64}
    assert qwen.flags == {"max_seqs": 64}
    assert predict(early).ttft_ms > predict(late).ttft_ms


def test_inferencex_sglang_rows_run_the_flags_of_their_script(tmp_path: Path) -> None:
    """qwen3.5_fp8_b200.sh: --chunked-prefill-size 32768, --cuda-graph-max-bs CONC and
    --scheduler-recv-interval 30 from 16 clients (10 below), the tp 4 and tp 8 runs alike; a
    run on more GPUs than the script launches (tp 16 with 16 experts' ranks) gets none of them.
    Polling for new requests every 30 decode steps delays the first token."""
    source = "source_file=2026-03-25.csv; model=X; silicon_concurrency={c}; measured=2026-03-10"
    row = (
        f"q,{source},sglang,0.5.9,Qwen/Qwen3.5-397B-A17B,b200_sxm,fp8,agg,1024,1024,fp8,fp8,"
        "{c},{tp},1,1,1,{tp}" + ",,,,,,,,,,,,,," + ",900.0,20.0"
    )
    rows = [row.format(c=32, tp=8), row.format(c=8, tp=4), row.format(c=32, tp=16)]
    many, few, wide = read_silicon_csv(_silicon(tmp_path, rows))
    assert many.flags == {
        "max_seqs": 32,
        "token_budget": 32768,
        "cuda_graph_max_batch": 32,
        "recv_interval": 30,
    }
    assert few.flags["recv_interval"] == 10 and few.flags["cuda_graph_max_batch"] == 8
    assert wide.flags == {"max_seqs": 32}
    polled = predict(many)
    every_step = predict(replace(many, flags={**many.flags, "recv_interval": 1}))
    assert polled.ttft_ms > every_step.ttft_ms


def test_exports_that_multiply_the_gpus_by_the_ep_are_read_as_inferencex_ran_them(
    tmp_path: Path,
) -> None:
    """Real rows of the public silicon_sample.csv: InferenceX's tp 8, ep 8 SGLang run of
    DeepSeek-R1 on B200 at 4 clients, exported once as tp 64 with moe_tp 8 x moe_ep 8 and once
    as tp 8, moe_ep 8, with the same TTFT and TPOT, is read as 8 GPUs either way; a TensorRT-LLM
    attention-DP export (dp 64 of tp 1, batch 4 at 256 clients) as attention DP 8 with 32
    sequences a rank; vLLM's tp 4, attention dp 4, moe_ep 16 (MiniMax-M2.5, H100) as tp 4,
    ep 4. The script's flags then follow the GPUs it ran on. The same layouts in a row of
    AIConfigurator's own are taken as written."""
    db = "db-dump/2026-04-27; config_id=201; silicon_concurrency={c}; measured=2026-02-03"
    sglang = (
        "dsr1_b200_sglang_fp4_agg_1024x1024_c4_cfg201,{src},sglang,0.5.9,deepseek-ai/DeepSeek-V3,"
        "b200_sxm,fp4,agg,1024,1024,fp8_block,nvfp4,4,{layout},,,,,,,,,,,,,,,188.7344,8.0492"
    )
    wide = sglang.format(src=db.format(c=4), layout="64,1,1,8,8")
    plain = sglang.format(src=db.format(c=4), layout="8,1,1,1,8")
    trt = (
        f"dsr1_b200_trtllm_fp4_agg_1024x8192_c256_cfg191,{db.format(c=256)},trtllm,"
        "1.2.0rc6.post2,deepseek-ai/DeepSeek-V3,b200_sxm,fp4,agg,"
        "1024,8192,fp8_block,nvfp4,4,1,1,64,8,8,,,,,,,,,,,,,,,3000.0,30.0"
    )
    vllm = (
        "m,source_file=2026-04-06.csv; measured=2026-03-27,vllm,0.16.0,MiniMaxAI/MiniMax-M2.5,"
        "h100_sxm,fp8,agg,1024,1024,fp8_block,fp8_block,16,4,1,4,1,16,,,,,,,,,,,,,,,300.0,20.0"
    )
    aic = wide.replace(db.format(c=4), "aic; silicon_concurrency=4")
    rows = read_silicon_csv(_silicon(tmp_path, [wide, plain, trt, vllm, aic]))
    layouts = [(r.agg.tp, r.agg.dp, r.agg.ep, r.agg.batch, r.concurrency) for r in rows]
    assert layouts == [
        (8, 1, 8, 4, 4),
        (8, 1, 8, 4, 4),
        (1, 8, 8, 32, 256),
        (4, 1, 4, 64, 64),
        (64, 1, 8, 4, 4),
    ]
    assert "tp x ep (64) as its GPUs; InferenceX ran it on 8" in rows[0].notes[0]
    assert not rows[1].notes and not rows[4].notes
    assert rows[0].flags == rows[1].flags and rows[0].flags["token_budget"] == 16384
    assert rows[2].flags == {"max_seqs": 32, "token_budget": 8192, "cuda_graph_max_batch": 512}
    assert rows[3].flags == {"max_seqs": 64, "token_budget": 8192}
    assert predict(rows[0]).tpot_ms == predict(rows[1]).tpot_ms


def test_multinode_points_exported_as_agg_run_their_disaggregated_recipe(tmp_path: Path) -> None:
    """Real rows of the public silicon_sample.csv: InferenceX's GB200 DeepSeek-R1 point at 1,075
    clients exported as 'agg' at tp 20 is the recipe dsr1-fp4-gb200-dynamo-trt's 1 prefill
    worker (attention DP over 4 GPUs) and 1 decode worker (attention DP over 16): 20 GPUs; the
    same recipe with multi-token prediction has that layout too. The point at 144 clients over
    36 GPUs has no recipe of that size and stays aggregated, saying why; an aggregated export on
    one 8-GPU node is not looked up."""
    row = (
        "2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c{c}_tp{tp}_ep1_15,"
        "source_file=2026-04-06.csv; model=DeepSeek-R1; silicon_concurrency={c}; "
        "measured=2025-11-17T00:00:00.000Z; wip=False,trtllm,,deepseek-ai/DeepSeek-R1,{system},"
        "fp4,agg,1024,1024,nvfp4,nvfp4,{c},{tp},1,1,{tp},1,,,,,,,,,,,,,,,1928.3,20.27"
    )
    rows = [row.format(c=1075, tp=20, system="gb200"), row.format(c=144, tp=36, system="gb200")]
    rows.append(row.format(c=64, tp=8, system="b200_sxm"))
    split, unknown, node = read_silicon_csv(_silicon(tmp_path, rows))
    p, d = split.prefill, split.decode
    assert split.mode == "disagg" and split.concurrency == 1075 and not split.flags
    assert (p.count, p.tp, p.dp, p.ep, d.count, d.tp, d.dp, d.ep) == (1, 1, 4, 4, 1, 1, 16, 16)
    assert "its recipe's 1 prefill and 1 decode workers" in split.notes[0]
    assert unknown.mode == "agg" and "no recipe of that size matches" in unknown.notes[0]
    assert node.mode == "agg" and not node.notes and node.flags["token_budget"] == 1152
    assert predict(split).predicted


def test_recipes_that_disagree_leave_the_counts_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With and without speculative decoding at one point, the recipe without is taken (the row
    does not say, the planner predicts it without); two with different worker counts, or none,
    leave the row's counts unknown and say why; two that differ only in whether the prefill
    role ran attention data-parallel still give the counts (and the decode role's attention DP
    they agree on). A row's 9 clients also match a recipe at 3 clients on each of 3 decode
    workers, but only where no recipe runs 9 as such."""
    key = ("h100", "trtllm", "fp8", "1024", "1024", "16", "16", "16")

    def entry(spec: str, prefill: int, decode: int, clients: int = 9) -> dict[str, str]:
        roles = {"prefill_workers": str(prefill), "decode_workers": str(decode)}
        roles |= {f"{r}_{c}": "16" for r in ("prefill", "decode") for c in ("tp", "ep")}
        flags = {"prefill_dp_attention": "False", "decode_dp_attention": "False"}
        point = {"recipe": spec, "model": "DeepSeek-R1-0528", "concurrency": str(clients)}
        return {**point, "spec": spec, **roles, **flags}

    per_worker = entry("per-worker", 1, 3, clients=3)
    wide = entry("b", 1, 3) | {"prefill_dp_attention": "True", "decode_dp_attention": "True"}
    narrow = entry("a", 1, 3) | {"decode_dp_attention": "True"}
    cases = {
        "mtp and none": ([entry("mtp", 1, 4), entry("none", 2, 3)], (2, 3), "recipe none: 2"),
        "two without": ([entry("none", 1, 4), entry("none", 2, 3)], (0, 0), "several"),
        "none at all": ([entry("none", 1, 4, clients=8)], (0, 0), "no InferenceX recipe"),
        "per worker": ([per_worker, entry("x", 1, 2, clients=3)], (1, 3), "per-worker: 1"),
        "as such first": ([per_worker, entry("none", 2, 5)], (2, 5), "recipe none: 2"),
        "counts agree": ([narrow, wide], (1, 3), "recipes a, b: several match, all with 1"),
    }
    for name, (entries, counts, note) in cases.items():
        monkeypatch.setattr(measured_module, "inferencex_recipes", lambda e=entries: {key: e})
        (row,) = read_silicon_csv(_silicon(tmp_path, [INFERENCEX_ROW], f"{name}.csv"))
        assert (row.prefill.count, row.decode.count) == counts, name
        assert note in row.notes[0], name
        decode_tp = 1 if name == "counts agree" else 16
        assert (row.prefill.tp, row.decode.tp) == (16, decode_tp), name
    assert (row.prefill.dp, row.decode.dp) == (1, 16)


def test_a_wide_decode_role_without_a_known_deployment_runs_attention_data_parallel(
    tmp_path: Path,
) -> None:
    """A count-less disaggregated row of an MoE model whose decode role spans 32 GPUs with no
    recipe (GLM-5 on GB200 at 4,301 clients, the load and latencies of the public sample's Kimi
    K2.5 point) is predicted with attention DP over them, as InferenceX's recipes run decode
    roles that wide: each rank holds its own sequences, where one TP32 batch capped at
    TensorRT-LLM's 2,048 sequences left half the clients waiting for a slot (that Kimi point,
    read so, came out at 104 s TTFT against 2.5 s measured). A dense model's decode role, and
    one over 8 GPUs, stay tensor-parallel."""
    row = (
        "g,source_file=2026-03-25.csv; silicon_concurrency={c}; measured=2026-03-01,trtllm,"
        "1.2.0,{model},gb200,fp4,disagg,1024,1024,nvfp4,nvfp4,,,,,,,,,4,1,1,1,4,,,{tp},1,1,1,"
        "{tp},2482.7,24.5"
    )
    rows = [row.format(model="zhipuai/GLM-5", tp=32, c=4301)]
    rows.append(row.format(model="zhipuai/GLM-5", tp=8, c=4299))
    rows.append(row.format(model="meta-llama/Llama-3.1-70B", tp=32, c=4301))
    wide, node, dense = (predict(r) for r in read_silicon_csv(_silicon(tmp_path, rows)))
    assert (wide.models[1].tp, wide.models[1].dp) == (1, 32)
    assert "decode over 32 GPUs read as attention data-parallel" in wide.notes[1]
    assert (node.models[1].tp, node.models[1].dp) == (8, 1)
    assert (dense.models[1].tp, dense.models[1].dp) == (32, 1)
    assert "no InferenceX recipe matches" in node.notes[0] and len(node.notes) == 2
    assert wide.ttft_ms < 2 * 2482.7


def test_recipe_counts_agree_with_the_shared_rows_that_carry_them() -> None:
    """Independent check on real rows: the shared H100 file holds some InferenceX measurements
    twice, once in a nightly export without worker counts and once from a dump of InferenceX's
    results database with them (same TTFT and TPOT to the last digit); every count the recipe
    table supplies for the first matches the second, and the table resolves most of the
    InferenceX disagg rows."""
    rows = read_measured([shared_path("profiles", "aiconfigurator", "silicon_h100.csv")])
    disagg = [r for r in rows if r.mode == "disagg"]
    dumped = [r for r in disagg if "db-dump/" in r.raw["silicon_data_source"]]
    counted = {(r.ttft_ms, r.tpot_ms): r for r in dumped if r.decode.count}
    exported = [r for r in disagg if r.load is not AIPERF and r not in dumped]
    resolved = [r for r in exported if r.decode.count]
    assert len(resolved) >= 0.8 * len(exported)
    twins = [
        (r, counted[r.ttft_ms, r.tpot_ms]) for r in resolved if (r.ttft_ms, r.tpot_ms) in counted
    ]
    assert twins
    for row, twin in twins:
        assert (row.prefill.count, row.decode.count) == (twin.prefill.count, twin.decode.count)
        assert (row.prefill.dp, row.decode.dp) == (twin.prefill.dp, twin.decode.dp)


@pytest.fixture(scope="module")
def shared_validation(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """`planner validate` of the shared H100 silicon rows (about a minute)."""
    measured = shared_path("profiles", "aiconfigurator", "silicon_h100.csv")
    out = tmp_path_factory.mktemp("validate") / "pred.csv"
    result = invoke("validate", measured, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), out


def test_validate_predicts_nine_in_ten_shared_rows(shared_validation: tuple[dict, Path]) -> None:
    """At least 90 % of the 917 measured H100 rows are predicted; each row is written back with
    its prediction or its skip reason; errors are reported per engine, model and mode."""
    out, path = shared_validation
    assert out["rows"] == 917 and out["predicted"] / out["rows"] >= 0.9
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 917
    assert all(r["pred_ttft_ms"] or r["skipped"] for r in rows)
    assert {"silicon_ttft_ms", "pred_tpot_ms", "note"} <= set(rows[0])
    overall = out["errors"][-1]
    assert (overall["engine"], overall["rows"]) == ("all", 917)
    engines = {(e["engine"], e["mode"]) for e in out["errors"][:-1]}
    assert {("vllm", "agg"), ("sglang", "agg"), ("trtllm", "agg"), ("trtllm", "disagg")} <= engines


def test_the_rows_that_ran_fewer_sequences_are_the_client_fault_rows(
    shared_validation: tuple[dict, Path],
) -> None:
    """The nine vLLM gpt-oss-120b rows at concurrency 512, whose own TTFT and TPOT imply about
    100 sequences decoding at once whatever the TP (Little's law), are exactly the rows of
    InferenceX's client-fault window: skipped with that reason; once they are, Little's law
    flags no other row of the file as having run fewer sequences than its deployment."""
    out, path = shared_validation
    with path.open() as handle:
        rows = {r["id"]: r for r in csv.DictReader(handle)}
    expected = {
        i
        for i, r in rows.items()
        if r["model_path"] == "openai/gpt-oss-120b"
        and r["backend"] == "vllm"
        and r["batch_size"] == "512"
    }
    skipped = {i for i, r in rows.items() if "gptoss_fp4_h100_docker.sh" in r["skipped"]}
    assert len(expected) == 9 and skipped == expected
    assert out["fewer_in_flight"] == []
    for i in expected:
        osl = int(rows[i]["osl"])
        measured = decoding(
            512, osl, float(rows[i]["silicon_ttft_ms"]), float(rows[i]["silicon_tpot_ms"])
        )
        assert 80 < measured < 120, (i, measured)


def test_decoding_is_littles_law() -> None:
    """A closed loop with no wait decodes every client; waiting as long as decoding halves it."""
    assert decoding(512, 1025, 0.0, 4.0) == 512
    assert decoding(512, 1025, 1024 * 4.0, 4.0) == pytest.approx(256)
    assert decoding(10, 101, 300.0, 1.0) == pytest.approx(10 * 100 / 400)


def test_accuracy_gate_leave_one_model_out() -> None:
    """LOMO MAPE on the shared H100 rows (aggregated) is no more than 2 points worse than the
    committed baseline, for TTFT and for TPOT, over every row and over the rows measured under
    the load they name (a change that degrades either on either set fails)."""
    measured = shared_path("profiles", "aiconfigurator", "silicon_h100.csv")
    baseline = json.loads(BASELINE.read_text())
    start = load_default_calibration().steps_only()
    summary = validation_summary(lomo(read_measured([measured]), start))
    as_loaded = summary["errors_as_loaded"]
    for overall, base in ((summary["errors"][-1], baseline), (as_loaded, baseline["as_loaded"])):
        assert overall["predicted"] == base["rows"]
        assert overall["ttft_mape"] <= base["ttft_mape"] + 2.0
        assert overall["tpot_mape"] <= base["tpot_mape"] + 2.0


def test_cloudmatrix384_per_npu_throughputs() -> None:
    """DeepSeek-R1 INT8 on Ascend 910C as CloudMatrix-Infer serves it (arXiv 2506.12708v2):
    decode EP320 over 160 NPUs, batch 96 per NPU, KV 4,096, one MTP token at 70 % acceptance
    -> 1,943 tokens/s per NPU; prefill EP32 over 16 NPUs, 4 prompts of 4,096 per NPU -> 6,688
    tokens/s per NPU. Both within +-25 %."""
    decode = StepModel.build(
        "deepseek-ai/DeepSeek-R1", "ascend-910c", dp=160, ep=160, dtype="int8",
        speculative=Speculative(1, 0.7),
    )  # fmt: skip
    tpot_ms = decode.decode_ms(96 * 160, 4096 + 128)[0]
    assert 96 / tpot_ms * 1000 == pytest.approx(1943, rel=0.25)
    prefill = StepModel.build("deepseek-v3", "ascend-910c", dp=16, ep=16, dtype="int8")
    step_ms = prefill.prefill_ms(4 * 16, 4096)[0]
    assert 4 * 4096 / step_ms * 1000 == pytest.approx(6688, rel=0.25)
