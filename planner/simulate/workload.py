"""Simulator input: request arrivals and token lengths, from the store or drawn (seeded).

- A request trace (``requests`` table) is replayed as recorded, optionally a time slice of it
  and with its arrival times compressed by a rate scale.
- A rate-window trace (``rate_windows``: ServeGen clients, per-function series) is replayed
  window by window: arrivals in each window follow that window's own rate and fitted
  inter-arrival distribution, token lengths that series' PMF (``length_dists``) in force then.
- Synthetic arrivals: Gamma inter-arrival times with a given rate and CV, lengths drawn from a
  trace's empirical (input, output) pairs or its ServeGen PMFs.

ServeGen's `dist, p1, p2` are scipy-style fits of the inter-arrival times: Gamma(shape=p1,
scale=p2) and Weibull(shape=p1, scale=p2). The Gamma fits match the window's CV exactly but
neither fit's mean matches the window's measured rate (a Weibull MLE on heavy-tailed gaps is
far off), so the draws keep the fitted *shape* and are rescaled to the window's ``rate_rps``.
"""

from dataclasses import dataclass, replace

import duckdb
import numpy as np
from scipy.special import gamma as gamma_fn

from planner.errors import PlannerError
from planner.simulate.prefix import ASSUMED_BLOCK_TOKENS, TRACE_BLOCK_TOKENS, shared_prefix
from planner.store import TraceInfo, get_trace

MAX_DRAWN_REQUESTS = 20_000_000
NO_REUSE = "none"
TRACE_REUSE = "the trace's prefix-block hashes"


@dataclass(frozen=True)
class Workload:
    """Requests to simulate: arrival times (s, sorted) and token lengths, as numpy arrays, and
    where known each prompt's prefix-block hashes (`blocks`, tuples of `block_tokens`-token
    blocks: what a prefix cache can reuse) and where they came from (`reuse`)."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    name: str = ""
    blocks: np.ndarray | None = None
    block_tokens: int = 0
    reuse: str = NO_REUSE

    @property
    def requests(self) -> int:
        """Number of requests."""
        return len(self.arrival_s)

    @property
    def span_s(self) -> float:
        """Time from the first to the last arrival (at least one second)."""
        if not self.requests:
            return 1.0
        return max(float(self.arrival_s[-1] - self.arrival_s[0]), 1.0)

    @property
    def rate_rps(self) -> float:
        """Mean arrival rate over the span."""
        return self.requests / self.span_s

    def within_context(self, max_context: int) -> "Workload":
        """The requests whose prompt and output fit in a `max_context`-token window (a serving
        engine refuses the others: vLLM checks prompt + max_tokens <= max_model_len); all of
        them when the limit is unknown (0)."""
        if max_context <= 0:
            return self
        keep = self.input_tokens + self.output_tokens <= max_context
        if keep.all():
            return self
        return self.take(keep)

    def take(self, rows: np.ndarray, name: str | None = None) -> "Workload":
        """The requests `rows` selects (a mask or indices), block hashes included."""
        return replace(
            self,
            arrival_s=self.arrival_s[rows],
            input_tokens=self.input_tokens[rows],
            output_tokens=self.output_tokens[rows],
            blocks=None if self.blocks is None else self.blocks[rows],
            name=self.name if name is None else name,
        )

    def shifted(self, offset_s: float | np.ndarray) -> "Workload":
        """The same requests arriving `offset_s` seconds later (one offset, or one each)."""
        return replace(self, arrival_s=self.arrival_s + offset_s)

    def salted(self, salt: int) -> "Workload":
        """The same requests with prefix blocks of their own (another client's prompts, which
        share nothing with these): each hash is re-hashed with `salt`."""
        if self.blocks is None:
            return self
        blocks = np.empty(self.requests, dtype=object)
        blocks[:] = [tuple(hash((salt, b)) for b in row) for row in self.blocks]
        return replace(self, blocks=blocks)

    def with_prefix_reuse(self, share: float | None) -> "Workload":
        """The workload with `share` of every prompt a prefix all requests share (the assumed
        reuse of a trace without block hashes); unchanged when `share` is None or the trace
        records its own hashes."""
        if share is None or self.blocks is not None:
            return self
        blocks = shared_prefix(self.input_tokens, share)
        reuse = f"assumed: {share:.0%} of every prompt shared by all requests"
        return replace(self, blocks=blocks, block_tokens=ASSUMED_BLOCK_TOKENS, reuse=reuse)

    def without_prefixes(self) -> "Workload":
        """The same requests with no prefix reuse known (every prompt computed in full)."""
        return replace(self, blocks=None, block_tokens=0, reuse=NO_REUSE)

    def scaled(self, rate_scale: float) -> "Workload":
        """The same requests arriving `rate_scale` times faster (arrival times compressed)."""
        _check_scale(rate_scale)
        start = self.arrival_s[0] if self.requests else 0.0
        arrivals = start + (self.arrival_s - start) / rate_scale
        return replace(self, arrival_s=arrivals)


def concatenate(parts: list[Workload]) -> Workload:
    """The requests of every part, in the parts' order (arrivals unsorted); block hashes only
    when every part has them."""
    blocks = [w.blocks for w in parts]
    known = all(b is not None for b in blocks)
    return Workload(
        np.concatenate([w.arrival_s for w in parts]),
        np.concatenate([w.input_tokens for w in parts]),
        np.concatenate([w.output_tokens for w in parts]),
        name=parts[0].name if parts else "",
        blocks=np.concatenate(blocks) if known and parts else None,
        block_tokens=parts[0].block_tokens if known and parts else 0,
        reuse=parts[0].reuse if known and parts else NO_REUSE,
    )


def load_workload(
    con: duckdb.DuckDBPyConnection,
    trace_name: str,
    start: float | None = None,
    end: float | None = None,
    rate_scale: float = 1.0,
    seed: int = 0,
    series: list[str] | None = None,
) -> Workload:
    """A stored trace's requests in [start, end) s (rate windows are drawn, seeded)."""
    _check_scale(rate_scale)
    if start is not None and end is not None and end <= start:
        raise PlannerError(f"empty time slice: --end {end} is not after --start {start}")
    info = get_trace(con, trace_name)
    if info.kind == "requests":
        work = _replay(con, info, start, end, series)
    elif info.kind == "rate_windows":
        work = _draw_windows(con, info, start, end, series, np.random.default_rng(seed))
    else:
        raise PlannerError(
            f"trace {trace_name!r} holds {info.kind}, not requests or rate windows to simulate"
        )
    if not work.requests:
        span = f"0-{info.span_s or 0:,.0f} s"
        raise PlannerError(
            f"trace {trace_name!r} has no requests in [{start or 0:g}, {end or 'end'}) "
            f"(it spans {span}{', series ' + ','.join(series) if series else ''})"
        )
    return work.scaled(rate_scale) if rate_scale != 1.0 else work


def over_context(con: duckdb.DuckDBPyConnection, info: TraceInfo, max_context: int) -> dict | None:
    """The trace's requests whose prompt and output exceed `max_context` tokens: how many, and
    their share (a rate trace: the share of its input PMFs' mass above it, requests unknown);
    None when none do or the limit is unknown (0)."""
    if max_context <= 0:
        return None
    if info.kind == "requests":
        over, total = con.execute(
            "SELECT count(*) FILTER (WHERE coalesce(input_tokens, 0) + coalesce(output_tokens, 0)"
            " > ?), count(*) FROM requests WHERE trace_id = ?",
            [max_context, info.id],
        ).fetchall()[0]
        share = over / total if total else 0.0
    else:
        over, share = (
            None,
            con.execute(
                "SELECT coalesce(sum(prob) FILTER (WHERE tokens > ?) / "
                "nullif(count(DISTINCT (series, window_start_s)), 0), 0) FROM length_dists "
                "WHERE trace_id = ? AND which = 'input_tokens'",
                [max_context, info.id],
            ).fetchall()[0][0],
        )
    if not share:
        return None
    return {"max_context": max_context, "requests": over, "share": round(float(share), 6)}


def over_text(over: dict) -> str:
    """'12 request(s) (0.14%)' of `over_context`'s result (a share alone for a rate trace)."""
    share = f"{over['share']:.2%}"
    if over["requests"] is None:
        return f"{share} of requests (by the trace's length PMFs)"
    return f"{over['requests']:,} request(s) ({share})"


def synthetic_workload(
    con: duckdb.DuckDBPyConnection,
    rate_rps: float,
    cv: float = 1.0,
    count: int = 10_000,
    lengths: str = "azure-conv",
    series: list[str] | None = None,
    seed: int = 0,
) -> Workload:
    """`count` requests with Gamma(rate, CV) inter-arrivals and lengths from trace `lengths`."""
    if rate_rps <= 0 or cv < 0 or count < 1:
        raise PlannerError(
            f"synthetic arrivals need rate > 0, cv >= 0 and count >= 1 "
            f"(got rate {rate_rps}, cv {cv}, count {count})"
        )
    rng = np.random.default_rng(seed)
    if cv > 0:
        shape = 1.0 / cv**2
        gaps = rng.gamma(shape, 1.0 / (rate_rps * shape), count)
    else:
        gaps = np.full(count, 1.0 / rate_rps)
    arrivals = np.cumsum(gaps) - gaps[0]
    info = get_trace(con, lengths)
    if info.kind == "requests":
        pool = _replay(con, info, None, None, series)
        if not pool.requests:
            raise PlannerError(f"trace {lengths!r} has no requests to draw lengths from")
        pick = rng.integers(0, pool.requests, count)
        inputs, outputs = pool.input_tokens[pick], pool.output_tokens[pick]
    elif info.kind == "rate_windows":
        keys = np.zeros(count, dtype=np.int64)
        inputs, outputs = _draw_lengths(con, info, [("", 0.0)], keys, series, rng)
    else:
        raise PlannerError(f"trace {lengths!r} holds {info.kind}, which has no token lengths")
    return Workload(arrivals, inputs, outputs, name=f"gamma({rate_rps:g}/s, cv {cv:g})")


def _check_scale(rate_scale: float) -> None:
    """Reject a non-positive rate scale."""
    if not rate_scale > 0:
        raise PlannerError(f"rate scale must be positive, not {rate_scale}")


def _series_sql(series: list[str] | None) -> tuple[str, list[str]]:
    """SQL filter and parameters for an optional series list."""
    if not series:
        return "", []
    return f" AND series IN ({', '.join('?' * len(series))})", list(series)


def _replay(
    con: duckdb.DuckDBPyConnection,
    info: TraceInfo,
    start: float | None,
    end: float | None,
    series: list[str] | None,
) -> Workload:
    """The recorded requests of a slice, arrivals relative to the slice start."""
    where, params = _series_sql(series)
    lo = -np.inf if start is None else float(start)
    hi = np.inf if end is None else float(end)
    cols = con.execute(
        "SELECT arrival_s, input_tokens, output_tokens, prefix_blocks FROM requests "
        f"WHERE trace_id = ? AND ok AND arrival_s >= ? AND arrival_s < ?{where} "
        "ORDER BY arrival_s, rowid",
        [info.id, lo, hi, *params],
    ).fetchnumpy()
    missing = int(np.ma.count_masked(np.ma.asarray(cols["input_tokens"])))
    missing += int(np.ma.count_masked(np.ma.asarray(cols["output_tokens"])))
    if missing:
        raise PlannerError(
            f"trace {info.name!r} lacks token counts on {missing} values; simulation needs "
            "input and output tokens per request"
        )
    arrivals = np.asarray(cols["arrival_s"], dtype=float) - (start or 0.0)
    inputs = np.maximum(np.asarray(cols["input_tokens"], dtype=np.int64), 1)
    outputs = np.maximum(np.asarray(cols["output_tokens"], dtype=np.int64), 1)
    blocks = _block_hashes(cols["prefix_blocks"])
    return Workload(
        arrivals,
        inputs,
        outputs,
        name=info.name,
        blocks=blocks,
        block_tokens=TRACE_BLOCK_TOKENS if blocks is not None else 0,
        reuse=NO_REUSE if blocks is None else TRACE_REUSE,
    )


def _block_hashes(column: np.ndarray) -> np.ndarray | None:
    """Per request a tuple of its prefix-block hashes (empty where the row has none); None when
    the slice records none at all."""
    values = np.ma.asarray(column)
    if not len(values) or np.ma.getmaskarray(values).all():
        return None
    out = np.empty(len(values), dtype=object)
    out[:] = [() if v is np.ma.masked else tuple(v.tolist()) for v in values]
    return out


def _unit_gaps(rng: np.random.Generator, shape: np.ndarray, weibull: np.ndarray) -> np.ndarray:
    """One gap per entry with mean 1: Gamma(shape), or Weibull(shape) where `weibull` is set."""
    gaps = rng.gamma(shape) / shape
    if weibull.any():
        k = shape[weibull]
        gaps[weibull] = rng.weibull(k) / gamma_fn(1.0 + 1.0 / k)
    return gaps


def _draw_windows(
    con: duckdb.DuckDBPyConnection,
    info: TraceInfo,
    start: float | None,
    end: float | None,
    series: list[str] | None,
    rng: np.random.Generator,
) -> Workload:
    """Arrivals of every (series, window) from its own rate and inter-arrival shape."""
    where, params = _series_sql(series)
    lo = -np.inf if start is None else float(start)
    hi = np.inf if end is None else float(end)
    rows = con.execute(
        "SELECT series, window_start_s, window_s, rate_rps, cv, dist, p1 FROM rate_windows "
        "WHERE trace_id = ? AND rate_rps > 0 AND window_start_s < ? "
        f"AND window_start_s + window_s > ?{where} ORDER BY series, window_start_s",
        [info.id, hi, lo, *params],
    ).fetchnumpy()
    w_lo = np.maximum(np.asarray(rows["window_start_s"], dtype=float), lo)
    w_hi = np.minimum(np.asarray(rows["window_start_s"] + rows["window_s"], dtype=float), hi)
    rate = np.asarray(rows["rate_rps"], dtype=float)
    expected = float(np.sum(rate * (w_hi - w_lo)))
    if expected > MAX_DRAWN_REQUESTS:
        raise PlannerError(
            f"trace {info.name!r} would draw ~{expected:,.0f} requests; "
            "narrow it with --start/--end (seconds) or fewer series"
        )
    dist = np.asarray(rows["dist"], dtype=object)
    fitted = np.ma.filled(np.ma.asarray(rows["p1"], dtype=float), np.nan)
    cv = np.ma.filled(np.ma.asarray(rows["cv"], dtype=float), 1.0)
    known = np.isin(dist, ["Gamma", "Weibull"]) & (fitted > 0)
    shape = np.where(known, fitted, 1.0 / np.maximum(cv, 1e-3) ** 2)
    times, window = _renewal(rng, rate, shape, known & (dist == "Weibull"), w_lo, w_hi)
    order = np.argsort(times, kind="stable")
    times, window = times[order], window[order]
    names = np.asarray(rows["series"], dtype=object)
    keys = list(zip(names.tolist(), np.asarray(rows["window_start_s"]).tolist(), strict=True))
    inputs, outputs = _draw_lengths(con, info, keys, window, series, rng)
    return Workload(times - (start or 0.0), inputs, outputs, name=info.name)


def _renewal(
    rng: np.random.Generator,
    rate: np.ndarray,
    shape: np.ndarray,
    weibull: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Renewal-process arrivals in [lo, hi) per window (random phase); times and window ids."""
    active = np.flatnonzero(hi > lo)
    pos = (
        lo[active]
        - _unit_gaps(rng, shape[active], weibull[active]) * rng.random(len(active)) / rate[active]
    )
    want = np.ceil(rate[active] * (hi[active] - lo[active]) * 1.5).astype(np.int64) + 8
    times, windows = [], []
    while len(active):
        idx = np.repeat(np.arange(len(active)), want)
        ids = active[idx]
        gaps = _unit_gaps(rng, shape[ids], weibull[ids]) / rate[ids]
        ends = np.cumsum(want)
        csum = np.cumsum(gaps)
        csum -= np.repeat(np.concatenate([[0.0], csum[ends[:-1] - 1]]), want)
        t = pos[idx] + csum
        keep = t < hi[ids]
        times.append(t[keep])
        windows.append(ids[keep])
        last = t[ends - 1]
        more = last < hi[active]
        active, pos, want = active[more], last[more], want[more] * 2
    if not times:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(times), np.concatenate(windows)


def _draw_lengths(
    con: duckdb.DuckDBPyConnection,
    info: TraceInfo,
    keys: list[tuple[str, float]],
    window: np.ndarray,
    series: list[str] | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Input and output tokens per request from the PMF in force for its (series, window).

    A series' PMF in force at time t is its latest one starting at or before t (ServeGen's
    rule); a series without PMFs, or a key with series "", draws from the pooled PMF.
    """
    where, params = _series_sql(series)
    pmfs = con.execute(
        "SELECT series, window_start_s, which, tokens, prob FROM length_dists "
        f"WHERE trace_id = ?{where} ORDER BY series, which, window_start_s, tokens",
        [info.id, *params],
    ).fetchnumpy()
    if not len(pmfs["tokens"]):
        raise PlannerError(
            f"trace {info.name!r} holds request rates without token-length PMFs, so requests "
            "cannot be drawn from it; ingest the request logs behind it with --aggregate (rates "
            "and length PMFs) to simulate or plan it"
        )
    out = []
    for which in ("input_tokens", "output_tokens"):
        mask = np.asarray(pmfs["which"] == which)
        tables = _pmf_tables(
            np.asarray(pmfs["series"], dtype=object)[mask],
            np.asarray(pmfs["window_start_s"], dtype=float)[mask],
            np.asarray(pmfs["tokens"], dtype=np.int64)[mask],
            np.asarray(pmfs["prob"], dtype=float)[mask],
        )
        if not tables:
            raise PlannerError(f"trace {info.name!r} has no {which} PMFs")
        out.append(_sample(tables, keys, window, rng))
    return np.maximum(out[0], 1), np.maximum(out[1], 1)


def _pmf_tables(
    series: np.ndarray, starts: np.ndarray, tokens: np.ndarray, prob: np.ndarray
) -> dict[str, tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]]:
    """Per series: PMF window starts and (tokens, CDF) per window; key "" is the pooled PMF."""
    tables: dict[str, tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]] = {}
    if not len(tokens):
        return tables
    key = np.char.add(series.astype(str), np.char.mod("|%.1f", starts))
    cut = np.flatnonzero(key[1:] != key[:-1]) + 1
    grouped: dict[str, list[tuple[float, np.ndarray, np.ndarray]]] = {}
    for lo, hi in zip(np.r_[0, cut], np.r_[cut, len(key)], strict=True):
        cdf = np.cumsum(prob[lo:hi])
        grouped.setdefault(str(series[lo]), []).append((float(starts[lo]), tokens[lo:hi], cdf))
    for name, items in grouped.items():
        tables[name] = (np.array([s for s, _, _ in items]), [(t, c) for _, t, c in items])
    support, inverse = np.unique(tokens, return_inverse=True)
    pooled = np.bincount(inverse, weights=prob) / max(len(cut) + 1, 1)
    tables[""] = (np.zeros(1), [(support, np.cumsum(pooled))])
    return tables


def _sample(
    tables: dict[str, tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]],
    keys: list[tuple[str, float]],
    window: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw one token count per request from the PMF of its key's series at its window."""
    values = np.zeros(len(window), dtype=np.int64)
    order = np.argsort(window, kind="stable")
    ids, first = np.unique(window[order], return_index=True)
    bounds = np.r_[first, len(order)]
    u = rng.random(len(window))
    for j, key in enumerate(ids.tolist()):
        name, at = keys[key]
        starts, pmfs = tables.get(name, tables[""])
        tokens, cdf = pmfs[max(int(np.searchsorted(starts, at, side="right")) - 1, 0)]
        rows = order[bounds[j] : bounds[j + 1]]
        pick = np.searchsorted(cdf, u[rows] * cdf[-1], side="right")
        values[rows] = tokens[np.minimum(pick, len(tokens) - 1)]
    return values
