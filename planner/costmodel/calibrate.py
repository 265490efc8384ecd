"""Fit the efficiency parameters to measured step latencies, and report the model's own error.

Profile formats (auto-detected):

- step JSONL (``h100_dense_steps.jsonl``): one measured step per line with the model's shape
  (hidden, layers, heads, kv_heads, ffn, vocab), phase, batch, tokens (new per sequence),
  context (cached per sequence) and ms.
- Splitwise CSV (``perf_model.csv``): prompt_time (ms for a batch of prompts) and token_time
  (mean ms per decode step while generating token_size tokens) by model, hardware, TP.

Each (source, accelerator) group gets its own parameters, fitted with scipy least squares on
the relative error (soft-L1 loss, so a few noisy millisecond-scale points cannot dominate).
The first profile given names the reference runtime: its entries, and those of every profile
of the same format (step JSONL files measured the same way on other accelerators), become the
defaults that predictions use; entries of other sources are kept under ``accelerator@source``.
"""

import json
import math
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from planner.costmodel.calibration import Calibration, CalibrationEntry, Coverage
from planner.costmodel.cards import ModelCard, load_card
from planner.costmodel.catalog import Accelerator, get_accelerator, load_catalog
from planner.costmodel.memory import plan_memory
from planner.costmodel.operators import Precision, StepShape, features
from planner.costmodel.parallel import Parallel
from planner.costmodel.params import COMM_FITTED, FITTED, LOWER, UPPER, EfficiencyParams
from planner.costmodel.predict import operator_matrices, step_time, time_coefficients
from planner.errors import PlannerError

STEP_COLUMNS = ("model", "hidden", "layers", "heads", "kv_heads", "ffn", "vocab", "phase")
STEP_COLUMNS += ("batch", "tokens", "context", "ms")
SPLITWISE_COLUMNS = ("model", "hardware", "prompt_size", "batch_size", "token_size")
SPLITWISE_COLUMNS += ("prompt_time", "token_time", "tensor_parallel")
SPLITWISE_HARDWARE = {"a100-80gb": "a100", "h100-80gb": "h100"}
POINT_SCHEMA = {
    "source": pl.String,
    "accelerator": pl.String,
    "model": pl.String,
    "phase": pl.String,
    "batch": pl.Float64,
    "tokens": pl.Float64,
    "context": pl.Float64,
    "tp": pl.Int64,
    "dtype": pl.String,
    "ms": pl.Float64,
}


@dataclass
class Profile:
    """Measured steps from one or more profile files, with the cards of their models."""

    points: pl.DataFrame
    cards: dict[str, ModelCard]
    notes: list[str]
    formats: dict[str, str]


def _require(df: pl.DataFrame, columns: tuple[str, ...], path: Path, kind: str) -> None:
    """PlannerError naming the first missing columns of a profile file."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise PlannerError(f"{path}: {kind} profile is missing column(s) {', '.join(missing)}")


def _accelerator_of(gpu: str, path: Path) -> str:
    """Catalog id of a profile's GPU name (e.g. NVIDIA_H100_80GB_HBM3 -> h100)."""
    name = gpu.lower().replace("_", "-")
    for acc_id in sorted(load_catalog(), key=len, reverse=True):
        if acc_id in name:
            return acc_id
    raise PlannerError(f"{path}: GPU {gpu!r} matches no catalog accelerator")


def read_step_profile(path: Path) -> Profile:
    """Read the step-latency JSONL: one card per profiled shape, one point per line."""
    try:
        df = pl.read_ndjson(path)
    except (pl.exceptions.ComputeError, OSError) as exc:
        raise PlannerError(f"{path}: not a JSONL step profile ({exc})") from None
    _require(df, STEP_COLUMNS, path, "step JSONL")
    gpu = df["gpu"].drop_nulls()[0] if "gpu" in df.columns else "h100"
    cards: dict[str, ModelCard] = {}
    for row in df.unique("model", keep="first", maintain_order=True).iter_rows(named=True):
        shape = {k: int(row[k]) for k in ("layers", "hidden", "heads", "kv_heads", "ffn", "vocab")}
        untied = ModelCard(id=row["model"], tied_embeddings=False, **shape)
        tied = row.get("params") is not None and untied.total_params() != row["params"]
        cards[row["model"]] = ModelCard(id=row["model"], tied_embeddings=tied, **shape)
    points = df.select(
        pl.lit(path.stem).alias("source"),
        pl.lit(_accelerator_of(gpu, path)).alias("accelerator"),
        pl.col("model"),
        pl.col("phase"),
        pl.col("batch").cast(pl.Float64),
        pl.col("tokens").cast(pl.Float64),
        pl.col("context").cast(pl.Float64),
        (pl.col("tp") if "tp" in df.columns else pl.lit(1)).cast(pl.Int64).alias("tp"),
        (pl.col("dtype") if "dtype" in df.columns else pl.lit("bf16")).alias("dtype"),
        pl.col("ms").cast(pl.Float64),
    )
    return Profile(points, cards, [], {path.stem: "steps"})


def read_splitwise_profile(path: Path) -> Profile:
    """Read Splitwise perf_model.csv: median prompt and mean decode-step time per config."""
    try:
        df = pl.read_csv(path)
    except (pl.exceptions.ComputeError, OSError) as exc:
        raise PlannerError(f"{path}: not a Splitwise CSV ({exc})") from None
    _require(df, SPLITWISE_COLUMNS, path, "Splitwise CSV")
    skipped = sorted(set(df["hardware"].unique()) - set(SPLITWISE_HARDWARE))
    df = df.filter(pl.col("hardware").is_in(list(SPLITWISE_HARDWARE))).with_columns(
        pl.col("hardware").replace_strict(SPLITWISE_HARDWARE).alias("accelerator")
    )
    df, dropped = _drop_oversized(df)
    plan = ["model", "accelerator", "tensor_parallel", "batch_size"]
    base = [
        pl.lit("splitwise").alias("source"),
        pl.col("accelerator"),
        pl.col("model"),
        pl.col("batch_size").cast(pl.Float64).alias("batch"),
    ]
    tail = [pl.col("tensor_parallel").cast(pl.Int64).alias("tp"), pl.lit("fp16").alias("dtype")]
    prefill = (
        df.group_by([*plan, "prompt_size"])
        .agg(pl.col("prompt_time").median().alias("ms"))
        .select(
            *base,
            pl.lit("prefill").alias("phase"),
            pl.col("prompt_size").cast(pl.Float64).alias("tokens"),
            pl.lit(0.0).alias("context"),
            *tail,
            pl.col("ms"),
        )
    )
    decode = (
        df.group_by([*plan, "prompt_size", "token_size"])
        .agg(pl.col("token_time").median().alias("ms"))
        .select(
            *base,
            pl.lit("decode").alias("phase"),
            pl.lit(1.0).alias("tokens"),
            (pl.col("prompt_size") + pl.col("token_size") / 2.0).cast(pl.Float64).alias("context"),
            *tail,
            pl.col("ms"),
        )
    )
    points = pl.concat([prefill, decode]).select(list(POINT_SCHEMA))
    points = points.sort("accelerator", "model", "tp", "phase", "batch", "tokens", "context")
    notes = [f"skipped hardware {h} (power-capped or not a catalog accelerator)" for h in skipped]
    notes += dropped
    cards = {m: load_card(m) for m in points["model"].unique()}
    return Profile(points, cards, notes, {"splitwise": "splitwise"})


def _drop_oversized(df: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Drop configs whose KV cache exceeds the plan's budget: the runtime cannot run them as
    one step (e.g. llama2-70b at TP 2 with batch 64 reports a prompt time below batch 32's)."""
    budgets = {}
    for model, acc_id, tp in df.select("model", "accelerator", "tensor_parallel").unique().rows():
        fp16 = Precision("fp16", "fp16", "fp16")
        mem = plan_memory(load_card(model), get_accelerator(acc_id), Parallel(tp=tp), fp16)
        budgets[(model, acc_id, tp)] = mem.kv_budget_tokens
    need = pl.col("batch_size") * (pl.col("prompt_size") + pl.col("token_size"))
    budget = pl.struct("model", "accelerator", "tensor_parallel").map_elements(
        lambda r: budgets[(r["model"], r["accelerator"], r["tensor_parallel"])],
        return_dtype=pl.Int64,
    )
    df = df.with_columns(budget.alias("kv_budget"))
    over = df.filter(need > pl.col("kv_budget"))
    notes = [
        f"dropped {m} {a} tp={t} batch={b} prompt={p}: needs {b * (p + o):,} KV tokens, "
        f"budget {k:,} (not runnable as one step)"
        for m, a, t, b, p, o, k in over.select(
            "model",
            "accelerator",
            "tensor_parallel",
            "batch_size",
            "prompt_size",
            "token_size",
            "kv_budget",
        )
        .unique()
        .sort("accelerator", "model")
        .rows()
    ]
    return df.filter(need <= pl.col("kv_budget")), notes


def read_profile(path: Path | str) -> Profile:
    """Read one profile file, detecting the format from its extension and header."""
    path = Path(path)
    if not path.exists():
        raise PlannerError(f"{path}: no such profile file")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return read_step_profile(path)
    if path.suffix.lower() == ".csv":
        header = path.open().readline()
        if "prompt_time" in header or "token_time" in header or "hardware" in header:
            return read_splitwise_profile(path)
        raise PlannerError(f"{path}: CSV is not a Splitwise perf_model.csv (no prompt_time column)")
    raise PlannerError(f"{path}: unknown profile format (expected .jsonl step profile or .csv)")


def read_profiles(paths: list[Path | str]) -> Profile:
    """Read and combine several profile files."""
    if not paths:
        raise PlannerError("no profile files given")
    parts = [read_profile(p) for p in paths]
    points = pl.concat([p.points.cast(POINT_SCHEMA) for p in parts])
    cards = {k: v for p in parts for k, v in p.cards.items()}
    formats = {k: v for p in parts for k, v in p.formats.items()}
    return Profile(points, cards, [n for p in parts for n in p.notes], formats)


@dataclass
class _Group:
    """Points of one (model, tp, dtype) with everything precomputed for fast refits."""

    card: ModelCard
    tp: int
    dtype: str
    feats: np.ndarray
    prefill: np.ndarray
    ms: np.ndarray


def _groups(points: pl.DataFrame, cards: dict[str, ModelCard]) -> list[_Group]:
    """Split points by model, tp and dtype and compute their feature matrices once."""
    out = []
    for (model, tp, dtype), df in points.group_by(["model", "tp", "dtype"], maintain_order=True):
        card = cards[model]
        prefill = (df["phase"] == "prefill").to_numpy()
        b, t, c = (df[k].to_numpy() for k in ("batch", "tokens", "context"))
        shape = StepShape.uniform(
            float(card.attention_window),
            np.where(prefill, b, 0.0),
            np.where(prefill, t, 0.0),
            np.where(prefill, c, 0.0),
            np.where(prefill, 0.0, b),
            np.where(prefill, 0.0, c),
        )
        feats = features(card, Parallel(tp=int(tp)), shape)
        out.append(_Group(card, int(tp), str(dtype), feats, prefill, df["ms"].to_numpy()))
    return out


def _predict(groups: list[_Group], acc: Accelerator, params: EfficiencyParams) -> np.ndarray:
    """Predicted ms of every point of `groups`, concatenated in order."""
    preds = []
    for g in groups:
        matrices = operator_matrices(
            g.card, Parallel(tp=g.tp), Precision(g.dtype, g.dtype, g.dtype)
        )
        coef = time_coefficients(matrices, acc, params)
        preds.append(step_time(coef, params, g.card.layers, g.feats, g.prefill))
    return np.concatenate(preds)


def fit_params(
    groups: list[_Group], acc: Accelerator, start: EfficiencyParams | None = None
) -> EfficiencyParams:
    """Least-squares fit on relative error (soft-L1 loss); comms only when TP > 1 was seen."""
    from scipy.optimize import least_squares  # deferred: keeps CLI start-up fast

    start = start or EfficiencyParams()
    names = FITTED + (COMM_FITTED if max(g.tp for g in groups) > 1 else ())
    measured = np.concatenate([g.ms for g in groups])

    def params_of(x: np.ndarray) -> EfficiencyParams:
        """The start parameters with the fitted ones set from `x`."""
        return replace(start, **dict(zip(names, map(float, x), strict=True)))

    def residuals(x: np.ndarray) -> np.ndarray:
        """Relative error of every point."""
        return _predict(groups, acc, params_of(x)) / measured - 1.0

    lower = [LOWER[k] for k in names]
    upper = [UPPER[k] for k in names]
    x0 = np.clip([getattr(start, k) for k in names], lower, upper)
    result = least_squares(
        residuals, x0, bounds=(lower, upper), loss="soft_l1", f_scale=0.1, x_scale="jac"
    )
    return params_of(result.x)


def _coverage(points: pl.DataFrame, cards: dict[str, ModelCard]) -> Coverage:
    """The ranges a fit saw, for flagging extrapolation."""
    sizes = [cards[m].total_params() / 1e9 for m in points["model"].unique()]
    prefill = points.filter(pl.col("phase") == "prefill")
    step_tokens = (prefill["batch"] * prefill["tokens"]).max() if prefill.height else 0.0
    return Coverage(
        params_min_b=min(sizes),
        params_max_b=max(sizes),
        batch_max=float(points["batch"].max()),
        tokens_max=float(prefill["tokens"].max() or 1.0) if prefill.height else 1.0,
        context_max=float((points["context"] + points["tokens"]).max()),
        step_tokens_max=float(step_tokens or 0.0),
        tp_max=int(points["tp"].max()),
        dtypes=tuple(sorted({"bf16", "fp16"} & set(points["dtype"].unique()) or {"bf16"})),
    )


def _mape(pred: np.ndarray, measured: np.ndarray) -> float:
    """Mean absolute percentage error, in percent."""
    return float(np.mean(np.abs(pred / measured - 1.0)) * 100.0) if len(measured) else math.nan


def _errors(df: pl.DataFrame, by: list[str]) -> list[dict[str, Any]]:
    """MAPE and point count of `df` (with pred, ms columns) grouped by `by`."""
    return (
        df.group_by(by)
        .agg(
            ((pl.col("pred") / pl.col("ms") - 1).abs().mean() * 100).alias("mape"),
            pl.len().alias("points"),
        )
        .sort(by)
        .to_dicts()
    )


def _with_predictions(points: pl.DataFrame, groups: list[_Group], pred: np.ndarray) -> pl.DataFrame:
    """Points re-ordered like `groups` with a `pred` column."""
    ordered = pl.concat(
        [df for _, df in points.group_by(["model", "tp", "dtype"], maintain_order=True)]
    )
    assert ordered.height == sum(len(g.ms) for g in groups)
    return ordered.with_columns(pl.Series("pred", pred))


def leave_one_model_out(
    points: pl.DataFrame, cards: dict[str, ModelCard], acc: Accelerator
) -> pl.DataFrame:
    """Fit on all models but one, predict that one; every model in turn. Returns predictions."""
    frames = []
    for model in points["model"].unique(maintain_order=True):
        train = points.filter(pl.col("model") != model)
        test = points.filter(pl.col("model") == model)
        params = fit_params(_groups(train, cards), acc)
        groups = _groups(test, cards)
        frames.append(_with_predictions(test, groups, _predict(groups, acc, params)))
    return pl.concat(frames)


def calibrate(
    paths: list[Path | str], report: bool = False, catalog: dict[str, Accelerator] | None = None
) -> tuple[Calibration, dict[str, Any]]:
    """Fit every (source, accelerator) group of the profiles; optionally the error report."""
    profile = read_profiles(paths)
    catalog = catalog if catalog is not None else load_catalog()
    cal = Calibration(
        meta={"fitted_from": [Path(p).name for p in paths], "date": date.today().isoformat()}
    )
    out: dict[str, Any] = {"notes": profile.notes, "fit": [], "leave_one_model_out": []}
    keys = profile.points.select("source", "accelerator").unique(maintain_order=True)
    first = profile.formats[keys["source"][0]]
    references = [s for s, kind in profile.formats.items() if kind == first]
    cal.meta["reference_sources"] = references
    for source, acc_id in keys.iter_rows():
        points = profile.points.filter(
            (pl.col("source") == source) & (pl.col("accelerator") == acc_id)
        )
        acc = get_accelerator(acc_id, catalog)
        groups = _groups(points, profile.cards)
        params = fit_params(groups, acc)
        coverage = _coverage(points, profile.cards)
        entry = CalibrationEntry(acc.id, source, params, coverage, points.height)
        cal.add(entry, default=source in references)
        if not report:
            continue
        fitted = _with_predictions(points, groups, _predict(groups, acc, params))
        for row in _errors(fitted.with_columns(pl.lit("all").alias("phase")), ["phase"]):
            out["fit"].append({"source": source, "accelerator": acc.id, "tp": "all", **row})
        for row in _errors(fitted, ["phase", "tp"]):
            out["fit"].append({"source": source, "accelerator": acc.id, **row})
        if points["model"].n_unique() >= 2:
            lomo = leave_one_model_out(points, profile.cards, acc)
            for row in _errors(lomo, ["phase"]) + _errors(lomo, ["phase", "model"]):
                out["leave_one_model_out"].append({"source": source, "accelerator": acc.id, **row})
    cal.meta["report"] = out if report else None
    return cal, out


def format_report(report: dict[str, Any]) -> str:
    """Human-readable error report (LOMO by phase and model; fit error by accelerator and TP)."""
    lines = ["Leave-one-model-out (fit on the other models, predict this one):"]
    for r in report["leave_one_model_out"]:
        who = r.get("model", "all models")
        lines.append(
            f"  {r['source']:<20} {r['accelerator']:<6} {r['phase']:<8} {who:<14} "
            f"MAPE {r['mape']:5.1f} %  ({r['points']} points)"
        )
    lines.append("Calibrated fit error by accelerator and TP:")
    for r in report["fit"]:
        lines.append(
            f"  {r['source']:<20} {r['accelerator']:<6} {r['phase']:<8} tp={r['tp']:<3}"
            f"        MAPE {r['mape']:5.1f} %  ({r['points']} points)"
        )
    lines += [f"Note: {n}" for n in report["notes"]]
    return "\n".join(lines)


def report_json(report: dict[str, Any]) -> str:
    """The report as JSON text."""
    return json.dumps(report, indent=2)
