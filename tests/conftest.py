"""Shared fixtures: the real data in ../shared/data (skipped with a reason when absent)."""

from pathlib import Path

import pytest

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
