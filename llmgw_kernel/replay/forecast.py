"""Forecast vs actual: what a replay said a policy would do, beside what the log shows it did.

``llmgw policy promote --data-dir DIR`` replays the candidate over a recent window and records
:func:`forecast_of` that replay beside the live policy's history; ``llmgw forecast check``
measures the same figures on the rows logged since the promotion (:func:`observed_since`) and
compares them (:func:`check`). docs/forecast.md explains how to read the table.

**Figures.** Each is computed the same way on both sides (one rule, :func:`_figures`, fed by
pandas on the replay's ``.decisions`` and by DuckDB aggregates on the log):

- ``target_share[ROUTE][TARGET]`` — among requests routing planned (a first target exists:
  ``replay_target`` / the logged ``plan[1]``), the share whose first target is TARGET, per
  route and over all routes (ROUTE ``*``);
- ``cache_hit_rate`` — ``hit`` or ``semantic-hit`` among requests with a cache outcome
  (``replay_cache`` / ``cache`` not NULL);
- ``cost_per_1k_usd`` — 1000 x the mean cost of a request: the replay's ``replay_cost_usd``
  (the candidate's expected cost net of cache hits and refusals), the log's ``cost_usd`` (0 for
  a cache hit; a row that was never billed — refused, failed before an answer — counts 0).
  Unpriced requests (a target without a price) are left out and counted in the basis;
- ``refused[budget_exceeded]``, ``refused[rate_limited]`` — refusals of that kind among all
  requests of the window.

**Statistics.** A forecast is a measurement on one sample of traffic (window 1, replayed
under the candidate) and the observation one on another (window 2, served live). Both carry
sampling error, so each figure's 95% interval is an interval for the *difference*
observed − forecast that accounts for both sample sizes; ``within`` is true when it contains 0
(equivalently: the observed value lies in the forecast's interval).

- Shares (``k`` of ``n``): Newcombe's hybrid score interval for a difference of two
  independent proportions (Newcombe 1998, method 10): with Wilson score intervals
  ``[l1, u1]`` for the forecast ``p1`` and ``[l2, u2]`` for the observed ``p2``, the interval
  for ``d = p2 - p1`` is ``[d - sqrt((p2-l2)^2 + (u1-p1)^2), d + sqrt((u2-p2)^2 + (p1-l1)^2)]``.
  It is the CLT interval ``d +- 1.96 sqrt(p1(1-p1)/n1 + p2(1-p2)/n2)`` for large counts, and
  unlike it keeps its coverage near 0 and 1 (a refusal rate of 0.3% is a figure it handles).
- Cost per 1k requests (a mean of per-request costs): Welch's normal interval,
  ``d +- 1.96 sqrt(s1^2/n1 + s2^2/n2)`` x 1000, with ``s^2`` the per-request variance of each
  window (recorded with the forecast: ``variance``), and ``n`` the priced requests.

Assumption: requests are independent draws from one traffic distribution. Weighted routing
draws are (hashes of request ids, or of a sticky value unique per request); cache hits and
limit refusals are not quite (a repeated prompt, a budget exhausted for the rest of its
window), so their intervals are somewhat too narrow when traffic is bursty; the difference in
points and percent is beside each figure for that reason (docs/forecast.md).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from ..policy.model import Policy
    from . import ReplayResult

Z95 = 1.959963984540054  # two-sided 95% normal quantile
HIT_KINDS = ("hit", "semantic-hit")
REFUSAL_KINDS = ("budget_exceeded", "rate_limited")
COST_FIGURE = "cost_per_1k_usd"
# The cost one logged request incurred: its cost_usd; a row that was never billed (refused,
# failed before an answer, no usage) counts 0; a served row with usage and no price is unpriced.
LOGGED_COST_SQL = (
    "CASE WHEN cost_usd IS NOT NULL THEN cost_usd "
    "WHEN target IS NOT NULL AND coalesce(prompt_tokens, completion_tokens) IS NOT NULL THEN NULL ELSE 0.0 END"
)


class NoForecastRecorded(LookupError):
    """The live policy's version was promoted without a forecast (or not by ``promote``)."""


# -- the figures, one rule for both sides ---------------------------------------------------


def _share(count: int, n: int, group: str) -> dict[str, Any]:
    p = count / n if n else None
    return {"kind": "share", "group": group, "count": count, "n": n, "value": p,
            "variance": p * (1 - p) if p is not None else None}  # fmt: skip


def _figures(
    requests: int,
    refusals: Mapping[str, int],
    cache: tuple[int, int],
    cost: tuple[int, float | None, float | None],
    firsts: Mapping[tuple[str, str], int],
) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Figures from aggregates: ``cache`` = (with an outcome, hits), ``cost`` = (priced
    requests, mean cost, per-request variance), ``firsts`` = (route, first target) -> count.
    Returns the figures and each share group's denominator."""
    figures: dict[str, dict[str, Any]] = {}
    groups: dict[str, int] = {"requests": requests, "cache": cache[0]}
    per_route: dict[str, int] = {}
    per_target: dict[str, int] = {}
    for (route, target), k in firsts.items():
        per_route[route] = per_route.get(route, 0) + k
        per_target[target] = per_target.get(target, 0) + k
    routed = sum(per_route.values())
    for route, n in sorted(per_route.items()):
        groups[f"target_share[{route}]"] = n
    groups["target_share[*]"] = routed
    for (route, target), k in sorted(firsts.items()):
        figures[f"target_share[{route}][{target}]"] = _share(k, per_route[route], f"target_share[{route}]")
    for target, k in sorted(per_target.items()):
        figures[f"target_share[*][{target}]"] = _share(k, routed, "target_share[*]")
    figures["cache_hit_rate"] = _share(cache[1], cache[0], "cache")
    n, mean, var = cost
    figures[COST_FIGURE] = {"kind": "mean", "scale": 1000, "n": n,
                            "value": mean * 1000 if mean is not None else None, "mean": mean,
                            "variance": var if var is not None else (0.0 if n == 1 else None)}  # fmt: skip
    for kind in REFUSAL_KINDS:
        figures[f"refused[{kind}]"] = _share(int(refusals.get(kind, 0)), requests, "requests")
    return figures, groups


# -- forecast: the replay's side ---------------------------------------------------------------


def forecast_of(result: ReplayResult, basis: Mapping[str, Any]) -> dict[str, Any]:
    """The candidate's forecast figures from a replay result, with the replay's basis.

    ``basis`` says what the replay covered (window ``since``/``until``, ...); this adds the
    request count, the policy version, the price source of each of the candidate's targets and
    which column the cost came from (``replay_cost_usd``, else the logged cost, see
    :func:`forecast_for`)."""
    d = result.decisions
    cost_column = "replay_cost_usd" if "replay_cost_usd" in d.columns else "logged_cost_usd"
    routed = d[d["replay_target"].notna()] if len(d) else d
    firsts = {(str(r), str(t)): int(k) for (r, t), k in routed.groupby(["route", "replay_target"]).size().items()}
    cache = d["replay_cache"] if "replay_cache" in d.columns else None
    cache_n = int(cache.notna().sum()) if cache is not None else 0
    hits = int(cache.isin(HIT_KINDS).sum()) if cache is not None else 0
    admission = d["replay_admission"] if "replay_admission" in d.columns else None
    refusals = {k: int((admission == k).sum()) if admission is not None else 0 for k in REFUSAL_KINDS}
    figures, groups = _figures(len(d), refusals, (cache_n, hits), _cost_stats(d, cost_column), firsts)
    full_basis = {
        **basis,
        "requests": len(d),
        "policy_version": result.policy.version,
        "price_source": _price_sources(result.policy),
        "cost_source": cost_column,
        "unpriced_requests": int(d[cost_column].isna().sum()) if cost_column in d.columns else len(d),
    }
    if cost_column == "logged_cost_usd":
        full_basis["cost_note"] = (
            "the replay has no replay_cost_usd column: cost is the LOGGED cost of window 1, "
            "not the candidate's (its targets, cache and refusals are not reflected)"
        )
    return {"basis": full_basis, "figures": figures, "groups": groups}


def _cost_stats(d: pd.DataFrame, column: str) -> tuple[int, float | None, float | None]:
    if column not in d.columns:
        return 0, None, None
    values = d[column].dropna().astype(float)
    n = len(values)
    mean = float(values.mean()) if n else None
    var = float(values.var(ddof=1)) if n > 1 else None
    return n, mean, var


def _price_sources(policy: Policy) -> dict[str, str]:
    from ..decisions.cost import price_source

    targets = {t.id for spec in policy.routes.values() for t in spec.targets}
    return {t: price_source(policy, t) for t in sorted(targets)}


def forecast_for(
    policy: Any,
    log: duckdb.DuckDBPyConnection | str | os.PathLike[str],
    since: datetime,
    until: datetime,
) -> dict[str, Any] | None:
    """Replay ``policy`` over ``[since, until)`` and return its forecast; None when the window
    holds no request. When the replay has no ``replay_cost_usd`` column (a replay before the
    composed cost), the logged cost of each request stands in, marked in the basis."""
    from ..log.reader import open_log
    from . import replay

    con = log if hasattr(log, "execute") else open_log(log)  # type: ignore[arg-type]
    result = replay(policy, con, since=since, until=until)
    if not len(result.decisions):
        return None
    if "replay_cost_usd" not in result.decisions.columns:
        logged = con.execute(
            f"SELECT request_id, {LOGGED_COST_SQL} AS c FROM requests WHERE ts >= ? AND ts < ?", [since, until]
        ).df()
        costs = dict(zip(logged["request_id"], logged["c"], strict=True))
        result.decisions["logged_cost_usd"] = [costs.get(r) for r in result.decisions["request_id"]]
    return forecast_of(result, {"since": since.isoformat(), "until": until.isoformat()})


# -- observed: the log's side ------------------------------------------------------------------

_TOTALS_SQL = f"""
SELECT count(*), count(*) FILTER (admission = 'budget_exceeded'), count(*) FILTER (admission = 'rate_limited'),
       count(cache), count(*) FILTER (cache IN ('hit', 'semantic-hit')),
       count(c), avg(c), var_samp(c), count(*) - count(c), min(ts), max(ts)
FROM (SELECT ts, admission, cache, {LOGGED_COST_SQL} AS c FROM requests WHERE ts >= $since AND ts < $until)
"""
_FIRSTS_SQL = """
SELECT route, plan[1], count(*) FROM requests
WHERE ts >= $since AND ts < $until AND plan[1] IS NOT NULL GROUP BY ALL
"""
_VERSIONS_SQL = """
SELECT coalesce(policy_version, '(none)'), count(*) FROM requests
WHERE ts >= $since AND ts < $until GROUP BY ALL ORDER BY 2 DESC
"""


def observed_since(
    log_or_data_dir: duckdb.DuckDBPyConnection | str | os.PathLike[str],
    since: datetime | str,
    until: datetime | str | None = None,
) -> dict[str, Any]:
    """The forecast's figures measured on the log for rows with ``since <= ts < until``
    (``until`` None: up to now and beyond). Aggregates in DuckDB; no Python object per row."""
    from ..log.reader import open_log

    con = log_or_data_dir if hasattr(log_or_data_dir, "execute") else open_log(log_or_data_dir)  # type: ignore[arg-type]
    params = {"since": _utc(since), "until": _utc(until) if until is not None else datetime(9999, 1, 1, tzinfo=UTC)}
    n, budget, rate, cache_n, hits, priced, mean, var, unpriced, first, last = con.execute(
        _TOTALS_SQL, params
    ).fetchone()  # type: ignore[misc]
    firsts = {(str(r), str(t)): int(k) for r, t, k in con.execute(_FIRSTS_SQL, params).fetchall()}
    versions = {str(v): int(k) for v, k in con.execute(_VERSIONS_SQL, params).fetchall()}
    refusals = {"budget_exceeded": int(budget), "rate_limited": int(rate)}
    figures, groups = _figures(int(n), refusals, (int(cache_n), int(hits)), (int(priced), mean, var), firsts)
    basis = {
        "since": params["since"].isoformat(),
        "until": until and params["until"].isoformat(),
        "requests": int(n),
        "first_ts": first.isoformat() if first is not None else None,
        "last_ts": last.isoformat() if last is not None else None,
        "policy_versions": versions,
        "cost_source": "cost_usd",
        "unpriced_requests": int(unpriced),
    }
    return {"basis": basis, "figures": figures, "groups": groups}


def _utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- the comparison ----------------------------------------------------------------------------


def wilson(count: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``count / n``."""
    p = count / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def share_difference_interval(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``k2/n2 - k1/n1`` (method 10, Newcombe 1998)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p2 - p1
    return d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2), d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)


def _mean_interval(f: Mapping[str, Any], o: Mapping[str, Any], z: float = Z95) -> tuple[float, float] | None:
    if f["variance"] is None or o["variance"] is None:
        return None
    scale = f.get("scale", 1)
    se = math.sqrt(f["variance"] / f["n"] + o["variance"] / o["n"]) * scale
    d = o["value"] - f["value"]
    return d - z * se, d + z * se


def _missing_share(group: str, groups: Mapping[str, int]) -> dict[str, Any]:
    return _share(0, int(groups.get(group, 0)), group)


def check(forecast: Mapping[str, Any], observed: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per figure: forecast, observed, difference (observed - forecast, in the
    figure's unit), a 95% interval for the difference from both windows' sampling error, and
    ``within`` (the interval holds 0; None when either side has no requests to measure).
    A target share present on one side only is 0 of that side's routed requests."""
    ff, of = forecast["figures"], observed["figures"]
    rows = []
    for name in sorted(set(ff) | set(of), key=_figure_order):
        f, o = ff.get(name), of.get(name)
        if f is None:
            f = _missing_share(o["group"], forecast["groups"])  # type: ignore[index]
        if o is None:
            o = _missing_share(f["group"], observed["groups"])
        rows.append(_compare(name, f, o))
    return rows


def _figure_order(name: str) -> tuple[int, str]:
    order = ("target_share[*]", "target_share", "cache_hit_rate", COST_FIGURE, "refused")
    return next((i for i, prefix in enumerate(order) if name.startswith(prefix)), len(order)), name


def _compare(name: str, f: Mapping[str, Any], o: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"figure": name, "kind": f["kind"], "forecast": f["value"], "observed": o["value"],
                           "n_forecast": f["n"], "n_observed": o["n"], "diff": None, "diff_pct": None,
                           "interval": None, "within": None}  # fmt: skip
    if not f["n"] or not o["n"] or f["value"] is None or o["value"] is None:
        return row
    row["diff"] = o["value"] - f["value"]
    if f["value"]:
        row["diff_pct"] = 100 * row["diff"] / f["value"]
    if f["kind"] == "share":
        interval: tuple[float, float] | None = share_difference_interval(f["count"], f["n"], o["count"], o["n"])
    else:
        interval = _mean_interval(f, o)
    if interval is not None:
        row["interval"] = [interval[0], interval[1]]
        row["within"] = interval[0] <= 0 <= interval[1]
    return row


# -- the recorded forecast of the live policy ----------------------------------------------------


def forecast_report(live: str | os.PathLike[str], data_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The recorded forecast of the live policy's version, what the log shows since its
    promotion, and their comparison (``rows``). Raises :class:`NoForecastRecorded`."""
    from ..policy.lifecycle import recorded_forecast

    record = recorded_forecast(Path(live))
    if record is None:
        from ..policy.versions import version_or_none

        version = version_or_none(Path(live))
        raise NoForecastRecorded(
            f"no forecast was recorded for the live policy {live} (version {version}): promote it with "
            "`llmgw policy promote CANDIDATE --data-dir DIR` while the log holds traffic to record one"
        )
    observed = observed_since(data_dir, record["promoted_at"])
    return {"record": record, "observed": observed, "rows": check(record["forecast"], observed)}


def forecast_check(live_path: str | os.PathLike[str], data_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of ``llmgw forecast check`` (for the dashboard): see :func:`check`."""
    rows: list[dict[str, Any]] = forecast_report(live_path, data_dir)["rows"]
    return rows


def format_report(report: Mapping[str, Any]) -> str:
    """The text ``llmgw forecast check`` prints: what was forecast from what, what was
    observed, and one line per figure (shares in %, differences in points; cost in USD)."""
    record, observed = report["record"], report["observed"]["basis"]
    basis = record["forecast"]["basis"]
    lines = [
        f"forecast for {record['version']}, promoted {record['promoted_at']}",
        f"  from a replay over {basis.get('since')} .. {basis.get('until')}: {basis['requests']} requests, "
        f"cost from {basis['cost_source']}, {basis['unpriced_requests']} unpriced",
        f"observed since promotion: {observed['requests']} requests, by version {observed['policy_versions']}",
    ]
    if basis.get("cost_note"):
        lines.append(f"note: {basis['cost_note']}")
    if set(observed["policy_versions"]) - {record["version"]}:
        lines.append(f"note: rows served by another version than {record['version']} are included (reload lag?)")
    lines.append(f"{'figure':<44} {'forecast':>9} {'observed':>9} {'diff':>9} {'95% interval of diff':>22}  within")
    lines.extend(_table_line(row) for row in report["rows"])
    return "\n".join(lines)


def _table_line(row: Mapping[str, Any]) -> str:
    def fmt(value: float | None, diff: bool = False) -> str:
        if value is None:
            return "-"
        if row["kind"] == "share":
            return f"{100 * value:+.2f}pt" if diff else f"{100 * value:.2f}%"
        return f"{value:+.3f}" if diff else f"${value:.3f}"

    lo, hi = row["interval"] or (None, None)
    interval = f"[{fmt(lo, True)}, {fmt(hi, True)}]" if lo is not None else "-"
    within = {True: "yes", False: "NO", None: "-"}[row["within"]]
    return (f"{row['figure'][:44]:<44} {fmt(row['forecast']):>9} {fmt(row['observed']):>9} "
            f"{fmt(row['diff'], True):>9} {interval:>22}  {within}")  # fmt: skip


def parse_window(text: str) -> timedelta:
    """``7d``, ``36h``, ``90m``, ``600s`` -> a duration."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    text = text.strip()
    if len(text) < 2 or text[-1] not in units:
        raise ValueError(f"{text!r}: a duration like 7d, 36h, 90m or 600s")
    value = float(text[:-1])
    if value <= 0:
        raise ValueError(f"{text!r}: must be positive")
    return timedelta(**{units[text[-1]]: value})


__all__ = [
    "NoForecastRecorded", "check", "forecast_check", "forecast_for", "forecast_of", "forecast_report", "format_report",
    "observed_since", "parse_window", "share_difference_interval", "wilson",
]  # fmt: skip
