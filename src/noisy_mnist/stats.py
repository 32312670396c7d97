"""Small statistics for the report: t confidence intervals and McNemar's test.

Written with the standard library's ``math`` only (no SciPy): the t quantile comes
from integrating the t density with Simpson's rule and bisecting on the result, and
McNemar's test is the exact binomial test on the discordant pairs.
"""

from __future__ import annotations

import math

import numpy as np


def t_cdf(x: float, df: int) -> float:
    """P(T <= x) for Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if x == 0:
        return 0.5
    # substitute t = tan(theta): the density becomes smooth and the range finite
    log_norm = (
        math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    )
    upper = math.atan(abs(x))
    n = 2000  # even; Simpson's rule is accurate to ~1e-12 here
    h = upper / n
    total = 0.0
    for i in range(n + 1):
        theta = i * h
        t = math.tan(theta)
        value = math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))
        value /= math.cos(theta) ** 2
        weight = 1 if i in (0, n) else (4 if i % 2 else 2)
        total += weight * value
    area = total * h / 3  # P(0 <= T <= |x|)
    return 0.5 + area if x > 0 else 0.5 - area


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom."""
    if not 0 < p < 1:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p and high < 1e12:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, sample std and the two-sided t confidence interval of the mean.

    With fewer than two values the std and the interval are NaN.
    """
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(values.std(ddof=1))
    half = (
        t_quantile(0.5 + confidence / 2, len(values) - 1) * std / math.sqrt(len(values))
    )
    return mean, std, mean - half, mean + half


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value.

    ``only_first`` counts the images the first model classified correctly and the
    second did not; ``only_second`` the reverse. Under the null hypothesis each
    discordant image is a fair coin flip, so the p-value is that of a binomial test.
    """
    n = only_first + only_second
    if n == 0:
        return 1.0
    k = min(only_first, only_second)
    # P(X <= k) for X ~ Binomial(n, 1/2), summed in log space to survive large n
    log_terms = [
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        - n * math.log(2)
        for i in range(k + 1)
    ]
    top = max(log_terms)
    tail = math.exp(top) * sum(math.exp(t - top) for t in log_terms)
    return min(1.0, 2 * tail)


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (family-wise error control), in the input order."""
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
