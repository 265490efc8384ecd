"""Ingest: read real trace formats into the DuckDB store, atomically and idempotently."""

from planner.ingest import huawei  # noqa: F401  (registers the Huawei readers)
from planner.ingest.formats import FORMATS, Format, detect_format, get_format
from planner.ingest.loader import IngestResult, default_name, ingest_path, remove_trace
from planner.ingest.samples import SAMPLES, ingest_sample, sample_path
from planner.ingest.sources import is_uri, source_size

__all__ = [
    "FORMATS",
    "Format",
    "IngestResult",
    "SAMPLES",
    "default_name",
    "detect_format",
    "get_format",
    "ingest_path",
    "ingest_sample",
    "is_uri",
    "remove_trace",
    "sample_path",
    "source_size",
]
