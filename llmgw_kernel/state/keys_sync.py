"""Virtual keys seen by every replica: key creation, changes, revocation and rotation.

Every replica keeps its own ``keys/events.jsonl`` (the durable history, as in one process)
and the shared state holds one list of every event, ``P:keys``. A write on any replica is
appended to that list right after it is durable locally (:attr:`KeyStore.on_commit`); each
replica polls the list's length every ``POLL_S`` and folds in what it has not seen
(:meth:`KeyStore.apply_remote`, idempotent by event identity). So a revocation on one
replica refuses the key on every other within ``POLL_S`` plus one round trip (measured in
tests/state/test_two_gateways.py). Polling one integer is cheaper and simpler to make
reliable than pub/sub, whose messages are lost while a subscriber reconnects.

When the list is shorter than what a replica has read (Redis restarted empty), or at start,
the replica reconciles: it folds in the list, then appends the events of its own history the
list lacks, so a Redis that lost the list gets it back from the replicas' files.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from ..keys.store import KeyStore, event_identity
from .client import StateClient, StateUnavailable

log = logging.getLogger("llmgw.state")

POLL_S = 0.2


class KeySync:
    """The key-event list shared through Redis, for one process's :class:`KeyStore`."""

    def __init__(self, client: StateClient, store: KeyStore) -> None:
        self.client = client
        self.store = store
        self.list_key = client.key("keys")
        self.read = 0  # entries of the list folded in
        self._outbox: list[bytes] = []  # own events not yet in the list
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Reconcile with the list, then poll it."""
        if self._task is not None and not self._task.done():
            return
        self._loop = asyncio.get_running_loop()
        self.store.on_commit = self._committed
        self._task = self._loop.create_task(self._run())

    def _committed(self, events: list[dict[str, Any]]) -> None:
        """A local write (called on whatever thread wrote it): queue it for the list."""
        lines = [orjson.dumps(ev) for ev in events]
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._queue, lines)

    def _queue(self, lines: list[bytes]) -> None:
        self._outbox.extend(lines)
        loop = self._loop
        if loop is not None:
            loop.create_task(self._flush_outbox())

    async def _flush_outbox(self) -> None:
        if not self._outbox or not self.client.up:
            return
        lines, self._outbox = self._outbox, []
        try:
            await self.client.run(lambda: self.client.redis.rpush(self.list_key, *lines), "key sync")
        except StateUnavailable:
            self._outbox[:0] = lines

    async def _run(self) -> None:
        reconciled = False
        while True:
            try:
                if self.client.up:
                    if not reconciled:
                        await self.reconcile()
                        reconciled = True
                    reconciled = await self.poll()
                    await self._flush_outbox()
            except StateUnavailable:
                reconciled = False
            except Exception:
                log.exception("key sync failed; retrying")
                reconciled = False
            await asyncio.sleep(POLL_S)

    async def poll(self) -> bool:
        """Fold in the list's new entries; False when the list lost entries (reconcile)."""
        n = await self.client.run(lambda: self.client.redis.llen(self.list_key), "key sync")
        if n < self.read:
            return False
        if n > self.read:
            start = self.read
            raw = await self.client.run(lambda: self.client.redis.lrange(self.list_key, start, n - 1), "key sync")
            await self._fold(raw)
            self.read = start + len(raw)
        return True

    async def reconcile(self) -> None:
        """Fold in the whole list, then append the local events it lacks."""
        raw = await self.client.run(lambda: self.client.redis.lrange(self.list_key, 0, -1), "key sync")
        await self._fold(raw)
        self.read = len(raw)
        listed = {event_identity(orjson.loads(line)) for line in raw}
        local = await asyncio.to_thread(self.store.events_since, 0)
        missing = [orjson.dumps(ev) for ev in local if event_identity(ev) not in listed]
        if missing:
            await self.client.run(lambda: self.client.redis.rpush(self.list_key, *missing), "key sync")
            log.info("key sync: %d local key events added to the shared list", len(missing))

    async def _fold(self, raw: list[bytes]) -> None:
        events = []
        for line in raw:
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                log.warning("key sync: an unreadable entry of %d bytes skipped", len(line))
        if events:
            n = await asyncio.to_thread(self.store.apply_remote, events)
            if n:
                log.info("key sync: %d key events from other replicas", n)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.store.on_commit = None
