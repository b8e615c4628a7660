"""The upstream call that checks a sampled semantic hit (docs/cache.md#a-false-hit-bound-max_false_hit_rate).

The cached answer has already been sent; this asks the route's targets the same question (not
streamed, through the same attempt loop: retries, timeouts, breakers) in a background task
and hands the fresh answer to the cache, which compares it on its worker thread. The client
never waits for it. The cache caps the checks per route and hour (``verify_max_usd_per_hour``)
and journals each outcome with the time it became known.

Each check is the gateway's spend on behalf of the request that triggered it, and is accounted
as such:

- **a log row** of its own: ``endpoint = 'cache.check'`` (:data:`CHECK_ENDPOINT`: not client
  traffic), request id ``<hit id>.check``, ``cache_source`` = the hit's request id, ``api =
  'openai'`` (the body asked is the chat form, whatever API the hit came in by),
  ``cache_verify = 'check'``, the hit's key, team, user and metadata, and the check's own
  target, usage, cost, latency and outcome;
- **charged** to the budgets of the hit's key, team and user (and the global ones) at its
  cost, as an unadmitted priced request is: the check is never refused by a budget, its spend
  is bounded by the route's hourly cap instead;
- **in /metrics**: ``llmgw_cache_checks_total{route,outcome}`` (``ok``, ``failed``, and
  ``skipped_cap``: a sampled hit not checked because the route's hourly cap was spent, as
  /health's ``checks_skipped_by_spend_cap``, and marked ``cache_verify = 'skipped_cap'`` on the
  hit's own row),
  ``llmgw_cache_check_cost_usd_total{route}``, and within ``llmgw_cost_usd_total`` (all the
  gateway spent); never in ``llmgw_requests_total``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import Counter

from ..decisions.cost import cost_usd
from ..decisions.limits import Subject
from ..log.record import CHECK_ENDPOINT, RequestRecord
from ..providers.usage import checked_usage
from .attempts import attempt
from .errors import GatewayError

if TYPE_CHECKING:
    from ..cache.core import Query
    from .metrics import Metrics
    from .runtime import Gateway, Snapshot

log = logging.getLogger("llmgw.cache")

CHECK_SUFFIX = ".check"

_RUNNING: set[asyncio.Task[None]] = set()  # strong references until each check is done


class CheckMetrics:
    """The checks' counters, on one gateway's registry."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.checks = Counter(
            "llmgw_cache_checks", "Sampled semantic hits by route and check outcome (ok, failed, skipped_cap)",
            ["route", "outcome"],
            registry=r,
        )  # fmt: skip
        self.cost = Counter(
            "llmgw_cache_check_cost_usd", "USD spent checking sampled semantic hits (within llmgw_cost_usd)",
            ["route"], registry=r,
        )  # fmt: skip


_METRICS: weakref.WeakKeyDictionary[Metrics, CheckMetrics] = weakref.WeakKeyDictionary()


def check_metrics(metrics: Metrics) -> CheckMetrics:
    """The check counters of a gateway's metrics (registered on first use)."""
    found = _METRICS.get(metrics)
    if found is None:
        found = _METRICS[metrics] = CheckMetrics(metrics)
    return found


def count_skipped_checks(gw: Gateway) -> None:
    """Count in /metrics each sampled hit the spend cap left unchecked
    (``llmgw_cache_checks_total{outcome="skipped_cap"}``); called once at start."""
    checks = check_metrics(gw.metrics).checks
    gw.cache.learning.on_skipped = lambda route: checks.labels(route, "skipped_cap").inc()


def start_check(gw: Gateway, snap: Snapshot, rec: RequestRecord, body: dict[str, Any], q: Query) -> None:
    """Ask upstream in the background what the hit ``rec`` answered from the cache."""
    task = asyncio.get_running_loop().create_task(_check(gw, snap, rec, body, q))
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)


def check_record(rec: RequestRecord, plain: dict[str, Any]) -> RequestRecord:
    """The log record of the check of hit ``rec``: who it is for, what it asks."""
    # the body asked is the chat form (a /v1/messages or /v1/responses hit was translated): api openai
    probe = RequestRecord(rec.request_id + CHECK_SUFFIX, time.time(), CHECK_ENDPOINT, "openai")
    probe.route, probe.plan, probe.route_reason = rec.route, rec.plan, rec.route_reason
    probe.policy_version = rec.policy_version
    probe.key_id, probe.key_version, probe.team, probe.end_user = rec.key_id, rec.key_version, rec.team, rec.end_user
    probe.metadata, probe.temperature = rec.metadata, rec.temperature
    probe.body_mode = rec.body_mode  # kept as the hit's own row keeps its body
    probe.request_raw = orjson.dumps(plain)
    probe.cache_source, probe.cache_verify = rec.request_id, "check"
    return probe


async def _check(gw: Gateway, snap: Snapshot, rec: RequestRecord, body: dict[str, Any], q: Query) -> None:
    plain = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    probe = check_record(rec, plain)
    t0 = time.perf_counter()
    counters = check_metrics(gw.metrics)
    try:
        reply = await attempt(gw, snap, probe, plain, lambda a, t, b: a.chat(b, t))
    except (GatewayError, OSError) as exc:
        log.info("%s: checking the cached answer failed: %s", rec.request_id, exc)
        err = exc if isinstance(exc, GatewayError) else GatewayError(502, str(exc), "api_error", outcome="error")
        probe.status, probe.outcome = err.status, err.outcome
        probe.error_type, probe.error_message = err.code or err.type, err.message
        _written(gw, probe, t0)
        counters.checks.labels(probe.route or "", "failed").inc()
        return
    checked = checked_usage(reply.usage)  # invalid counts are unknown, as the pipeline reads them
    usage = checked or {}
    cost = cost_usd(snap.policy, probe.target, usage.get("prompt_tokens"), usage.get("completion_tokens"))
    probe.usage, probe.cost_usd, probe.response_raw = checked, cost, reply.body
    probe.status, probe.outcome = 200, "ok"
    if cost:
        await _charge(gw, probe, cost)
        counters.cost.labels(probe.route or "").inc(cost)
        gw.metrics.spent(probe.route or "", probe.target or "", cost)
    _written(gw, probe, t0)
    counters.checks.labels(probe.route or "", "ok").inc()
    gw.cache.checked(q, rec.request_id, reply.body, cost)


async def _charge(gw: Gateway, probe: RequestRecord, cost: float) -> None:
    """Count the check's cost in the budgets of the request that triggered it."""
    subject = Subject(probe.key_id, probe.team, probe.end_user, probe.route or "")
    if gw.shared is None:
        gw.limits.commit(subject, probe.ts, cost)
    else:
        await gw.shared.limits.commit(subject, probe.ts, cost)


def _written(gw: Gateway, probe: RequestRecord, t0: float) -> None:
    elapsed = time.perf_counter() - t0
    probe.latency_ms = elapsed * 1000
    probe.ts_end = probe.ts + elapsed
    gw.writer.append(probe)
