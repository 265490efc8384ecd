"""ServeGen token-length PMFs (chunk-N-dataset.json[.gz]) as a long Arrow table."""

import gzip
import json
import math
import re
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa

from planner.errors import PlannerError
from planner.store import MAX_TOKENS

DATASET = re.compile(r"(chunk-\d+)-dataset\.json(\.gz)?$")
PMF_WINDOW_S = 21600.0
# How far a PMF's probabilities may sum from 1 (ServeGen's sum to 1 within 4e-15).
PMF_TOLERANCE = 1e-6


class _Bad(ValueError):
    """A PMF string that is not a valid PMF; the message says why."""


def _parse_pmf(text: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Parse ServeGen's "{224: 0.0003, ...}" PMF string into (tokens, probabilities).

    None for an empty PMF ("{}") or a non-integer support (ServeGen's reason_ratio, a fraction):
    neither is a token-length distribution, and both occur in the release. Anything else must be
    a valid PMF, or `_Bad` says what is wrong: finite probabilities >= 0 summing to 1 (within
    PMF_TOLERANCE), over distinct finite supports.
    """
    text = text.strip()
    body = text[1:-1]
    if not (text.startswith("{") and text.endswith("}")) or "{" in body or "}" in body:
        raise _Bad("not a PMF string like '{224: 0.0003, ...}'")
    if not body.strip():
        return None
    items = body.replace(":", ",").split(",")
    if len(items) % 2 or body.count(":") != len(items) // 2:
        raise _Bad("not a PMF string like '{224: 0.0003, ...}'")
    try:
        pairs = np.array(items, dtype=np.float64).reshape(-1, 2)
    except ValueError:
        raise _Bad("a support or probability is not a number") from None
    support, prob = pairs[:, 0], pairs[:, 1]
    if not np.all(np.isfinite(support)):
        raise _Bad("a support value is not a finite number")
    if not np.all(np.isfinite(prob)):
        raise _Bad("a probability is not a finite number")
    if np.any(prob < 0):
        raise _Bad(f"negative probability {prob[prob < 0][0]:g}")
    total = float(prob.sum())
    if not abs(total - 1.0) <= PMF_TOLERANCE:
        raise _Bad(f"probabilities sum to {total:.9g}, not 1")
    # ServeGen lists supports in increasing order; only another order needs the sort
    if not np.all(np.diff(support) > 0) and np.any(np.diff(np.sort(support)) == 0):
        raise _Bad("a support value is listed twice")
    if not np.all(support == np.round(support)):
        return None
    if np.any(support < 0) or np.any(support > MAX_TOKENS):
        bad = support[(support < 0) | (support > MAX_TOKENS)][0]
        raise _Bad(f"token count {bad:g} outside 0..{MAX_TOKENS}")
    return support.astype(np.int64), prob


def _load(path: Path) -> dict:
    """The dataset document: {window start: {kind: PMF string}}; PlannerError when it is not."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        # ValueError: json.JSONDecodeError and UnicodeDecodeError (bytes that are not UTF-8)
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PlannerError(f"{path}: cannot read ServeGen dataset file: {detail}") from None
    except RecursionError:
        raise PlannerError(
            f"{path}: cannot read ServeGen dataset file: JSON nested too deeply "
            "(expected {window start: {kind: PMF string}})"
        ) from None
    if not isinstance(doc, dict):
        raise PlannerError(
            f"{path}: ServeGen dataset file holds a JSON {type(doc).__name__}, expected an "
            "object {window start: {kind: PMF string}}"
        )
    return doc


def _start(path: Path, key: str) -> float:
    """A window's start (seconds) from its key; PlannerError unless a finite number."""
    try:
        start = float(key)
    except ValueError:
        start = math.nan
    if not math.isfinite(start):
        raise PlannerError(f"{path}: window {key!r}: the key must be a start time in seconds")
    return start


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
        for key, window in _load(path).items():
            start = _start(path, key)
            if not isinstance(window, dict):
                raise PlannerError(
                    f"{path}: window {key!r}: expected an object {{kind: PMF string}}, found a "
                    f"JSON {type(window).__name__}"
                )
            for kind, text in window.items():
                if not isinstance(text, str):
                    raise PlannerError(
                        f"{path}: window {key!r}, {kind!r}: expected a PMF string, found a "
                        f"JSON {type(text).__name__}"
                    )
                try:
                    parsed = _parse_pmf(text)
                except _Bad as exc:
                    raise PlannerError(f"{path}: window {key!r}, {kind!r}: {exc}") from None
                if parsed is None:
                    continue
                series.append(match.group(1))
                which.append(kind)
                starts.append(start)
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
