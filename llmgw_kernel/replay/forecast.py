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

**Checks of semantic hits** (``endpoint = 'cache.check'``: the gateway's own upstream call
checking a sampled hit, proxy/cache_verify.py) are no requests, as in the replay's summary
(``requests`` leaves them out, their cost is within ``cost_usd``): every figure counts client
requests only, and a check's cost is added to the cost of its cluster (its hit's team, key, or
the hit itself). ``cost_per_1k_usd`` is therefore what the gateway spent per 1,000 client
requests, checks included. A check's hit is a semantic hit whose own cost is 0 (and a replayed
check costs 0 unless the candidate served its hit from the semantic cache), so adding the
check's cost as a separate addend leaves each request's cost, and the variance, as if the check
were billed to its hit. A check without a price is left out of the cost (``unpriced_checks``).

**Statistics** (:mod:`.forecast_intervals`). A forecast is a measurement on one sample of
traffic (window 1, replayed under the candidate) and the observation one on another (window
2, served live). Each figure's 95% interval is an interval for the *difference*
observed - forecast that accounts for the sampling error of both; ``within`` is true when it
contains 0 (equivalently: the observed value lies in the forecast's interval). Requests of one
team (else key) share a budget, a cache namespace and users, so they are not independent
draws: each figure carries its sample size, its number of clusters, and its per-request
variance *including* the design effect of that clustering (``variance``, ``design_effect``:
1 for independent requests), which is all an interval needs. Shares use Newcombe's hybrid
score interval at effective sizes, cost per 1k Welch's; both at a t quantile for the part of
the variance estimated from few clusters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..log.record import CHECK_ENDPOINT
from ..timeparse import duration
from .forecast_intervals import difference_interval, ratio_variance

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from ..policy.model import Policy
    from . import ReplayResult

HIT_KINDS = ("hit", "semantic-hit")
REFUSAL_KINDS = ("budget_exceeded", "rate_limited")
COST_FIGURE = "cost_per_1k_usd"
#: a row that is a client's request (every row but the gateway's checks of semantic hits)
CLIENT_SQL = f"(endpoint IS DISTINCT FROM '{CHECK_ENDPOINT}')"
# Requests that share state (budget, cache namespace, users, sticky draws) share a cluster; a
# check of a semantic hit is in its hit's.
CLUSTER_SQL = f"coalesce(team, key_id, CASE WHEN NOT {CLIENT_SQL} THEN cache_source END, request_id)"
# The cost one logged request incurred: its cost_usd; a row that was never billed (refused,
# failed before an answer, no usage) counts 0; a served row with usage and no price is unpriced.
LOGGED_COST_SQL = (
    "CASE WHEN cost_usd IS NOT NULL THEN cost_usd "
    "WHEN target IS NOT NULL AND coalesce(prompt_tokens, completion_tokens) IS NOT NULL THEN NULL ELSE 0.0 END"
)


class NoForecastRecorded(LookupError):
    """The live policy's version was promoted without a forecast (or not by ``promote``)."""


# -- the figures, one rule for both sides ---------------------------------------------------

# Per (cluster, route, first target): the sums every figure and its variance are made of.
SUMS = ("n", "budget", "rate", "cache_n", "hits", "priced", "cost", "cost_sq")


def _figures(frame: pd.DataFrame) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Figures from per-(cluster, route, first) sums (:data:`SUMS`); returns the figures and
    each share group's denominator."""
    per_cluster = frame.groupby("cluster")[list(SUMS)].sum()
    figures: dict[str, dict[str, Any]] = {}
    groups: dict[str, int] = {"requests": int(per_cluster["n"].sum()), "cache": int(per_cluster["cache_n"].sum())}
    routed = frame[frame["first"].notna()]
    for route, sub in [("*", routed), *sorted(routed.groupby("route"), key=lambda x: str(x[0]))]:
        group = f"target_share[{route}]"
        den = sub.groupby("cluster")["n"].sum()
        groups[group] = int(den.sum())
        for target, hits in sorted(sub.groupby("first"), key=lambda x: str(x[0])):
            num = hits.groupby("cluster")["n"].sum().reindex(den.index, fill_value=0)
            figures[f"{group}[{target}]"] = _share(num, den, group)
    figures["cache_hit_rate"] = _share(per_cluster["hits"], per_cluster["cache_n"], "cache")
    figures[COST_FIGURE] = _mean_cost(per_cluster)
    figures["refused[budget_exceeded]"] = _share(per_cluster["budget"], per_cluster["n"], "requests")
    figures["refused[rate_limited]"] = _share(per_cluster["rate"], per_cluster["n"], "requests")
    return figures, groups


def _share(k: pd.Series, n: pd.Series, group: str) -> dict[str, Any]:
    """A share ``sum(k) / sum(n)`` with its cluster-robust per-request variance."""
    keep = n > 0
    k, n = k[keep], n[keep]
    count, total = int(k.sum()), int(n.sum())
    figure: dict[str, Any] = {"kind": "share", "group": group, "count": count, "n": total, "clusters": len(n),
                              "value": None, "variance": None, "design_effect": None}  # fmt: skip
    if total:
        p = count / total
        v, deff = ratio_variance(k, n, p * (1 - p) / total)
        figure.update(value=p, variance=v * total, design_effect=deff)
    return figure


def _mean_cost(per_cluster: pd.DataFrame) -> dict[str, Any]:
    """Cost per 1k requests: 1000 x the mean cost of a priced request, with its variance. A
    cluster whose only cost is checks' (no priced request) still adds its cost."""
    c = per_cluster[(per_cluster["priced"] > 0) | (per_cluster["cost"] != 0)]
    n = int(c["priced"].sum())
    figure: dict[str, Any] = {"kind": "mean", "scale": 1000, "n": n, "clusters": len(c), "value": None,
                              "mean": None, "variance": None, "design_effect": None}  # fmt: skip
    if n:
        mean = float(c["cost"].sum()) / n
        per_request = max(0.0, (float(c["cost_sq"].sum()) - n * mean * mean) / (n - 1)) if n > 1 else 0.0
        v, deff = ratio_variance(c["cost"], c["priced"], per_request / n)
        figure.update(value=1000 * mean, mean=mean, variance=v * n, design_effect=deff)
    return figure


# -- forecast: the replay's side ---------------------------------------------------------------


def forecast_of(
    result: ReplayResult, basis: Mapping[str, Any], clusters: pd.Series | None = None
) -> dict[str, Any]:  # fmt: skip
    """The candidate's forecast figures from a replay result, with the replay's basis.

    ``basis`` says what the replay covered (window ``since``/``until``, ...); this adds the
    request count, the policy version, the price source of each of the candidate's targets and
    the unpriced requests (``replay_cost_usd`` None: left out of the cost figure).
    ``clusters`` (request_id -> team, else key, see :func:`forecast_for`) groups requests that
    share state for the variances; without it every request is its own cluster."""
    import pandas as pd

    from .fold import CHECK

    d = result.decisions
    cost = d["replay_cost_usd"].astype(float) if len(d) else pd.Series(dtype=float)
    check = d["replay_served_by"] == CHECK if len(d) else pd.Series(dtype=bool)  # not a request (its cost is)
    client = (~check).astype(int)
    per_request = pd.DataFrame({
        "cluster": d["request_id"].map(clusters).fillna(d["request_id"]) if clusters is not None else d["request_id"],
        "route": d["route"], "first": d["replay_target"].where(~check), "n": client,
        "budget": (d["replay_admission"] == "budget_exceeded").astype(int) * client,
        "rate": (d["replay_admission"] == "rate_limited").astype(int) * client,
        "cache_n": d["replay_cache"].notna().astype(int) * client,
        "hits": d["replay_cache"].isin(HIT_KINDS).astype(int) * client,
        "priced": cost.notna().astype(int) * client, "cost": cost.fillna(0.0), "cost_sq": cost.fillna(0.0) ** 2,
    } if len(d) else {k: [] for k in ("cluster", "route", "first", *SUMS)})  # fmt: skip
    frame = per_request.groupby(["cluster", "route", "first"], dropna=False, as_index=False)[list(SUMS)].sum()
    figures, groups = _figures(frame)
    full_basis = {
        **basis,
        "requests": int(client.sum()),
        "checks": int(check.sum()),
        "policy_version": result.policy.version,
        "price_source": _price_sources(result.policy),
        "cost_source": "replay_cost_usd",
        "unpriced_requests": int((cost.isna() & ~check).sum()),
        "unpriced_checks": int((cost.isna() & check).sum()),
        "clusters": "team, else key" if clusters is not None else "request",
    }
    return {"basis": full_basis, "figures": figures, "groups": groups}


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
    holds no request. Requests are clustered by team (else key) as the log records them."""
    from ..log.reader import open_log
    from . import replay

    con = log if hasattr(log, "execute") else open_log(log)  # type: ignore[arg-type]
    result = replay(policy, con, since=since, until=until)
    if not len(result.decisions):
        return None
    labels = con.execute(
        f"SELECT request_id, {CLUSTER_SQL} AS cluster FROM requests WHERE ts >= ? AND ts < ?", [since, until]
    ).df()
    clusters = labels.set_index("request_id")["cluster"]
    return forecast_of(result, {"since": since.isoformat(), "until": until.isoformat()}, clusters)


# -- observed: the log's side ------------------------------------------------------------------

# a check of a semantic hit (client false) counts in no figure but the cost
_SUMS_SQL = f"""
SELECT {CLUSTER_SQL} AS cluster, route, CASE WHEN client THEN plan[1] END AS first, count(*) FILTER (client) AS n,
       count(*) FILTER (client AND admission = 'budget_exceeded') AS budget,
       count(*) FILTER (client AND admission = 'rate_limited') AS rate,
       count(cache) FILTER (client) AS cache_n, count(*) FILTER (client AND cache IN ('hit', 'semantic-hit')) AS hits,
       count(c) FILTER (client) AS priced, coalesce(sum(c), 0) AS cost, coalesce(sum(c * c), 0) AS cost_sq
FROM (SELECT *, {LOGGED_COST_SQL} AS c, {CLIENT_SQL} AS client FROM requests WHERE ts >= $since AND ts < $until)
GROUP BY ALL
"""
_BASIS_SQL = f"""
SELECT coalesce(policy_version, '(none)'), count(*) FILTER (client), min(ts), max(ts),
       count(*) FILTER (client AND c IS NULL), count(*) FILTER (NOT client), count(*) FILTER (NOT client AND c IS NULL)
FROM (SELECT *, {LOGGED_COST_SQL} AS c, {CLIENT_SQL} AS client FROM requests WHERE ts >= $since AND ts < $until)
GROUP BY ALL ORDER BY 2 DESC
"""


def observed_since(
    log_or_data_dir: duckdb.DuckDBPyConnection | str | os.PathLike[str],
    since: datetime | str,
    until: datetime | str | None = None,
) -> dict[str, Any]:
    """The forecast's figures measured on the log for rows with ``since <= ts < until``
    (``until`` None: up to now and beyond). Sums per (team, route, first target) in DuckDB;
    no Python object per row."""
    from ..log.reader import open_log

    con = log_or_data_dir if hasattr(log_or_data_dir, "execute") else open_log(log_or_data_dir)  # type: ignore[arg-type]
    params = {"since": _utc(since), "until": _utc(until) if until is not None else datetime(9999, 1, 1, tzinfo=UTC)}
    frame = con.execute(_SUMS_SQL, params).df()
    figures, groups = _figures(frame.astype({k: "float64" for k in ("cost", "cost_sq")}))
    by_version = con.execute(_BASIS_SQL, params).fetchall()
    basis = {
        "since": params["since"].isoformat(),
        "until": until and params["until"].isoformat(),
        "requests": sum(int(r[1]) for r in by_version),
        "checks": sum(int(r[5]) for r in by_version),
        "first_ts": min((r[2] for r in by_version), default=None),
        "last_ts": max((r[3] for r in by_version), default=None),
        "policy_versions": {str(r[0]): int(r[1]) for r in by_version},
        "cost_source": "cost_usd",
        "unpriced_requests": sum(int(r[4]) for r in by_version),
        "unpriced_checks": sum(int(r[6]) for r in by_version),
        "clusters": "team, else key",
    }
    return {"basis": basis, "figures": figures, "groups": groups}


def _utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- the comparison ----------------------------------------------------------------------------


def _missing_share(group: str, groups: Mapping[str, int]) -> dict[str, Any]:
    """A target one side never drew: 0 of that side's routed requests."""
    n = int(groups.get(group, 0))
    return {"kind": "share", "group": group, "count": 0, "n": n, "clusters": 1, "value": 0.0 if n else None,
            "variance": 0.0 if n else None, "design_effect": 1.0}  # fmt: skip


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
    lo, hi = difference_interval(f, o)
    row["interval"] = [lo, hi]
    row["within"] = lo <= 0 <= hi
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
    """``7d``, ``36h``, ``90m``, ``600s`` -> a duration (:func:`llmgw_kernel.timeparse.duration`)."""
    return duration(text)


__all__ = [
    "NoForecastRecorded", "check", "forecast_check", "forecast_for", "forecast_of", "forecast_report", "format_report",
    "observed_since", "parse_window",
]  # fmt: skip
