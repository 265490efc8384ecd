"""Shared fixtures: the real data in ../shared/data (skipped with a reason when absent)."""

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner, Result

import cli
from planner.store import DATA_TABLES

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, skipping the calling test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path} (it ships with CI, not with the package)")
    return path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh store path in a temporary folder."""
    return tmp_path / "store.duckdb"


def sample_store(db: Path, *samples: str) -> Path:
    """A store file at `db` holding the embedded `samples` (azure-code, azure-conv)."""
    from planner.ingest import ingest_sample
    from planner.store import open_store

    con = open_store(db)
    for name in samples:
        ingest_sample(con, name)
    con.close()
    return db


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    """Run the `planner` CLI in-process (stdout and stderr kept apart), the one runner every
    CLI test uses; `env`: extra environment variables (e.g. COLUMNS)."""
    return CliRunner().invoke(cli.app, [str(a) for a in args], env=env)


def ingest_one(db: Path, *args: str | Path) -> dict:
    """`planner ingest` of one source with --json; asserts success and returns its result."""
    result = invoke("ingest", *args, "--db", db, "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json.loads(result.stdout)
    return out


def store_rows(db: Path, sql: str) -> list[tuple]:
    """All rows of a query over a store (opened read-only)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def store_state(db: Path) -> tuple[list[tuple], dict[str, int]]:
    """A store's `traces` rows and every data table's row count, to compare before and after."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        traces = con.execute("SELECT * FROM traces ORDER BY id").fetchall()
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in DATA_TABLES}
    finally:
        con.close()
    return traces, counts


def replica_hourly(group: dict, price: dict[str, float]) -> float:
    """$/hour of one replica of a PLAN.json replica group at `price` per GPU-hour, each side of
    a P/D replica at its own accelerator's price (computed here from the group's own fields,
    not by the planner's pricing); asserts the group's GPUs add up."""
    p, d = group["pd"] or (0, 1)
    side = group["prefill"] or group
    p_gpus = p * side["tp"] * side["pp"] * side["ep"]
    d_gpus = d * group["tp"] * group["pp"] * group["ep"]
    assert group["gpus"] == group["count"] * (p_gpus + d_gpus), group
    return p_gpus * price[side["accelerator"]] + d_gpus * price[group["accelerator"]]


def group_hourly(group: dict, price: dict[str, float]) -> float:
    """$/hour of a PLAN.json replica group (all its replicas) at `price` per GPU-hour."""
    return group["count"] * replica_hourly(group, price)


def busiest_fleet(plan: dict) -> dict[str, int]:
    """Replicas per plan in the busiest interval of PLAN.json's schedule (the highest total
    demand over its length buckets, the dearest fleet among ties), from the rows alone."""
    groups = {g["plan"]: g for g in plan["recommended"]["replicas"]}
    price = {a["id"]: a["price_per_hour"] for a in plan["accelerators"]}
    fleet: dict[float, dict[str, int]] = {}
    demand: dict[float, dict[str | None, float]] = {}
    for row in plan["schedule"]:
        fleet.setdefault(row["t"], {})[row["plan"]] = row["replicas"]
        demand.setdefault(row["t"], {})[groups[row["plan"]].get("bucket")] = row["demand_rps"]

    def rank(t: float) -> tuple[float, float]:
        cost = sum(replica_hourly(groups[p], price) * n for p, n in fleet[t].items())
        return sum(demand[t].values()), cost

    return fleet[max(fleet, key=rank)]


@dataclass
class Budget:
    """A memory plan with only a KV budget."""

    kv_budget_tokens: int


class FixedSteps:
    """A step model with deterministic times for closed forms: `prefill` ms per prompt (or
    chunk) a step carries, plus `decode` ms when the step decodes (mixed steps pay both)."""

    attention_window = 0

    def __init__(self, prefill: float = 10.0, decode: float = 1.0, kv: int = 10**9) -> None:
        """Constant costs and a KV budget."""
        self.prefill, self.decode, self.memory = prefill, decode, Budget(kv)

    def step_ms(self, shape):
        """Prompts carried times the prefill cost, plus a decode step if any sequence decodes."""
        decoding = np.asarray(shape.decode_seqs) > 0
        return np.asarray(shape.prefill_seqs, dtype=float) * self.prefill + decoding * self.decode

    def decode_ms(self, batch, context):
        """The fixed decode step."""
        return np.full(np.broadcast(batch, context).shape, self.decode)

    def kv_transfer_ms(self, tokens, bandwidth_gb_s=None):
        """Free transfers."""
        return np.zeros(np.shape(tokens))
