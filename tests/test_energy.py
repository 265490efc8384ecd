"""Energy and power: the simulator's busy time, the energy block against a hand computation and
against the plan's own schedule, and --power-budget / --energy-price in the mix and the CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, replica_hourly, sample_store

from planner.costmodel import StepModel, load_catalog
from planner.optimize.costing import HOURS_PER_MONTH
from planner.optimize.energy import ACTIVE_SHARE, IDLE_SHARE, energy_block
from planner.optimize.mix import MixOption, solve_mix
from planner.simulate import StepTable, Workload, simulate

PLAN = ["--model", "llama-3.1-8b", "--slo", "ttft_p99=1000ms", "--slo", "tpot_p99=50ms"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the embedded azure-code trace."""
    return sample_store(tmp_path_factory.mktemp("energy") / "store.duckdb", "azure-code")


def test_isolated_requests_keep_the_replica_busy_exactly_while_they_run():
    """Requests 100 s apart: the instance steps from each arrival to its last token and idles
    otherwise, so its busy time is the sum of the end-to-end latencies."""
    work = Workload(
        np.arange(4) * 100.0, np.array([500, 2000, 8000, 100]), np.array([50, 10, 200, 1])
    )
    result = simulate(work, StepTable(StepModel.build("llama-3.1-8b", "h100")))
    assert result.busy_s == pytest.approx(result.e2e_ms.sum() / 1000.0, rel=1e-9)
    assert 0 < result.busy_s < 5.0


def test_energy_block_is_the_hand_computation():
    """2 H100 busy half the time and 4 L4 idle, at US$0.15 per kWh."""
    block = energy_block(
        np.array([2.0, 4.0]), np.array([3.0, 4.0]), np.array([700.0, 72.0]),
        np.array([0.5, 0.0]), 0.15, "test",
    )  # fmt: skip
    kw = 2 * 0.7 * (IDLE_SHARE + (ACTIVE_SHARE - IDLE_SHARE) * 0.5) + 4 * 0.072 * IDLE_SHARE
    assert block["mean_power_kw"] == pytest.approx(kw, abs=1e-3)
    assert block["kwh_per_month"] == pytest.approx(kw * HOURS_PER_MONTH, abs=0.1)
    assert block["cost_per_month"] == pytest.approx(kw * HOURS_PER_MONTH * 0.15, abs=0.01)
    assert block["peak_power_kw"] == pytest.approx((3 * 700 + 4 * 72) / 1000)
    assert block["busy_share"] == pytest.approx(1.0 / 6.0, abs=1e-4)


def test_power_budget_is_a_limit_of_the_mix():
    """H100 (0.7 kW, 10 req/s) and L4 pairs (0.144 kW, 1 req/s) for 10.5 req/s: 1 + 1 draws
    0.844 kW, 2 H100 1.4 kW, 11 L4 pairs 1.584 kW, so under 0.8 kW nothing serves it. With L4
    pairs cheap enough that 11 of them are the least-cost mix, a 1 kW budget forces 1 + 1."""
    h100 = MixOption("h100", "h100", 1, 12.29, (10.0,), 0.7)
    l4 = MixOption("l4", "l4", 2, 1.6, (1.0,), 0.144)
    assert solve_mix([h100, l4], [10.5]).power_kw() == pytest.approx(0.844)
    assert solve_mix([h100, l4], [10.5], power_kw=0.8) is None
    assert solve_mix([h100, l4], [10.5], power_kw=1.6).power_kw() == pytest.approx(0.844)
    cheap = MixOption("l4", "l4", 2, 0.5, (1.0,), 0.144)
    assert solve_mix([h100, cheap], [10.5]).power_kw() == pytest.approx(11 * 0.144)
    assert solve_mix([h100, cheap], [10.5], power_kw=1.0).power_kw() == pytest.approx(0.844)


def test_plan_energy_agrees_with_its_schedule_and_replay(store, tmp_path):
    """Recomputed from PLAN.json's own schedule, replay busy shares and the catalog's TDP; a
    power budget the plan meets is honoured and shown; a user price is used."""
    out = tmp_path / "PLAN.json"
    args = ["plan", "azure-code", *PLAN, "--accelerators", "h100,l4", "--db", store]
    result = invoke(*args, "--power-budget", "5.5", "--energy-price", "0.2", "--out", out)
    assert result.exit_code == 0, result.stderr
    plan = json.loads(out.read_text())
    energy, catalog = plan["energy"], load_catalog()
    groups = {g["plan"]: g for g in plan["recommended"]["replicas"]}
    tdp = {a: catalog[a].tdp_w / 1000.0 for a in catalog}
    rows: dict[str, list[int]] = {}
    drawn: dict[float, float] = {}
    for row in plan["schedule"]:
        rows.setdefault(row["plan"], []).append(row["replicas"])
        at_tdp = replica_hourly(groups[row["plan"]], tdp) * row["replicas"]
        drawn[row["t"]] = drawn.get(row["t"], 0.0) + at_tdp
    kw = 0.0
    for label, counts in rows.items():
        busy = plan["replay"]["busy_share"][label]
        assert 0 <= busy <= 1
        at_tdp = replica_hourly(groups[label], tdp)
        kw += np.mean(counts) * at_tdp * (IDLE_SHARE + (ACTIVE_SHARE - IDLE_SHARE) * busy)
    peak = max(drawn.values())
    assert energy["mean_power_kw"] == pytest.approx(kw, abs=1e-3)
    assert energy["kwh_per_month"] == pytest.approx(kw * HOURS_PER_MONTH, abs=0.5)
    assert energy["cost_per_month"] == pytest.approx(energy["kwh_per_month"] * 0.2, abs=0.05)
    assert energy["peak_power_kw"] == pytest.approx(peak, abs=1e-3) and peak <= 5.5
    assert energy["power_budget_kw"] == 5.5 and energy["price_source"] == "--energy-price"
    assert f"energy: {energy['kwh_per_month']:,.0f} kWh/month" in result.stdout


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("--power-budget", "-1", "--power-budget -1: must be a positive number of kW"),
        ("--power-budget", "0", "--power-budget 0: must be a positive number of kW"),
        ("--energy-price", "-0.1", "--energy-price -0.1: must be a US$ amount per kWh"),
        (
            "--power-budget",
            "0.05",
            "power budget too low: 0.05 kW is below one replica of any plan; the lightest, l4-",
        ),
        ("--power-budget", "2", "power budget too low for the peak: 2 kW at TDP serve at most"),
    ],
)
def test_bad_power_and_energy_options_are_one_line_errors(store, tmp_path, option, value, reason):
    """Exit 1, one line naming the option or the binding limit, nothing written."""
    out = tmp_path / "PLAN.json"
    args = ["plan", "azure-code", *PLAN, "--accelerators", "h100,l4", "--db", store]
    result = invoke(*args, option, value, "--out", out)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and reason in result.stderr, result.stderr
    assert not out.exists()
