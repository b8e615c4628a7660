"""What-if sweeps over a log: replay a family of candidate policies and tabulate the estimates.

>>> import tempfile
>>> from llmgw_kernel import load_policy
>>> p = load_policy({"providers": {"d": {"kind": "demo"}}, "routes": {"m": {"targets": [
...     {"provider": "d", "model": "a", "weight": 50}, {"provider": "d", "model": "b", "weight": 50}]}}})
>>> list(weight_sweep(p, tempfile.mkdtemp(), "m", "d/b", [0, 100])["weight"])
[0, 100]
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..policy.load import PolicySource, load_policy, validate_policy
from . import replay

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from ..policy.model import Policy


def with_weight(policy: PolicySource, route: str, target: str, weight: float) -> Policy:
    """``policy`` with ``target`` drawn first for ``weight``% of ``route``'s requests; the
    route's other targets share the rest in their current proportions (equally if unweighted)."""
    pol = load_policy(policy)
    doc = pol.model_dump(mode="json")
    targets = doc["routes"][route]["targets"]
    ids = [f"{t['provider']}/{t['model']}" for t in targets]
    if target not in ids:
        raise KeyError(f"route {route!r} has no target {target!r} (targets: {', '.join(ids)})")
    others = [t for t, i in zip(targets, ids, strict=True) if i != target]
    current = [float(t["weight"] or 0) for t in others]
    if sum(current) <= 0:
        current = [1.0] * len(others)
    for t, w in zip(others, current, strict=True):
        t["weight"] = (100.0 - weight) * w / sum(current)
    targets[ids.index(target)]["weight"] = float(weight)
    return validate_policy(doc, pol.source)


def weight_sweep(
    policy: PolicySource,
    log: duckdb.DuckDBPyConnection | str | os.PathLike[str],
    route: str,
    target: str,
    weights: Iterable[float] = range(0, 101, 10),
) -> pd.DataFrame:
    """One row per weight of ``target`` on ``route``: replayed share and the estimated cost,
    latency, error and fallback rates (see :mod:`.routing_estimates`)."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for w in weights:
        result = replay(with_weight(policy, route, target, w), log)
        est = result.summary["routing"]["estimates"]
        rows.append(
            {
                "weight": w,
                "share": result.summary["routing"]["first_target_share"].get(target, 0.0),
                "cost_usd": est["cost_usd"],
                "latency_ms_mean": est["latency_ms_mean"],
                "latency_ms_p50": est["latency_ms_p50"],
                "latency_ms_p95": est["latency_ms_p95"],
                "error_rate": est["error_rate"],
                "fallback_rate": est["fallback_rate"],
                "unpriced_targets": ", ".join(est["unpriced_targets"]),
                "changed_vs_log": result.compare_to_log(),
            }
        )
    return pd.DataFrame(rows)
