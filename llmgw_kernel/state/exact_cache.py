"""The exact cache shared by every process and replica through Redis (docs/cache.md, "Sharing
the exact cache across replicas").

With shared state on, an answer stored by one replica is a hit on every other: the entries
live in Redis, under the deployment's prefix, with the same rules as one process's
:class:`~llmgw_kernel.cache.exact.ExactStore` — so replay, which folds one exact cache over
every replica's log in time order, reproduces the live decisions exactly:

- ``xc|e|<route>|<scoped key>``: a hash ``{at, v}`` — ``at`` the store's stamp, ``v`` the
  packed entry (request id, target, usage, namespace, key id, then the answer's bytes). It
  expires ``ttl_s + margin`` after ``at`` (Redis frees it; no purge job).
- ``xc|order|<route>``: the route's scoped keys by stamp — the FIFO eviction order. A store
  that takes the route past ``max_entries`` deletes the oldest entries, as the local store
  does; a refreshed key moves to the back.
- ``xc|clock``: the last store's stamp.

**Stamps order everything.** Each store and lookup is one script, and its stamp is Redis's own
clock in microseconds, made strictly greater than every store before it. A lookup therefore
sees exactly the stores whose stamp is smaller than its own, whichever replica made them and
however long their commands travelled; the gateway logs the stamps (``cache_stored_ts``,
``cache_lookup_ts``), and replay puts an answer in the cache before a lookup iff its
``cache_stored_ts`` is smaller — the same order. Visibility is then the one rule of
:func:`~llmgw_kernel.cache.exact.visible` over the logged numbers.

Both scripts go through the admission path's pipelined connection (:mod:`.pipe`); a Redis that
does not answer raises :class:`~.client.StateUnavailable` at once (the caller serves a miss and
does not store), and the client reconnects by itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from ..cache.exact import Entry, visible

if TYPE_CHECKING:
    from .client import StateClient

#: the largest answer the shared cache keeps (larger ones are served but not shared)
MAX_VALUE_BYTES = 1 << 20

# A stamp: Redis's TIME in microseconds, above every earlier store's (KEYS[1] holds the last one).
_STAMP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if now <= last then now = last + 1 end
"""

#: KEYS: clock, entry. Returns {stamp, at or nil, packed entry or nil}.
LOOKUP = (
    _STAMP
    + """
local e = redis.call('HMGET', KEYS[2], 'at', 'v')
return {string.format('%.0f', now), e[1], e[2]}
"""
)

#: KEYS: clock, order, entry. ARGV: scoped key, packed entry, ttl + margin (ms), max entries,
#: the entry keys' prefix (for evictions). Returns the stamp.
STORE = (
    _STAMP
    + """
local stamp = string.format('%.0f', now)
local keep_ms = tonumber(ARGV[3])
redis.call('SET', KEYS[1], stamp)
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'at', stamp, 'v', ARGV[2])
redis.call('PEXPIREAT', KEYS[3], string.format('%.0f', math.floor(now / 1000) + keep_ms))
redis.call('ZADD', KEYS[2], stamp, ARGV[1])
redis.call('PEXPIREAT', KEYS[2], string.format('%.0f', math.floor(now / 1000) + keep_ms))
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  local old = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #old, 2 do redis.call('DEL', ARGV[5] .. old[i]) end
end
return stamp
"""
)


class Stored(NamedTuple):
    """What a store did: the stamp it was stored under (None: not stored) and why not."""

    at: float | None
    reason: str | None = None


def seconds(stamp: bytes | int) -> float:
    """A stamp (integer microseconds of Redis's clock) in epoch seconds, as the log keeps it.
    Distinct stamps stay distinct and ordered: a double's spacing near 2e9 s is 0.24 µs.

    >>> seconds(b"1764900000123456")
    1764900000.123456
    """
    return int(stamp) / 1e6


def pack(entry: Entry, ns: str, key_id: str | None) -> bytes:
    """The Redis value of an entry: a JSON header line, then the answer's bytes.

    >>> unpack(pack(Entry("r1", 0.0, b'{"a": 1}', "p/m", None), "route=m", None), 5.0)
    Entry(request_id='r1', stored_at=5.0, body=b'{"a": 1}', target='p/m', usage=None)
    """
    head = orjson.dumps([entry.request_id, entry.target, entry.usage, ns, key_id])
    return head + b"\n" + entry.body


def unpack(value: bytes, stored_at: float) -> Entry:
    head, _, body = value.partition(b"\n")
    rid, target, usage, _ns, _key_id = orjson.loads(head)
    return Entry(rid, stored_at, body, target, usage)


class SharedExactCache:
    """The exact-cache entries of every route, in Redis (one per process, over its state client)."""

    def __init__(self, client: StateClient, keep_after_expiry_s: float) -> None:
        self.client = client
        self.keep_after_expiry_s = keep_after_expiry_s  # an expired answer stays this long (a late lookup)
        self._lookup = client.script(LOOKUP)
        self._store = client.script(STORE)
        self._clock = client.key("xc", "clock")

    def _entry_key(self, route: str, key: str) -> str:
        return self.client.key("xc", "e", route, key)

    async def get(self, route: str, key: str, ts: float, ttl_s: float) -> tuple[Entry | None, float]:
        """The entry under ``key`` visible to a request that arrived at ``ts`` (None: a miss),
        and the lookup's stamp in seconds. Raises ``StateUnavailable``."""
        reply: Any = await self.client.eval(
            self._lookup, [self._clock, self._entry_key(route, key)], [], "cache lookup"
        )
        stamp, at, value = reply
        if at is None or value is None:
            return None, seconds(stamp)
        stored_at = seconds(at)
        if not visible(stored_at, ts, ttl_s):
            return None, seconds(stamp)
        return unpack(value, stored_at), seconds(stamp)

    async def put(
        self, route: str, key: str, entry: Entry, ns: str, key_id: str | None, ttl_s: float, max_entries: int
    ) -> Stored:
        """File ``entry`` (its ``body`` bytes) under ``key``: its stamp, or why it was not
        stored (too large). Raises ``StateUnavailable``."""
        value = pack(entry, ns, key_id)
        if len(value) > MAX_VALUE_BYTES:
            return Stored(None, f"not stored: answer over {MAX_VALUE_BYTES} bytes")
        keep_ms = round(1000 * (ttl_s + self.keep_after_expiry_s))
        prefix = self.client.key("xc", "e", route, "")
        keys = [self._clock, self.client.key("xc", "order", route), self._entry_key(route, key)]
        stamp = await self.client.eval(self._store, keys, [key, value, keep_ms, max_entries, prefix], "cache store")
        return Stored(seconds(stamp))
