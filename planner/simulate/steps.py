"""Step times for the simulator: the cost-model protocol and fast tabulated lookups of it.

The simulator asks for decode step times hundreds of thousands of times per run, so it never
calls the cost model per decode step. It tabulates, once per batch size, the decode step time
as a function of the batch's total cached context, then answers in pure Python: a decode *run*
of k steps (context growing by the batch size each step) is a difference of the tabulated
integral, and the number of steps that fit in a time span is its inverse. Linear pieces make
both exact up to the table's interpolation. Steps that carry prompt tokens are priced from
their shape, memoised on each summed quantity (tokens, query-key pairs, KV reads, cached
context) rounded to its 8 leading bits (a relative grain under 0.8 %; sequence counts exact)
and evaluated at the middle of that bin, so a price is within 0.4 % of the exact one and does
not depend on which step came first: a trace replay repeats the same shapes at that grain more
than nine times in ten.
"""

from bisect import bisect_right
from dataclasses import dataclass
from math import ceil, inf, sqrt
from typing import Any, Protocol

import numpy as np

from planner.costmodel.operators import StepShape

_SHORT_CONTEXT = 4096.0
_LINEAR_NODES = 33
_GEOMETRIC_NODES = 48
_BITS = 8


def _bins(*values: float) -> tuple[int, ...]:
    """The middle of each value's bin when kept to its _BITS leading bits (0 stays 0)."""
    out = []
    for value in values:
        whole = int(value)
        shift = whole.bit_length() - _BITS
        out.append(whole if shift <= 0 else ((whole >> shift) << shift) + (1 << (shift - 1)))
    return tuple(out)


class KvMemory(Protocol):
    """The part of a memory plan the simulator needs."""

    kv_budget_tokens: int


class StepTimes(Protocol):
    """What the simulator needs from a latency model (planner.costmodel.StepModel has it)."""

    memory: KvMemory
    attention_window: int

    def step_ms(self, shape: StepShape) -> np.ndarray:
        """Steps of the given shapes (prompt chunks plus decodes)."""

    def decode_ms(self, batch: Any, context: Any) -> np.ndarray:
        """One decode step of `batch` sequences with `context` cached tokens each (the mean)."""

    def kv_transfer_ms(self, tokens: Any, bandwidth_gb_s: float | None = None) -> np.ndarray:
        """Time to ship `tokens` tokens of KV cache to another instance."""


@dataclass
class _Piecewise:
    """A piecewise-linear function on nodes, with its integral from the first node."""

    xs: list[float]
    fs: list[float]
    slopes: list[float]
    integral: list[float]
    last: int = 0

    def __post_init__(self) -> None:
        """Index of the last piece."""
        self.last = len(self.slopes) - 1

    @classmethod
    def fit(cls, xs: np.ndarray, fs: np.ndarray) -> "_Piecewise":
        """Interpolate `fs` at increasing nodes `xs` (extended linearly past both ends)."""
        slopes = np.diff(fs) / np.diff(xs)
        areas = np.diff(xs) * (fs[:-1] + fs[1:]) / 2.0
        integral = np.concatenate([[0.0], np.cumsum(areas)])
        return cls(xs.tolist(), fs.tolist(), slopes.tolist(), integral.tolist())

    def _piece(self, x: float) -> int:
        """Index of the piece holding x (the end pieces extend past the nodes)."""
        i = bisect_right(self.xs, x) - 1
        return 0 if i < 0 else (i if i < self.last else self.last)

    def value(self, x: float) -> float:
        """f(x)."""
        i = self._piece(x)
        return self.fs[i] + self.slopes[i] * (x - self.xs[i])

    def area(self, x: float) -> float:
        """The integral of f from the first node to x."""
        i = self._piece(x)
        d = x - self.xs[i]
        return self.integral[i] + d * (self.fs[i] + 0.5 * self.slopes[i] * d)

    def inverse_area(self, y: float) -> float:
        """The x at which the integral reaches y (f is positive, so the integral increases)."""
        i = bisect_right(self.integral, y) - 1
        i = 0 if i < 0 else (i if i < self.last else self.last)
        r = y - self.integral[i]
        f, s = self.fs[i], self.slopes[i]
        disc = f * f + 2.0 * s * r
        return self.xs[i] + (2.0 * r / (f + sqrt(disc)) if disc > 0 else r / f)


class StepTable:
    """Tabulated step times of one plan; build once and reuse across simulations."""

    def __init__(self, model: StepTimes, max_context: int | None = None) -> None:
        """Wrap `model`; tables for each batch size are built on first use."""
        self.model = model
        self.window = int(model.attention_window)
        self.kv_budget_tokens = int(model.memory.kv_budget_tokens)
        self.max_context = int(max_context or self.kv_budget_tokens)
        self._decode: dict[int, _Piecewise] = {}
        self._steps: dict[tuple[int, ...], float] = {}

    def decode_curve(self, batch: int) -> _Piecewise:
        """Decode step ms of `batch` sequences as a function of their total cached context."""
        curve = self._decode.get(batch)
        if curve is None:
            top = max(self.max_context / batch, 2.0 * _SHORT_CONTEXT) + 1.0
            mean = np.unique(
                np.concatenate(
                    [
                        np.linspace(0.0, _SHORT_CONTEXT, _LINEAR_NODES),
                        np.geomspace(_SHORT_CONTEXT, top, _GEOMETRIC_NODES),
                    ]
                )
            )
            ms = np.asarray(self.model.decode_ms(np.full(mean.shape, batch), mean), dtype=float)
            curve = self._decode[batch] = _Piecewise.fit(mean * batch, ms)
        return curve

    def step_ms(
        self,
        prefill_tokens: int,
        prefill_seqs: int,
        prefill_pairs: float,
        prefill_kv: int,
        window_pairs: float,
        window_kv: int,
        decode_seqs: int,
        decode_context: int,
    ) -> float:
        """One step carrying prompt tokens (summed over its sequences) and decodes."""
        tokens, pairs, kv, wpairs, wkv, context = _bins(
            prefill_tokens, prefill_pairs, prefill_kv, window_pairs, window_kv, decode_context
        )
        key = (tokens, pairs, kv, wpairs, wkv, context, prefill_seqs, decode_seqs)
        ms = self._steps.get(key)
        if ms is None:
            shape = StepShape(
                float(tokens),
                float(prefill_seqs),
                float(pairs),
                float(kv),
                float(wpairs),
                float(wkv),
                float(decode_seqs),
                float(context),
            )
            ms = self._steps[key] = float(np.ravel(self.model.step_ms(shape))[0])
        return ms

    def decode_run(
        self, batch: int, context: float, steps: int, span_ms: float = inf
    ) -> tuple[int, float]:
        """(steps, ms) of up to `steps` decode steps from `context`, stopping past `span_ms`."""
        curve = self._decode.get(batch) or self.decode_curve(batch)
        lo = context - 0.5 * batch
        start = curve.area(lo)
        if span_ms < inf:
            x = curve.inverse_area(start + span_ms * batch)
            reach = ceil((x - lo) / batch - 1e-9)
            steps = min(steps, reach if reach > 1 else 1)
        return steps, (curve.area(lo + steps * batch) - start) / batch


def step_table(model: "StepTimes | StepTable") -> StepTable:
    """The model's step table (the model itself if it already is one)."""
    return model if isinstance(model, StepTable) else StepTable(model)
