"""Prefix caching: the LRU block cache, the simulator's prefill count against an independent
count of uncached blocks, prefix-affinity routing, and plans that pay for reuse."""

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from conftest import FixedSteps, invoke, sample_store, shared_path

from planner.errors import PlannerError
from planner.ingest import ingest_path
from planner.simulate import PrefixCache, Scheduling, Workload, load_workload, simulate
from planner.simulate.prefix import ASSUMED_BLOCK_TOKENS, TRACE_BLOCK_TOKENS
from planner.store import get_trace, open_store

RULES = Scheduling(max_seqs=64, token_budget=1 << 20)
SPACED_S = 1000.0


def test_cache_matches_leading_blocks_and_evicts_least_recently_used():
    """Only the leading run of cached blocks counts; the least recently used block goes first;
    a fully cached prompt still computes its last token."""
    cache = PrefixCache(capacity_blocks=3, block_tokens=10)
    cache.insert((1, 2))
    assert cache.matched((1, 2, 3)) == 2 and cache.matched((3, 1)) == 0
    assert cache.hit_tokens((1, 2), 20) == 19
    cache.insert((7,))
    assert cache.hit_tokens((1,), 10) == 9  # touches 1: block 2 is now the oldest
    cache.insert((8,))
    assert list(cache.blocks) == [7, 1, 8]
    assert cache.matched((1, 2)) == 1


def _spaced(work: Workload) -> Workload:
    """The same requests one at a time: each arrives after the previous one has finished."""
    return Workload(
        np.arange(work.requests) * SPACED_S,
        work.input_tokens,
        work.output_tokens,
        blocks=work.blocks,
        block_tokens=work.block_tokens,
        reuse=work.reuse,
    )


def _uncached_tokens(con: duckdb.DuckDBPyConnection, trace_id: int, rows: int) -> int:
    """Independent count (SQL): prompt tokens of the first `rows` requests not covered by the
    leading run of blocks some earlier request already had (an unbounded cache; at least one
    token computed per prompt)."""
    return con.execute(
        """
        WITH r AS (
            SELECT row_number() OVER (ORDER BY arrival_s, rowid) AS rid, input_tokens,
                   prefix_blocks
            FROM requests WHERE trace_id = ? AND ok ORDER BY arrival_s, rowid LIMIT ?),
        b AS (SELECT rid, unnest(range(1, len(prefix_blocks) + 1)) AS pos,
                     unnest(prefix_blocks) AS h FROM r),
        seen AS (SELECT h, min(rid) AS first FROM b GROUP BY h),
        miss AS (SELECT b.rid, min(b.pos) AS pos FROM b JOIN seen USING (h)
                 WHERE seen.first = b.rid GROUP BY b.rid),
        hits AS (
            SELECT r.rid, r.input_tokens,
                   coalesce(miss.pos - 1, len(r.prefix_blocks)) AS lead
            FROM r LEFT JOIN miss USING (rid))
        SELECT sum(input_tokens - least(lead * ?, input_tokens - 1)) FROM hits
        """,
        [trace_id, rows, TRACE_BLOCK_TOKENS],
    ).fetchone()[0]


def test_prefilled_tokens_match_an_independent_count_on_the_mooncake_trace(tmp_path: Path):
    """Real Mooncake hashes, requests one at a time, a cache that never evicts: the simulator
    prefills exactly the tokens SQL counts as uncached; with the cache off, every token."""
    source = shared_path("traces", "mooncake_fast25", "synthetic_trace.jsonl")
    con = open_store(tmp_path / "s.duckdb")
    ingest_path(con, source, fmt="mooncake", name="mc")
    work = _spaced(load_workload(con, "mc"))
    assert work.reuse == "the trace's prefix-block hashes"
    expected = _uncached_tokens(con, get_trace(con, "mc").id, work.requests)
    result = simulate(work, FixedSteps(), RULES)
    assert result.prefilled_tokens == expected
    assert result.cached_tokens == int(work.input_tokens.sum()) - expected
    assert result.cached_tokens > 0.4 * work.input_tokens.sum()
    off = simulate(work, FixedSteps(), Scheduling(max_seqs=64, token_budget=1 << 20,
                                                 prefix_caching=False))  # fmt: skip
    assert off.prefilled_tokens == int(work.input_tokens.sum()) and off.cached_tokens == 0


def test_assumed_shared_prefix_is_prefilled_once_per_new_depth():
    """An assumed 60 % shared prefix, requests one at a time, unbounded cache: request i reuses
    the shared blocks up to the deepest any earlier request computed (closed form)."""
    rng = np.random.default_rng(3)
    inputs = rng.integers(100, 5000, 300)
    work = _spaced(Workload(np.zeros(300), inputs, np.full(300, 20))).with_prefix_reuse(0.6)
    depth = np.floor(0.6 * inputs / ASSUMED_BLOCK_TOKENS).astype(int)
    before = np.r_[0, np.maximum.accumulate(depth)[:-1]]
    hits = np.minimum(np.minimum(depth, before) * ASSUMED_BLOCK_TOKENS, inputs - 1)
    result = simulate(work, FixedSteps(), RULES)
    assert result.cached_tokens == hits.sum()
    assert result.prefilled_tokens == (inputs - hits).sum()
    assert result.summary()["prefix_cache"]["saved_share"] == pytest.approx(
        hits.sum() / inputs.sum()
    )


def test_small_cache_evicts_and_saves_less():
    """The same reuse through a cache of a few blocks: fewer hits than an unbounded one."""
    rng = np.random.default_rng(5)
    families = rng.integers(0, 50, 400)
    blocks = np.empty(400, dtype=object)
    blocks[:] = [tuple(range(f * 100, f * 100 + 8)) for f in families.tolist()]
    work = _spaced(
        Workload(np.zeros(400), np.full(400, 4200), np.full(400, 10), blocks=blocks,
                 block_tokens=512)
    )  # fmt: skip
    big = simulate(work, FixedSteps(kv=10**9), RULES)
    small = simulate(work, FixedSteps(kv=512 * 40), RULES)
    assert big.cached_tokens == (400 - len(np.unique(families))) * 8 * 512
    assert 0 < small.cached_tokens < big.cached_tokens


def test_prefix_affinity_routes_to_the_replica_holding_the_prefix():
    """Four prompt families over four replicas whose caches hold two families each:
    prefix-affinity keeps each family where its prefix is and reuses nearly every prompt's,
    least-loaded scatters them and the caches thrash."""
    rng = np.random.default_rng(7)
    n = 800
    families = rng.integers(0, 4, n)
    blocks = np.empty(n, dtype=object)
    blocks[:] = [tuple(range(f * 100, f * 100 + 6)) for f in families.tolist()]
    work = Workload(np.arange(n) * 0.05, np.full(n, 3200), np.full(n, 50), blocks=blocks,
                    block_tokens=512)  # fmt: skip
    steps = FixedSteps(prefill=5.0, decode=1.0, kv=512 * 14)
    affinity = simulate(work, steps, RULES, replicas=4, router="prefix-affinity")
    loaded = simulate(work, steps, RULES, replicas=4, router="least-loaded")
    assert affinity.cached_tokens > 0.9 * n * 6 * 512
    assert affinity.cached_tokens > 1.2 * loaded.cached_tokens


def test_sixty_percent_reuse_plans_fewer_gpus(tmp_path: Path):
    """The Azure conversation sample planned with 60 % of every prompt shared, and as if
    nothing were reused: fewer GPUs at the peak, a lower bill, and the reuse and its saving in
    PLAN.json, on stdout and in the report's assumptions."""
    db = sample_store(tmp_path / "s.duckdb", "azure-conv")
    args = ["plan", "azure-conv", "--model", "llama-3.1-8b", "--slo", "ttft_p99=1000ms",
            "--slo", "tpot_p99=50ms", "--accelerators", "h100,l4", "--horizon", "30min",
            "--interval", "5min", "--db", db]  # fmt: skip
    plans = {}
    for name, extra in (("reuse", ["--prefix-reuse", "0.6"]), ("none", [])):
        out, report = tmp_path / f"{name}.json", tmp_path / f"{name}.html"
        result = invoke(*args, *extra, "--out", out, "--report", report)
        assert result.exit_code == 0, result.stderr
        plans[name] = json.loads(out.read_text())
        plans[name]["stdout"] = result.stdout
        plans[name]["report"] = report.read_text(encoding="utf-8")

    def gpus(plan: dict) -> int:
        return sum(g["gpus"] for g in plan["recommended"]["replicas"])

    reuse, none = plans["reuse"], plans["none"]
    assert gpus(reuse) < gpus(none)
    assert reuse["recommended"]["cost_per_month"] < none["recommended"]["cost_per_month"]
    cache = reuse["demand"]["prefix_cache"]
    assert cache["enabled"] and cache["reuse"].startswith("assumed: 60%")
    assert 0.4 < cache["saved_share"] < 0.6
    assert cache["saved_share"] == reuse["replay"]["schedule"]["prefix_cache_saved_share"]
    assert f"{cache['saved_share']:.1%} of prompt tokens served from cache" in reuse["stdout"]
    assert (
        "prompt reuse from assumed: 60% of every prompt shared by all requests; "
        f"{cache['saved_share']:.1%} of prompt tokens served from the cache" in reuse["report"]
    )
    assert none["demand"]["prefix_cache"] == {"enabled": True, "reuse": "none", "saved_share": 0}


@pytest.mark.parametrize("share", ["-0.1", "1", "1.5"])
def test_prefix_reuse_outside_a_share_is_refused(tmp_path: Path, share: str):
    """--prefix-reuse outside [0, 1): one-line error, exit 1, on plan and on simulate."""
    db = sample_store(tmp_path / "s.duckdb", "azure-code")
    plan = invoke("plan", "azure-code", "--model", "llama-3.1-8b", "--slo", "ttft_p99=1000ms",
                  "--prefix-reuse", share, "--db", db)  # fmt: skip
    sim = invoke("simulate", "azure-code", "--prefix-reuse", share, "--db", db)
    for result in (plan, sim):
        assert result.exit_code == 1
        assert result.stderr.strip() == (
            f"error: --prefix-reuse must be a share in [0, 1), not {float(share):g}"
        )
    with pytest.raises(PlannerError, match="share in"):
        Workload(np.zeros(1), np.ones(1, int), np.ones(1, int)).with_prefix_reuse(1.0)


def test_simulate_cli_reports_the_reuse(tmp_path: Path):
    """`planner simulate --prefix-reuse`: JSON and text name the assumption and its saving;
    --no-prefix-cache turns the engine's cache off."""
    db = sample_store(tmp_path / "s.duckdb", "azure-code")
    base = ["simulate", "azure-code", "--end", "300", "--db", db]
    on = invoke(*base, "--prefix-reuse", "0.5", "--json")
    off = invoke(*base, "--prefix-reuse", "0.5", "--no-prefix-cache", "--json")
    on_out, off_out = json.loads(on.stdout), json.loads(off.stdout)
    assert on_out["plan"]["prefix_reuse"].startswith("assumed: 50%")
    assert on_out["plan"]["prefix_caching"] and not off_out["plan"]["prefix_caching"]
    assert on_out["prefix_cache"]["cached_tokens"] > 0 == off_out["prefix_cache"]["cached_tokens"]
    total = sum(on_out["prefix_cache"][k] for k in ("cached_tokens", "prefilled_tokens"))
    assert total == off_out["prefix_cache"]["prefilled_tokens"]
    text = invoke(*base, "--prefix-reuse", "0.5").stdout
    assert "prefix cache (on; reuse from assumed: 50% of every prompt" in text
