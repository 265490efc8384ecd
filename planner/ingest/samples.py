"""The traces embedded in the package, loadable by name with no path and no network."""

from pathlib import Path

import duckdb

from planner.errors import PlannerError
from planner.ingest.loader import IngestResult, ingest_path
from planner.resources import resource_dir

SAMPLES: dict[str, tuple[str, str]] = {
    "azure-code": ("traces/AzureLLMInferenceTrace_code.csv.gz", "azure-llm"),
    "azure-conv": ("traces/AzureLLMInferenceTrace_conv.csv.gz", "azure-llm"),
}


def sample_path(name: str) -> Path:
    """The bundled file of a sample trace."""
    if name not in SAMPLES:
        raise PlannerError(f"unknown sample {name!r}; samples: {', '.join(SAMPLES)}")
    return resource_dir("datasets") / SAMPLES[name][0]


def ingest_sample(con: duckdb.DuckDBPyConnection, name: str, replace: bool = False) -> IngestResult:
    """Load an embedded sample trace under its sample name."""
    return ingest_path(con, sample_path(name), fmt=SAMPLES[name][1], name=name, replace=replace)
