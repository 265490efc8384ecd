"""Measured serving benchmarks: replay them (validate) and fit the engines to them (calibrate)."""

from planner.validate.fit import fit_measured
from planner.validate.measured import Measured, is_measured, read_measured
from planner.validate.predict import Prediction, predict
from planner.validate.report import (
    error_table,
    lomo,
    predict_rows,
    validation_summary,
    write_predictions,
)

__all__ = [
    "Measured",
    "Prediction",
    "error_table",
    "fit_measured",
    "is_measured",
    "lomo",
    "predict",
    "predict_rows",
    "read_measured",
    "validation_summary",
    "write_predictions",
]
