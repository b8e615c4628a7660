"""Panel's Tornado server on its own thread and event loop, bound to 127.0.0.1:<free port>.

This is how the dashboard child process (:mod:`.panel_process`) runs Panel, and, with
``LLMGW_DASHBOARD_ISOLATION=thread``, how the proxy process itself would: there a page
build (100–300 ms of Python) never runs on the proxy's event loop, but it still shares the
GIL and the garbage collector with it, which the measurements in docs/server.md show to
stall proxy requests. Panel is imported inside the thread, on the first dashboard request.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("llmgw.dashboard")

ReadyCallback = Callable[[int | None, BaseException | None], None]


def websocket_origins(host: str, port: int, extra: str | None = None) -> list[str]:
    """The ``host:port`` values Bokeh accepts as a websocket ``Origin``, never ``*``.

    The public address; its loopback aliases when it is a loopback or wildcard address; the
    machine's names when it is a wildcard (0.0.0.0, ::); plus ``extra`` (comma-separated
    ``host[:port]``, from ``LLMGW_DASHBOARD_ORIGINS``, for names only a proxy in front knows).
    """
    origins = [] if ":" in host else [f"{host}:{port}"]  # Bokeh cannot match IPv6 literals
    if _is_loopback_or_any(host):
        origins += [f"localhost:{port}", f"127.0.0.1:{port}"]
    if _is_any(host):
        origins += [f"{name}:{port}" for name in (socket.gethostname(), socket.getfqdn()) if name]
    for item in (extra or "").split(","):
        item = item.strip()
        if item and item != "*" and item.count(":") <= 1:
            origins.append(item)
    return list(dict.fromkeys(origins))


def _is_any(host: str) -> bool:
    try:
        return host == "" or ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _is_loopback_or_any(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


class PanelThread:
    """Runs the dashboard pages in a Bokeh/Panel server on a daemon thread.

    ``on_ready(port, error)`` is called once, from this thread, when the server listens (with
    its port) or failed to start (with the exception).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        origins: list[str],
        on_ready: ReadyCallback,
        policy_path: str | os.PathLike[str] | None = None,
        gateway_url: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.origins = origins
        self.on_ready = on_ready
        self.policy_path = policy_path
        self.gateway_url = gateway_url
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._stores: list[Any] = []
        self._thread = threading.Thread(target=self._run, name="llmgw-panel", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and its loop, and wait for the thread (blocking)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._shutdown)
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the dashboard server thread did not stop within %.0f s", timeout)

    # -- on the Panel thread -----------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._server = self._start_server()
        except BaseException as exc:
            log.exception("the dashboard server could not start")
            self.on_ready(None, exc)
            loop.close()
            return
        self.port = self._server.port
        log.info("dashboards: Panel server on 127.0.0.1:%d (internal)", self.port)
        self.on_ready(self.port, None)
        try:
            loop.run_forever()
        finally:
            self._close_stores()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def _start_server(self) -> Any:
        import panel as pn
        from tornado.ioloop import IOLoop

        from . import page_handler
        from .pages import build_apps

        logging.getLogger("tornado.access").setLevel(logging.WARNING)  # one line per asset
        pn.extension()  # no extension: no page loads Tabulator's (or any other's) scripts
        limits = page_handler.SessionLimits.from_env()  # a bad value: the server does not start, and says why
        page_handler.install(limits)  # a page's first bytes before its session; the session limits; its scripts
        idle_ms = max(1, round(limits.idle_s * 1000))
        apps, self._stores = build_apps(self.data_dir, self.policy_path, self.gateway_url)
        server = pn.serve(
            apps,
            port=0,
            address="127.0.0.1",
            websocket_origin=self.origins,
            loop=IOLoop.current(),
            show=False,
            start=False,
            title={url: "llmgw" for url in apps},
            location=True,  # filters live in the URL query: a change rewrites it
            verbose=False,
            compress_response=True,  # gzip ~2.7 MB of JS/CSS on Panel's side, not the proxy's
            # a session without a websocket (a hung-up load, a closed tab) goes after idle_s,
            # looked for every idle_s/5 (at most 3 s); one with a websocket is never discarded
            unused_session_lifetime_milliseconds=idle_ms,
            check_unused_sessions_milliseconds=max(100, min(3000, idle_ms // 5)),
        )
        server.start()
        return server

    def _shutdown(self) -> None:
        try:
            if self._server is not None:
                self._server.stop(wait=False)
        except Exception:
            log.exception("stopping the dashboard server failed")
        finally:
            assert self._loop is not None
            self._loop.stop()

    def _close_stores(self) -> None:
        for store in self._stores:
            close = getattr(store, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("closing a dashboard store failed")


class ThreadedPanel:
    """:class:`PanelThread` behind the async interface of :class:`.panel_process.PanelProcess`
    (``LLMGW_DASHBOARD_ISOLATION=thread``: kept to measure against, see docs/server.md)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        origins: list[str],
        policy_path: str | os.PathLike[str] | None = None,
        gateway_url: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.origins = origins
        self.policy_path = policy_path
        self.gateway_url = gateway_url
        self.thread: PanelThread | None = None

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[int] = loop.create_future()

        def settle(port: int | None, error: BaseException | None) -> None:
            if ready.done():
                return
            if error is not None or port is None:
                ready.set_exception(RuntimeError(f"{type(error).__name__}: {error}"))
            else:
                ready.set_result(port)

        def on_ready(port: int | None, error: BaseException | None) -> None:  # Panel's thread
            with contextlib.suppress(RuntimeError):  # the caller's loop is gone: nobody waits
                loop.call_soon_threadsafe(settle, port, error)

        self.thread = PanelThread(self.data_dir, self.origins, on_ready, self.policy_path, self.gateway_url)
        self.thread.start()
        return await ready

    async def stop(self) -> None:
        thread, self.thread = self.thread, None
        if thread is not None:
            await asyncio.to_thread(thread.stop)


__all__ = ["PanelThread", "ThreadedPanel", "websocket_origins"]
