"""Circuit breakers shared through Redis (``state: {breakers: shared}``; docs/deploy.md).

One hash, ``<prefix>breakers``, holds every shared open circuit: field ``route|target``, value
the Redis clock (ms) at which its cooldown ends. A process whose breaker opens publishes it
(one script, stamped with Redis's clock so replicas' clocks do not matter); a probe that
succeeds deletes the field (the circuit closed). Nothing is read per attempt: a background task
reads the hash every ``POLL_S`` (one script returning Redis's clock and the hash) and applies
it to the local breakers, so a circuit opened anywhere is open everywhere within ``POLL_S`` plus
one round trip. A field past its end means half-open: a process that had a request for the
target since its last poll tries ``SET NX`` on the circuit's probe key, and the winner is the
only one that probes (its next request for the target is the probe). The claim lasts ``CLAIM_S``; the probe, once
started, extends it to ``PROBE_LEASE_S``; an abandoned probe gives it back, its verdict (open or
close) deletes it.

Redis unreachable: the breakers are local again (each process decides alone, the outage is
logged once and counted in ``llmgw_state_unavailable_total{decision="breaker_local"}``),
never an error; the poll resumes when the client's watcher sees Redis answer again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from ..proxy.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, Breakers
from .client import StateClient, StateUnavailable

log = logging.getLogger("llmgw.state")

POLL_S = 0.5
CLAIM_S = 2.0  # a claimed probe not started within this long goes back to the others
PROBE_LEASE_S = 30.0  # a probe slower than this (or whose process died) lets another process probe

# KEYS: hash, probe key; ARGV: field, cooldown ms. Returns the end of the cooldown (Redis ms).
OPEN_SCRIPT = """
local t = redis.call('TIME')
local ends = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], ends)
redis.call('DEL', KEYS[2])
return ends
"""
# KEYS: hash, probe key; ARGV: field.
CLOSE_SCRIPT = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
"""
# KEYS: hash. Returns {now ms, field, ends, field, ends, ...}.
POLL_SCRIPT = """
local t = redis.call('TIME')
local out = {t[1] * 1000 + math.floor(t[2] / 1000)}
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out + 1] = v end
return out
"""
# KEYS: probe key; ARGV: token, lease ms. 1 = this process probes.
CLAIM_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
# KEYS: probe key; ARGV: token, lease ms (0: give the lease up). Only the holder's token counts.
LEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""


class SharedBreakers:
    """The link between this process's breakers and the shared circuits in Redis."""

    def __init__(self, client: StateClient, breakers: Breakers, clock: Any = time.monotonic) -> None:
        self.client = client
        self.breakers = breakers
        self._clock = clock
        self._hash = client.key("breakers")
        self._token = uuid.uuid4().hex
        self._scripts = {name: client.script(src) for name, src in _SCRIPTS.items()}
        self._leases: dict[tuple[str, str], float] = {}  # probe leases held: key -> local expiry
        self._seen: set[tuple[str, str]] = set()  # circuits known open in Redis (published or polled)
        self._wanted: set[tuple[str, str]] = set()  # half-open circuits a request here wanted to probe
        self._tasks: set[asyncio.Task] = set()
        self._poller: asyncio.Task | None = None
        self._local_since: float | None = None

    def start(self) -> SharedBreakers:
        """Attach to the breakers and start polling (a policy with local breakers polls nothing)."""
        self.breakers.attach(self)
        self._poller = asyncio.get_running_loop().create_task(self._poll_forever())
        return self

    async def stop(self) -> None:
        self.breakers.attach(None)
        for task in [self._poller, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in [self._poller, *self._tasks] if t is not None), return_exceptions=True)

    # -- called by the breakers (synchronously, on the event loop) ---------------------------------

    def may_probe(self, breaker: Breaker) -> bool:
        """Probe only with the lease; with Redis down, or a circuit Redis does not hold (it opened
        here while Redis was down), this process probes for itself."""
        key = (breaker.route, breaker.target)
        if not self.client.up or key not in self._seen:
            return True
        if not self._holds(key):
            self._wanted.add(key)  # the next poll claims the probe for this process
            return False
        self._leases[key] = self._clock() + PROBE_LEASE_S - 1.0  # the probe starts: hold the lease while it runs
        self._spawn(self._lease(key, PROBE_LEASE_S))
        return True

    def _holds(self, key: tuple[str, str]) -> bool:
        expiry = self._leases.get(key)
        return expiry is not None and expiry > self._clock()

    def holds_probe(self, breaker: Breaker) -> bool:
        """This process holds the probe lease of ``breaker``'s circuit (for tests and debugging)."""
        return self._holds((breaker.route, breaker.target))

    def released(self, breaker: Breaker) -> None:
        """An abandoned probe: give the lease back so any process can probe next."""
        key = (breaker.route, breaker.target)
        if self._leases.pop(key, None) is not None:
            self._spawn(self._lease(key, 0))

    def moved(self, breaker: Breaker, before: str, to: str) -> None:
        """Publish a transition decided here: opened (or a probe failed) or closed by a probe."""
        if to not in (OPEN, CLOSED):
            return
        self._spawn(self._publish(breaker, to))

    def _spawn(self, step: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(step)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- Redis ---------------------------------------------------------------------------------

    async def _publish(self, breaker: Breaker, to: str) -> None:
        key = (breaker.route, breaker.target)
        self._leases.pop(key, None)
        keys = [self._hash, self._probe_key(key)]
        try:
            if to == OPEN:
                await self.client.eval(
                    self._scripts["open"], keys, [_field(key), _ms(breaker.settings.cooldown_s)], "breaker open"
                )
                self._seen.add(key)
            else:
                await self.client.eval(self._scripts["close"], keys, [_field(key)], "breaker close")
                self._seen.discard(key)
        except StateUnavailable as exc:
            self._fallback(exc)

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            if not self.breakers.shared:
                continue
            if not self.client.up:  # another caller found Redis gone: the client's watcher reconnects
                if self._local_since is None:
                    self._fallback(StateUnavailable("Redis is unavailable"))
                continue
            try:
                await self.poll()
            except StateUnavailable as exc:
                self._fallback(exc)
            except Exception:
                log.exception("shared breakers: poll failed")

    async def poll(self) -> None:
        """Read the shared circuits once, apply them, and claim the probes of half-open ones."""
        sent = self._clock()
        reply = await self.client.eval(self._scripts["poll"], [self._hash], [], "breaker poll")
        if self._local_since is not None:
            log.warning("shared breakers: Redis answers again after %.1f s", self._clock() - self._local_since)
            self._local_since = None
        now_ms, flat = int(reply[0]), reply[1:]
        shared = {_decode(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        for key, breaker in self.breakers.items():
            ends = shared.get(_field(key))
            if ends is None:
                if key in self._seen and breaker.opened_at < sent:  # closed elsewhere since we saw it open
                    self._seen.discard(key)
                    breaker.adopt(None)
                continue
            self._seen.add(key)
            breaker.adopt(max(0.0, (ends - now_ms) / 1000))
            if breaker.state == HALF_OPEN and key in self._wanted and not breaker.probing and not self._holds(key):
                await self._claim(key)

    async def _claim(self, key: tuple[str, str]) -> None:
        claimed_at = self._clock()
        won = await self.client.eval(
            self._scripts["claim"], [self._probe_key(key)], [self._token, _ms(CLAIM_S)], "breaker probe claim"
        )
        self._wanted.discard(key)  # won or lost: a process claims again only for a new request
        if int(won) == 1:
            self._leases[key] = claimed_at + CLAIM_S - 0.25  # give it up before Redis does

    async def _lease(self, key: tuple[str, str], seconds: float) -> None:
        """Extend this process's probe lease to ``seconds`` (0: give it up)."""
        try:
            await self.client.eval(
                self._scripts["lease"],
                [self._probe_key(key)],
                [self._token, _ms(seconds) if seconds else 0],
                "breaker probe lease",
            )
        except StateUnavailable as exc:
            self._fallback(exc)

    def _fallback(self, exc: BaseException) -> None:
        self.client.metrics.unavailable.labels("breaker_local").inc()
        if self._local_since is None:
            self._local_since = self._clock()
            log.warning("shared breakers: %s; each process decides with its own breakers until it answers", exc)

    def _probe_key(self, key: tuple[str, str]) -> str:
        return self.client.key("breaker_probe", *key)


_SCRIPTS = {
    "open": OPEN_SCRIPT, "close": CLOSE_SCRIPT, "poll": POLL_SCRIPT, "claim": CLAIM_SCRIPT, "lease": LEASE_SCRIPT,
}  # fmt: skip


def _field(key: tuple[str, str]) -> str:
    return f"{key[0]}|{key[1]}"


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
