"""The report's Altair charts: each has a title, axis units and a one-line "what this shows"."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import altair as alt
import polars as pl
from pydantic import BaseModel

from planner.optimize.costing import HOURS_PER_MONTH
from planner.optimize.planfile import PlanFile
from planner.report.data import OpsData

WIDTH = 760
HEIGHT = 260
ACCENT = "#1f5fa8"
MUTED = "#9aa5b1"
ALERT = "#c2410c"
POLICY_LABELS = {
    "schedule": "planned schedule",
    "static_peak": "static peak",
    "reactive": "HPA (req/s)",
    "reactive_tokens": "HPA (tokens/s)",
    "kpa": "KPA",
    "hybrid": "hybrid",
}
TIMELINE_LABELS = POLICY_LABELS | {"hybrid_floor": "hybrid: its forecast floor"}
POLICY_COLORS = [ACCENT, MUTED, ALERT, "#b45309", "#7c3aed", "#15803d", "#86efac"]
POLICY_DASHES = {
    "schedule": [1, 0],
    "static_peak": [6, 4],
    "reactive": [1, 0],
    "reactive_tokens": [4, 2],
    "kpa": [1, 3],
    "hybrid": [2, 2],
    "hybrid_floor": [1, 0],
}
MUTED_INK = "#52606d"
BAR_PX = 12
LABELLED_BARS = 3  # more bars than this fit no value labels; the replay table below has them
TIME_FORMAT = ",.4~g"
CONFIG = {
    "font": "Inter, 'Segoe UI', Helvetica, Arial, sans-serif",
    "axis": {"labelFontSize": 11, "titleFontSize": 12, "gridColor": "#e4e7eb"},
    "title": {"fontSize": 15, "subtitleFontSize": 12, "offset": 12},
    "legend": {"labelFontSize": 11, "titleFontSize": 11, "orient": "top"},
    "view": {"stroke": None},
}


@dataclass(frozen=True)
class Chart:
    """One rendered chart: its element id, title, one-line explanation and Vega-Lite spec."""

    id: str
    title: str
    what: str
    spec: dict


def finish(chart: alt.TopLevelMixin, chart_id: str, title: str, what: str) -> Chart:
    """Attach the title and explanation line, apply the report's style, return the spec (every
    data point inlined: Altair's 5,000-row guard would fail a day-long replay timeline, and the
    report is one self-contained file either way)."""
    with alt.data_transformers.disable_max_rows():
        spec = chart.to_dict()
    spec["title"] = {"text": title, "subtitle": what, "anchor": "start", "subtitleColor": MUTED_INK}
    spec["config"] = {**spec.get("config", {}), **CONFIG}
    return Chart(chart_id, title, what, spec)


def time_unit(max_t_s: float) -> tuple[str, float]:
    """Axis unit for a time range: minutes up to six hours, hours up to four days, else days."""
    if max_t_s <= 6 * 3600:
        return "min", 60.0
    if max_t_s <= 4 * 86400:
        return "h", 3600.0
    return "d", 86400.0


def with_time(frame: pl.DataFrame, column: str, max_t_s: float) -> tuple[pl.DataFrame, str]:
    """Add a `time` column in the unit that suits `max_t_s`, and return the axis title."""
    unit, scale = time_unit(max_t_s)
    return frame.with_columns(
        (pl.col(column) / scale).alias("time")
    ), f"time from trace start ({unit})"


def decades(lo: float, hi: float) -> list[float]:
    """Powers of ten from below `lo` to above `hi`: the ticks of a log axis."""
    return [10.0**k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]


def integer_ticks(top: float | None, most: int = 8) -> list[int]:
    """Whole-number axis ticks from 0 to `top`, at most about `most` of them."""
    top = math.ceil(top or 1)
    step = max(1, math.ceil(top / most))
    return list(range(0, top + step, step))


def steps(records: list[dict] | None) -> pl.DataFrame | None:
    """Rows of a step series with the last step repeated one interval later, so it is drawn."""
    frame = pl.DataFrame(records or [], infer_schema_length=None)
    if frame.is_empty():
        return None
    frame = frame.with_columns(pl.col("t").cast(pl.Float64))
    times = frame["t"].unique().sort()
    gaps = times.diff().drop_nulls()
    if gaps.is_empty():
        return frame
    last = frame.filter(pl.col("t") == times[-1]).with_columns(pl.col("t") + gaps.min())
    return pl.concat([frame, last])


def records(rows: Sequence[BaseModel]) -> list[dict]:
    """Plan file rows (schedule, frontier points) as the dicts PLAN.json holds."""
    return [row.model_dump(exclude_unset=True) for row in rows]


def cost_comparison(plan: PlanFile) -> Chart | None:
    """Monthly cost of the recommended plan against the alternatives (page one)."""
    rec = plan.recommended
    rows = [{"option": "Recommended plan", "cost": rec.cost_per_month, "kind": "recommended"}]
    band = plan.cost_band
    if band.get("p50_cost_per_month") is not None:
        rows.append(
            {
                "option": "Recommended, if demand is at p50",
                "cost": band["p50_cost_per_month"],
                "kind": "band",
            }
        )
    best = plan.alternatives.best_single_accelerator
    if best is not None:
        rows.append(
            {
                "option": f"Best single accelerator ({best.accelerator.upper()})",
                "cost": best.cost_per_month,
                "kind": "alternative",
            }
        )
    rows.append(
        {
            "option": "Static peak provisioning",
            "cost": plan.alternatives.static_peak.cost_per_month,
            "kind": "alternative",
        }
    )
    frame = pl.DataFrame(rows).with_columns(
        pl.col("cost").map_elements(lambda c: f"${c:,.2f}", return_dtype=pl.String).alias("label")
    )
    order = frame["option"].to_list()
    base = alt.Chart(frame).encode(
        y=alt.Y("option:N", sort=order, title=None, axis=alt.Axis(labelLimit=260)),
        x=alt.X("cost:Q", title="monthly cost (US$)", axis=alt.Axis(format="$,.0f")),
    )
    bars = base.mark_bar(height=22).encode(
        color=alt.Color(
            "kind:N",
            scale=alt.Scale(
                domain=["recommended", "band", "alternative"], range=[ACCENT, "#8fb3de", MUTED]
            ),
            legend=None,
        ),
        tooltip=[alt.Tooltip("option:N"), alt.Tooltip("cost:Q", title="US$/month", format="$,.2f")],
    )
    text = base.mark_text(align="left", dx=6, fontSize=12).encode(text="label:N")
    chart = (bars + text).properties(width=520, height=34 * len(rows))
    return finish(
        chart,
        "cost-comparison",
        "Monthly cost: recommended plan vs alternatives",
        f"US$ per month ({HOURS_PER_MONTH:g} h) to serve the forecast demand at the same SLO; "
        "shorter is cheaper.",
    )


def request_rate(ops: OpsData) -> Chart | None:
    """Request rate over the trace with bursts marked."""
    if ops.rate is None or ops.rate.is_empty():
        return None
    frame, x_title = with_time(ops.rate, "t_s", float(ops.rate["t_s"].max()))
    mean = float(frame["rate_rps"].mean())
    bin_label = f"{ops.rate_bin_s:,} s bins"
    x = alt.X("time:Q", title=x_title, axis=alt.Axis(format=TIME_FORMAT))
    tips = [
        alt.Tooltip("time:Q", title="time", format=",.1f"),
        alt.Tooltip("rate_rps:Q", title="req/s", format=",.2f"),
    ]
    line = (
        alt.Chart(frame)
        .mark_line(color=ACCENT, strokeWidth=1.2, interpolate="step-after")
        .encode(
            x=x,
            y=alt.Y(
                "rate_rps:Q",
                title=f"request rate (req/s, {bin_label})",
                axis=alt.Axis(format=",.1f"),
            ),
            tooltip=tips,
        )
    )
    bursts = (
        alt.Chart(frame.filter(pl.col("burst")))
        .mark_point(color=ALERT, filled=True, size=45)
        .encode(x=x, y="rate_rps:Q", tooltip=tips)
    )
    rule_frame = pl.DataFrame({"mean": [mean], "label": [f"mean {mean:,.2f} req/s"]})
    rule = alt.Chart(rule_frame).mark_rule(strokeDash=[4, 3], color="#334e68").encode(y="mean:Q")
    label = (
        alt.Chart(rule_frame)
        .mark_text(align="right", dy=-6, x=WIDTH, color="#334e68")
        .encode(y="mean:Q", text="label:N")
    )
    n_bursts = int(frame["burst"].sum())
    return finish(
        (line + bursts + rule + label).properties(width=WIDTH, height=HEIGHT),
        "request-rate",
        "Request rate over time",
        f"Requests per second in {bin_label}; red points are bursts (bins above mean + 3 sd), "
        f"{n_bursts:,} of {frame.height:,} bins.",
    )


def interarrival(ops: OpsData) -> Chart | None:
    """Observed inter-arrival distribution against the fitted ones."""
    if ops.interarrival is None:
        return None
    frame = ops.interarrival
    observed = frame.filter(pl.col("curve") == "observed")
    fitted = frame.filter(pl.col("curve") != "observed")
    log_x = alt.Scale(type="log")
    bars = (
        alt.Chart(observed)
        .mark_bar(color="#cbd2d9")
        .encode(
            x=alt.X(
                "lo_s:Q",
                scale=log_x,
                title="gap between consecutive arrivals (s, log scale)",
                axis=alt.Axis(
                    format="~g", values=decades(observed["lo_s"].min(), observed["hi_s"].max())
                ),
            ),
            x2="hi_s:Q",
            y=alt.Y("share:Q", title="share of gaps (%)", axis=alt.Axis(format=".0%")),
            y2=alt.datum(0),
            tooltip=[
                alt.Tooltip("lo_s:Q", title="from (s)", format=",.4g"),
                alt.Tooltip("hi_s:Q", title="to (s)", format=",.4g"),
                alt.Tooltip("share:Q", title="observed", format=".2%"),
            ],
        )
    )
    lines = (
        alt.Chart(fitted)
        .mark_line(strokeWidth=2)
        .encode(
            x=alt.X("mid_s:Q", scale=log_x),
            y="share:Q",
            color=alt.Color(
                "curve:N",
                title="fitted distribution",
                scale=alt.Scale(range=["#52606d", ACCENT, ALERT, "#2f855a"]),
            ),
            strokeDash=alt.condition(
                alt.datum.curve == "exponential (Poisson)", alt.value([4, 3]), alt.value([1, 0])
            ),
            tooltip=[
                alt.Tooltip("curve:N"),
                alt.Tooltip("share:Q", title="expected", format=".2%"),
            ],
        )
    )
    best = min(ops.fits, key=lambda f: f["ks"]) if ops.fits else None
    verdict = f" {best['dist'].capitalize()} fits best (KS {best['ks']:.3f})." if best else ""
    return finish(
        (bars + lines).properties(width=WIDTH, height=HEIGHT),
        "interarrival-fit",
        "Inter-arrival times and fitted distributions",
        "Grey bars: observed gaps; lines: each fitted distribution (lower KS = closer fit)."
        + verdict,
    )


def token_lengths(ops: OpsData) -> Chart | None:
    """Input and output token-length distributions on one log axis."""
    if ops.lengths is None:
        return None
    chart = (
        alt.Chart(ops.lengths)
        .mark_bar(opacity=0.75, binSpacing=0)
        .encode(
            x=alt.X(
                "lo:Q",
                scale=alt.Scale(type="log"),
                title="tokens per request (log scale)",
                axis=alt.Axis(format="~s"),
            ),
            x2="hi:Q",
            y=alt.Y(
                "share:Q", title="share of requests (%)", axis=alt.Axis(format=".0%"), stack=None
            ),
            y2=alt.datum(0),
            color=alt.Color(
                "which:N",
                title="tokens",
                scale=alt.Scale(domain=["input", "output"], range=[ACCENT, ALERT]),
            ),
            tooltip=[
                alt.Tooltip("which:N"),
                alt.Tooltip("lo:Q", title="from (tokens)", format=",.0f"),
                alt.Tooltip("hi:Q", title="to (tokens)", format=",.0f"),
                alt.Tooltip("requests:Q", title="requests", format=",.0f"),
                alt.Tooltip("share:Q", title="share", format=".2%"),
            ],
        )
    )
    return finish(
        chart.properties(width=WIDTH, height=HEIGHT),
        "token-lengths",
        "Token-length distributions",
        "Share of requests per prompt (input) and completion (output) length, quarter-octave bins.",
    )


COMPONENT_LABELS = {
    "pod_allocation": "pod allocation",
    "deploy_code": "code deploy",
    "deploy_dependency": "dependency deploy",
    "scheduling": "scheduling",
    "model_load": "model load",
    "other": "other / unattributed",
}


def cold_start_breakdown(ops: OpsData) -> Chart | None:
    """Share of cold-start time per component, and the busiest groups' durations."""
    summary = ops.cold_starts
    if not summary:
        return None
    panels = []
    components = summary.get("components") or {}
    if components:
        shares = pl.DataFrame(
            [
                {
                    "component": COMPONENT_LABELS.get(k, k),
                    "share": v.get("share") or 0.0,
                    "mean_s": v.get("mean_s"),
                }
                for k, v in components.items()
            ]
        )
        panels.append(
            alt.Chart(shares)
            .mark_bar(color=ACCENT)
            .encode(
                y=alt.Y("component:N", sort="-x", title=None),
                x=alt.X(
                    "share:Q", title="share of cold-start seconds (%)", axis=alt.Axis(format=".0%")
                ),
                tooltip=[
                    alt.Tooltip("component:N"),
                    alt.Tooltip("share:Q", format=".1%"),
                    alt.Tooltip("mean_s:Q", title="mean s", format=",.2f"),
                ],
            )
            .properties(
                width=260,
                height=28 * shares.height,
                title=alt.TitleParams("by component", fontSize=13),
            )
        )
    by = summary.get("by") or {}
    group = next((g for g in ("pool", "series", "kind", "cluster") if g in by), None)
    if group:
        top = pl.DataFrame(by[group]["top"], infer_schema_length=None).select(
            pl.col("key").cast(pl.String), "count", "mean", "p99"
        )
        order = top["key"].to_list()
        base = alt.Chart(top).encode(
            y=alt.Y("key:N", sort=order, title=None, axis=alt.Axis(labelLimit=160))
        )
        tips = [
            alt.Tooltip("key:N", title=group),
            alt.Tooltip("count:Q", format=",.0f"),
            alt.Tooltip("mean:Q", title="mean s", format=",.2f"),
            alt.Tooltip("p99:Q", title="p99 s", format=",.2f"),
        ]
        bars = base.mark_bar(color=MUTED).encode(
            x=alt.X(
                "mean:Q",
                title="seconds per cold start (bar: mean, tick: p99)",
                axis=alt.Axis(format=",.1f"),
            ),
            tooltip=tips,
        )
        ticks = base.mark_tick(color=ALERT, thickness=2).encode(x="p99:Q", tooltip=tips)
        panels.append(
            (bars + ticks).properties(
                width=300,
                height=max(110, 24 * top.height),
                title=alt.TitleParams(f"by {group}, most cold starts first", fontSize=13),
            )
        )
    if not panels:
        return None
    total = summary.get("total_s") or {}
    return finish(
        alt.hconcat(*panels),
        "cold-start-breakdown",
        f"Cold starts in {ops.cold_trace}: {summary['count']:,} cold starts",
        f"Where cold-start time goes; median {total.get('p50') or 0:,.2f} s, "
        f"p99 {total.get('p99') or 0:,.2f} s per cold start.",
    )


def keepalive(ops: OpsData) -> Chart | None:
    """Cold starts and idle instance-hours as the keep-alive window grows."""
    if ops.keepalive is None or ops.keepalive.is_empty():
        return None
    frame = ops.keepalive.with_columns(
        (pl.col("idle_instance_s") / 3600).alias("idle_h"),
        (pl.col("keepalive_s") / 60).alias("keepalive_min"),
    )
    x = alt.X(
        "keepalive_min:Q",
        title="keep-alive window (min, log scale)",
        scale=alt.Scale(type="log"),
        axis=alt.Axis(values=frame["keepalive_min"].to_list(), format=",.0f"),
    )
    tips = [
        alt.Tooltip("keepalive_min:Q", title="keep-alive (min)", format=",.0f"),
        alt.Tooltip("cold_starts:Q", title="cold starts", format=",.0f"),
        alt.Tooltip("cold_starts_per_1k:Q", title="per 1k requests", format=",.2f"),
        alt.Tooltip("avoidable_cold_starts:Q", title="avoidable", format=",.0f"),
        alt.Tooltip("idle_h:Q", title="idle instance-hours", format=",.2f"),
    ]
    base = alt.Chart(frame).encode(x=x, tooltip=tips)
    panels = [
        base.mark_line(color=color, point=alt.OverlayMarkDef(size=50, color=color))
        .encode(y=alt.Y(f"{col}:Q", title=title, axis=alt.Axis(format=fmt)))
        .properties(width=330, height=200, title=alt.TitleParams(title, fontSize=13))
        for col, title, fmt, color in (
            ("cold_starts", "cold starts (count)", ",.0f", ALERT),
            ("idle_h", "idle instance-hours kept warm (h)", ",.2f", ACCENT),
        )
    ]
    return finish(
        alt.hconcat(*panels),
        "keepalive",
        f"Keep-alive trade-off ({ops.trace.name if ops.trace else ''})",
        "Scaling to zero after an idle window: longer windows avoid cold starts but pay for "
        "idle, warm instances.",
    )


def forecast(plan: PlanFile) -> Chart | None:
    """History and forecast of the request rate with p10-p90 and p95 bands."""
    fc = plan.forecast
    points = pl.DataFrame(fc.points)
    if points.is_empty():
        return None
    history = pl.DataFrame(fc.history, schema={"t": pl.Float64, "rps": pl.Float64})
    max_t = float(points["t"].max())
    points, x_title = with_time(points.with_columns(pl.col("t").cast(pl.Float64)), "t", max_t)
    history, _ = with_time(history, "t", max_t)
    x = alt.X("time:Q", title=x_title, axis=alt.Axis(format=TIME_FORMAT))
    y_title = "request rate (req/s)"
    layers = [
        alt.Chart(history)
        .mark_line(color="#334e68", strokeWidth=1.2)
        .encode(
            x=x,
            y=alt.Y("rps:Q", title=y_title, axis=alt.Axis(format=",.1f")),
            tooltip=[
                alt.Tooltip("time:Q", format=",.1f"),
                alt.Tooltip("rps:Q", title="observed req/s", format=",.2f"),
            ],
        )
    ]
    if {"p10", "p90"} <= set(points.columns):
        layers.append(
            alt.Chart(points)
            .mark_area(color=ACCENT, opacity=0.25)
            .encode(x=x, y=alt.Y("p10:Q", title=y_title), y2="p90:Q")
        )
    for col, dash, color in (("p50", [1, 0], ACCENT), ("p95", [5, 3], ALERT)):
        if col in points.columns:
            layers.append(
                alt.Chart(points)
                .mark_line(strokeDash=dash, color=color)
                .encode(
                    x=x,
                    y=alt.Y(f"{col}:Q", title=y_title),
                    tooltip=[alt.Tooltip("time:Q", format=",.1f")]
                    + [
                        alt.Tooltip(f"{c}:Q", format=",.2f")
                        for c in ("p10", "p50", "p90", "p95", "p99")
                        if c in points.columns
                    ],
                )
            )
    return finish(
        alt.layer(*layers).properties(width=WIDTH, height=HEIGHT),
        "forecast",
        f"Demand forecast ({fc.method}, {fc.freq} steps)",
        "Dark line: observed; blue line: median forecast; shaded: p10-p90; red dashed: p95 "
        "(what the plan provisions for).",
    )


def pareto(plan: PlanFile) -> Chart | None:
    """Every evaluated plan's cost per 1M tokens against its TTFT p99, chosen plan marked."""
    rows = records([r for r in plan.frontier if r.ttft_p99_ms and r.cost_per_mtok])
    if not rows:
        return None
    frame = pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.col("accelerator").str.to_uppercase(),
        pl.col("pareto").fill_null(False),
        pl.col("chosen").fill_null(False),
    )
    by_bucket = "bucket" in frame.columns
    log = alt.Scale(type="log", nice=False, padding=24)
    x = alt.X(
        "ttft_p99_ms:Q", title="TTFT p99 (ms, log scale)", scale=log, axis=alt.Axis(format=",.0f")
    )
    y = alt.Y(
        "cost_per_mtok:Q",
        title="cost per 1M tokens (US$, log scale)",
        scale=log,
        axis=alt.Axis(format="$,.2~r", labelOverlap="greedy", tickCount=6),
    )
    tips = [
        alt.Tooltip(c, format=f)
        for c, f in (
            ("id:N", ""),
            ("cost_per_mtok:Q", "$,.3f"),
            ("ttft_p99_ms:Q", ",.0f"),
            ("tpot_p99_ms:Q", ",.1f"),
            ("goodput_rps:Q", ",.2f"),
            ("cost_per_hour:Q", "$,.2f"),
        )
        if c.split(":")[0] in frame.columns
    ]
    points = (
        alt.Chart(frame)
        .mark_point(filled=True, size=60)
        .encode(
            x=x,
            y=y,
            color=alt.Color("accelerator:N", title="accelerator"),
            opacity=alt.condition(alt.datum.pareto, alt.value(0.95), alt.value(0.3)),
            tooltip=tips,
            **({"shape": alt.Shape("bucket:N", title="length bucket")} if by_bucket else {}),
        )
    )
    front = (
        alt.Chart(frame.filter(pl.col("pareto")).sort("ttft_p99_ms"))
        .mark_line(color="#334e68", strokeDash=[4, 3], interpolate="step-after")
        .encode(x=x, y=y, order="ttft_p99_ms:Q", **({"detail": "bucket:N"} if by_bucket else {}))
    )
    chosen = frame.filter(pl.col("chosen"))
    layers = [front, points]
    if not chosen.is_empty():
        layers.append(
            alt.Chart(chosen)
            .mark_point(shape="diamond", size=420, strokeWidth=2.5, color="black")
            .encode(x=x, y=y, tooltip=tips)
        )
        layers.append(
            alt.Chart(chosen.with_columns(pl.lit("chosen plan").alias("label")))
            .mark_text(dx=-14, dy=-12, align="right", fontWeight="bold")
            .encode(x=x, y=y, text="label:N")
        )
    slo = plan.slo.ttft_p99_ms
    if slo:
        slo_frame = pl.DataFrame({"ttft_p99_ms": [float(slo)], "label": [f"SLO {slo:,.0f} ms"]})
        layers.append(alt.Chart(slo_frame).mark_rule(color=ALERT, strokeDash=[2, 2]).encode(x=x))
        layers.append(
            alt.Chart(slo_frame)
            .mark_text(color=ALERT, align="right", dx=-4, y=8)
            .encode(x=x, text="label:N")
        )
    return finish(
        alt.layer(*layers).properties(width=WIDTH, height=HEIGHT + 60),
        "pareto",
        "Plan frontier: cost per token vs latency",
        f"{frame.height:,} candidate plans; solid points and the dashed line are the Pareto "
        + ("frontier of each length bucket" if by_bucket else "frontier")
        + ", the diamond is the recommended plan.",
    )


def schedule(plan: PlanFile) -> Chart | None:
    """Replicas per interval over the horizon against the demand they serve."""
    sched = steps(records(plan.schedule))
    if sched is None:
        return None
    sched, x_title = with_time(sched, "t", float(sched["t"].max()))
    x = alt.X("time:Q", title=x_title, axis=alt.Axis(format=TIME_FORMAT))
    replicas = (
        alt.Chart(sched)
        .mark_line(interpolate="step-after", strokeWidth=2)
        .encode(
            x=x,
            y=alt.Y(
                "replicas:Q",
                title="replicas (count)",
                axis=alt.Axis(format=",.0f", values=integer_ticks(sched["replicas"].max())),
            ),
            color=alt.Color("plan:N", title="plan"),
            tooltip=[alt.Tooltip("time:Q", format=",.1f"), "plan:N", "replicas:Q", "action:N"],
        )
        .properties(width=WIDTH, height=130)
    )
    demand = sched.group_by("time").agg(pl.col("demand_rps").max()).sort("time")
    area = (
        alt.Chart(demand)
        .mark_area(color=MUTED, opacity=0.6, interpolate="step-after")
        .encode(
            x=x,
            y=alt.Y("demand_rps:Q", title="planned demand (req/s)", axis=alt.Axis(format=",.1f")),
            tooltip=[
                alt.Tooltip("time:Q", format=",.1f"),
                alt.Tooltip("demand_rps:Q", title="req/s", format=",.2f"),
            ],
        )
        .properties(width=WIDTH, height=110)
    )
    quantile, delay = plan.quantile, plan.provisioning_delay_s
    ahead = f", started {delay:,.0f} s ahead of need" if delay else ""
    return finish(
        alt.vconcat(replicas, area),
        "schedule",
        "Replica schedule against demand",
        f"Top: replicas per interval{ahead}; bottom: the {quantile} forecast demand they are "
        "sized for.",
    )


def replay_timeline(plan: PlanFile) -> Chart | None:
    """Replicas over time under each policy in the trace replay, above the replayed demand."""
    timeline = steps(plan.replay.timeline)
    if timeline is None:
        return None
    timeline, x_title = with_time(timeline, "t", float(timeline["t"].max()))
    policies = [p for p in TIMELINE_LABELS if p in timeline.columns]
    long = timeline.unpivot(
        index="time", on=policies, variable_name="policy", value_name="replicas"
    ).with_columns(pl.col("policy").replace_strict(TIMELINE_LABELS))
    x = alt.X("time:Q", title=x_title, axis=alt.Axis(format=TIME_FORMAT))
    lines = (
        alt.Chart(long)
        .mark_line(interpolate="step-after", strokeWidth=2)
        .encode(
            x=x,
            y=alt.Y(
                "replicas:Q",
                title="replicas running (count)",
                axis=alt.Axis(format=",.0f", values=integer_ticks(long["replicas"].max())),
            ),
            color=alt.Color(
                "policy:N",
                title="policy",
                scale=alt.Scale(
                    domain=[TIMELINE_LABELS[p] for p in policies],
                    range=[POLICY_COLORS[list(TIMELINE_LABELS).index(p)] for p in policies],
                ),
            ),
            strokeDash=alt.StrokeDash(
                "policy:N",
                legend=None,
                scale=alt.Scale(
                    domain=[TIMELINE_LABELS[p] for p in policies],
                    range=[POLICY_DASHES[p] for p in policies],
                ),
            ),
            tooltip=[alt.Tooltip("time:Q", format=",.1f"), "policy:N", "replicas:Q"],
        )
        .properties(width=WIDTH, height=150)
    )
    charts = [lines]
    if "demand_rps" in timeline.columns:
        charts.append(
            alt.Chart(timeline)
            .mark_area(color=MUTED, opacity=0.6, interpolate="step-after")
            .encode(
                x=x,
                y=alt.Y(
                    "demand_rps:Q", title="replayed demand (req/s)", axis=alt.Axis(format=",.1f")
                ),
                tooltip=[
                    alt.Tooltip("time:Q", format=",.1f"),
                    alt.Tooltip("demand_rps:Q", title="req/s", format=",.2f"),
                ],
            )
            .properties(width=WIDTH, height=100)
        )
    return finish(
        alt.vconcat(*charts),
        "replay-timeline",
        "Trace replay: replicas under each policy",
        "The trace replayed against the planned schedule, static peak provisioning, reactive "
        "autoscalers (HPA on req/s and tokens/s, Knative KPA) and the hybrid: its forecast "
        "floor (light green) and, above it, the burst replicas its HPA on tokens/s adds.",
    )


def replay_metrics(plan: PlanFile) -> Chart | None:
    """Cost, GPU-hours, SLO attainment and replica starts of each replayed policy."""
    replay = plan.replay.model_dump(exclude_unset=True)
    rows = [
        {"policy": label, **replay[key]} for key, label in POLICY_LABELS.items() if key in replay
    ]
    frame = pl.DataFrame(rows, infer_schema_length=None)
    metrics = [
        ("cost", "cost (US$)", "$,.2f"),
        ("gpu_hours", "GPU-hours (h)", ",.1f"),
        ("slo_attainment", "SLO attainment (%)", ".1%"),
        ("replica_starts", "replica starts (count)", ",.0f"),
    ]
    order = frame["policy"].to_list()
    color = alt.Color(
        "policy:N", title="policy", scale=alt.Scale(domain=order, range=POLICY_COLORS[: len(order)])
    )
    panels = []
    for col, title, fmt in metrics:
        if col not in frame.columns:
            continue
        base = alt.Chart(frame).encode(
            x=alt.X("policy:N", sort=order, title=None, axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y(f"{col}:Q", title=title, axis=alt.Axis(format=fmt, tickCount=5)),
        )
        bars = base.mark_bar(width=BAR_PX).encode(
            color=color, tooltip=["policy:N", alt.Tooltip(f"{col}:Q", title=title, format=fmt)]
        )
        if len(order) <= LABELLED_BARS:
            text = base.mark_text(dy=-7, fontSize=11).encode(text=alt.Text(f"{col}:Q", format=fmt))
            bars = bars + text
        panels.append(bars.properties(width=120, height=170))
    return finish(
        alt.hconcat(*panels),
        "replay-metrics",
        "Trace replay: cost, GPU-hours, SLO and replica starts per policy",
        "Same trace, every scaling policy: what each costs over the replay and whether it "
        "holds the SLO (the figures are in the replay table).",
    )


def build_charts(plan: PlanFile, ops: OpsData) -> dict[str, Chart]:
    """Every chart the plan and the store allow, by id, in report order."""
    charts = [
        cost_comparison(plan),
        request_rate(ops),
        interarrival(ops),
        token_lengths(ops),
        cold_start_breakdown(ops),
        keepalive(ops),
        forecast(plan),
        pareto(plan),
        schedule(plan),
        replay_timeline(plan),
        replay_metrics(plan),
    ]
    return {c.id: c for c in charts if c is not None}
