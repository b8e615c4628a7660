"""95% intervals for forecast-vs-actual differences (docs/forecast.md#intervals).

A figure is measured on two independent samples of traffic: the forecast (window 1, replayed
under the candidate) and the observation (window 2, served live). Requests are not
independent draws: a team's requests share its budget, cache namespace and users, so a
figure is estimated with a *cluster-robust* variance, clusters being the request's team
(else its key, else the request itself):

- a ratio ``p = sum(k_c) / sum(n_c)`` over clusters ``c`` (a share: ``k`` hits of ``n``;
  a mean cost: ``k`` = the cluster's cost, ``n`` its priced requests) has variance
  ``C/(C-1) * sum((k_c - p n_c)^2) / (sum n_c)^2`` (the linearised ratio estimator with the
  usual small-sample factor), floored at the independent-requests variance (``p(1-p)/n``
  for a share, ``s^2/n`` for a mean): clustering never makes a figure *more* precise than
  independent requests would. Their quotient is the *design effect* (1 for independent
  requests);
- **shares**: Newcombe's hybrid score interval for a difference of two proportions (Newcombe
  1998, method 10: from the Wilson score intervals of each side), each side taken at its
  effective size ``n / design effect``. For large counts it is the CLT interval
  ``d +- q sqrt(v1 + v2)``; unlike it, it keeps its coverage near 0 and 1;
- **means**: Welch's interval ``d +- q sqrt(v1 + v2)``;
- the quantile ``q`` is Student's t at the Welch-Satterthwaite degrees of freedom of the
  part of the variance estimated from clusters (``C - 1`` each side); the independent part
  is known from ``n``, so with a design effect of 1 ``q`` is the normal 1.96, and with few
  teams and much clustering it grows (4 teams: up to t(3) = 3.18).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

Z975 = 1.959963984540054  # the normal 0.975 quantile


def t975(df: float) -> float:
    """Student's t 0.975 quantile: exact for 1 and 2 degrees of freedom, the Cornish-Fisher
    expansion (error < 0.005) from 3 on; ``df`` is rounded down (conservative)."""
    if math.isinf(df) or df > 1e6:
        return Z975
    nu = max(1, int(df))
    if nu == 1:
        return math.tan(math.pi * 0.475)
    if nu == 2:
        return 0.95 * math.sqrt(2 / (4 * 0.975 * 0.025))
    z = Z975
    return (
        z
        + (z**3 + z) / (4 * nu)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * nu**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * nu**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * nu**4)
    )


def wilson(count: float, n: float, z: float = Z975) -> tuple[float, float]:
    """Wilson score interval of a proportion ``count / n`` (``n`` may be an effective size)."""
    p = count / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def share_difference_interval(
    k1: float, n1: float, k2: float, n2: float, z: float = Z975
) -> tuple[float, float]:  # fmt: skip
    """Newcombe's hybrid score interval for ``k2/n2 - k1/n1`` (method 10, Newcombe 1998)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p2 - p1
    return d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2), d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)


def ratio_variance(k: Any, n: Any, independent: float) -> tuple[float, float]:
    """Cluster-robust variance of ``sum(k) / sum(n)`` from per-cluster sums (pandas Series or
    numpy arrays; clusters with ``n > 0``, or with ``k`` alone: a cluster whose only cost is
    checks of semantic hits, which are no requests), floored at ``independent`` (the variance
    if every request were independent). Returns (variance of the figure, design effect)."""
    clusters = len(n)
    total = float(n.sum())
    if clusters < 2 or total <= 0:
        return independent, 1.0
    p = float(k.sum()) / total
    clustered = clusters / (clusters - 1) * float(((k - p * n) ** 2).sum()) / total**2
    variance = max(independent, clustered)
    return variance, (variance / independent if independent > 0 else 1.0)


def _excess(f: Mapping[str, Any]) -> tuple[float, float]:
    """(variance of the figure, its part estimated from clusters) of one side."""
    v = f["variance"] / f["n"]
    return v, v * (1 - 1 / f["design_effect"]) if f["design_effect"] > 1 else 0.0


def quantile(f: Mapping[str, Any], o: Mapping[str, Any]) -> float:
    """t quantile at the Welch-Satterthwaite degrees of freedom of the clustered variance."""
    (v1, e1), (v2, e2) = _excess(f), _excess(o)
    denom = sum(e**2 / (c - 1) for e, c in ((e1, f["clusters"]), (e2, o["clusters"])) if e > 0 and c > 1)
    return t975((v1 + v2) ** 2 / denom) if denom > 0 else Z975


def difference_interval(f: Mapping[str, Any], o: Mapping[str, Any]) -> tuple[float, float]:
    """95% interval for observed - forecast of one figure (both sides measured)."""
    q = quantile(f, o)
    if f["kind"] == "share":
        n1, n2 = f["n"] / f["design_effect"], o["n"] / o["design_effect"]
        return share_difference_interval(f["value"] * n1, n1, o["value"] * n2, n2, q)
    scale = f.get("scale", 1)
    half = q * math.sqrt(f["variance"] / f["n"] + o["variance"] / o["n"]) * scale
    d = o["value"] - f["value"]
    return d - half, d + half
