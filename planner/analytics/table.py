"""A compact, human-readable view of an `analyze_trace` result: (section, figure, value) rows."""


def _g(value: float | int | None) -> str:
    """4 significant digits, thousands separators for large values, '–' for missing."""
    if value is None:
        return "–"
    if isinstance(value, int) or (abs(value) >= 1000 and float(value).is_integer()):
        return f"{value:,.0f}"
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"


def _quantiles(d: dict, keys: tuple[str, ...]) -> str:
    """'a / b / c' of the given keys."""
    return " / ".join(_g(d.get(k)) for k in keys)


def _fit(f: dict) -> str:
    """'dist(p=…, q=…) KS …'."""
    params = ", ".join(f"{k} {_g(v)}" for k, v in f["params"].items())
    return f"{f['dist']} ({params}), KS {_g(f['ks'])}"


def summary_rows(result: dict) -> list[list[str]]:
    """The figures a capacity engineer reads first, one row each."""
    out: list[list[str]] = [["trace", "requests", _g(result.get("requests"))]]
    out.append(["trace", "span (s)", _g(result.get("span_s"))])
    if result.get("failed"):
        out.append(["trace", "failed requests", _g(result["failed"])])
    out.extend(_burstiness_rows(result))
    fits = result.get("fits", {})
    out.extend(_arrival_fit_rows(fits))
    for key in ("input_tokens", "output_tokens"):
        if result.get(key):
            label = f"{key.replace('_', ' ')}: p50 / p90 / p99 / max"
            out.append(["lengths", label, _quantiles(result[key], ("p50", "p90", "p99", "max"))])
        for f in fits.get(key, []):
            if f:
                out.append(["fits", key.replace("_", " "), _fit(f)])
    if result.get("prefix_reuse"):
        out.append(["lengths", "prefix blocks reused", _g(result["prefix_reuse"]["reuse_share"])])
    out.extend(_cold_rows(result.get("cold_starts"), fits))
    for k in result.get("keepalive", []):
        cost = f", {_g(k['cold_start_s'])} s loading" if "cold_start_s" in k else ""
        out.append(
            [
                "keep-alive",
                f"{_g(k['keepalive_s'])} s: cold starts (per 1k) / idle inst-s / avoidable",
                f"{_g(k['cold_starts'])} ({_g(k['cold_starts_per_1k'])}) / "
                f"{_g(k['idle_instance_s'])} / {_g(k['avoidable_cold_starts'])}{cost}",
            ]
        )
    out.extend(["note", "", n] for n in result.get("notes", []))
    return out


def _burstiness_rows(result: dict) -> list[list[str]]:
    """Rates per bin (request traces) or per window (rate traces), and the inter-arrival CV."""
    out: list[list[str]] = []
    for r in result.get("rates", []):
        label = f"rate per {_g(r['bin_s'])} s bin (req/s): mean / p50 / p99 / max"
        out.append(["burstiness", label, _quantiles(r, ("mean", "p50", "p99", "max"))])
        out.append(
            [
                "burstiness",
                f"  peak-to-mean / index of dispersion @ {_g(r['bin_s'])} s",
                f"{_g(r['peak_to_mean'])} / {_g(r['index_of_dispersion'])}",
            ]
        )
    if "rate_windows" in result:
        rw = result["rate_windows"]
        out.append(
            [
                "burstiness",
                f"total rate per {_g(rw['window_s'])} s window (req/s): mean / p50 / p99 / max",
                _quantiles(rw["rate_per_window"], ("mean", "p50", "p99", "max")),
            ]
        )
        out.append(["burstiness", "series / windows", f"{_g(rw['series'])} / {_g(rw['windows'])}"])
        for d in rw["dists"]:
            out.append(
                [
                    "burstiness",
                    f"  windows fitted {d['dist']} (median p1, p2)",
                    f"{_g(d['windows'])} ({_g(d['p1_median'])}, {_g(d['p2_median'])})",
                ]
            )
    if result.get("interarrival_cv") is not None:
        out.append(["burstiness", "inter-arrival CV", _g(result["interarrival_cv"])])
    return out


def _arrival_fit_rows(fits: dict) -> list[list[str]]:
    """Inter-arrival distribution fits, whole trace and per window."""
    out = [["fits", "inter-arrival", _fit(f)] for f in fits.get("interarrival", [])]
    windows = fits.get("interarrival_windows")
    if windows and windows.get("fitted"):
        better = windows["better_fit"]
        out.append(
            [
                "fits",
                f"per {_g(windows['window_s'])} s window: gamma / weibull fits better",
                f"{better['gamma']} / {better['weibull']} of {windows['fitted']} windows "
                f"(median KS {_g(windows['gamma']['ks']['p50'])} / "
                f"{_g(windows['weibull']['ks']['p50'])})",
            ]
        )
    return out


def _cold_rows(cold: dict | None, fits: dict) -> list[list[str]]:
    """Rows for the cold-start section."""
    if not cold:
        return []
    out = [["cold starts", "count", _g(cold.get("count") or cold.get("pods"))]]
    if "total_s" in cold:
        out.append(
            [
                "cold starts",
                "duration (s): mean / p50 / p99 / max",
                _quantiles(cold["total_s"], ("mean", "p50", "p99", "max")),
            ]
        )
    for name, comp in (cold.get("components") or {}).items():
        out.append(["cold starts", f"  share {name.replace('_', ' ')}", _g(comp["share"])])
    for f in fits.get("cold_start_s", []):
        out.append(["fits", "cold-start seconds", _fit(f)])
    for f in fits.get("cold_start_interval_s", []):
        out.append(["fits", "time between cold starts", _fit(f)])
    if cold.get("cold_starts_per_1k_requests") is not None:
        out.append(["cold starts", "per 1,000 requests", _g(cold["cold_starts_per_1k_requests"])])
    utility = cold.get("pod_utility")
    if utility:
        out.append(
            [
                "cold starts",
                "pod utility ratio: p50 / share below 1",
                f"{_g(utility['p50'])} / {_g(utility['share_below_1'])} ({utility['pods']} pods)",
            ]
        )
    return out
