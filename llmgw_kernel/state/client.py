"""The connection to Redis: timeouts, TLS, scripts, and whether Redis is reachable now.

Every call goes through :meth:`StateClient.run`, which turns a connection error or a timeout
into :class:`StateUnavailable` and marks the state down. While it is down, calls fail at once
(no connect timeout per request) and a watcher pings Redis every ``RECONNECT_S`` until it
answers; then the state is up again and the callers' reconnect hooks run (the admission
state re-seeds an empty Redis from the log before it admits against it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .config import RedisSettings
from .pipe import Pipe, RespError, Script

log = logging.getLogger("llmgw.state")

RECONNECT_S = 0.25


class StateUnavailable(Exception):
    """Redis did not answer (down, unreachable, or slower than the command timeout)."""


class StateClient:
    """One Redis client per process (a pool of connections) with the settings of the policy."""

    def __init__(self, url: str, settings: RedisSettings, registry: Any = None) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options: dict[str, Any] = {
            "socket_connect_timeout": settings.connect_timeout_ms / 1000,
            "socket_timeout": settings.command_timeout_ms / 1000,
            "retry": Retry(NoBackoff(), 0),  # a failure is handled here, not retried inside a request
            # a bounded pool that waits for a free connection (Redis runs one command at a time anyway)
            "max_connections": settings.max_connections,
            "timeout": max(1.0, 4 * (settings.connect_timeout_ms + settings.command_timeout_ms) / 1000),
        }
        if url.startswith("rediss://") and settings.ca_file:
            options["ssl_ca_certs"] = settings.ca_file
        pool = aioredis.BlockingConnectionPool.from_url(url, **options)
        self.redis = aioredis.Redis(connection_pool=pool)  # everything but the per-request scripts
        self.pipe = Pipe(
            url, settings.connect_timeout_ms / 1000, settings.command_timeout_ms / 1000, settings.ca_file
        )  # fmt: skip
        self.settings = settings
        self.prefix = settings.prefix + ":"
        self.up = True
        self.down_since: float | None = None
        self._watcher: asyncio.Task | None = None
        self._on_up: list[Callable[[], Awaitable[None]]] = []
        self.metrics = _StateMetrics(registry, self)

    def key(self, *parts: object) -> str:
        """A key under this deployment's prefix: parts joined by ``|`` (None as empty)."""
        return self.prefix + "|".join("" if p is None else str(p) for p in parts)

    def script(self, source: str) -> Script:
        """A script run by EVALSHA through :meth:`eval` (sent in full when Redis forgot it)."""
        return Script(source)

    async def eval(self, script: Script, keys: list[Any], args: list[Any], action: str) -> Any:
        """Run ``script`` on the pipelined connection (:mod:`.pipe`)."""
        return await self.run(lambda: self.pipe.evalsha(script, keys, args), action)

    def on_up(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` each time Redis answers again after being down."""
        self._on_up.append(hook)

    async def run(self, call: Callable[[], Awaitable[Any]], action: str) -> Any:
        """Await ``call()``; :class:`StateUnavailable` when Redis is down or does not answer."""
        if not self.up:
            raise StateUnavailable(f"Redis is unavailable (since {self.down_since:.0f})")
        try:
            return await call()
        except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
            self.mark_down(exc, action)
            raise StateUnavailable(f"Redis did not answer ({type(exc).__name__}: {exc})") from None
        except (RespError, ResponseError) as exc:  # Redis answered with an error: a bug, but never a 500 to the client
            log.error("shared state: Redis refused the %s: %s", action, exc)
            raise StateUnavailable(f"Redis refused the {action} ({exc})") from None

    def mark_down(self, exc: BaseException, action: str) -> None:
        if self.up:
            log.error("shared state: Redis unavailable during %s (%s); reconnecting", action, exc)
            self.up, self.down_since = False, time.time()
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        while True:
            await asyncio.sleep(RECONNECT_S)
            try:
                await self.redis.ping()
            except Exception:
                continue
            log.warning("shared state: Redis answers again after %.1f s", time.time() - (self.down_since or 0))
            self.up, self.down_since = True, None
            for hook in self._on_up:
                try:
                    await hook()
                except Exception:
                    log.exception("shared state: a reconnect step failed")
            if self.up:  # a step that found Redis gone again marked it down: this watcher keeps watching
                return

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        self.pipe.close()
        await self.redis.aclose()


class _StateMetrics:
    """``llmgw_state_up`` and ``llmgw_state_unavailable_total{decision}`` on /metrics."""

    def __init__(self, registry: Any, client: StateClient) -> None:
        from prometheus_client import Counter, Gauge

        self.unavailable = Counter(
            "llmgw_state_unavailable",
            "Requests decided without the shared state (Redis unreachable), by what was decided",
            ["decision"],
            registry=registry,
        )
        up = Gauge("llmgw_state_up", "1 when the shared state (Redis) answers", registry=registry)
        up.set_function(lambda: 1.0 if client.up else 0.0)
