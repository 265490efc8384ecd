"""The end-to-end demo on the embedded trace: a new user's first minute, offline."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from planner.ingest import ingest_sample
from planner.store import open_store

DEMO_SAMPLE = "azure-code"


@dataclass
class DemoResult:
    """What the demo produced: the store, the files written and the headline."""

    out_dir: Path
    db: Path
    headline: str
    files: list[Path] = field(default_factory=list)


def run_demo(out_dir: Path, step: Callable[[str], None] = lambda _: None) -> DemoResult:
    """Ingest the embedded Azure trace into a fresh store under `out_dir` and summarise it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    db = out_dir / "planner.duckdb"
    con = open_store(db)
    try:
        step(f"ingesting embedded trace {DEMO_SAMPLE}")
        result = ingest_sample(con, DEMO_SAMPLE)
    finally:
        con.close()
    headline = (
        f"{result.name}: {result.rows:,} requests over {result.span_s / 60:,.1f} min "
        f"({result.rows / result.span_s:.2f} req/s mean)"
    )
    return DemoResult(out_dir, db, headline)
