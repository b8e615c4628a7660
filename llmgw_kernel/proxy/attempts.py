"""The attempt loop: try the plan's targets in order, with retries, timeouts, a deadline and
circuit breakers, and return the first success (docs/routing.md).

Per target: skip it if its provider is unavailable or its breaker is open; otherwise try it
up to ``retry.attempts`` times, retrying timeouts, connection errors and the ``on_status``
statuses after a deterministic full-jitter backoff (or the upstream's ``Retry-After``, up to
``retry_after_cap_ms``). A failure that is not worth retrying here but may succeed elsewhere
(429/5xx, timeouts, connection errors, an unsupported parameter, a context-window error)
falls back to the next target; any other failure is returned to the client as it is.
``deadline_ms`` bounds the whole loop: each attempt and each sleep gets at most what is left,
and when nothing is left the client gets a 504 ``deadline_exceeded``. Every attempt, retry
and skip is appended to ``rec.attempts``.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..decisions.retry import RETRY_AFTER_STATUSES, backoff_ms, is_context_window_error, retry_after_ms, retry_delay_ms
from ..log.record import RequestRecord
from ..policy.model import Route, Target
from ..providers import Adapter, UpstreamError
from .errors import GatewayError

if TYPE_CHECKING:
    from .runtime import Gateway, Snapshot

_perf = time.perf_counter
_TRANSIENT = frozenset({"timeout", "connection", "protocol"})
_DAY_MS = 86_400_000  # a longer Retry-After is not passed on (a broken date, not advice)

Call = Callable[[Adapter, Any, dict[str, Any]], Awaitable[Any]]


def upstream_error(err: UpstreamError, target_id: str) -> GatewayError:
    """The client-facing error for an upstream failure of ``target_id``."""
    where = f"target {target_id}"
    if err.kind == "timeout":
        return GatewayError(504, f"{where}: {err.message}", "timeout", code="upstream_timeout", outcome="timeout")
    if err.kind == "unsupported":
        return GatewayError(
            400, f"{where}: {err.message}", param=err.param, code="unsupported_parameter", outcome="client_error"
        )
    if err.kind in ("connection", "protocol"):
        return GatewayError(
            502, f"{where}: {err.message}", "upstream_error", code="upstream_unreachable", outcome="upstream_error"
        )
    status = err.status or 502
    if status in (401, 403):
        return GatewayError(
            502, f"{where}: the provider rejected the gateway's credentials ({err.message})", "upstream_error",
            code="upstream_auth_error", outcome="upstream_error",
        )  # fmt: skip
    kind = "invalid_request_error" if status < 500 else "upstream_error"
    if status == 429:
        kind = "rate_limit_error"
    code = err.code or ("context_length_exceeded" if _context_window(err) else f"upstream_{status}")
    return GatewayError(
        status, f"{where}: {err.message}", kind, param=err.param, code=code, outcome="upstream_error",
        headers=_retry_after(err),
    )  # fmt: skip


def _retry_after(err: UpstreamError) -> list[tuple[bytes, bytes]]:
    """The upstream's ``Retry-After`` on a 429/503 the client gets, in whole seconds (an HTTP date
    too): the SDKs wait that long before they retry, as they would against the provider."""
    ms = retry_after_ms(err.retry_after) if err.status in RETRY_AFTER_STATUSES else None
    if ms is None or ms > _DAY_MS:
        return []
    return [(b"retry-after", str(math.ceil(ms / 1000)).encode())]


class DeadlineExceeded(Exception):
    """The route's ``deadline_ms`` ran out."""


@functools.lru_cache(maxsize=4096)
def _with_timeout(target: Target, timeout_ms: int) -> Target:
    """``target`` carrying the route's per-attempt timeout (a target's own timeout_ms wins)."""
    return target.model_copy(update={"timeout_ms": timeout_ms})


def _body_code(raw: bytes | None) -> str | None:
    if not raw:
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    err = body.get("error") if isinstance(body, dict) else None
    code = err.get("code") if isinstance(err, dict) else None
    return code if isinstance(code, str) else None


def _context_window(err: UpstreamError) -> bool:
    return err.kind == "http" and is_context_window_error(err.status, err.code or _body_code(err.body), err.message)


def _target_failure(err: UpstreamError) -> bool:
    """A failure that says the target is unhealthy (counts for its breaker)."""
    if err.kind in _TRANSIENT:
        return True
    status = err.status or 0
    return err.kind == "http" and (status in (408, 429) or status >= 500)


async def attempt(gw: Gateway, snap: Snapshot, rec: RequestRecord, body: dict[str, Any], call: Call) -> Any:
    """Try the plan's targets in order (with the route's retries, timeouts, deadline and
    breakers); return the first success or raise the :class:`GatewayError` the client gets."""
    assert rec.plan is not None and rec.route is not None
    route: Route = snap.policy.routes[rec.route]
    deadline = _perf() + route.deadline_ms / 1000 if route.deadline_ms else None
    last: tuple[UpstreamError, str] | None = None
    skipped: list[str] = []
    try:
        for target_id in rec.plan:
            target, adapter = snap.resolve(rec.route, target_id)
            reason = adapter.unavailable_reason()
            if reason is not None:
                skipped.append(f"{target_id}: {reason}")
                rec.attempts.append(
                    {"target": target_id, "status": None, "latency_ms": 0.0, "error": f"skipped: {reason}"}
                )
                continue
            if route.timeout_ms and target.timeout_ms is None:
                target = _with_timeout(target, route.timeout_ms)
            done, result, failed = await _try_target(
                gw, snap, rec, route, target_id, target, adapter, body, call, deadline, skipped
            )
            if done:
                return result
            if failed is not None:
                last = (failed, target_id)
    except DeadlineExceeded:
        tried = sum(1 for a in rec.attempts if not (a["error"] or "").startswith("skipped"))
        tail = f" (last: {rec.attempts[-1]['target']}: {rec.attempts[-1]['error']})" if rec.attempts else ""
        raise GatewayError(
            504, f"deadline_ms {route.deadline_ms} exceeded on route '{rec.route}' after {tried} attempt(s){tail}",
            "timeout", code="deadline_exceeded", outcome="timeout",
        ) from None  # fmt: skip
    if last is not None:
        raise upstream_error(*last)
    raise GatewayError(
        503, f"No target available for model '{rec.route}': " + "; ".join(skipped), "service_unavailable",
        code="no_target_available", outcome="no_target",
    )  # fmt: skip


async def _try_target(
    gw: Gateway, snap: Snapshot, rec: RequestRecord, route: Route, target_id: str, target: Target,
    adapter: Adapter, body: dict[str, Any], call: Call, deadline: float | None, skipped: list[str],
) -> tuple[bool, Any, UpstreamError | None]:  # fmt: skip
    """Up to ``retry.attempts`` tries of one target: (served, result, last failure)."""
    retry = route.retry
    tries = retry.attempts if retry is not None else 1
    breaker = gw.breakers.get(rec.route or "", target_id)
    failed: UpstreamError | None = None
    for n in range(tries):
        if breaker is not None and (why := breaker.acquire()) is not None:
            skipped.append(f"{target_id}: {why}")
            rec.attempts.append({"target": target_id, "status": None, "latency_ms": 0.0, "error": f"skipped: {why}"})
            return False, None, failed
        t = _perf()
        entry: dict[str, Any] = {"target": target_id, "status": None, "latency_ms": 0.0, "error": None}
        try:
            if deadline is None:
                result = await call(adapter, target, dict(body))
            else:
                left = deadline - t
                if left <= 0:
                    raise DeadlineExceeded
                try:
                    async with asyncio.timeout(left):
                        result = await call(adapter, target, dict(body))
                except TimeoutError:
                    entry.update(latency_ms=(_perf() - t) * 1000, error="timeout: the route's deadline_ms ran out")
                    rec.attempts.append(entry)
                    raise DeadlineExceeded from None
        except UpstreamError as err:
            failed = err
            entry.update(status=err.status, latency_ms=(_perf() - t) * 1000, error=f"{err.kind}: {err.message}")
            rec.attempts.append(entry)
            gw.metrics.upstream_error(target.provider, target.model, err.kind, err.status)
            if breaker is not None:
                breaker.failure() if _target_failure(err) else breaker.success()
            transient = err.kind in _TRANSIENT or (
                err.kind == "http" and retry is not None and err.status in retry.on_status
            )
            if retry is not None and transient and n + 1 < tries:
                wait = _retry_wait(snap, rec, retry, target_id, n + 1, err, deadline, route.deadline_ms or 0)
                if wait is not None:
                    entry["error"] += f"; retry {n + 1} in {wait:.0f} ms"
                    gw.metrics.retry(rec.route or "", target_id)
                    rec.retries += 1
                    rec.backoff_ms += wait
                    await asyncio.sleep(wait / 1000)
                    continue
                entry["error"] += "; no retry (Retry-After over the cap or past the deadline)"
            if err.retryable or transient or _context_window(err):
                return False, None, failed
            raise upstream_error(err, target_id) from None
        except BaseException:
            if breaker is not None:
                breaker.release()
            raise
        ms = (_perf() - t) * 1000
        entry.update(status=200, latency_ms=ms)
        rec.attempts.append(entry)
        if breaker is not None:
            breaker.success()
        rec.target, rec.provider, rec.upstream_model, rec.upstream_ms = target_id, target.provider, target.model, ms
        return True, result, None
    return False, None, failed


def _retry_wait(
    snap: Snapshot, rec: RequestRecord, retry: Any, target_id: str, n: int, err: UpstreamError,
    deadline: float | None, deadline_ms: int,
) -> float | None:  # fmt: skip
    """Milliseconds to sleep before retry ``n``, or None to leave the target now."""
    backoff = backoff_ms(snap.policy.version, rec.request_id, target_id, n, retry.backoff_ms, retry.max_backoff_ms)
    after = retry_after_ms(err.retry_after) if err.status in RETRY_AFTER_STATUSES else None
    wait = retry_delay_ms(backoff, after, retry.retry_after_cap_ms)
    if wait is not None and deadline is not None:
        left_ms = (deadline - _perf()) * 1000
        if wait >= left_ms - min(50.0, 0.1 * deadline_ms):
            return None  # sleeping would eat (nearly) the rest of the deadline: try the next target instead
    return wait
