"""Putting partitioned replays back together: one decisions frame and one summary
(docs/replay-distributed.md#the-merge).

Decisions are exact: every request is decided in exactly one partition, and the frame is
ordered and typed as the single-process replay builds it. The summary is merged figure by
figure by the rule of :data:`RULES`:

- ``sum``: counts, and costs/savings in USD (re-rounded to 6 places; None if any part is
  None: unknown is not 0);
- ``union``: lists of unpriced targets and of policy versions (sorted, distinct), and the
  price source of each target;
- ``same``: the policy version and fixed texts;
- ``min``/``max``: the window's first and last request;
- recomputed from the merged decisions or merged figures: first-target shares, the cache
  hit rate, cost per 1k requests, the logged error rate, budget cut-offs (first refusal,
  refusals per limit), the guardrail verdict table (requests and findings per verdict, summed),
  its refusal and warnings (from the summed counts) and examples (the window's first
  ``EXAMPLES_PER_VERDICT`` per verdict, by the decisions' order);
- anything else — medians, percentiles, means, the routing estimates and the targets they
  found unmeasured (each part estimates from its own rows), the distinct bodies guardrails
  checked (a body may recur in several parts) — is not mergeable: it is None in
  the merged summary and its path is listed in ``summary["partitioning"]["not_merged"]``.
  A figure added to the summary later is not mergeable until it has a rule here.

>>> merge_summaries([{"requests": 2, "cache": {"latency_ms_p50": 3.0}},
...                  {"requests": 3, "cache": {"latency_ms_p50": 1.0}}])
({'requests': 5, 'cache': {'latency_ms_p50': None}}, ['cache.latency_ms_p50'])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_ADDITIVE_COUNTS = (
    "requests", "routing.routed", "routing.unknown_model", "routing.first_target_changed",
    "routing.estimates.requests_estimated", "limits.evaluated", "limits.refused", "limits.budget_exceeded",
    "limits.rate_limited", "limits.newly_refused", "limits.newly_admitted", "cache.considered", "cache.exact_hits",
    "cache.semantic_hits", "outcome.*", "differs_from_log.*", "logged.ok", "logged.errors", "logged.prompt_tokens",
    "logged.completion_tokens", "guardrails.requests_checked", "guardrails.blocked", "guardrails.blocked_input",
    "guardrails.blocked_output", "guardrails.redacted", "guardrails.flagged", "guardrails.logged.*",
    "guardrails.compared", "guardrails.not_replayable.*",
)  # fmt: skip
_ADDITIVE_USD = (
    "cost_usd", "checks_usd", "logged_cost_usd", "routing.logged_cost_at_candidate_prices_usd",
    "limits.spend_prevented_usd", "cache.saved_usd", "outcome.saved_by_cache_usd", "outcome.logged_spend_refused_usd",
    "outcome.logged_spend_blocked_usd",
)  # fmt: skip
_UNIONS = ("*unpriced_targets", "logged.policy_versions", "basis.price_source", "cache.warnings")
_SAME = ("policy_version", "basis.cost")

#: path pattern -> rule name (first match wins; a path is the summary's keys joined by ".")
RULES: dict[str, str] = {
    **{p: "sum_usd" for p in _ADDITIVE_USD},  # before the counts: "outcome.*" would take outcome's dollars
    **{p: "sum" for p in _ADDITIVE_COUNTS},
    **{p: "union" for p in _UNIONS},
    **{p: "same" for p in _SAME},
    "window.since": "min",
    "window.until": "max",
    "routing.first_target_share": "derived",
    "routing.logged_first_target_share": "derived",
    "cache.hit_rate": "derived",
    "cost_per_1k_requests": "derived",
    "logged.error_rate": "derived",
    "limits.cutoffs": "derived",
    "guardrails.verdicts": "derived",
    "guardrails.refused": "derived",
    "guardrails.warnings": "derived",
    "guardrails.examples": "derived",
}


def _rule(path: str) -> str | None:
    for pattern, rule in RULES.items():
        if fnmatchcase(path, pattern):
            return rule
    return None


def merge_decisions(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The partitions' decisions as one frame, ordered (``ts``, then ``request_id``) and typed
    as one ``replay`` builds it: rebuilt from Python lists, so that each column's dtype follows
    its values over the whole window (a part whose column holds only NULLs has an ``object``
    column where the whole window's is ``float64``)."""
    import pandas as pd

    frames = [f for f in frames if len(f)] or frames[:1]
    if len(frames) == 1:
        return frames[0]
    both = pd.concat([f.reset_index(drop=True) for f in frames], ignore_index=True)
    both = both.sort_values(["ts", "request_id"], kind="stable", ignore_index=True)
    columns = {c: _values(both[c]) for c in both.columns}
    return pd.DataFrame(columns).set_index("request_id", drop=False)


def _values(col: pd.Series) -> list[Any]:
    """A column's values as ``replay`` had them: NULLs as None, times as datetimes."""
    import pandas as pd

    if isinstance(col.dtype, pd.DatetimeTZDtype) or str(col.dtype).startswith("datetime64"):
        return [None if v is pd.NaT else v.to_pydatetime() for v in col]
    return [None if isinstance(v, float) and v != v else v for v in col.tolist()]


def merge_summaries(
    parts: list[dict[str, Any]], decisions: pd.DataFrame | None = None
) -> tuple[dict[str, Any], list[str]]:
    """(the merged summary, the paths of figures that are not mergeable)."""
    not_merged: list[str] = []
    merged = _merge_level(parts, "", not_merged)
    _derive(merged, parts, decisions)
    return merged, not_merged


def _merge_level(values: list[Any], path: str, not_merged: list[str]) -> Any:
    rule = _rule(path) if path else None
    if rule is not None:
        return _APPLY[rule](values)
    if all(isinstance(v, dict) for v in values):
        keys = list(dict.fromkeys(k for v in values for k in v))
        return {
            k: _merge_level([v[k] for v in values if k in v], f"{path}.{k}" if path else k, not_merged) for k in keys
        }
    not_merged.append(path)
    return None


def _sum(values: list[Any]) -> Any:
    return sum(values)


def _sum_usd(values: list[Any]) -> float | None:
    return None if any(v is None for v in values) else round(sum(values), 6)


def _union(values: list[Any]) -> Any:
    if all(isinstance(v, dict) for v in values):
        out: dict[str, Any] = {}
        for v in values:
            out.update(v)
        return dict(sorted(out.items()))
    return sorted({x for v in values for x in v})


def _same(values: list[Any]) -> Any:
    if any(v != values[0] for v in values):
        raise ValueError(f"partitions disagree on a figure that must be equal: {values}")
    return values[0]


_APPLY: dict[str, Callable[[list[Any]], Any]] = {
    "sum": _sum,
    "sum_usd": _sum_usd,
    "union": _union,
    "same": _same,
    "min": min,
    "max": max,
    "derived": lambda values: None,  # filled in by _derive
}


def _derive(s: dict[str, Any], parts: list[dict[str, Any]], decisions: pd.DataFrame | None) -> None:
    """The figures recomputed from merged figures and decisions (as the stages compute them)."""
    routing, cache, logged = s.get("routing"), s.get("cache"), s.get("logged")
    if isinstance(routing, dict) and "first_target_share" in routing and decisions is not None:
        routing["first_target_share"] = _shares(decisions["replay_target"])
        routing["logged_first_target_share"] = _shares(decisions["logged_target"])
    if isinstance(cache, dict) and "hit_rate" in cache:
        hits, considered = cache.get("exact_hits", 0) + cache.get("semantic_hits", 0), cache.get("considered")
        cache["hit_rate"] = round(hits / considered, 6) if considered else None
    if "cost_per_1k_requests" in s:
        spent, n = s.get("cost_usd"), s.get("requests")
        s["cost_per_1k_requests"] = round(spent / n * 1000, 6) if spent is not None and n else None
    if isinstance(logged, dict) and "error_rate" in logged:
        n = logged["ok"] + logged["errors"]
        logged["error_rate"] = round(logged["errors"] / n, 6) if n else None
    if isinstance(s.get("limits"), dict) and "cutoffs" in s["limits"]:
        s["limits"]["cutoffs"] = _cutoffs([c for p in parts for c in (p.get("limits") or {}).get("cutoffs", [])])
    if isinstance(s.get("guardrails"), dict):
        _derive_guardrails(s["guardrails"], [p["guardrails"] for p in parts if "guardrails" in p], decisions)


def _derive_guardrails(g: dict[str, Any], parts: list[dict[str, Any]], decisions: pd.DataFrame | None) -> None:
    """``summary["guardrails"]``'s figures that are not plain sums, as the stage words them
    (replay/guardrails_stage.py ``guardrail_summary``) from the summed counts."""
    from .guardrails_stage import EXAMPLES_PER_VERDICT, example_key, not_replayable_warnings

    if "verdicts" in g:
        g["verdicts"] = _verdict_rows([row for p in parts for row in p.get("verdicts", [])])
    if "not_replayable" in g and "warnings" in g:
        g["warnings"] = not_replayable_warnings(g["not_replayable"])
    if "refused" in g:  # a part refuses when it checked nothing; the window only when no part checked any
        refusals = [p["refused"] for p in parts if p.get("refused")]
        g["refused"] = refusals[0] if refusals and not g.get("requests_checked") else None
    if "examples" in g and decisions is not None:  # each part kept its first ones: the window's are among them
        order = {rid: i for i, rid in enumerate(decisions["request_id"])}
        pooled = sorted((ex for p in parts for ex in p.get("examples", [])), key=lambda ex: order[ex["request_id"]])
        kept: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for ex in pooled:
            same = kept.setdefault(example_key(ex), [])
            if len(same) < EXAMPLES_PER_VERDICT:
                same.append(ex)
        g["examples"] = [ex for key in sorted(kept) for ex in kept[key]]


_VERDICT_KEY = ("stage", "name", "rule", "type", "action")


def _verdict_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parts' verdict tables as one: per verdict, requests and findings (replayed and logged) summed."""
    by: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[k] for k in _VERDICT_KEY)
        have = by.get(key)
        if have is None:
            by[key] = dict(row)
            continue
        for name, value in row.items():
            if name not in _VERDICT_KEY:
                have[name] += value
    return [by[key] for key in sorted(by)]


def _shares(values: Any) -> dict[str, float]:
    got = [v for v in values if isinstance(v, str) and v]
    n = len(got)
    return {k: round(v / n, 6) for k, v in sorted(Counter(got).items())} if n else {}


def _cutoffs(cutoffs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each limit's cut-off over the whole window: its first refusal, refusals summed."""
    by: dict[str, dict[str, Any]] = {}
    for c in cutoffs:
        have = by.get(c["limit"])
        if have is None:
            by[c["limit"]] = dict(c)
            continue
        have["refused"] += c["refused"]
        have["first_refused_at"] = min(have["first_refused_at"], c["first_refused_at"])
    return sorted(by.values(), key=lambda c: c["first_refused_at"])
