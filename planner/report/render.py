"""Render the plan, ops data and charts into one self-contained HTML page (Jinja + inlined Vega)."""

import json
import math
import os
from datetime import UTC, datetime
from functools import cache
from pathlib import Path, PurePath

import altair as alt
import jinja2
import vl_convert

from planner.optimize.costing import HOURS_PER_MONTH
from planner.optimize.costing import saving as cost_saving
from planner.optimize.planfile import (
    AcceleratorRef,
    Alternative,
    ParallelPlan,
    PlanFile,
    ReplicaGroup,
)
from planner.report.charts import Chart
from planner.report.data import OpsData
from planner.report.narrative import prefill_label
from planner.resources import resource_dir

TEMPLATE = "report.html.j2"
STYLESHEET = "report.css"


def cache_dir() -> Path:
    """Where the generated Vega bundle is kept: $XDG_CACHE_HOME/planner or ~/.cache/planner."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "planner"


@cache
def vega_bundle() -> str:
    """Vega, Vega-Lite (the version Altair writes) and vega-embed as one offline script.

    vl-convert builds the bundle in about 1.5 s; it is kept in the user's cache folder (keyed
    by the three library versions) and rebuilt whenever that copy is missing or unwritable.
    """
    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    version = wanted if wanted in vl_convert.get_vegalite_versions() else None
    key = f"{version or 'default'}-{vl_convert.get_vega_version()}-"
    path = cache_dir() / f"vega-bundle-{key}{vl_convert.get_vega_embed_version()}.js"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    bundle = vl_convert.javascript_bundle(vl_version=version)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_text(bundle, encoding="utf-8")
        partial.replace(path)
    except OSError:
        pass
    return bundle


def missing(value: object) -> bool:
    """True for None, a Jinja undefined (an absent plan key) or a non-finite number."""
    if value is None or isinstance(value, jinja2.Undefined):
        return True
    return isinstance(value, float) and not math.isfinite(value)


def money(value: float | None, digits: int = 2) -> str:
    """US dollars with thousands separators: $6,548.10."""
    if missing(value):
        return "n/a"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{digits}f}"


def number(value: float | None, digits: int = 0) -> str:
    """A number with thousands separators and `digits` decimals."""
    if missing(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def percent(value: float | None, digits: int = 1) -> str:
    """A share as a percentage: 0.995 -> 99.5%."""
    if missing(value):
        return "n/a"
    return f"{100 * value:,.{digits}f}%"


def duration(seconds: float | None) -> str:
    """A duration in the largest unit that keeps it readable: 86,400 s -> 1 day."""
    if missing(seconds):
        return "n/a"
    for unit, size in (("day", 86400), ("hour", 3600), ("min", 60)):
        if seconds >= size:
            count = seconds / size
            plural = "s" if unit != "min" and count != 1 else ""
            return f"{number(count, 0 if count == int(count) else 1)} {unit}{plural}"
    return f"{number(seconds, 0)} s"


def timestamp(value: str | None) -> str:
    """An ISO-8601 time as 'YYYY-MM-DD HH:MM UTC' (the text itself if it does not parse)."""
    if missing(value) or not value:
        return "n/a"
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%d %H:%M") + (" UTC" if parsed.tzinfo else "")


def saving(base: Alternative | None, cost: float) -> dict | None:
    """Monthly saving of `cost` against an alternative, in dollars and as a share of it."""
    if base is None or not base.cost_per_month:
        return None
    dollars, share = cost_saving(base.cost_per_month, cost)
    return {"dollars": dollars, "share": share, **base.model_dump(exclude_unset=True)}


def parallelism(row: ParallelPlan) -> str:
    """TP/PP/EP degrees in words: 'TP2 · PP1'; EP shown only when above 1."""
    parts = [f"TP{row.tp}", f"PP{row.pp}"]
    if row.ep > 1:
        parts.append(f"EP{row.ep}")
    return " · ".join(parts)


def serving_mode(row: ParallelPlan) -> str:
    """Aggregated, or disaggregated with its prefill:decode ratio (and its prefill side on
    mixed hardware)."""
    mode = row.mode or "aggregated"
    if not row.pd:
        return mode
    side = f", prefill on {prefill_label(row.prefill)}" if row.prefill else ""
    return f"{mode} (P:D {':'.join(str(n) for n in row.pd)}{side})"


def group_cost_per_hour(row: ReplicaGroup, accels: dict[str, AcceleratorRef]) -> float | None:
    """$/hour of a replica group at catalog prices (each side at its own on mixed hardware)."""
    decode, side = accels.get(row.accelerator), row.prefill
    if decode is None or (side is not None and side.accelerator not in accels):
        return None
    if side is None or not row.pd:
        return decode.price_per_hour * row.gpus
    prefill = accels[side.accelerator]
    p_gpus = row.count * row.pd[0] * side.tp * side.pp * side.ep
    return prefill.price_per_hour * p_gpus + decode.price_per_hour * (row.gpus - p_gpus)


def finance(plan: PlanFile) -> dict:
    """Page one's figures: the plan table, savings, cost band and assumptions."""
    rec = plan.recommended
    accels = {a.id: a for a in plan.accelerators}
    rows = []
    for r in rec.replicas:
        acc = accels.get(r.accelerator)
        rows.append(
            {
                "accelerator": acc.name if acc else r.accelerator.upper(),
                "parallelism": parallelism(r),
                "mode": serving_mode(r),
                "max_batch": r.max_batch,
                "replicas": r.count,
                "max_replicas": r.max_count,
                "gpus": r.gpus,
                "goodput_rps": r.goodput_rps,
                "cost_per_hour": group_cost_per_hour(r, accels),
            }
        )
    alts, band = plan.alternatives, plan.cost_band
    replay = plan.replay.schedule
    target = plan.slo.attainment
    return {
        "replay": replay.model_dump(exclude_unset=True),
        "replay_ok": replay.slo_attainment >= target,
        "rows": rows,
        "gpus": sum(r["gpus"] for r in rows),
        "static_peak": saving(alts.static_peak, rec.cost_per_month),
        "best_single": saving(alts.best_single_accelerator, rec.cost_per_month),
        "band": band if band.get("p50_cost_per_month") is not None else None,
        "slo": [slo_text(key, value) for key, value in plan.slo.limits().items()],
        "attainment": target,
        "accelerators": [a.model_dump(exclude_unset=True) for a in accels.values()],
    }


SLO_METRICS = {
    "ttft": "time to first token",
    "tpot": "time per output token",
    "e2e": "end-to-end latency",
    "queue": "queueing delay",
}


def slo_text(key: str, limit_ms: float) -> str:
    """'ttft_p90_ms', 500 -> 'time to first token (p90) ≤ 500 ms'."""
    metric, percentile, _ = key.split("_", 2)
    return f"{SLO_METRICS.get(metric, metric)} ({percentile}) ≤ {number(limit_ms)} ms"


def environment() -> jinja2.Environment:
    """The Jinja environment over reports/, with the report's number filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(resource_dir("reports")),
        autoescape=jinja2.select_autoescape(("html", "j2")),
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        money=money, number=number, percent=percent, duration=duration, timestamp=timestamp
    )
    return env


def specs_json(charts: dict[str, Chart]) -> str:
    """All chart specs as one JSON object, safe inside a <script> element."""
    text = json.dumps({k: c.spec for k, c in charts.items()}, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(plan: PlanFile, ops: OpsData, charts: dict[str, Chart]) -> str:
    """The whole report page as one HTML string."""
    env = environment()
    css = (resource_dir("reports") / STYLESHEET).read_text(encoding="utf-8")
    data = plan.to_dict()
    return env.get_template(TEMPLATE).render(
        plan=data,
        rec=data["recommended"],
        fin=finance(plan),
        ops=ops,
        charts=charts,
        css=css,
        vega_js=vega_bundle(),
        specs=specs_json(charts),
        hours_per_month=f"{HOURS_PER_MONTH:g}",
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        store=PurePath(plan.db).name if plan.db else None,
    )
