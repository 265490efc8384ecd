"""ServeGen token-length PMFs (chunk-N-dataset.json[.gz]) as a long Arrow table."""

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from planner.errors import PlannerError

DATASET = re.compile(r"(chunk-\d+)-dataset\.json(\.gz)?$")
PMF_WINDOW_S = 21600.0


def _parse_pmf(text: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Parse ServeGen's "{224: 0.0003, ...}" PMF string; None for empty or non-integer supports."""
    body = text.strip().strip("{}").replace(":", ",")
    if not body.strip():
        return None
    try:
        pairs = np.array(body.split(","), dtype=np.float64)
    except ValueError:
        return None
    if pairs.size % 2:
        return None
    pairs = pairs.reshape(-1, 2)
    if not np.all(pairs[:, 0] == np.round(pairs[:, 0])):
        return None
    return pairs[:, 0].astype(np.int64), pairs[:, 1]


def _repeated(labels: list[str], counts: list[int]) -> pa.Array:
    """A string column holding labels[i] counts[i] times, built without per-row Python objects."""
    names = sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    codes = np.array([index[x] for x in labels], dtype=np.int32)
    indices = np.repeat(codes, np.array(counts, dtype=np.int64))
    return pa.DictionaryArray.from_arrays(indices, pa.array(names, pa.string())).cast(pa.string())


def read_pmfs(files: list[Path]) -> pa.Table:
    """All integer-valued PMFs in the dataset files: series, window, which, tokens, prob."""
    series: list[str] = []
    which: list[str] = []
    starts: list[float] = []
    counts: list[int] = []
    tokens: list[np.ndarray] = [np.array([], dtype=np.int64)]
    probs: list[np.ndarray] = [np.array([], dtype=np.float64)]
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
            for kind, text in window.items():
                parsed = _parse_pmf(str(text))
                if parsed is None:
                    continue
                series.append(match.group(1))
                which.append(kind)
                starts.append(float(start))
                counts.append(len(parsed[0]))
                tokens.append(parsed[0])
                probs.append(parsed[1])
    return pa.table(
        {
            "series": _repeated(series, counts),
            "window_start_s": np.repeat(np.array(starts, dtype=np.float64), counts),
            "which": _repeated(which, counts),
            "tokens": np.concatenate(tokens),
            "prob": np.concatenate(probs),
        }
    )
