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

**Seeding.** A Redis that does not hold a data directory's answers yet (``xc|seeded`` lacks its
id: first start, or Redis came back empty) is given them from that directory's log — every
answer stored within its TTL, under the stamp it was stored with (:data:`SEED`: an entry Redis
already holds under a later stamp is kept) — so the cache is what replay folds from the log.
"""

from __future__ import annotations

import asyncio
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


#: KEYS: order, entry, clock. ARGV: scoped key, stamp, packed entry, ttl + margin (ms), max
#: entries, the entry keys' prefix. An answer from the log under its logged stamp (1: filed, 0:
#: Redis holds a later one, or it has expired); later stamps stay above it, whatever Redis's
#: clock says now.
SEED = """
local stamp = tonumber(ARGV[2])
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
if stamp > last then redis.call('SET', KEYS[3], ARGV[2]) end
local held = redis.call('HGET', KEYS[2], 'at')
if held and tonumber(held) >= stamp then return 0 end
local expires = math.floor(stamp / 1000) + tonumber(ARGV[4])
local t = redis.call('TIME')
if expires <= tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'at', ARGV[2], 'v', ARGV[3])
redis.call('PEXPIREAT', KEYS[2], string.format('%.0f', expires))
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if redis.call('PTTL', KEYS[1]) < expires - (tonumber(t[1]) * 1000) then
  redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', expires))
end
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[5])
if over > 0 then
  local old = redis.call('ZPOPMIN', KEYS[1], over)
  for i = 1, #old, 2 do redis.call('DEL', ARGV[6] .. old[i]) end
end
return 1
"""


class Logged(NamedTuple):
    """An answer the log says was stored in the exact cache (what seeding files)."""

    route: str
    key: str  # scoped
    entry: Entry  # stored_at: its logged cache_stored_ts
    ns: str
    key_id: str | None
    ttl_s: float
    max_entries: int


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
        self._seed = client.script(SEED)
        self._clock = client.key("xc", "clock")
        self._seeded = client.key("xc", "seeded")

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

    async def seeded(self, dir_id: str) -> bool:
        """Whether Redis holds the answers of the data directory ``dir_id`` (raises ``StateUnavailable``)."""
        return bool(await self.client.run(lambda: self.client.redis.sismember(self._seeded, dir_id), "cache seed"))

    async def seed(self, dir_id: str, logged: list[Logged]) -> int:
        """File the answers of ``dir_id``'s log (oldest first) under their logged stamps, then
        mark the directory seeded. Returns how many were filed (raises ``StateUnavailable``)."""
        filed = 0
        for start in range(0, len(logged), 256):  # a batch per loop turn: one write each
            batch = logged[start : start + 256]
            replies = await asyncio.gather(*(self._seed_one(x) for x in batch))
            filed += sum(int(r) for r in replies)
        await self.client.run(lambda: self.client.redis.sadd(self._seeded, dir_id), "cache seed")
        return filed

    async def _seed_one(self, x: Logged) -> Any:
        value = pack(x.entry, x.ns, x.key_id)
        if len(value) > MAX_VALUE_BYTES:
            return 0
        keys = [self.client.key("xc", "order", x.route), self._entry_key(x.route, x.key), self._clock]
        keep_ms = round(1000 * (x.ttl_s + self.keep_after_expiry_s))
        stamp = round(x.entry.stored_at * 1e6)
        args = [x.key, stamp, value, keep_ms, x.max_entries, self.client.key("xc", "e", x.route, "")]
        return await self.client.eval(self._seed, keys, args, "cache seed")
