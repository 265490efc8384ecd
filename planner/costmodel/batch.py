"""Batch prediction for `planner latency`: a table of points in, the same table plus ms out."""

from pathlib import Path

import numpy as np
import polars as pl

from planner.costmodel.calibration import Calibration
from planner.costmodel.catalog import Accelerator, load_catalog
from planner.costmodel.predict import StepModel
from planner.errors import PlannerError

REQUIRED = ("model", "accelerator", "phase", "batch", "tokens", "context")
PLAN_DEFAULTS = {"tp": 1, "pp": 1, "dp": 1, "ep": 1}
PHASES = ("prefill", "decode")


def read_points(path: Path | str) -> pl.DataFrame:
    """Read a points CSV, with a PlannerError for a missing file or missing columns."""
    path = Path(path)
    try:
        df = pl.read_csv(path, infer_schema_length=10_000)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise PlannerError(f"{path}: cannot read points CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise PlannerError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def _plan_columns(df: pl.DataFrame) -> pl.DataFrame:
    """Normalised plan and point columns used for grouping (originals are left untouched)."""
    exprs = [
        pl.col("model").cast(pl.String).str.strip_chars().str.to_lowercase().alias("_model"),
        pl.col("accelerator").cast(pl.String).str.strip_chars().str.to_lowercase().alias("_acc"),
        pl.col("phase").cast(pl.String).str.strip_chars().str.to_lowercase().alias("_phase"),
        pl.col("dtype").cast(pl.String).str.to_lowercase().alias("_dtype")
        if "dtype" in df.columns
        else pl.lit(None, pl.String).alias("_dtype"),
    ]
    for name, default in PLAN_DEFAULTS.items():
        col = pl.col(name).fill_null(default) if name in df.columns else pl.lit(default)
        exprs.append(col.cast(pl.Int64, strict=False).alias(f"_{name}"))
    for name in ("batch", "tokens", "context"):
        exprs.append(pl.col(name).cast(pl.Float64, strict=False).alias(f"_{name}"))
    return df.select(exprs).with_row_index("_row")


def _check_points(work: pl.DataFrame) -> None:
    """One-line errors for unusable values (naming the first bad row, 1-based)."""
    bad_phase = work.filter(~pl.col("_phase").is_in(PHASES) | pl.col("_phase").is_null())
    if bad_phase.height:
        row = bad_phase.row(0, named=True)
        raise PlannerError(
            f"row {row['_row'] + 1}: phase must be prefill or decode, not {row['_phase']!r}"
        )
    for name in ("batch", "tokens", "context", *PLAN_DEFAULTS):
        low = 0 if name == "context" else 1
        bad = work.filter(pl.col(f"_{name}").is_null() | (pl.col(f"_{name}") < low))
        if bad.height:
            row = bad.row(0, named=True)
            raise PlannerError(f"row {row['_row'] + 1}: {name} must be a number >= {low}")


def predict_points(
    df: pl.DataFrame,
    calibration: Calibration | None = None,
    catalog: dict[str, Accelerator] | None = None,
) -> pl.DataFrame:
    """`df` with `ms` and `extrapolated` added; one StepModel per distinct plan, numpy inside."""
    catalog = catalog if catalog is not None else load_catalog()
    work = _plan_columns(df)
    _check_points(work)
    ms = np.empty(work.height)
    extrapolated = np.empty(work.height, dtype=bool)
    keys = ["_model", "_acc", "_tp", "_pp", "_dp", "_ep", "_dtype"]
    for (model, acc, tp, pp, dp, ep, dtype), part in work.group_by(keys):
        sm = StepModel.build(
            model,
            acc,
            tp=tp,
            pp=pp,
            ep=ep,
            dp=dp,
            dtype=dtype,
            calibration=calibration,
            catalog=catalog,
        )
        rows = part["_row"].to_numpy()
        phase = part["_phase"].to_numpy()
        b, t, c = (part[k].to_numpy() for k in ("_batch", "_tokens", "_context"))
        pre = phase == "prefill"
        ms[rows[pre]] = sm.prefill_ms(b[pre], t[pre], c[pre])
        ms[rows[~pre]] = sm.decode_ms(b[~pre], c[~pre])
        extrapolated[rows] = sm.extrapolated(phase, b, t, c)
    return df.with_columns(pl.Series("ms", ms), pl.Series("extrapolated", extrapolated))
