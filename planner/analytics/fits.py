"""Maximum-likelihood Gamma, Weibull and LogNormal fits with KS statistics, batched over groups.

Every function works on many groups at once (one group = one time window, function or the
whole trace): values are one flat array ordered by group, ``starts`` the index where each group
begins (as for ``numpy.add.reduceat``). All work is vectorised numpy; no loop visits a value.

- Gamma (shape k, scale θ): MLE from the sufficient statistics mean(x) and mean(log x), solved
  with Minka's generalised Newton iteration (converges in a few steps from his closed-form
  start); θ = mean / k.
- Weibull (shape k, scale λ): Newton on the profile-likelihood equation
  Σ xᵏ ln x / Σ xᵏ − 1/k − mean(ln x) = 0, started from the log-moment estimate
  k₀ = π / (√6 · sd(ln x)); λ = (mean xᵏ)^(1/k).
- LogNormal (μ, σ): closed form, μ = mean(ln x), σ = sd(ln x) (the MLE, divisor n).
- KS: the one-sample Kolmogorov–Smirnov statistic D = sup |Fₙ − F| of each group against its
  own fitted distribution (the values within each group are sorted first).

Only strictly positive values can be fitted; callers drop zeros (tied timestamps) first.
"""

import numpy as np
from scipy import special

DISTS = ("gamma", "weibull", "lognormal")
PARAM_NAMES = {
    "gamma": ("shape", "scale"),
    "weibull": ("shape", "scale"),
    "lognormal": ("mu", "sigma"),
}
_NEWTON_STEPS = 30
_TOL = 1e-10


def group_starts(groups: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in a group-ordered array."""
    if groups.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])


def _sums(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per-group sums (reduceat over contiguous groups)."""
    return np.add.reduceat(values, starts) if values.size else np.zeros(0)


def _counts(n_values: int, starts: np.ndarray) -> np.ndarray:
    """Per-group sizes."""
    return np.diff(np.r_[starts, n_values]).astype(float)


def gamma_mle(n: np.ndarray, sum_x: np.ndarray, sum_log_x: np.ndarray) -> np.ndarray:
    """Gamma MLE (shape, scale) per group from n, Σx and Σ ln x; returns an (groups, 2) array."""
    mean = sum_x / n
    s = np.log(mean) - sum_log_x / n
    s = np.maximum(s, 1e-12)
    k = (3.0 - s + np.sqrt((s - 3.0) ** 2 + 24.0 * s)) / (12.0 * s)
    for _ in range(_NEWTON_STEPS):
        step = (np.log(k) - special.digamma(k) - s) / (k * k * (1.0 / k - special.polygamma(1, k)))
        k_new = 1.0 / (1.0 / k + step)
        done = np.all(np.abs(k_new - k) <= _TOL * k)
        k = k_new
        if done:
            break
    return np.column_stack([k, mean / k])


def weibull_mle(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Weibull MLE (shape, scale) per group; returns a (groups, 2) array."""
    n = _counts(values.size, starts)
    idx = np.repeat(np.arange(starts.size), n.astype(np.int64))
    logs = np.log(values)
    top = np.maximum.reduceat(logs, starts)
    z = logs - top[idx]
    mean_log = _sums(logs, starts) / n
    sd_log = np.sqrt(np.maximum(_sums(logs * logs, starts) / n - mean_log**2, 1e-24))
    k = np.clip(np.pi / (np.sqrt(6.0) * sd_log), 0.02, 50.0)
    for _ in range(_NEWTON_STEPS):
        w = np.exp(k[idx] * z)
        s0 = _sums(w, starts)
        s1 = _sums(w * z, starts) / s0
        s2 = _sums(w * z * z, starts) / s0
        g = s1 + top - 1.0 / k - mean_log
        dg = s2 - s1 * s1 + 1.0 / (k * k)
        k_new = np.clip(k - g / dg, k / 2.0, k * 2.0)
        done = np.all(np.abs(k_new - k) <= _TOL * k)
        k = k_new
        if done:
            break
    s0 = _sums(np.exp(k[idx] * z), starts)
    scale = np.exp(top + (np.log(s0) - np.log(n)) / k)
    return np.column_stack([k, scale])


def lognormal_mle(n: np.ndarray, sum_log_x: np.ndarray, sum_log_x2: np.ndarray) -> np.ndarray:
    """LogNormal MLE (mu, sigma) per group from n, Σ ln x and Σ (ln x)²."""
    mu = sum_log_x / n
    sigma = np.sqrt(np.maximum(sum_log_x2 / n - mu * mu, 0.0))
    return np.column_stack([mu, sigma])


def cdf(dist: str, x: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """The fitted CDF at x, with per-value parameters p1, p2 (shape/scale or mu/sigma)."""
    if dist == "gamma":
        return special.gammainc(p1, x / p2)
    if dist == "weibull":
        return -np.expm1(-((x / p2) ** p1))
    if dist == "lognormal":
        return special.ndtr((np.log(x) - p1) / np.maximum(p2, 1e-300))
    raise ValueError(f"unknown distribution {dist!r}; known: {', '.join(DISTS)}")


def ks_statistic(
    sorted_values: np.ndarray, starts: np.ndarray, dist: str, params: np.ndarray
) -> np.ndarray:
    """KS statistic per group; values must be sorted within each group."""
    n = _counts(sorted_values.size, starts)
    idx = np.repeat(np.arange(starts.size), n.astype(np.int64))
    f = cdf(dist, sorted_values, params[idx, 0], params[idx, 1])
    rank = np.arange(sorted_values.size) - starts[idx] + 1.0
    gap = np.maximum(rank / n[idx] - f, f - (rank - 1.0) / n[idx])
    return np.maximum.reduceat(gap, starts)


def fit_groups(
    values: np.ndarray, groups: np.ndarray, dists: tuple[str, ...] = DISTS
) -> dict[str, np.ndarray]:
    """Fit each distribution to each group of positive values; group ids must be non-decreasing.

    Returns arrays per group: ``group``, ``n``, and for each dist ``{dist}_p1``, ``{dist}_p2``,
    ``{dist}_ks``.
    """
    order = np.lexsort((values, groups))
    values, groups = values[order], groups[order]
    starts = group_starts(groups)
    n = _counts(values.size, starts)
    out: dict[str, np.ndarray] = {"group": groups[starts], "n": n}
    logs = np.log(values)
    for dist in dists:
        if dist == "gamma":
            params = gamma_mle(n, _sums(values, starts), _sums(logs, starts))
        elif dist == "weibull":
            params = weibull_mle(values, starts)
        else:
            params = lognormal_mle(n, _sums(logs, starts), _sums(logs * logs, starts))
        out[f"{dist}_p1"], out[f"{dist}_p2"] = params[:, 0], params[:, 1]
        out[f"{dist}_ks"] = ks_statistic(values, starts, dist, params)
    return out


def fit(values: np.ndarray, dists: tuple[str, ...] = DISTS) -> list[dict]:
    """Fit each distribution to one sample of positive values: [{dist, params, ks, n, mean, sd}]."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return []
    res = fit_groups(values, np.zeros(values.size, dtype=np.int64), dists)
    fits = []
    for dist in dists:
        p1, p2 = float(res[f"{dist}_p1"][0]), float(res[f"{dist}_p2"][0])
        names = PARAM_NAMES[dist]
        mean, sd = moments(dist, p1, p2)
        fits.append(
            {
                "dist": dist,
                "params": {names[0]: p1, names[1]: p2},
                "ks": float(res[f"{dist}_ks"][0]),
                "n": int(values.size),
                "mean": mean,
                "sd": sd,
            }
        )
    return fits


def moments(dist: str, p1: float, p2: float) -> tuple[float, float]:
    """Mean and standard deviation of a fitted distribution."""
    if dist == "gamma":
        return p1 * p2, float(np.sqrt(p1) * p2)
    if dist == "weibull":
        g1, g2 = special.gamma(1 + 1 / p1), special.gamma(1 + 2 / p1)
        return float(p2 * g1), float(p2 * np.sqrt(max(g2 - g1 * g1, 0.0)))
    var = (np.exp(p2 * p2) - 1) * np.exp(2 * p1 + p2 * p2)
    return float(np.exp(p1 + p2 * p2 / 2)), float(np.sqrt(var))
