"""Fit engine-level parameters to measured serving benchmarks (``planner calibrate``).

What is fitted, within physically plausible bounds: per engine, its host costs (CPU time
per step, at most 3 ms, and per sequence in the batch, at most 30 us, as engine profilers
show for Python schedulers; the front end's time per request) and the GPU time its attention
kernels add per sequence in every layer (at most 2 us: the profiled harness kernel's per-
sequence cost is in its own fit, an engine's kernels differ by paged-KV and launch work); per
accelerator,
what the plain PyTorch steps of the step profiles cannot show: the grouped-GEMM efficiency
of MoE experts, the efficiency of FP8 / INT8 / FP4 GEMMs relative to BF16 and, where rows run
tensor or expert parallel, the latency of one collective (the engines' own one-shot
all-reduce kernels: single-GPU step profiles have none). Everything
else stays as the step profiles fitted it, so a few parameters explain many rows and a
model the fit never saw is predicted by mechanism, not by rows like it.

How: every aggregated row is simulated once as its closed loop with a step log. The same
schedule is then re-timed under candidate parameters: each logged step keeps its features
(tokens, pairs, KV reads, sequences), only the coefficients turning them into milliseconds
change, so an evaluation of all rows is a few matrix products per deployment. scipy's least
squares (soft-L1 on the relative error, predicted / measured - 1, of the mean TTFT and TPOT:
the quantity the MAPE scores; the soft-L1 tail bounds, but does not remove, the pull of a few
rows measured under conditions the planner cannot know) fits the re-timed means;
then the rows are simulated again with the fitted parameters (which can change the schedule)
and the fit repeats from there.

Rows whose own TTFT and TPOT say the run admitted far fewer sequences than its concurrency
(``Prediction.fewer_in_flight``: measured under another load than the row names) are
predicted and scored like every row, but not fitted: no engine value could make the stated
load reproduce them, and fitting them would bend the values every other row of the engine
depends on.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from planner.costmodel import Accelerator, Calibration
from planner.costmodel.engine import HostCosts
from planner.costmodel.operators import StepShape, features
from planner.costmodel.params import SERVING_FITTED, EfficiencyParams
from planner.costmodel.predict import (
    LOW_PRECISION,
    StepModel,
    operator_matrices,
    step_time,
    time_coefficients,
)
from planner.validate.measured import Measured
from planner.validate.predict import Prediction, predict

HOST_FITTED = ("step_ms", "seq_ms", "seq_layer_ms", "frontend_ms")
KERNEL_FITTED = SERVING_FITTED
HOST_BOUNDS = {
    "step_ms": (0.1, 3.0),
    "seq_ms": (0.0, 0.03),
    "seq_layer_ms": (0.0, 0.002),
    "frontend_ms": (0.0, 200.0),
}
KERNEL_BOUNDS = {
    "moe_eff": (0.2, 1.0),
    "moe_pad_rows": (0.0, 128.0),
    "lowp_eff": (0.7, 1.3),
    "collective_ms": (0.002, 0.05),
}
ROUNDS = 2
SWEEPS = 2
MAX_EVALUATIONS = 25
F_SCALE = 0.2


@dataclass
class _Group:
    """The step shapes of every row sharing one deployment, with their features precomputed."""

    model: StepModel
    shapes: list[tuple[float, ...]] = field(default_factory=list)
    feats: np.ndarray | None = None
    eager: np.ndarray | None = None
    seqs: np.ndarray | None = None

    def add(self, values: tuple[float, ...]) -> int:
        """Index of a new step shape."""
        self.shapes.append(values)
        return len(self.shapes) - 1

    def freeze(self) -> None:
        """Compute the features of all shapes once."""
        cols = np.array(self.shapes, dtype=float).T
        shape = StepShape(*cols)
        model = self.model
        self.feats = features(model.card, model.plan, shape)
        self.eager, self.seqs = model.host_inputs(shape)


@dataclass
class _Schedule:
    """One row's logged schedule: step kinds and shape indices, and its requests' steps."""

    row: Measured
    group: int
    engine: str
    accelerator: str
    k: np.ndarray
    p0: np.ndarray
    p1: np.ndarray
    idle_ms: np.ndarray
    sent: np.ndarray
    first: np.ndarray
    done: np.ndarray
    think_ms: np.ndarray
    osl: np.ndarray
    frontend_ms: float
    fitted: bool


def _schedule(pred: Prediction, groups: dict[tuple, int], store: list[_Group]) -> _Schedule | None:
    """The re-timeable form of one predicted row (None if it has no step log)."""
    if not pred.predicted or not pred.runs or not pred.runs[0].log:
        return None
    model, run = pred.models[0], pred.runs[0]
    assert model.engine is not None
    key = (model.card.id, model.plan, model.precision, model.accelerator.id, model.engine.label)
    if key not in groups:
        groups[key] = len(store)
        store.append(_Group(model))
    group = store[groups[key]]
    k, p0, p1, idle, ends = [], [], [], [], []
    clock = 0.0
    for step in run.log:
        clock += step.ms
        ends.append(clock)
        k.append(step.k)
        idle.append(step.ms if step.k == 0 else 0.0)
        if step.k == 0:
            p0.append(0)
            p1.append(0)
            continue
        base = (step.prefill_tokens, step.prefill_seqs, step.prefill_pairs, step.prefill_kv)
        base += (step.window_pairs, step.window_kv, step.decode_seqs)
        p0.append(group.add((*base, step.decode_context)))
        if step.k > 1:
            end = step.decode_context + (step.k - 1) * step.decode_seqs
            p1.append(group.add((*base, end)))
        else:
            p1.append(p0[-1])
    reqs, cut = run.reqs, slice(run.warmup, None)
    sent = np.asarray(reqs.sent_step)[cut]
    t_end = np.asarray(ends)
    sent_at = np.where(sent >= 0, t_end[np.maximum(sent, 0)], 0.0)
    return _Schedule(
        row=pred.row,
        group=groups[key],
        engine=model.engine.id,
        accelerator=model.accelerator.id,
        k=np.asarray(k, dtype=float),
        p0=np.asarray(p0),
        p1=np.asarray(p1),
        idle_ms=np.asarray(idle),
        sent=sent,
        first=np.asarray(reqs.first_step)[cut],
        done=np.asarray(reqs.done_step)[cut],
        think_ms=np.asarray(reqs.arrival)[cut] * 1000.0 - sent_at,
        osl=np.asarray(reqs.target, dtype=float)[cut],
        frontend_ms=model.engine.host.frontend_ms,
        fitted=not pred.fewer_in_flight,
    )


@dataclass
class Theta:
    """The fitted values: host costs per engine; MoE, low-precision, collective terms per device."""

    hosts: dict[str, HostCosts]
    kernels: dict[str, dict[str, float]]

    def vector(self, names: list[tuple[str, str, str]]) -> np.ndarray:
        """The values of `names` (kind, owner, parameter) as a vector."""
        return np.array([self.get(n) for n in names])

    def get(self, name: tuple[str, str, str]) -> float:
        """One value."""
        kind, owner, param = name
        if kind == "host":
            return float(getattr(self.hosts[owner], param))
        return float(self.kernels[owner][param])

    def with_vector(self, names: list[tuple[str, str, str]], x: np.ndarray) -> "Theta":
        """A copy with the named values set from `x`."""
        hosts = {k: v.model_copy() for k, v in self.hosts.items()}
        kernels = {k: dict(v) for k, v in self.kernels.items()}
        for (kind, owner, param), value in zip(names, x, strict=True):
            if kind == "host":
                hosts[owner] = hosts[owner].model_copy(update={param: float(value)})
            else:
                kernels[owner][param] = float(value)
        return Theta(hosts, kernels)


class Retimer:
    """Mean TTFT and TPOT of logged schedules under candidate parameters."""

    def __init__(self, preds: Sequence[Prediction]) -> None:
        """Index the logged rows by deployment and precompute every step's features."""
        groups: dict[tuple, int] = {}
        self.groups: list[_Group] = []
        schedules = [_schedule(p, groups, self.groups) for p in preds]
        self.rows = [s for s in schedules if s is not None]
        for group in self.groups:
            group.freeze()

    def _step_ms(self, group: _Group, theta: Theta) -> np.ndarray:
        """Every shape's step time of one deployment under `theta`."""
        model = group.model
        engine = model.engine
        assert engine is not None and group.feats is not None
        params = replace(model.params, **theta.kernels.get(model.accelerator.id, {}))
        coef = time_coefficients(
            operator_matrices(model.card, model.plan, model.precision), model.accelerator, params
        )
        return step_time(
            coef,
            params,
            model.card.layers,
            group.feats,
            group.eager,
            theta.hosts[engine.id],
            group.seqs,
            engine.runtime.overlap_scheduler,
        )

    def means(self, theta: Theta, rows: Sequence[int] | None = None) -> np.ndarray:
        """(rows, 2): re-timed mean TTFT and TPOT (ms) of the selected rows."""
        picked = range(len(self.rows)) if rows is None else rows
        used = {self.rows[i].group for i in picked}
        times = {g: self._step_ms(self.groups[g], theta) for g in used}
        out = np.empty((len(picked), 2))
        for j, i in enumerate(picked):
            s = self.rows[i]
            t = times[s.group]
            dur = np.where(
                s.k == 0, s.idle_ms, np.where(s.k > 1, s.k * (t[s.p0] + t[s.p1]) / 2.0, t[s.p0])
            )
            ends = np.cumsum(dur)
            ok = (s.first >= 0) & (s.done >= 0)
            sent = np.where(s.sent >= 0, ends[np.maximum(s.sent, 0)], 0.0) + s.think_ms
            shift = theta.hosts[s.engine].frontend_ms - s.frontend_ms
            ttft = ends[s.first[ok]] - sent[ok] + shift
            many = ok & (s.osl > 1)
            tpot = (ends[s.done[many]] - ends[s.first[many]]) / (s.osl[many] - 1.0)
            out[j] = (ttft.mean() if ttft.size else np.nan, tpot.mean() if tpot.size else np.nan)
        return out

    def fitted(self, leave_out: str | None = None) -> list[int]:
        """Indices of the rows a fit learns from (optionally without one model's rows)."""
        return [i for i, s in enumerate(self.rows) if s.fitted and s.row.model != leave_out]

    def measured(self, rows: Sequence[int]) -> np.ndarray:
        """(rows, 2): measured mean TTFT and TPOT of the selected rows."""
        return np.array([(self.rows[i].row.ttft_ms, self.rows[i].row.tpot_ms) for i in rows])


def _names(retimer: Retimer, rows: Sequence[int]) -> list[tuple[str, str, str]]:
    """The parameters the selected rows can inform."""
    engines = sorted({retimer.rows[i].engine for i in rows})
    names = [("host", e, p) for e in engines for p in HOST_FITTED]
    for acc in sorted({retimer.rows[i].accelerator for i in rows}):
        models = [retimer.groups[retimer.rows[i].group].model for i in rows]
        mine = [m for m in models if m.accelerator.id == acc]
        if any(m.card.is_moe for m in mine):
            names += [("kernel", acc, "moe_eff"), ("kernel", acc, "moe_pad_rows")]
        if any(m.precision.dense in LOW_PRECISION for m in mine):
            names.append(("kernel", acc, "lowp_eff"))
        if any(m.plan.tp > 1 or m.plan.ep > 1 for m in mine):
            names.append(("kernel", acc, "collective_ms"))
    return names


def fit_theta(retimer: Retimer, rows: Sequence[int], start: Theta) -> Theta:
    """Least-squares fit of the parameters the rows inform, on re-timed relative errors.

    Block by block, twice over: the kernel efficiencies on every row, then each engine's host
    costs on that engine's rows only (the other rows do not depend on them).
    """
    names = _names(retimer, rows)
    theta = start
    for _ in range(SWEEPS):
        kernels = [n for n in names if n[0] == "kernel"]
        if kernels:
            theta = _fit_block(retimer, rows, theta, kernels)
        for engine in sorted({n[1] for n in names if n[0] == "host"}):
            mine = [i for i in rows if retimer.rows[i].engine == engine]
            theta = _fit_block(retimer, mine, theta, [n for n in names if n[1] == engine])
    return theta


def _fit_block(
    retimer: Retimer, rows: Sequence[int], start: Theta, names: list[tuple[str, str, str]]
) -> Theta:
    """Fit `names` alone on `rows` (soft-L1 on relative errors), the rest of `start` held."""
    from scipy.optimize import least_squares  # deferred: keeps CLI start-up fast

    measured = retimer.measured(rows)

    def residuals(x: np.ndarray) -> np.ndarray:
        """Relative error of re-timed to measured TTFT and TPOT, every row."""
        pred = retimer.means(start.with_vector(names, x), rows)
        return np.nan_to_num(pred / measured - 1.0, nan=0.0).ravel()

    bounds = [HOST_BOUNDS[p] if kind == "host" else KERNEL_BOUNDS[p] for kind, _, p in names]
    lower, upper = (np.array(b) for b in zip(*bounds, strict=True))
    x0 = np.clip(start.vector(names), lower, upper)
    result = least_squares(
        residuals,
        x0,
        bounds=(lower, upper),
        loss="soft_l1",
        f_scale=F_SCALE,
        x_scale="jac",
        max_nfev=MAX_EVALUATIONS,
    )
    return start.with_vector(names, result.x)


def theta_of(
    calibration: Calibration, engines: Sequence[str], accelerators: Sequence[str]
) -> Theta:
    """The current values in a calibration (profile defaults where it has none)."""
    from planner.costmodel.engine import load_engine

    hosts = {e: calibration.engines.get(e, load_engine(e).host) for e in engines}
    kernels = {}
    for acc in accelerators:
        entry = calibration.entries.get(acc)
        params = entry.params if entry is not None else EfficiencyParams()
        kernels[acc] = {k: getattr(params, k) for k in KERNEL_FITTED}
    return Theta(hosts, kernels)


def apply_theta(calibration: Calibration, theta: Theta) -> Calibration:
    """A copy of the calibration with the fitted values written in.

    Kernel values go to each accelerator's default entry (what predictions use); the entries
    kept per profile source (``h100@h100_dense_steps``) stay as the step profiles fitted them.
    """
    out = Calibration(dict(calibration.entries), dict(calibration.meta), dict(calibration.engines))
    out.engines.update(theta.hosts)
    for acc, values in theta.kernels.items():
        entry = calibration.entries.get(acc)
        if entry is not None:
            params = replace(entry.params, **values)
            out.entries[acc] = replace(entry, params=params, serving=acc)
    return out


def _simulate(
    rows: Sequence[Measured],
    calibration: Calibration,
    catalog: dict[str, Accelerator] | None,
    progress: Callable[[str], None],
) -> list[Prediction]:
    """Predict every aggregated row with step logs (the schedules to re-time)."""
    out = []
    for i, row in enumerate(rows):
        if i % 50 == 0:
            progress(f"simulating benchmarks {i}/{len(rows)}")
        out.append(predict(row, calibration, catalog, log=True))
    return out


def fit_measured(
    rows: Sequence[Measured],
    calibration: Calibration,
    catalog: dict[str, Accelerator] | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    rounds: int = ROUNDS,
) -> Calibration:
    """The calibration with engine host costs and MoE, low-precision, collective terms fitted."""
    agg = [r for r in rows if r.mode == "agg"]
    cal = calibration
    for _ in range(rounds):
        retimer = Retimer(_simulate(agg, cal, catalog, progress))
        picked = retimer.fitted()
        engines = sorted({s.engine for s in retimer.rows})
        accs = sorted({s.accelerator for s in retimer.rows})
        progress("fitting engine host costs")
        cal = apply_theta(cal, fit_theta(retimer, picked, theta_of(cal, engines, accs)))
    sources = sorted({Path(r.source).name for r in agg})
    meta = {**cal.meta, "fitted_from": [*cal.meta.get("fitted_from", []), *sources]}
    return Calibration(dict(cal.entries), meta, dict(cal.engines))


def describe(calibration: Calibration) -> dict[str, Any]:
    """The fitted engine host costs and per-device MoE, low-precision and collective terms."""
    kernels = {
        e.accelerator: {k: getattr(e.params, k) for k in KERNEL_FITTED}
        for key, e in calibration.entries.items()
        if "@" not in key
    }
    return {
        "engines": {k: v.model_dump() for k, v in calibration.engines.items()},
        "kernels": kernels,
    }
