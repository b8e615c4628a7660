"""Replay: fold a policy over a logged window of traffic.

>>> import tempfile
>>> from llmgw_kernel import load_policy, replay
>>> p = load_policy({"providers": {"d": {"kind": "demo"}},
...                  "routes": {"demo": {"targets": [{"provider": "d", "model": "echo"}]}}})
>>> result = replay(p, tempfile.mkdtemp())
>>> result.summary["requests"], result.compare_to_log()
(0, 0)

Each decision stage contributes columns to ``.decisions`` (one row per request, keyed by
``request_id``) and a count of rows whose replayed decision differs from the logged one.
Stages in this release: routing (target order). Later stages (cache, budgets, guardrails)
register in :data:`STAGES` the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..log.reader import open_log
from ..policy.load import PolicySource, load_policy
from .stages import STAGES

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from ..policy.model import Policy

_LOG_COLUMNS = (
    "request_id", "ts", "endpoint", "route", "policy_version", "plan", "target", "status", "outcome",
    "error_type", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "stream",
)  # fmt: skip


@dataclass
class ReplayResult:
    """What a policy would have decided over a log window."""

    policy: Policy
    decisions: pd.DataFrame
    summary: dict[str, Any]
    differences: dict[str, int] = field(default_factory=dict)

    def compare_to_log(self) -> int:
        """Requests whose replayed decisions differ from the logged live ones (any stage)."""
        return int(self.decisions["differs"].sum()) if len(self.decisions) else 0


def _window_sql(since: datetime | str | None, until: datetime | str | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if since is not None:
        clauses.append("ts >= CAST(? AS TIMESTAMPTZ)")
        params.append(since)
    if until is not None:
        clauses.append("ts < CAST(? AS TIMESTAMPTZ)")
        params.append(until)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def load_window(log: duckdb.DuckDBPyConnection | str | os.PathLike[str], since=None, until=None) -> pd.DataFrame:
    """The logged requests of a window, oldest first, with the columns replay reads."""
    con = log if hasattr(log, "execute") else open_log(log)  # type: ignore[arg-type]
    where, params = _window_sql(since, until)
    cols = ", ".join(_LOG_COLUMNS)
    return con.execute(f"SELECT {cols} FROM requests{where} ORDER BY ts, request_id", params).df()


def replay(
    policy: PolicySource,
    log: duckdb.DuckDBPyConnection | str | os.PathLike[str],
    since: datetime | str | None = None,
    until: datetime | str | None = None,
) -> ReplayResult:
    """Replay ``policy`` over the requests logged in ``[since, until)`` (UTC).

    ``log`` is a connection from :func:`open_log` or a data directory.
    """
    pol = load_policy(policy)
    frame = load_window(log, since, until)
    decisions = frame[["request_id", "ts", "route"]].copy()
    differs = None
    differences: dict[str, int] = {}
    summary: dict[str, Any] = {"policy_version": pol.version, "requests": len(frame)}
    for stage in STAGES:
        cols, diff = stage.replay(pol, frame)
        for name, values in cols.items():
            decisions[name] = values
        differences[stage.name] = int(diff.sum()) if len(diff) else 0
        differs = diff if differs is None else (differs | diff)
        summary.update(stage.summarize(pol, frame, decisions))
    decisions["differs"] = differs if differs is not None else False
    summary["differs_from_log"] = {**differences, "any": int(decisions["differs"].sum()) if len(decisions) else 0}
    summary.update(_observed(frame))
    return ReplayResult(pol, decisions.set_index("request_id", drop=False), summary, differences)


def _observed(frame: pd.DataFrame) -> dict[str, Any]:
    """What the log itself says about the window (the baseline a replay is read against)."""
    if not len(frame):
        return {"window": None, "logged": {}}
    ok = frame["outcome"] == "ok"
    lat = frame.loc[ok, "latency_ms"]
    return {
        "window": {"since": str(frame["ts"].min()), "until": str(frame["ts"].max())},
        "logged": {
            "ok": int(ok.sum()),
            "errors": int((~ok).sum()),
            "error_rate": round(float((~ok).mean()), 6),
            "latency_ms_p50": round(float(lat.quantile(0.5)), 3) if len(lat) else None,
            "latency_ms_p95": round(float(lat.quantile(0.95)), 3) if len(lat) else None,
            "prompt_tokens": int(frame["prompt_tokens"].fillna(0).sum()),
            "completion_tokens": int(frame["completion_tokens"].fillna(0).sum()),
            "policy_versions": sorted(frame["policy_version"].dropna().unique().tolist()),
        },
        "cost_usd": None,  # pricing arrives with the cost stage; unknown is not 0
    }


__all__ = ["ReplayResult", "load_window", "replay"]
