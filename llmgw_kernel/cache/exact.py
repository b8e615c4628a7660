"""The exact cache of one route: scoped key → entry, with a TTL and a FIFO size bound.

Visibility is a function of logged times only, so replay folds the same class over the log
and gets the live answers: an entry stored at ``stored_at`` answers a request that arrived at
``ts`` iff ``stored_at < ts < stored_at + ttl_s``. Eviction is FIFO by insertion; a purge
frees expired answers but leaves their keys in place, so eviction never depends on when a
purge happened to run.

Threads: the event loop gets, puts and purges; the cache worker copies the entries for a
snapshot and fills the store on a start-up restore. Changes and copies hold the store's lock
(a get needs none: one dict lookup), so neither ever walks a dictionary the other is changing.

>>> store = ExactStore()
>>> store.put("k", Entry("req_1", 100.0, b"{}", "d/echo", None), max_entries=2)
>>> store.get("k", 100.5, ttl_s=60).request_id, store.get("k", 99.0, ttl_s=60), store.get("k", 161.0, ttl_s=60)
('req_1', None, None)
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

#: ``cache_reason`` of a request the shared exact cache could not answer (Redis unreachable):
#: a logged fact replay keeps (such a lookup finds nothing, whatever the cache held)
SHARED_UNAVAILABLE = "shared cache unavailable"


class Entry(NamedTuple):
    """A cached answer: the request that produced it, when it was stored, the completion."""

    request_id: str
    stored_at: float  # epoch seconds
    body: Any  # the chat.completion JSON (bytes, or a LazyBody); None once purged
    target: str | None  # provider/model that produced it
    usage: dict[str, Any] | None


def visible(stored_at: float, ts: float, ttl_s: float) -> bool:
    """Whether an answer stored at ``stored_at`` answers a request that arrived at ``ts`` (the
    one visibility rule of the exact cache: this store, the shared one on Redis, and replay)."""
    return stored_at < ts < stored_at + ttl_s


class ExactStore:
    __slots__ = ("_entries", "_lock")

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}  # insertion order = FIFO eviction order
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, ts: float, ttl_s: float) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None or entry.body is None or not visible(entry.stored_at, ts, ttl_s):
            return None
        return entry

    def purge(self, before: float, ttl_s: float) -> int:
        """Free the answers that expired by ``before``; their keys keep their place in the
        eviction order, so eviction stays a function of insertions alone. Returns how many."""
        n = 0
        with self._lock:
            for key, entry in self._entries.items():  # oldest first
                if entry.stored_at + ttl_s > before:
                    break
                if entry.body is not None:
                    self._entries[key] = entry._replace(body=None)
                    n += 1
        return n

    def put(self, key: str, entry: Entry, max_entries: int) -> None:
        entries = self._entries
        with self._lock:
            entries.pop(key, None)  # a refreshed key moves to the back of the eviction order
            entries[key] = entry
            while len(entries) > max_entries:
                del entries[next(iter(entries))]

    def items(self) -> list[tuple[str, Entry]]:
        """Entries not purged, oldest first (a copy: safe to use from another thread)."""
        with self._lock:
            copied = self._entries.copy()  # a dict copy: the shortest time under the lock
        return [(k, e) for k, e in copied.items() if e.body is not None]
