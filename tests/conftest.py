"""Shared fixtures: the real data in ../shared/data (skipped with a reason when absent)."""

from pathlib import Path

import duckdb
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


def invoke(*args: str | Path) -> Result:
    """Run the `planner` CLI in-process (stdout and stderr kept apart)."""
    return CliRunner().invoke(cli.app, [str(a) for a in args])


def store_state(db: Path) -> tuple[list[tuple], dict[str, int]]:
    """A store's `traces` rows and every data table's row count, to compare before and after."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        traces = con.execute("SELECT * FROM traces ORDER BY id").fetchall()
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in DATA_TABLES}
    finally:
        con.close()
    return traces, counts
