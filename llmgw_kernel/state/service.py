"""Starting the shared state for one gateway process (called once from ``Gateway.start``).

Without a Redis URL (no ``state.redis`` in the policy and no ``LLMGW_REDIS_URL``) this returns
None and nothing else in this package runs: one process, state in memory. With one, it
connects (a Redis that is down at start is not fatal: the process starts, follows
``on_unavailable``, and connects when Redis answers), seeds Redis from this data directory's
log if Redis does not hold it yet, and starts the key sync.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .config import redis_settings

if TYPE_CHECKING:
    from ..proxy.runtime import Gateway
    from .admission import SharedLimits
    from .keys_sync import KeySync

log = logging.getLogger("llmgw.state")


class SharedState:
    """What one process holds of the shared state: the admission state and the key sync."""

    def __init__(self, limits: SharedLimits, keys: KeySync) -> None:
        self.limits = limits
        self.keys = keys
        self.client = limits.client

    async def close(self) -> None:
        await self.keys.stop()
        await self.limits.stop()
        await self.client.close()


async def start_shared_state(gw: Gateway, policy: Any) -> SharedState | None:
    """The shared state of ``gw`` (None: no Redis configured)."""
    found = redis_settings(policy.state)
    if found is None:
        return None
    url, settings = found
    from .admission import SharedLimits
    from .client import StateClient, StateUnavailable
    from .keys_sync import KeySync
    from .seed import dir_id

    client = StateClient(url, settings, gw.metrics.registry)

    def log_state() -> Any:
        from ..proxy.runtime import rebuild_limits

        gw.writer.flush()  # every row settled so far is in a segment before the log is read
        return rebuild_limits(gw.snapshot.policy, gw.data_dir, gw.keys)

    limits = SharedLimits(client, gw.limits, dir_id(gw.data_dir), log_state)
    gw.keys.replica = True  # replicas may share the data directory: each writes keys itself, under the file lock
    keys = KeySync(client, gw.keys)
    state = SharedState(limits, keys)
    try:
        await client.run(client.redis.ping, "start")
        log.info("shared state: Redis at %s (prefix %s)", _safe(url), settings.prefix)
        await keys.start()
    except StateUnavailable as exc:
        log.error("shared state: %s; starting anyway (on_unavailable: %s)", exc, settings.on_unavailable)
        client.on_up(keys.start)
    return state


def _safe(url: str) -> str:
    """``url`` without its password, for the log."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{parts.port or 6379}{parts.path}"
