"""The dashboards on the proxy's port: an ASGI reverse proxy to an internal Panel server.

Every non-API path (and every websocket) reaching :class:`GatewayApp` comes here. The first
one starts Panel's Tornado server, on its own event loop, bound to 127.0.0.1 and a free
internal port; requests wait (up to ``start_timeout_s``) until it listens. From then on the
bridge forwards HTTP (any method, the response streamed back as it arrives) and websockets
(both directions, text and binary, close codes propagated) through one aiohttp session.
The proxy's event loop only moves bytes; pages and sessions are built on Panel's loop.

Panel runs in a child process by default (:mod:`.dashboard.panel_process`): on a thread of
this process (``LLMGW_DASHBOARD_ISOLATION=thread``, :mod:`.dashboard.panel_thread`) it
shared the GIL and the garbage collector with the proxy, and page loads stalled proxy
requests by up to 250 ms (docs/server.md, "Dashboards do not stall the proxy").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .proxy.asgi import ClientDisconnected, Receive, Scope, Send, read_body
from .proxy.errors import GatewayError

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("llmgw.dashboard")

_HOP_BY_HOP = frozenset(
    (b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
     b"trailer", b"trailers", b"transfer-encoding", b"upgrade", b"content-length")
)  # fmt: skip
_RESPONSE_DROP = _HOP_BY_HOP | {b"server"}
_WS_HANDSHAKE = _HOP_BY_HOP | {
    b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
    b"sec-websocket-protocol", b"sec-websocket-accept",
}  # fmt: skip
_MAX_REQUEST_BODY = 16 * 1024 * 1024
_CHUNK = 64 * 1024
_RETRY_AFTER_FAILURE_S = 30.0
#: a page's path + query, at most: its live connection (Bokeh's websocket) asks for the same
#: query at ``<path>/ws``, and that request's line ("GET <path>/ws?<query> HTTP/1.1") over
#: 8,192 bytes is refused by the websocket handshake (uvicorn's websockets-sansio) — the page
#: then stayed "Loading…" for good, its console saying only "Could not open websocket"
MAX_PAGE_TARGET = 8192 - len("GET /ws? HTTP/1.1\r\n")


class Backend(Protocol):
    """Where Panel runs: a child process (default) or a thread of this process."""

    async def start(self) -> int: ...  # the internal port, once Panel listens

    async def stop(self) -> None: ...

    @property
    def alive(self) -> bool: ...  # False once the server is gone (it is then started again)


class DashboardUnavailable(Exception):
    """Panel is not (yet) serving: the reason goes to the client as a 503."""


class DashboardBridge:
    """ASGI app for the dashboard paths; Panel is started on the first request.

    ``gateway`` is accepted for the server's constructor contract; pages read the request
    log (and may call the public HTTP API), never the proxy's live objects, since by
    default they run in another process. ``backend`` replaces the Panel server (tests).
    """

    def __init__(
        self,
        data_dir: Path,
        public_host: str,
        public_port: int,
        gateway: Any = None,
        start_timeout_s: float = 60.0,
        isolation: str | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.public_host = public_host
        self.public_port = public_port
        self.gateway = gateway
        self.start_timeout_s = start_timeout_s
        self.isolation = isolation or os.environ.get("LLMGW_DASHBOARD_ISOLATION") or "process"
        if self.isolation not in ("process", "thread"):
            raise ValueError(f"dashboard isolation must be 'process' or 'thread', not {self.isolation!r}")
        self.port: int | None = None  # Panel's internal port, once it listens
        self._given_backend = backend  # tests put any server behind the bridge this way
        self._backend: Backend | None = None
        self._ready: asyncio.Task[int] | None = None
        self._failed_at = 0.0
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    # -- ASGI ------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and scope["method"] == "GET" and _too_long_for_a_page(scope):
            n = len(scope.get("raw_path") or b"") + len(scope["query_string"])
            await _send_text(send, 414, _TOO_LONG.format(n=n))
            return
        if kind == "http" and scope["method"] == "GET" and _wants_html(scope) and not self._serving():
            try:  # a page while Panel starts (seconds): a placeholder now, which reloads itself
                self._starting()
            except DashboardUnavailable as exc:
                await _send_text(send, 503, str(exc))
                return
            await _send_loading(send)
            return
        try:
            port = await self._wait_ready()
        except DashboardUnavailable as exc:
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1013, "reason": str(exc)[:120]})
            elif kind == "http":
                await _send_text(send, 503, str(exc))
            return
        if kind == "http":
            await self._forward_http(scope, receive, send, port)
        elif kind == "websocket":
            await self._forward_websocket(scope, receive, send, port)

    async def close(self) -> None:
        """Stop the dashboard server and the bridge's HTTP client (idempotent)."""
        self._closed = True
        ready, backend, self._backend = self._ready, self._backend, None
        if ready is not None and not ready.done():
            ready.cancel()
            await asyncio.gather(ready, return_exceptions=True)
        if backend is not None:
            await backend.stop()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- Panel lifecycle -------------------------------------------------------------------
    async def _wait_ready(self) -> int:
        ready = self._starting()
        try:
            return await asyncio.wait_for(asyncio.shield(ready), self.start_timeout_s)
        except TimeoutError:
            raise DashboardUnavailable(
                f"dashboards are still starting after {self.start_timeout_s:.0f} s; try again"
            ) from None
        except DashboardUnavailable:
            raise
        except Exception as exc:
            raise DashboardUnavailable(f"dashboards failed to start: {exc}") from exc

    def _starting(self) -> asyncio.Task[int]:
        """The task that starts (or started) Panel; a new one if it is not running."""
        if self._closed:
            raise DashboardUnavailable("dashboards are shutting down")
        ready = self._ready
        if ready is not None and ready.done() and not ready.cancelled() and ready.exception() is None:
            if getattr(self._backend, "alive", True):
                return ready
            log.warning("the dashboard server exited; starting it again")
            ready = self._ready = None
        if ready is None or (ready.done() and (ready.cancelled() or ready.exception() is not None)):
            if ready is not None and time.monotonic() - self._failed_at < _RETRY_AFTER_FAILURE_S:
                raise DashboardUnavailable(f"dashboards failed to start: {_reason(ready)}")
            ready = self._start()
        return ready

    def _serving(self) -> bool:
        ready = self._ready
        return (
            ready is not None and ready.done() and not ready.cancelled() and ready.exception() is None
            and getattr(self._backend, "alive", True)
        )  # fmt: skip

    def _start(self) -> asyncio.Task[int]:
        from .dashboard.panel_thread import websocket_origins

        origins = websocket_origins(self.public_host, self.public_port, os.environ.get("LLMGW_DASHBOARD_ORIGINS"))
        if self._given_backend is not None:
            self._backend = self._given_backend
        elif self.isolation == "thread":
            from .dashboard.panel_thread import ThreadedPanel

            self._backend = ThreadedPanel(self.data_dir, origins, **self._page_sources())
        else:
            from .dashboard.panel_process import PanelProcess

            self._backend = PanelProcess(self.data_dir, origins, **self._page_sources())
        log.info("starting the dashboard server (%s; websocket origins: %s)", self.isolation, ", ".join(origins))
        ready = asyncio.ensure_future(self._launch(self._backend))
        ready.add_done_callback(_retrieve)
        self._ready = ready
        return ready

    def _page_sources(self) -> dict[str, Any]:
        """Where pages read what the log cannot say: the live policy file and this gateway's
        own /health and /metrics (on its loopback address)."""
        from .dashboard.live import gateway_url

        policy = getattr(self.gateway, "policy_path", None)
        return {"policy_path": policy, "gateway_url": gateway_url(self.public_host, self.public_port)}

    async def _launch(self, backend: Backend) -> int:
        try:
            self.port = await backend.start()
        except BaseException:
            self._failed_at = time.monotonic()
            raise
        log.info("dashboards: Panel serves on 127.0.0.1:%d (internal)", self.port)
        return self.port

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
                auto_decompress=False,  # bytes pass through as Panel encoded them
                cookie_jar=aiohttp.DummyCookieJar(),  # never share one browser's cookies
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120),
            )
        return self._session

    # -- HTTP ------------------------------------------------------------------------------
    async def _forward_http(self, scope: Scope, receive: Receive, send: Send, port: int) -> None:
        import aiohttp

        try:
            body = await read_body(receive, _MAX_REQUEST_BODY, _header(scope, b"content-length"))
        except ClientDisconnected:
            return
        except GatewayError as exc:  # too large, or a bad Content-Length
            await _send_text(send, exc.status, exc.message)
            return
        try:
            async with self._client().request(
                scope["method"],
                _url("http", port, scope),
                headers=_forward_headers(scope, _HOP_BY_HOP),
                data=body or None,
                allow_redirects=False,
            ) as resp:
                headers = [(k, v) for k, v in resp.raw_headers if k.lower() not in _RESPONSE_DROP]
                length = resp.headers.get("Content-Length")
                if length is not None:
                    headers.append((b"content-length", length.encode("latin-1")))
                await send({"type": "http.response.start", "status": resp.status, "headers": headers})
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("dashboard request %s %s failed: %s", scope["method"], scope["path"], exc)
            with contextlib.suppress(Exception):  # fails if the response had started
                await _send_text(send, 502, f"dashboard server error: {exc}")

    # -- websockets ------------------------------------------------------------------------
    async def _forward_websocket(self, scope: Scope, receive: Receive, send: Send, port: int) -> None:
        import aiohttp

        if (await receive())["type"] != "websocket.connect":
            return
        try:
            upstream = await self._client().ws_connect(
                _url("ws", port, scope),
                headers=_forward_headers(scope, _WS_HANDSHAKE),
                protocols=tuple(scope.get("subprotocols") or ()),
                max_msg_size=0,
                autoping=True,
            )
        except aiohttp.WSServerHandshakeError as exc:
            log.info("dashboard websocket %s refused: %s %s", scope["path"], exc.status, exc.message)
            await send({"type": "websocket.close", "code": 1008 if exc.status == 403 else 1011})
            return
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("dashboard websocket %s failed: %s", scope["path"], exc)
            await send({"type": "websocket.close", "code": 1011})
            return
        try:
            await send({"type": "websocket.accept", "subprotocol": upstream.protocol})
            await _pump(receive, send, upstream)
        finally:
            await upstream.close()


async def _pump(receive: Receive, send: Send, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Copy messages both ways until either side closes; pass the close code on."""
    import aiohttp

    async def downstream() -> None:  # browser -> Panel
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                if message.get("text") is not None:
                    await upstream.send_str(message["text"])
                else:
                    await upstream.send_bytes(message.get("bytes") or b"")
            elif message["type"] == "websocket.disconnect":
                await upstream.close(code=_sendable(message.get("code", 1000)))
                return

    async def upstream_() -> None:  # Panel -> browser
        async for msg in upstream:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await send({"type": "websocket.send", "text": msg.data})
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await send({"type": "websocket.send", "bytes": msg.data})
            elif msg.type == aiohttp.WSMsgType.ERROR:
                break
        with contextlib.suppress(Exception):  # the browser may be gone already
            await send({"type": "websocket.close", "code": _sendable(upstream.close_code or 1011)})

    tasks = [asyncio.ensure_future(downstream()), asyncio.ensure_future(upstream_())]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.debug("dashboard websocket ended: %r", exc)


def _sendable(code: int) -> int:
    """A close code that may be sent in a close frame (1005/1006/1015 are reserved)."""
    allowed = 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code < 5000
    return code if allowed else 1000


def _url(scheme: str, port: int, scope: Scope) -> Any:
    from yarl import URL

    path = scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string") or b""
    target = path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    return URL(f"{scheme}://127.0.0.1:{port}{target}", encoded=True)


def _forward_headers(scope: Scope, drop: frozenset[bytes]) -> list[tuple[str, str]]:
    """The client's headers (Host and Origin included, so Bokeh sees the public address)."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k.lower() not in drop]


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


LOADING_HTML = b"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="1"><title>llmgw</title></head>
<body style="font-family: sans-serif; color: #5f6b7a; padding: 2em">
<h2 data-loading="starting">llmgw &middot; loading the dashboards&hellip;</h2>
<p>The dashboard server is starting (a few seconds, once). This page reloads itself.</p>
</body></html>
"""


_TOO_LONG = (
    "This dashboard address is too long ({n:,} bytes of path and query; at most "
    f"{MAX_PAGE_TARGET:,}): a page's live connection carries its filters in its address, and "
    "a longer one cannot be opened. Shorten the filters in the URL."
)


def _too_long_for_a_page(scope: Scope) -> bool:
    """A page request (HTML) whose websocket could not be opened: its path and query too long."""
    raw = scope.get("raw_path") or scope["path"].encode()
    return len(raw) + len(scope["query_string"]) > MAX_PAGE_TARGET and _wants_html(scope)


def _wants_html(scope: Scope) -> bool:
    accept = _header(scope, b"accept") or b""
    return b"text/html" in accept


async def _send_loading(send: Send) -> None:
    """The placeholder a browser gets while Panel starts: an HTML page that reloads itself
    every second (200, so the browser logs no error; ``x-llmgw-dashboard: starting`` tells a
    script it is not the page yet)."""
    headers = [
        (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(LOADING_HTML)).encode()),
        (b"cache-control", b"no-store"), (b"x-llmgw-dashboard", b"starting"),
    ]  # fmt: skip
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": LOADING_HTML})


async def _send_text(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    if status == 503:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _reason(task: asyncio.Task[int]) -> str:
    return "cancelled" if task.cancelled() else str(task.exception())


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # mark a start failure as seen; it is reported per request


__all__ = ["DashboardBridge", "DashboardUnavailable"]
