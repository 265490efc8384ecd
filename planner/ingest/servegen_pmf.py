"""ServeGen token-length PMFs (chunk-N-dataset.json[.gz]) as a long Arrow table."""

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from planner.errors import PlannerError

DATASET = re.compile(r"(chunk-\d+)-dataset\.json(\.gz)?$")
_PAIR = re.compile(r"(-?\d+(?:\.\d+)?)\s*:\s*([-+0-9.eE]+)")
PMF_WINDOW_S = 21600.0


def _parse_pmf(text: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Parse ServeGen's "{224: 0.0003, ...}" PMF string; None for non-integer supports."""
    pairs = np.array(_PAIR.findall(text), dtype=np.float64).reshape(-1, 2)
    if pairs.size == 0 or not np.all(pairs[:, 0] == np.round(pairs[:, 0])):
        return None
    return pairs[:, 0].astype(np.int64), pairs[:, 1]


def read_pmfs(files: list[Path]) -> pa.Table:
    """All integer-valued PMFs in the dataset files: series, window, which, tokens, prob."""
    cols: dict[str, list[np.ndarray]] = {
        "series": [np.array([], dtype=object)],
        "start": [np.array([], dtype=np.float64)],
        "which": [np.array([], dtype=object)],
        "tokens": [np.array([], dtype=np.int64)],
        "prob": [np.array([], dtype=np.float64)],
    }
    for path in files:
        match = DATASET.search(path.name)
        if not match:
            continue
        try:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt") as fh:
                doc = json.load(fh)
        except (OSError, EOFError, json.JSONDecodeError) as exc:
            raise PlannerError(f"{path}: cannot read ServeGen dataset file: {exc}") from None
        for start, window in doc.items():
            for which, text in window.items():
                parsed = _parse_pmf(str(text))
                if parsed is None:
                    continue
                tokens, prob = parsed
                n = len(tokens)
                cols["series"].append(np.full(n, match.group(1), dtype=object))
                cols["start"].append(np.full(n, float(start)))
                cols["which"].append(np.full(n, which, dtype=object))
                cols["tokens"].append(tokens)
                cols["prob"].append(prob)
    return pa.table(
        {
            "series": pa.array(np.concatenate(cols["series"]), pa.string()),
            "window_start_s": np.concatenate(cols["start"]),
            "which": pa.array(np.concatenate(cols["which"]), pa.string()),
            "tokens": np.concatenate(cols["tokens"]),
            "prob": np.concatenate(cols["prob"]),
        }
    )
