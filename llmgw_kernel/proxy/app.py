"""The ASGI application: a path table in front of the handlers, plus lifespan.

Plain ASGI (no framework) because routing is a dict lookup here and a framework's
routing alone cost ~170 µs per request on these machines (docs/server.md). Paths that are
not API routes go to the dashboard bridge (Panel runs in its own thread).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import orjson

from ..keys.store import AuthError, VirtualKey, may_use
from . import admin, anthropic_inbound, completions, count_tokens, feedback, openapi, pipeline, responses_inbound
from .anthropic_response import anthropic_error, anthropic_model, anthropic_models, is_anthropic_client
from .asgi import JSON, Receive, Scope, Send, send_bytes, send_error, send_json
from .credentials import presented_key
from .errors import GatewayError, method_not_allowed, not_found_model, not_found_path
from .runtime import Gateway

log = logging.getLogger("llmgw.app")

Handler = Callable[[Gateway, Scope, Receive, Send], Awaitable[None]]


class Mount(Protocol):
    """Something that serves the non-API paths (the dashboards)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    async def close(self) -> None: ...


async def _chat(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    await pipeline.handle(gw, scope, receive, send, "chat.completions")


async def _embeddings(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    await pipeline.handle(gw, scope, receive, send, "embeddings")


def _caller(gw: Gateway, scope: Scope) -> VirtualKey | None:
    """The key a non-pipeline API request presents (None in open mode); a 401 otherwise."""
    if not gw.keys.enforcing:
        return None
    try:
        return gw.keys.authenticate(presented_key(scope["headers"]), time.time())
    except AuthError as exc:
        raise GatewayError(exc.status, exc.message, code=exc.code) from None


def _visible_models(gw: Gateway, key: VirtualKey | None) -> list[dict]:
    return [m for m in gw.snapshot.models if may_use(key, m["id"])]


async def _models(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        key = _caller(gw, scope)
    except GatewayError as err:
        await send_error(send, err)
        return
    if is_anthropic_client(scope["headers"]):
        await send_json(send, 200, orjson.dumps(anthropic_models(_visible_models(gw, key))))
    elif key is None or key.settings.models is None:
        await send_json(send, 200, gw.snapshot.models_body)
    else:
        await send_json(send, 200, orjson.dumps({"object": "list", "data": _visible_models(gw, key)}))


async def _model(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        key = _caller(gw, scope)
    except GatewayError as err:
        await send_error(send, err)
        return
    name = scope["path"].split("/models/", 1)[1]
    models = _visible_models(gw, key)
    anthropic = is_anthropic_client(scope["headers"])
    for model in models:
        if model["id"] == name:
            await send_json(send, 200, orjson.dumps(anthropic_model(model) if anthropic else model))
            return
    missing = not_found_model(name, [m["id"] for m in models])
    if anthropic:
        await send_json(send, missing.status, orjson.dumps(anthropic_error(missing.status, missing.body())))
    else:
        await send_error(send, missing)


async def _key_info(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """The presenting key's own settings and spend (nothing about any other key or team)."""
    try:
        key = _caller(gw, scope)
        if key is None:
            raise GatewayError(404, "No virtual keys exist on this gateway (open mode)", code="no_virtual_keys")
    except GatewayError as err:
        await send_error(send, err)
        return
    await send_json(send, 200, orjson.dumps({**key.public(), "spend": await gw.key_spend_now(key)}))


async def _count_tokens(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    await count_tokens.handle(gw, scope, receive, send, _caller)


async def _feedback(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    await feedback.handle(gw, scope, receive, send, _caller)


async def _openapi(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, _OPENAPI)


async def _live(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, b'{"status":"alive"}')


def health_report(gw: Gateway) -> tuple[bool, dict]:
    """(ready, report): what /health answers. Not ready = draining, log failing, no policy."""
    reasons = []
    if not gw.started:
        reasons.append("starting")
    if gw.draining:
        reasons.append("draining: shutting down")
    writer = getattr(gw, "writer", None)
    if writer is not None and not writer.healthy:
        reasons.append(f"request log cannot be written: {writer.last_error}")
    report: dict = {"status": "ok" if not reasons else "unavailable", "reasons": reasons}
    if gw.started:
        snap = gw.snapshot
        routes = {}
        for name, route in snap.policy.routes.items():
            missing = [f"{t.id}: {r}" for t in route.targets if (r := snap.adapters[t.provider].unavailable_reason())]
            routes[name] = "ok" if len(missing) < len(route.targets) else "unavailable (" + "; ".join(missing) + ")"
        report.update(
            policy_version=snap.policy.version,
            policy_file=str(gw.policy_path),
            policy_reload_error=gw.last_reload_error,
            routes=routes,
            circuits=_circuits(gw),
            log=_log_report(writer) if writer else None,
            keys=(
                f"enforced: {len(gw.keys.keys)} virtual keys; requests need a valid key"
                if gw.keys.enforcing
                else "open: no virtual keys exist, every request is accepted (local development)"
            ),
            admin_api="enabled" if gw.admin_token else "disabled (set LLMGW_ADMIN_TOKEN)",
            credentials_encrypted=gw.secrets.can_store_credentials,
            cache=gw.cache.report(),
        )
    return not reasons, report


def _log_report(writer) -> dict:
    """/health's ``log``: rows written and waiting, and the failed flushes since the start with the
    last one's reason and age — kept once healed, so a failure shorter than a probe's period shows."""
    now = time.time()
    failure = writer.last_failure
    return {
        "rows_written": writer.rows_written,
        "buffered": writer.buffered,
        "last_flush_age_s": round(now - writer.last_flush_at, 3),
        "flush_errors": writer.flush_errors,
        "last_flush_error": None if failure is None else {"reason": failure[0], "age_s": round(now - failure[1], 3)},
    }


def _circuits(gw: Gateway) -> dict[str, dict[str, str]]:
    """Circuit breaker state per route and target (routes with a ``breaker`` only)."""
    out: dict[str, dict[str, str]] = {}
    for (route, target), state in sorted(gw.breakers.states().items()):
        out.setdefault(route, {})[target] = state
    return out


async def _health(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    ready, report = health_report(gw)
    await send_json(send, 200 if ready else 503, orjson.dumps(report))


async def _guarded_health(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """/health beyond loopback: the status for anyone (load balancers), the details (policy
    file, routes, breakers, key count, ...) only with the dashboard or admin token."""
    ready, report = health_report(gw)
    if not _holds_token(scope, viewer_token(), gw.admin_token):
        report = {"status": report["status"]}
    await send_json(send, 200 if ready else 503, orjson.dumps(report))


async def _metrics(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    from prometheus_client import CONTENT_TYPE_LATEST

    await gw.metrics.refresh()  # e.g. the shared budgets, read from Redis (proxy/budget_metrics.py)
    await send_bytes(send, 200, gw.metrics.render(), [(b"content-type", CONTENT_TYPE_LATEST.encode())])


ROUTES: dict[str, dict[str, Handler]] = {
    "/v1/chat/completions": {"POST": _chat},
    "/chat/completions": {"POST": _chat},
    "/v1/completions": {"POST": completions.handle},
    "/completions": {"POST": completions.handle},
    "/v1/responses": {"POST": responses_inbound.handle},
    "/responses": {"POST": responses_inbound.handle},
    "/v1/messages": {"POST": anthropic_inbound.handle},
    "/v1/messages/count_tokens": {"POST": _count_tokens},
    "/v1/embeddings": {"POST": _embeddings},
    "/embeddings": {"POST": _embeddings},
    "/v1/models": {"GET": _models},
    "/models": {"GET": _models},
    "/health": {"GET": _health},
    "/health/ready": {"GET": _health},
    "/health/live": {"GET": _live},
    "/metrics": {"GET": _metrics},
    "/v1/llmgw/key": {"GET": _key_info},
    "/v1/llmgw/feedback": {"POST": _feedback},
    "/openapi.json": {"GET": _openapi},
}
# routes with a path parameter, served by prefix in GatewayApp._route: {template: methods}
TEMPLATES: dict[str, tuple[str, ...]] = {"/v1/models/{model}": ("GET",), "/models/{model}": ("GET",)}
# what /openapi.json documents and what 404/405 answers list: the two tables above
_TABLE = {**{path: tuple(methods) for path, methods in ROUTES.items()}, **TEMPLATES}
_SUPPORTED = openapi.route_lines(_TABLE)
_OPENAPI = orjson.dumps(openapi.document(_TABLE))
# API paths (never the dashboards'): the table above, plus these prefixes. ``/openai/`` is where
# openai.AzureOpenAI sends requests (``/openai/deployments/{model}/...``): none is served, and
# the SDK gets the JSON 404 naming the routes, not the dashboards' HTML page
_API_PREFIXES = ("/v1/", "/admin/", "/health", "/metrics", "/models/", "/openai/")
# handlers that stamp their own x-request-id (the pipeline's: it is also the log row's id)
_OWN_REQUEST_ID = frozenset(
    (_chat, _embeddings, anthropic_inbound.handle, responses_inbound.handle, completions.handle)
)
_MAX_CLIENT_ID = 200
_INTERNAL = GatewayError(500, "Internal gateway error", "server_error", code="internal_error")


def is_api_path(path: str) -> bool:
    """The unversioned aliases (``/chat/completions``, ``/models``, ...) are API paths exactly
    like their ``/v1/`` twins: keys protect them, never the dashboard token."""
    return path in ROUTES or path.startswith(_API_PREFIXES)


class _Stamped:
    """``send`` that stamps the response as the pipeline does: ``x-request-id`` is a fresh
    gateway id; a client's own ``x-request-id`` comes back in ``x-client-request-id``.
    ``started`` tells whether the response has begun."""

    __slots__ = ("_send", "_ids", "started")

    def __init__(self, scope: Scope, send: Send) -> None:
        self._send, self.started = send, False
        self._ids = [(b"x-request-id", pipeline.new_request_id().encode())]
        for name, value in scope["headers"]:
            if name == b"x-request-id" and value:
                self._ids = [self._ids[0], (b"x-client-request-id", value[:_MAX_CLIENT_ID])]

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            headers = list(message.get("headers", ()))
            if not any(name.lower() == b"x-request-id" for name, _ in headers):
                message = {**message, "headers": [*headers, *self._ids]}
        await self._send(message)


def viewer_token() -> str | None:
    import os

    return os.environ.get("LLMGW_DASHBOARD_TOKEN") or os.environ.get("LLMGW_ADMIN_TOKEN") or None


def _holds_token(scope: Scope, *tokens: str | None) -> bool:
    """Whether the request carries one of ``tokens`` (Bearer, or Basic with it as password)."""
    import base64
    import hmac

    wanted = [t.encode() for t in tokens if t]
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, cred = value.partition(b" ")
            cred = cred.strip()
            if scheme.lower() == b"basic":
                try:
                    cred = base64.b64decode(cred).partition(b":")[2]
                except ValueError:
                    cred = b""
            if any(hmac.compare_digest(cred, t) for t in wanted):
                return True
    return False


def _viewer_denied(scope: Scope) -> GatewayError | None:
    """None when the request carries the dashboard token (Bearer, or Basic with it as password)."""
    token = viewer_token()
    if token is None:
        return GatewayError(
            403, "Dashboards and /metrics are served beyond loopback only with a token: set LLMGW_DASHBOARD_TOKEN "
            "(or start with --open-dashboards)", "permission_error", code="viewer_token_missing",
        )  # fmt: skip
    if _holds_token(scope, token):
        return None
    return GatewayError(401, "This page needs the dashboard token", code="viewer_token_required")


class GatewayApp:
    """ASGI entry point. ``mount`` (the dashboard bridge) serves every other path."""

    def __init__(self, gateway: Gateway, mount: Mount | None = None, guarded: bool = False) -> None:
        self.gateway = gateway
        self.mount = mount
        # dashboards and /metrics need a token when the server listens beyond loopback, and
        # /health shows its details only with a token
        self.guarded = guarded
        self.routes = ROUTES
        if guarded:
            self.routes = {**ROUTES, "/health": {"GET": _guarded_health}, "/health/ready": {"GET": _guarded_health}}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            if self.guarded and _viewer_denied(scope) is not None:
                await send({"type": "websocket.close", "code": 1008})
                return
            if self.mount is not None:
                await self.mount(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1000})
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        methods = self.routes.get(path)
        handler = methods.get(scope["method"]) if methods is not None else None
        if handler in _OWN_REQUEST_ID:  # the pipeline stamps its responses and answers its own errors
            await handler(self.gateway, scope, receive, send)
            return
        stamped = _Stamped(scope, send)  # every response carries x-request-id
        try:
            await self._route(scope, receive, stamped, methods, handler)
        except Exception:
            log.exception("%s %s failed", scope["method"], path)
            if stamped.started:
                raise  # mid-response: the server closes the connection
            await send_error(stamped, _INTERNAL)

    async def _route(
        self, scope: Scope, receive: Receive, send: Send, methods: dict[str, Handler] | None, handler: Handler | None
    ) -> None:
        path = scope["path"]
        if self.guarded and (path == "/metrics" or not is_api_path(path)):
            err = _viewer_denied(scope)
            if err is not None:
                await send_error(send, err, [(b"www-authenticate", b'Basic realm="llmgw"')])
                return
        if methods is not None:
            if handler is None and scope["method"] == "HEAD":
                handler = methods.get("GET")
            if handler is None:
                allow = [(b"allow", ", ".join(methods).encode())]
                await send_error(send, method_not_allowed(scope["method"], path, _SUPPORTED), allow)
                return
            await handler(self.gateway, scope, receive, send)
        elif path.startswith(("/v1/models/", "/models/")):  # TEMPLATES' routes
            if scope["method"] not in ("GET", "HEAD"):
                allow = [(b"allow", b"GET")]
                await send_error(send, method_not_allowed(scope["method"], path, _SUPPORTED), allow)
                return
            await _model(self.gateway, scope, receive, send)
        elif path.startswith("/admin/"):
            await admin.handle(self.gateway, scope, receive, send)
        elif self.mount is not None and not is_api_path(path):
            await self.mount(scope, receive, send)
        else:
            await send_error(send, not_found_path(path, _SUPPORTED))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.gateway.start()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    if self.mount is not None:
                        await self.mount.close()
                    await self.gateway.stop()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return


__all__ = ["JSON", "GatewayApp", "health_report", "is_api_path"]
