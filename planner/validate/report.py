"""`planner validate`: predict measured benchmarks, write them back, and score the errors.

Errors are mean absolute percentage errors of the predicted mean TTFT and TPOT against the
measured ones, by engine x model x mode and overall, with the share of rows predicted.
Leave-one-model-out (``lomo``) scores how the engine-level fit transfers to a model it never
saw: the parameters are fitted without the model's rows and the model is then predicted.
"""

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from planner.costmodel import Accelerator, Calibration
from planner.errors import PlannerError
from planner.validate.fit import Retimer, apply_theta, fit_theta, theta_of
from planner.validate.measured import Measured
from planner.validate.predict import Prediction, predict

PREDICTED_COLUMNS = ("pred_ttft_ms", "pred_tpot_ms", "skipped", "note")


def predict_rows(
    rows: Sequence[Measured],
    calibration: Calibration | None = None,
    catalog: dict[str, Accelerator] | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> list[Prediction]:
    """A prediction (or a skip reason) for every row."""
    out = []
    for i, row in enumerate(rows):
        if i % 25 == 0:
            progress(f"predicting {i}/{len(rows)}")
        out.append(predict(row, calibration, catalog))
    return out


def _mape(pred: np.ndarray, measured: np.ndarray) -> float | None:
    """Mean absolute percentage error in percent (None without points)."""
    keep = np.isfinite(pred) & np.isfinite(measured)
    if not keep.any():
        return None
    return float(np.mean(np.abs(pred[keep] / measured[keep] - 1.0)) * 100.0)


def error_table(preds: Sequence[Prediction]) -> list[dict[str, Any]]:
    """MAPE of TTFT and TPOT by engine x model x mode, then the overall row (last)."""
    groups: dict[tuple[str, str, str], list[Prediction]] = {}
    for p in preds:
        groups.setdefault((p.row.engine, p.row.model, p.row.mode), []).append(p)
    keys = sorted(groups)
    rows = [_scores(e, m, mode, groups[(e, m, mode)]) for e, m, mode in keys]
    return rows + [_scores("all", "all", "all", list(preds))]


def _scores(engine: str, model: str, mode: str, preds: Sequence[Prediction]) -> dict[str, Any]:
    """One error-table row."""
    done = [p for p in preds if p.predicted]
    arr = np.array(
        [(p.ttft_ms, p.row.ttft_ms, p.tpot_ms, p.row.tpot_ms) for p in done], dtype=float
    ).reshape(-1, 4)
    return {
        "engine": engine,
        "model": model,
        "mode": mode,
        "rows": len(preds),
        "predicted": len(done),
        "ttft_mape": _mape(arr[:, 0], arr[:, 1]),
        "tpot_mape": _mape(arr[:, 2], arr[:, 3]),
    }


def validation_summary(preds: Sequence[Prediction]) -> dict[str, Any]:
    """What `planner validate` reports: rows predicted, the error table, the overall errors
    without rows measured under another load than they name, and the rows skipped or flagged."""
    return {
        "rows": len(preds),
        "predicted": sum(p.predicted for p in preds),
        "errors": error_table(preds),
        "errors_as_loaded": error_table([p for p in preds if not p.fewer_in_flight])[-1],
        "skipped": [
            {"id": p.row.id, "line": p.row.line, "reason": p.skipped} for p in preds if p.skipped
        ],
        "fewer_in_flight": [p.row.id for p in preds if p.fewer_in_flight],
    }


def write_predictions(preds: Sequence[Prediction], path: Path) -> None:
    """The measured rows as read, with the predictions (or the skip reason) added."""
    columns: list[str] = []
    for p in preds:
        columns += [c for c in p.row.raw if c not in columns and c not in PREDICTED_COLUMNS]
    columns += PREDICTED_COLUMNS
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for p in preds:
                writer.writerow(
                    p.row.raw
                    | {
                        "pred_ttft_ms": "" if p.ttft_ms is None else f"{p.ttft_ms:.4f}",
                        "pred_tpot_ms": "" if p.tpot_ms is None else f"{p.tpot_ms:.4f}",
                        "skipped": p.skipped,
                        "note": "; ".join(p.notes),
                    }
                )
    except OSError as exc:
        raise PlannerError(f"{path}: cannot write ({exc.strerror})") from None


def lomo(
    rows: Sequence[Measured],
    start: Calibration,
    catalog: dict[str, Accelerator] | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> list[Prediction]:
    """Leave-one-model-out predictions of every aggregated row.

    The schedules come from one simulation with the `start` calibration (no fitted engine
    values); for each model, the engine-level values are fitted on the other models' fitted
    rows by re-timing those schedules, and the model's own rows are then simulated with them.
    """
    agg = [r for r in rows if r.mode == "agg"]
    progress("simulating with the starting calibration")
    retimer = Retimer([predict(r, start, catalog, log=True) for r in agg])
    engines = sorted({s.engine for s in retimer.rows})
    accs = sorted({s.accelerator for s in retimer.rows})
    out: list[Prediction] = []
    for model in sorted({r.model for r in agg}):
        progress(f"leave out {model}")
        theta = fit_theta(retimer, retimer.fitted(model), theta_of(start, engines, accs))
        fold = apply_theta(start, theta)
        out += [predict(r, fold, catalog) for r in agg if r.model == model]
    return out
