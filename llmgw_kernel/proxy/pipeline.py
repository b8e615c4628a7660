"""The request pipeline for ``/v1/chat/completions`` and ``/v1/embeddings`` (and, through
:mod:`.anthropic_inbound`, ``/v1/messages``).

parse → validate → route (plan) → attempts in plan order (fallback on retryable failures
before the first byte reaches the client) → respond (JSON or SSE) → log + metrics.
Handlers do no policy logic of their own: routing is :func:`plan_route`, the one used in
replay too. A client that disconnects cancels the upstream call; the row says ``abandoned``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

import orjson

from ..cache.learning import SAMPLED
from ..cache.service import Hit, LazyBody, Query, body_bytes, key_id
from ..decisions.cache import CONTROLS
from ..decisions.cost import cached_tokens_of, cost_usd
from ..decisions.limits import (
    Subject,
    Verdict,
    applicable_budgets,
    applicable_rates,
    completion_upper_bound,
    prompt_upper_bound,
    worst_case_usd,
)
from ..decisions.routing import plan_route, route_context
from ..guardrails.request import RequestGuard
from ..guardrails.stage import GuardrailFailure
from ..guardrails.verdicts import Blocked
from ..keys.store import AuthError, VirtualKey, usable_routes
from ..keys.store import check_model as key_allows
from ..log.record import RequestRecord
from ..providers import Adapter, Reply, StreamReply, UpstreamError
from ..providers.sse import DONE, frame
from ..providers.usage import checked_usage
from .asgi import JSON, SSE_HEADERS, ClientDisconnected, Receive, Scope, Send, read_body, send_error
from .attempts import attempt as _attempt
from .attempts import upstream_error as _upstream_error
from .cache_stream import completion_chunks
from .cache_verify import start_check
from .credentials import presented_key
from .errors import GatewayError, bad_request, guardrail_error, not_found_model
from .guardrails import check_input, check_output
from .runtime import Gateway, Snapshot
from .validate import check_chat, check_embeddings, check_metadata, check_model, check_name, load_json

log = logging.getLogger("llmgw.proxy")

_perf = time.perf_counter
_now = time.time
_MAX_CLIENT_ID = 200


class _RequestIds:
    """``req_`` + 24 random hex digits, from a pool of ``os.urandom`` bytes refilled every
    256 ids: one ``getrandom`` call (which releases the GIL) per 256 requests, not per request."""

    __slots__ = ("_pool",)
    _BATCH = 256

    def __init__(self) -> None:
        self._pool: list[str] = []

    def __call__(self) -> str:
        try:
            return self._pool.pop()  # atomic under the GIL
        except IndexError:
            raw = os.urandom(12 * self._BATCH).hex()
            self._pool = pool = ["req_" + raw[i : i + 24] for i in range(0, len(raw), 24)]
            return pool.pop()


new_request_id = _RequestIds()


class _PolicyFacts:
    """What the handler reads from the policy, read once per snapshot instead of once per
    request (``Policy.version`` is a pydantic private attribute: ~3 µs per access)."""

    __slots__ = ("snapshot", "version", "bodies", "max_request_bytes", "routes", "cache", "guardrails")

    def __init__(self, snap: Snapshot | None) -> None:
        self.snapshot = snap
        if snap is not None:
            policy = snap.policy
            self.version = policy.version
            self.bodies = policy.log.bodies
            self.max_request_bytes = policy.server.max_request_bytes
            self.routes = policy.routes
            self.cache = {r: policy.cache_for(r) for r in policy.routes}
            self.guardrails = policy._guardrails  # route -> compiled guardrails (absent: none)


_facts = _PolicyFacts(None)


def _policy_facts(snap: Snapshot) -> _PolicyFacts:
    global _facts
    facts = _facts
    if facts.snapshot is not snap:
        _facts = facts = _PolicyFacts(snap)
    return facts


class _Flight:
    """Per-request flags shared with the disconnect watcher."""

    __slots__ = ("done", "disconnected", "started", "admitted", "logged")

    def __init__(self) -> None:
        self.done = False
        self.disconnected = False
        self.started = False  # response headers sent
        self.admitted = False  # a reservation to settle
        self.logged = False  # the row is final and journaled


async def _watch_disconnect(receive: Receive, task: asyncio.Task, flight: _Flight) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not flight.done:
                flight.disconnected = True
                task.cancel()
            return


class Upstream(Protocol):
    """How an attempt calls its target for an API that is not chat all the way: the request may
    pass through to the provider's own endpoint (``proxy/passthrough.py``), answering the
    pipeline in chat form. ``cache_control`` may impose a cache control on the request;
    ``guard`` is the request's guardrails (set once its input checks passed), for the texts of a
    native answer its chat form does not hold."""

    guard: RequestGuard | None

    def cache_control(self, body: dict[str, Any]) -> str | None: ...

    async def chat(self, adapter: Adapter, target: Any, body: dict[str, Any]) -> Reply: ...

    async def chat_stream(
        self, adapter: Adapter, target: Any, body: dict[str, Any], include_usage: bool
    ) -> StreamReply: ...


class Inbound(NamedTuple):
    """The client-facing API a request arrived on: its name (the log's ``api``), ``parse``,
    which turns the raw body into the OpenAI request the pipeline serves (raising a
    :class:`GatewayError`), and how its attempts call a target (``upstream``; None: the
    adapter's chat API). The response side of another API is a translating ``send``."""

    api: str
    parse: Callable[[bytes, RequestRecord], Any]
    upstream: Upstream | None = None


def parse_json(raw: bytes, rec: RequestRecord) -> Any:
    return load_json(raw)  # a 400 if not JSON or nested deeper than MAX_JSON_DEPTH


OPENAI = Inbound("openai", parse_json)


def _metadata(scope: Scope, body: dict[str, Any]) -> dict[str, Any] | None:
    meta = body.pop("metadata", None)
    for key, value in scope["headers"]:
        if key == b"x-llmgw-metadata":
            extra = load_json(value, "x-llmgw-metadata", "x-llmgw-metadata")
            if not isinstance(extra, dict):
                raise bad_request("x-llmgw-metadata must be a JSON object", param="x-llmgw-metadata")
            meta = {**(meta or {}), **extra}
    check_metadata(meta)
    check_name("user", body.get("user"))
    return meta


async def handle(
    gw: Gateway, scope: Scope, receive: Receive, send: Send, endpoint: str, inbound: Inbound = OPENAI
) -> None:
    """Serve one chat or embeddings request end to end, and log it whatever happens."""
    t0 = _perf()
    rec = RequestRecord(new_request_id(), _now(), endpoint, inbound.api)
    snap = gw.snapshot
    policy = snap.policy
    facts = _policy_facts(snap)
    rec.policy_version = facts.version
    # bodies: redacted keeps a request's body only once its input checks ran: one refused before
    # (bad JSON, validation, unknown route, auth, limits) keeps its hash only, never its text
    redacted = facts.bodies == "redacted"
    rec.body_mode = "hashed" if redacted else facts.bodies
    client_id = content_length = cache_control = cache_ns = None
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            client_id = value[:_MAX_CLIENT_ID].decode("latin-1")
        elif key == b"content-length":
            content_length = value
        elif key == b"user-agent":
            rec.user_agent = value[:300].decode("latin-1")
        elif key == b"x-llmgw-cache":
            cache_control = value.decode("latin-1").strip().lower()
        elif key == b"x-llmgw-cache-namespace":
            cache_ns = value.decode("latin-1").strip()
    presented = presented_key(scope["headers"])
    rec.client_request_id = client_id
    rid = rec.request_id.encode()
    headers = [  # x-request-id is the log row's request_id; the client's own id comes back apart
        (b"x-request-id", rid),
        (b"x-llmgw-request-id", rid),
        (b"x-llmgw-policy-version", snap.version_header),
    ]
    if client_id:
        headers.append((b"x-client-request-id", client_id.encode("latin-1")))
    flight = _Flight()
    task = asyncio.current_task()
    assert task is not None
    watcher: asyncio.Task | None = None
    query: Query | None = None
    guard: RequestGuard | None = None

    async def finish() -> None:
        """The row is final: settle, count and journal it (before the response's last byte)."""
        if query is not None and rec.outcome == "ok" and rec.stream_events is not None:
            await gw.cache.store(query, rec, LazyBody(rec.stream_events, rec.usage))
        await _finish(gw, policy, rec, flight, t0, guard)

    gw.metrics.in_flight.inc()
    try:
        key = _authenticate(gw, rec, presented)
        raw = await read_body(receive, facts.max_request_bytes, content_length)
        rec.request_raw = raw
        body = inbound.parse(raw, rec)
        rec.route = route = check_model(body)
        if endpoint == "chat.completions":
            check_chat(body)
        else:
            check_embeddings(body)
        body_meta = body.get("metadata")
        rec.metadata = meta = _metadata(scope, body)
        if key is not None:  # the key's identity wins over what the client says
            rec.metadata = meta = {**(meta or {}), "key": key.settings.name}
            if key.settings.team is not None:
                meta["team"] = key.settings.team
        elif meta and meta.get("team") is not None:
            rec.team = str(meta["team"])
        if route not in facts.routes:
            raise not_found_model(route, usable_routes(key, facts.routes))  # never the routes a key may not use
        if key is not None:
            _check(key_allows, key, route)
        temperature = body.get("temperature")
        if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
            rec.temperature = float(temperature)
        ctx = route_context(rec.request_id, route, body, rec.metadata)
        plan = plan_route(policy, route, rec.request_id, ctx)
        rec.plan, rec.route_reason = plan.targets, plan.reason
        rec.end_user = rec.end_user or ctx.user
        flight.admitted = await _admit(gw, policy, rec, key, route, plan.targets, body)
        watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, task, flight))
        rails = facts.guardrails.get(route)
        if rails is not None:
            guard = RequestGuard(rails)
            await check_input(guard, rec, body, endpoint, body_meta, redacted)
            if inbound.upstream is not None:
                inbound.upstream.guard = guard
        elif redacted:
            rec.body_mode = "redacted"
        settings = facts.cache.get(route) if endpoint == "chat.completions" else None
        if settings is not None:
            control = _cache_control(cache_control)
            if inbound.upstream is not None:
                control = inbound.upstream.cache_control(body) or control
            query = gw.cache.prepare(settings, rec, body, control, _cache_ns(cache_ns))
            hit = await gw.cache.lookup(query, rec) if query is not None else None
            if hit is not None:
                await _serve_hit(gw, policy, rec, hit, body, send, headers, flight, finish, guard)
                if rec.cache_verify == SAMPLED and query is not None:  # checked beside, after it was served
                    start_check(gw, snap, rec, body, query)
                return
            headers.append((b"x-llmgw-cache", b"bypass" if query is None else b"miss"))
        if endpoint == "chat.completions" and body.get("stream"):
            rec.stream = True
            await _serve_stream(gw, snap, rec, body, send, headers, flight, t0, finish, guard, inbound.upstream)
        else:
            method = "chat" if endpoint == "chat.completions" else "embeddings"
            upstream = inbound.upstream if method == "chat" else None
            call = upstream.chat if upstream is not None else lambda a, t, b: getattr(a, method)(b, t)
            reply: Reply = await _attempt(gw, snap, rec, body, call)
            rec.usage = checked_usage(reply.usage)
            answer = reply.body
            if guard is not None and method == "chat":
                answer = await check_output(guard, answer)
            rec.response_raw = answer
            headers.append((b"x-llmgw-target", (rec.target or "").encode()))
            flight.done = True
            headers.append((b"content-length", str(len(answer)).encode()))
            rec.status, rec.outcome = 200, "ok"
            if query is not None:
                await gw.cache.store(query, rec, answer)
            await finish()
            flight.started = True
            await send({"type": "http.response.start", "status": 200, "headers": [JSON, *headers]})
            await send({"type": "http.response.body", "body": answer})
    except GatewayError as err:
        _fail(rec, err)
        if not flight.started and not flight.disconnected:
            flight.done = True
            rec.response_raw = err.body()
            if err.outcome == "no_target":  # a retry cannot help until the policy or environment changes
                headers.append((b"x-should-retry", b"false"))
            headers = [*_identity(headers), *err.headers]
            await finish()
            await send_error(send, err, headers)
        log.info("%s %s -> %d %s", rec.request_id, rec.route, err.status, err.message)
    except ClientDisconnected:
        rec.status, rec.outcome, rec.error_type = 499, "abandoned", "client_disconnected"
    except asyncio.CancelledError:
        if not flight.disconnected:
            raise
        task.uncancel()
        rec.status, rec.outcome, rec.error_type = 499, "abandoned", "client_disconnected"
        log.info("%s %s abandoned by the client", rec.request_id, rec.route)
    except Exception as exc:  # a bug of ours: answer 500, log it, keep serving
        log.exception("%s failed", rec.request_id)
        internal = GatewayError(
            500,
            f"Internal gateway error ({type(exc).__name__}); request id {rec.request_id}",
            "server_error",
            code="internal_error",
            outcome="error",
        )
        _fail(rec, internal)
        if not flight.started and not flight.disconnected:
            flight.done = True
            await finish()
            await send_error(send, internal, _identity(headers))
    finally:
        flight.done = True
        if watcher is not None:
            watcher.cancel()
        gw.metrics.in_flight.dec()
        if not flight.logged:  # abandoned, or failed after the response started
            await _finish(gw, policy, rec, flight, t0, guard)


async def _finish(
    gw: Gateway, policy: Any, rec: RequestRecord, flight: _Flight, t0: float, guard: RequestGuard | None = None
) -> None:
    """Complete the record (usage of a stream that carried none, cost, settlement, metrics)
    and hand it to the log writer, which journals it. Runs once per request, before the
    response's last byte when there is one, so a crash after the client has its answer
    cannot lose the row."""
    if flight.logged:
        return
    flight.logged = True
    if rec.target and not rec.usage and rec.stream_events:  # a stream that carried no usage
        try:  # counting (and the tokenizer's first load) runs off the event loop
            rec.usage, rec.usage_estimated = await asyncio.to_thread(_counted_usage, rec), True
        except Exception:
            log.exception("%s: counting a stream's tokens failed", rec.request_id)
    if rec.usage and rec.target:
        u = rec.usage
        cached = cached_tokens_of(u)
        rec.cost_usd = cost_usd(policy, rec.target, u.get("prompt_tokens"), u.get("completion_tokens"), cached)
    if flight.admitted:
        rec.settled_ts = _now()
        u = rec.usage or {}
        tokens = (u.get("prompt_tokens") or 0) + (u.get("completion_tokens") or 0)
        if gw.shared is None:
            gw.limits.settle(rec.request_id, rec.settled_ts, rec.cost_usd, tokens)
        else:
            await gw.shared.limits.settle(rec.request_id, rec.settled_ts, rec.cost_usd, tokens)
    elif rec.cost_usd and rec.plan is not None:  # no limit tracked it; its spend counts all the same
        subject = Subject(rec.key_id, rec.team, rec.end_user, rec.route or "")
        if gw.shared is None:
            gw.limits.commit(subject, rec.ts, rec.cost_usd)
        else:
            await gw.shared.limits.commit(subject, rec.ts, rec.cost_usd)
    if guard is not None and (verdicts := guard.verdicts.summary()) is not None:
        rec.guardrails = verdicts
        gw.metrics.guardrail_verdicts(verdicts)
    if rec.cache is not None:
        gw.metrics.cache_result(rec.route or "", rec.cache, rec.saved_usd)
    if rec.cost_usd:
        gw.metrics.spent(rec.route or "", rec.target or "", rec.cost_usd)
    elif rec.outcome == "limited":
        gw.metrics.limited(rec.route or "", rec.admission or "")
    elapsed = _perf() - t0
    rec.latency_ms = elapsed * 1000
    rec.ts_end = rec.ts + elapsed
    gw.writer.append(rec)
    gw.metrics.observe(
        rec.route or "", rec.upstream_model or "", rec.status, elapsed,
        rec.ttft_ms / 1000 if rec.ttft_ms is not None else None, rec.usage,
    )  # fmt: skip


def _counted_usage(rec: RequestRecord) -> dict[str, Any]:
    """Usage of a stream whose provider sent none: the prompt and the streamed text, counted
    (exactly for OpenAI models, else estimated; the log says ``usage_source = estimated``)."""
    from ..pricing.tokens import count_tokens

    model = rec.upstream_model or ""
    try:
        messages = orjson.loads(rec.request_raw).get("messages") or []
    except (orjson.JSONDecodeError, AttributeError):
        messages = []
    text: list[str] = []
    for raw in rec.stream_events or ():
        try:
            for choice in orjson.loads(raw).get("choices") or ():
                delta = choice.get("delta") or {}
                text.append(delta.get("content") or "")
                for call in delta.get("tool_calls") or ():
                    text.append((call.get("function") or {}).get("arguments") or "")
        except (orjson.JSONDecodeError, AttributeError):
            continue
    prompt, _ = count_tokens(messages if isinstance(messages, list) else [], model)
    completion, _ = count_tokens("".join(text), model)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _authenticate(gw: Gateway, rec: RequestRecord, presented: str | None) -> VirtualKey | None:
    """The request's virtual key (None in open mode: no key exists yet), or a 401."""
    if not gw.keys.enforcing:
        rec.key_id = key_id(presented)
        return None
    key = _check(gw.keys.authenticate, presented, rec.ts)
    rec.key_id, rec.key_version = key.id, key.version
    rec.team, rec.end_user = key.settings.team, key.settings.user
    return key


def _check(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except AuthError as exc:
        kind = "invalid_request_error" if exc.status == 401 else "permission_error"
        raise GatewayError(exc.status, exc.message, kind, code=exc.code, outcome="client_error") from None


async def _admit(
    gw: Gateway, policy: Any, rec: RequestRecord, key: VirtualKey | None, route: str, targets: tuple[str, ...],
    body: dict[str, Any],
) -> bool:  # fmt: skip
    """Budgets and rate limits: reserve the worst case, or refuse with a 429 naming the limit."""
    subject = Subject(rec.key_id, rec.team, rec.end_user, route)
    budgets = applicable_budgets(policy, key, subject)
    rates = applicable_rates(policy, key, subject)
    if not budgets and not rates:
        return False
    prompt = prompt_upper_bound(body)  # an upper bound, not an estimate: the reservation must cover the bill
    default = policy.budgets.default_max_tokens if policy.budgets is not None else 4096
    completion = completion_upper_bound(body, default) if rec.endpoint == "chat.completions" else 0
    worst_tokens = prompt + completion
    worst_usd = worst_case_usd(policy, targets, prompt, completion) if budgets else 0.0
    at = _now()
    rec.admitted_ts, rec.reserved_usd, rec.reserved_tokens = at, worst_usd, worst_tokens
    rec.reserved_prompt_tokens = prompt
    if gw.shared is None:
        verdict = gw.limits.admit(rec.request_id, at, subject, budgets, rates, worst_usd, worst_tokens)
    else:  # one atomic step in Redis across every process (llmgw_kernel/state/admission.py)
        verdict = await gw.shared.limits.admit(rec.request_id, at, subject, budgets, rates, worst_usd, worst_tokens)
    rec.admission, rec.admission_reason = verdict.kind, verdict.reason
    rec.budget_flags = list(verdict.flags) or None
    if not verdict.allowed:
        raise _refusal(verdict)
    return True


def _refusal(v: Verdict) -> GatewayError:
    wait = max(1, math.ceil(v.retry_after_s or 1))
    if v.kind == "state_unavailable":  # shared state down, failing closed (docs/deploy.md)
        return GatewayError(
            503, f"Service unavailable: {v.reason}", "server_error", code="shared_state_unavailable",
            outcome="limited", headers=[(b"retry-after", str(wait).encode())],
        )  # fmt: skip
    if v.kind == "budget_exceeded":
        headers = [(b"x-should-retry", b"false"), (b"retry-after", str(wait).encode())]
        return GatewayError(
            429, f"Budget exceeded: {v.reason}", "insufficient_quota", code="budget_exceeded", outcome="limited",
            headers=headers,
        )  # fmt: skip
    headers = [
        (b"retry-after", str(wait).encode()),
        (b"retry-after-ms", str(int((v.retry_after_s or 1) * 1000)).encode()),
    ]
    return GatewayError(
        429, f"Rate limit reached: {v.reason}; retry after {wait} s", "requests", code="rate_limit_exceeded",
        outcome="limited", headers=headers,
    )  # fmt: skip


def _cache_control(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value not in CONTROLS:
        raise bad_request(
            f"x-llmgw-cache must be one of {', '.join(sorted(CONTROLS))}, not {value[:40]!r}", param="x-llmgw-cache"
        )
    return value


def _cache_ns(value: str | None) -> str | None:
    if not value:
        return None
    if len(value) > 200:
        raise bad_request("x-llmgw-cache-namespace must be at most 200 characters", param="x-llmgw-cache-namespace")
    return value


async def _serve_hit(
    gw: Gateway, policy: Any, rec: RequestRecord, hit: Hit, body: dict[str, Any], send: Send,
    headers: list[tuple[bytes, bytes]], flight: _Flight, finish: Callable[[], Awaitable[None]],
    guard: RequestGuard | None,
) -> None:  # fmt: skip
    """Answer from the cache: the stored completion (through the output guardrails in force
    now), as JSON or as an SSE stream."""
    entry = hit.entry
    payload = body_bytes(entry.body)
    if guard is not None:
        payload = await check_output(guard, payload)
    headers.append((b"x-llmgw-cache", hit.kind.encode()))
    headers.append((b"x-llmgw-cache-source", entry.request_id.encode()))
    if hit.similarity is not None:
        headers.append((b"x-llmgw-cache-similarity", f"{hit.similarity:.4f}".encode()))
    rec.cost_usd = 0.0
    rec.saved_usd = gw.cache.saved_usd(policy, entry)
    flight.done = True
    rec.response_raw = payload
    rec.status, rec.outcome = 200, "ok"
    if body.get("stream"):
        rec.stream = True
        opts = body.get("stream_options")
        include_usage = bool(opts.get("include_usage")) if isinstance(opts, dict) else False
        stream = b"".join(frame(c) for c in completion_chunks(payload, include_usage)) + b"data: [DONE]\n\n"
        start = {"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]}
    else:
        stream = payload
        headers.append((b"content-length", str(len(payload)).encode()))
        start = {"type": "http.response.start", "status": 200, "headers": [JSON, *headers]}
    await finish()
    flight.started = True
    await send(start)
    await send({"type": "http.response.body", "body": stream})


def _identity(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers an error answer keeps of those prepared for the answer: all but its
    ``content-length`` (the error's body has its own; two would make the response invalid HTTP)."""
    return [h for h in headers if h[0] != b"content-length"]


def _fail(rec: RequestRecord, err: GatewayError) -> None:
    rec.status, rec.outcome = err.status, err.outcome
    rec.error_type = err.code or err.type
    rec.error_message = err.message


async def _serve_stream(
    gw: Gateway, snap: Snapshot, rec: RequestRecord, body: dict[str, Any], send: Send,
    headers: list[tuple[bytes, bytes]], flight: _Flight, t0: float, finish: Callable[[], Awaitable[None]],
    guard: RequestGuard | None, upstream: Upstream | None = None,
) -> None:  # fmt: skip
    """Relay the upstream's stream (through the output guardrails: a ``block`` ends it with an
    error event). Its end — ``data: [DONE]``, or the error event of a stream that failed after
    its first byte — is held back until the row is journaled (``finish``)."""
    opts = body.get("stream_options")
    include_usage = bool(opts.get("include_usage")) if isinstance(opts, dict) else False

    async def start(adapter: Adapter, target: Any, b: dict[str, Any]) -> tuple[StreamReply, bytes | None]:
        if upstream is None:
            reply = await adapter.chat_stream(b, target, include_usage)
        else:
            reply = await upstream.chat_stream(adapter, target, b, include_usage)
        first = await anext(reply.events, None)  # fail over if the stream dies before its first event
        return reply, first

    reply, first = await _attempt(gw, snap, rec, body, start)
    events: list[bytes] = []
    rec.stream_events = events
    headers.append((b"x-llmgw-target", (rec.target or "").encode()))
    flight.started = True
    await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]})
    rec.status = 200
    tail = b""
    sg = guard.stream() if guard is not None else None
    try:
        payload = first
        while payload is not None:
            if payload == DONE:
                if sg is not None:
                    await _relay(sg.close(), events, rec, t0, send)
                tail = b"data: [DONE]\n\n"
            elif sg is None:
                events.append(payload)
                if rec.ttft_ms is None:
                    rec.ttft_ms = (_perf() - t0) * 1000
                await send({"type": "http.response.body", "body": frame(payload), "more_body": True})
            else:
                await _relay(sg.feed(payload), events, rec, t0, send)
            payload = await anext(reply.events, None)
        if sg is not None and not tail:  # the upstream ended without [DONE]: what is held still goes
            await _relay(sg.close(), events, rec, t0, send)
    except (Blocked, GuardrailFailure) as exc:  # an output check blocked (or failed): stop here
        gerr = guardrail_error(exc)
        _fail(rec, gerr)
        rec.status = 200  # the client already has a 200; the stream ends with an error event
        tail = frame(gerr.body())
        await _close_upstream(reply.events)
    except UpstreamError as err:
        gerr = _upstream_error(err, rec.target or "")
        _fail(rec, gerr)
        rec.status = 200  # the client already has a 200; the stream ends with an error event
        rec.attempts[-1]["error"] = f"{err.kind} after first byte: {err.message}"
        gw.metrics.upstream_error(rec.provider or "", rec.upstream_model or "", err.kind, err.status)
        tail += frame(gerr.body())
    else:
        rec.outcome = "ok"
    finally:
        rec.usage = checked_usage(reply.usage)
    flight.done = True
    await finish()
    await send({"type": "http.response.body", "body": tail, "more_body": False})


async def _relay(payloads: list[bytes], events: list[bytes], rec: RequestRecord, t0: float, send: Send) -> None:
    """Send the payloads the stream guard released (and keep them for the log and the cache)."""
    for payload in payloads:
        events.append(payload)
        if rec.ttft_ms is None:
            rec.ttft_ms = (_perf() - t0) * 1000
        await send({"type": "http.response.body", "body": frame(payload), "more_body": True})


async def _close_upstream(events: Any) -> None:
    """Stop reading a stream the gateway ends early (its connection goes back or is closed)."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # the upstream may fail while it is being closed; the client's answer stands
            log.debug("closing an upstream stream failed", exc_info=True)
