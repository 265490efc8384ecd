"""Per-request latencies of a simulation, their percentiles, SLOs and attainment."""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from planner.errors import PlannerError

METRICS = {"ttft": "ttft_ms", "tpot": "tpot_ms", "e2e": "e2e_ms", "queue": "queue_ms"}
PERCENTILES = (50, 90, 99)
PACE = 2.0
SLO_FORM = (
    "METRIC_pNN=LIMIT with METRIC one of ttft, tpot, e2e, queue and LIMIT in ms or s, "
    "e.g. ttft_p99=1000ms or tpot_p99=50ms"
)
_SLO = re.compile(
    r"^\s*(ttft|tpot|e2e|queue)_p(\d+(?:\.\d+)?)\s*=\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)\s*$"
)


@dataclass(frozen=True)
class Slo:
    """A latency objective: `metric` at percentile `percentile` within `limit_ms`."""

    metric: str
    percentile: float
    limit_ms: float

    def __str__(self) -> str:
        """The accepted text form, e.g. ttft_p99=1000ms."""
        return f"{self.metric}_p{self.percentile:g}={self.limit_ms:g}ms"


def parse_slo(text: str) -> Slo:
    """Parse one SLO such as ``ttft_p99=1000ms`` or ``tpot_p90=0.05s``."""
    match = _SLO.match(text.lower())
    if not match:
        raise PlannerError(f"cannot parse SLO {text!r}; expected {SLO_FORM}")
    metric, pct, value, unit = match.groups()
    percentile = float(pct)
    if not 0 < percentile < 100:
        raise PlannerError(f"SLO {text!r}: percentile must be between 0 and 100 (exclusive)")
    limit = float(value) * (1000.0 if unit == "s" else 1.0)
    if limit <= 0:
        raise PlannerError(f"SLO {text!r}: the limit must be positive")
    return Slo(metric, percentile, limit)


def parse_slos(texts: str | Iterable[str] | None) -> list[Slo]:
    """Parse SLOs given as strings (or one comma-separated string); later ones win per metric."""
    if texts is None:
        return []
    items = texts.split(",") if isinstance(texts, str) else list(texts)
    slos = {}
    for item in items:
        slo = parse_slo(item)
        slos[slo.metric] = slo
    return list(slos.values())


def percentiles(values: np.ndarray) -> dict[str, float | None]:
    """p50/p90/p99 and mean of the finite values (None when there are none)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {f"p{p}": None for p in PERCENTILES} | {"mean": None}
    qs = np.percentile(finite, PERCENTILES)
    return {f"p{p}": float(q) for p, q in zip(PERCENTILES, qs, strict=True)} | {
        "mean": float(finite.mean())
    }


@dataclass
class SimResult:
    """What each request experienced (ms; inf for requests the plan cannot hold), the seconds
    the instances spent stepping, summed over instances (`busy_s`), and the prompt tokens
    prefilled and found in a prefix cache instead (`prefilled_tokens`, `cached_tokens`)."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    ttft_ms: np.ndarray
    tpot_ms: np.ndarray
    e2e_ms: np.ndarray
    queue_ms: np.ndarray
    instance: np.ndarray
    replicas: int
    preemptions: int
    peak_kv_tokens: int
    kv_budget_tokens: int
    slos: list[Slo] = field(default_factory=list)
    busy_s: float = 0.0
    prefilled_tokens: int = 0
    cached_tokens: int = 0

    @property
    def requests(self) -> int:
        """Number of requests simulated."""
        return len(self.arrival_s)

    @property
    def served(self) -> np.ndarray:
        """Mask of requests that completed (the rest never fit in the KV cache)."""
        return np.isfinite(self.e2e_ms)

    def kept_pace(self) -> bool:
        """Whether the replicas served the requests about as fast as they arrived: the last
        finished within PACE x the arrivals' span of the first arrival. A run that only
        drained a backlog after the arrivals ended met its SLO because the sample ended, at a
        rate the replicas do not sustain."""
        if self.requests < 2 or not self.served.any():
            return True
        first, span = self.arrival_s.min(), np.ptp(self.arrival_s)
        finish = self.arrival_s + np.where(self.served, self.e2e_ms, 0.0) / 1000.0
        return float(finish.max() - first) <= PACE * float(span)

    def meets(self, slos: Iterable[Slo]) -> np.ndarray:
        """Mask of requests within every SLO's limit (TPOT holds trivially for 1-token outputs)."""
        ok = self.served.copy()
        for slo in slos:
            values = getattr(self, METRICS[slo.metric])
            ok &= np.isnan(values) | (values <= slo.limit_ms)
        return ok

    def attainment(self, slos: Iterable[Slo] | None = None) -> float:
        """Share of requests meeting all SLOs (the result's own SLOs by default)."""
        chosen = self.slos if slos is None else list(slos)
        return float(self.meets(chosen).mean()) if self.requests else 0.0

    def slo_report(self, slos: Iterable[Slo] | None = None) -> list[dict[str, Any]]:
        """Per SLO: the observed percentile (over all requests, unserved as inf) and whether met."""
        report = []
        for slo in self.slos if slos is None else slos:
            values = getattr(self, METRICS[slo.metric])
            values = np.where(self.served, values, np.inf)
            values = values[~np.isnan(values)]
            observed = float(np.percentile(values, slo.percentile)) if len(values) else 0.0
            report.append(
                {"slo": str(slo), "observed_ms": observed, "met": observed <= slo.limit_ms}
            )
        return report

    def prefix_cache(self) -> dict[str, Any]:
        """Prompt tokens prefilled, those a prefix cache supplied, and the share it saved."""
        total = self.prefilled_tokens + self.cached_tokens
        return {
            "prefilled_tokens": self.prefilled_tokens,
            "cached_tokens": self.cached_tokens,
            "saved_share": self.cached_tokens / total if total else 0.0,
        }

    def summary(self, slos: Iterable[Slo] | None = None) -> dict[str, Any]:
        """JSON-ready summary: counts, percentiles per metric, and SLO attainment if any."""
        chosen = self.slos if slos is None else list(slos)
        served = self.served
        out: dict[str, Any] = {
            "requests": self.requests,
            "served": int(served.sum()),
            "rejected": int((~served).sum()),
        }
        for name in METRICS.values():
            out[name] = percentiles(getattr(self, name)[served])
        out |= {
            "preemptions": self.preemptions,
            "peak_kv_tokens": self.peak_kv_tokens,
            "kv_budget_tokens": self.kv_budget_tokens,
            "replicas": self.replicas,
            "prefix_cache": self.prefix_cache(),
        }
        if chosen:
            out["slo_attainment"] = self.attainment(chosen)
            out["slos"] = self.slo_report(chosen)
        return out
