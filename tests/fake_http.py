"""The part every fake upstream shares: an aiohttp app on its own thread and loop, on a free port."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web


class FakeServer:
    """Subclasses add their routes in ``routes``, record what they received in ``requests``, and
    every request their API would reject in ``invalid`` (the gateway should send none)."""

    name = "fake"
    api_key: str | None = None

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.invalid: list[str] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self, port: int = 0) -> FakeServer:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._start(port))
            ready.set()
            self._loop.run_forever()

        threading.Thread(target=run, daemon=True, name=self.name).start()
        ready.wait(10)
        return self

    async def _start(self, port: int = 0) -> None:
        app = web.Application(client_max_size=64 << 20)
        self.routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._loop and self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def record(self, request: web.Request) -> dict[str, Any]:
        """Remember the request (path, query, headers, JSON body) and return the body. A key in the
        URL is invalid whatever the API: URLs end up in logs."""
        if self.api_key and self.api_key in request.path_qs:
            self.invalid.append(f"{request.path}: the API key travelled in the URL")
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests.append({
            "path": request.path, "query": dict(request.query), "headers": dict(request.headers), "body": body,
        })  # fmt: skip
        return body if isinstance(body, dict) else {}
