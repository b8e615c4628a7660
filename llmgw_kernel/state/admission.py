"""Budgets and rate limits held in Redis: the same rules as :class:`~llmgw_kernel.decisions.limits.Limits`
(which still decides replay and the start-up rebuild), applied by one server-side script per
admission and per settlement (:mod:`.scripts`), so every process admits against the spend and
reservations of all of them.

When Redis does not answer, the policy's ``state.redis.on_unavailable`` decides:
``fail_closed`` refuses a request a hard budget applies to (503 ``shared_state_unavailable``,
retry in a second); anything else — and everything under ``fail_open`` — is admitted against
this process's own counters (:attr:`SharedLimits.local`: its own spend, plus the shared
committed spend of every bucket as the last admission here read it),
and the row's ``budget_flags`` carry ``shared_state_unavailable``. Settlements that could not
reach Redis are kept and sent when it answers again, in bounded memory (:meth:`SharedLimits._queue`):
one by one only those that give back a reservation Redis holds (at most :data:`MAX_PENDING_FLIGHTS`),
every other cost summed per budget bucket. A Redis that comes back without this data directory's
spend (restarted empty) is first re-seeded from the log (:mod:`.seed`) instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from ..decisions.limits import (
    NANO,
    Budget,
    Limits,
    Rate,
    Subject,
    Verdict,
    budget_name,
    budget_refusal,
    nano,
    rate_buckets_of,
    rate_refusal,
    window_bounds,
)
from . import scripts
from .client import StateClient, StateUnavailable

log = logging.getLogger("llmgw.state")

UNAVAILABLE_FLAG = "shared_state_unavailable"
_DAY = 86_400
_NAMES = 100_000
#: settlements kept one by one while Redis is down: those giving back a reservation Redis holds
#: (requests admitted before it went down). Beyond this, their cost is summed per bucket like the
#: rest, and Redis releases their reservations when the lease ends, as for a dead process.
#: About 300 bytes each (the request id, two floats, three ints; the subject is shared): 3 MB.
MAX_PENDING_FLIGHTS = 10_000
#: after a seeding Redis refused or did not take (full: ``maxmemory`` + ``noeviction``), the next
#: is tried no sooner than this: each reads the log, which must not happen once per request.
SEED_RETRY_S = 1.0
#: settlements under way at a reload's cut are waited for (their rows reach the writer as they end)
SETTLING_WAIT_S = 30.0


class _Settlement(NamedTuple):
    """A settlement Redis missed that gives back the reservation ``rid`` (a flight Redis holds)."""

    rid: str
    subject: Subject
    admitted: float  # the cost counts in the budget windows of this moment
    at: float
    cost: int  # nano-dollars
    tokens: int


class _Held(NamedTuple):
    subject: Subject
    at: float  # admitted at: spend counts in this moment's windows
    local: bool  # admitted against the local counters (Redis was unavailable)
    admitted: tuple[list[str], list[Any]] | None = None  # ADMIT's keys and arguments (to restore the reservation)
    buckets: tuple[tuple, ...] = ()  # the budget buckets its reservation is held in (admitted in Redis)


class SharedLimits:
    """Admission against the shared state, behind the interface the pipeline calls."""

    def __init__(
        self, client: StateClient, local: Limits, dir_id: str, log_state: Callable[[], Limits]
    ) -> None:  # fmt: skip
        self.client = client
        self.local = local  # this process's own view: the fallback, and the source of bucket bounds
        self.dir_id = dir_id
        self._log_state = log_state  # the log's spend and rate windows, after a flush (blocking)
        self._admit = client.script(scripts.ADMIT)
        self._settle = client.script(scripts.SETTLE)
        self._seed = client.script(scripts.SEED)
        self._spend = client.script(scripts.SPEND)
        self._restore = client.script(scripts.RESTORE)
        self._seed_added = client.script(scripts.SEED_ADDED)
        self._move = client.script(scripts.MOVE)
        self._settling: set[object] = set()  # settlements under way (tokens)
        #: this process in the shared state: a Redis that does not know it lost its reservations
        self.member = f"proc:{secrets.token_hex(8)}"
        self._held: dict[str, _Held] = {}
        self._names: dict[tuple, str] = {}  # budget bucket -> its key name (bounded: _NAMES)
        self._expiry: dict[tuple, int] = {}  # (window, start, time zones) -> expire-at
        self._pending: list[_Settlement] = []  # settlements Redis missed (at most MAX_PENDING_FLIGHTS)
        self._pending_spend: dict[tuple, int] = {}  # budget bucket -> nano-dollars Redis missed (the rest)
        self._sending = 0  # of those, taken out to be sent now that Redis answers again
        self._sender: asyncio.Task | None = None  # sending them after a settlement Redis took
        self._seeding: asyncio.Future | None = None
        self._seed_refused_until = 0.0  # monotonic: no seeding tried before (the last one failed)
        self.fail_closed = client.settings.on_unavailable == "fail_closed"
        self.lease_s = client.settings.reservation_lease_s
        self._seeded_keys = client.key("seeded")
        self._flights_key = client.key("flights")
        self._flight_prefix = client.key("f", "")
        client.on_up(self._reconnected)

    # -- keys -----------------------------------------------------------------------------
    def _bucket_key(self, bucket: tuple) -> str:
        name = self._names.get(bucket)
        if name is None:
            if len(self._names) > _NAMES:
                self._names.clear()
            scope, who, window, start = bucket
            name = self._names[bucket] = self.client.key("b", scope, who, window, int(start))
        return name

    def _window_key(self, window: tuple) -> str:
        name = self._names.get(window)
        if name is None:
            if len(self._names) > _NAMES:
                self._names.clear()
            name = self._names[window] = self.client.key("w", *window)
        return name

    def _expire_at(self, bucket: tuple) -> int:
        """A day after the end of the bucket's window (the same for every bucket of one window).
        While a reload changing the time zone is seeded, a bucket may be either zone's: the later
        of the two ends."""
        nxt = self.local.next_zone
        zones = (self.local.timezone,) if nxt is None else (self.local.timezone, nxt.timezone)
        at = self._expiry.get((bucket[2], bucket[3], zones))
        if at is None:
            if len(self._expiry) > _NAMES:
                self._expiry.clear()
            end = max(window_bounds(bucket[3] + 1, bucket[2], tz)[1].timestamp() for tz in zones)
            at = self._expiry[(bucket[2], bucket[3], zones)] = int(end) + _DAY
        return at

    # -- admission ------------------------------------------------------------------------
    async def admit(
        self, rid: str, at: float, subject: Subject, budgets: list[Budget], rates: list[Rate],
        worst_usd: float, worst_tokens: int,
    ) -> Verdict:  # fmt: skip
        """Decide at ``at`` across every process; when admitted, reserve the worst case in Redis."""
        if self.client.up:
            try:
                return await self._admit_shared(rid, at, subject, budgets, rates, worst_usd, worst_tokens)
            except StateUnavailable:
                pass
        return self._admit_unavailable(rid, at, subject, budgets, rates, worst_usd, worst_tokens)

    async def _admit_shared(
        self, rid: str, at: float, subject: Subject, budgets: list[Budget], rates: list[Rate],
        worst_usd: float, worst_tokens: int,
    ) -> Verdict:  # fmt: skip
        keys = [self._seeded_keys, self._flights_key, self._flight_prefix + rid]
        args: list[Any] = [self.member, repr(at), nano(worst_usd), worst_tokens, repr(at + self.lease_s)]
        args += [len(budgets), 0]
        buckets = []
        for b in budgets:
            bucket = (b.limit.scope, b.who, b.limit.window, self.local.bounds(at, b.limit.window)[0])
            buckets.append(bucket)
            keys.append(self._bucket_key(bucket))
            args += [nano(b.limit.usd), 1 if b.limit.mode == "hard" else 0, self._expire_at(bucket)]
        windows = rate_buckets_of(rates)
        args[6] = len(windows)
        keys += [self._window_key(rb) for rb in windows]
        by_window = {(r.limit.scope, r.who): r for r in rates}
        for rb in windows:  # the tightest limit of each window is checked by the script
            limits = [r.limit for r in rates if (r.limit.scope, r.who) == rb]
            rpm = min((x.rpm for x in limits if x.rpm is not None), default=-1)
            tpm = min((x.tpm for x in limits if x.tpm is not None), default=-1)
            args += [rpm, tpm]
        result = await self.client.eval(self._admit, keys, args, "admission")
        if result and result[0] == b"unseeded":
            await self.reseed()
            result = await self.client.eval(self._admit, keys, args, "admission")
        if result[0] == 1:
            self._held[rid] = _Held(subject, at, False, (keys, args), tuple(buckets))
            committed = self.local.committed
            for key_bucket, c in zip(buckets, result[2:], strict=True):  # the shared spend, as of now
                committed[key_bucket] = int(c)
            flags = tuple(budget_name(budgets[int(i) - 1]) for i in result[1].split(b",") if i)
            return Verdict(True, "ok", None, None, flags)
        if result[1] == b"b":
            b = budgets[result[2] - 1]
            _, end = self.local.bounds(at, b.limit.window)
            reason, what = budget_refusal(b, int(result[3]) / NANO, int(result[4]) / NANO, end)
            return Verdict(False, "budget_exceeded", reason, max(0.0, end.timestamp() - at), (), what)
        window = windows[result[2] - 1]
        refusing = _refusing_rate(rates, by_window[window], window, result[3])
        reason, what = rate_refusal(refusing, result[3])
        return Verdict(False, "rate_limited", reason, result[4] / 1000, (), what)

    def _admit_unavailable(
        self, rid: str, at: float, subject: Subject, budgets: list[Budget], rates: list[Rate],
        worst_usd: float, worst_tokens: int,
    ) -> Verdict:  # fmt: skip
        metric = self.client.metrics.unavailable
        if self.fail_closed and any(b.limit.mode == "hard" for b in budgets):
            metric.labels("refused").inc()
            return Verdict(
                False, "state_unavailable",
                "the shared budget state (Redis) is unavailable and this gateway fails closed for hard budgets",
                1.0, (), None,
            )  # fmt: skip
        verdict = self.local.admit(rid, at, subject, budgets, rates, worst_usd, worst_tokens)
        metric.labels("admitted_locally" if verdict.allowed else "refused_locally").inc()
        if not verdict.allowed:
            return verdict
        self._held[rid] = _Held(subject, at, True)
        return verdict._replace(flags=(*verdict.flags, UNAVAILABLE_FLAG))

    # -- settlement -----------------------------------------------------------------------
    async def settle(self, rid: str, at: float, cost_usd: float | None, tokens: int | None) -> None:
        """Give the reservation back and count the cost, in Redis and in this process's view."""
        held = self._held.pop(rid, None)
        if held is None:
            return
        if held.local:
            self.local.settle(rid, at, cost_usd, tokens)
        else:
            self.local.commit(held.subject, held.at, cost_usd)
        await self._send_settle(rid, held.subject, held.at, at, nano(cost_usd or 0), tokens or 0, not held.local)

    async def commit(self, subject: Subject, at: float, cost_usd: float | None) -> None:
        """Count spend no limit tracked (no budget or rate applied to the request)."""
        if not cost_usd:
            return
        self.local.commit(subject, at, cost_usd)
        await self._send_settle("", subject, at, at, nano(cost_usd), 0, False)

    async def settling_done(self) -> None:
        """Return once the settlements under way now have ended (each hands its row to the log
        writer as it ends: a reload's cut waits for them before the log is read)."""
        now = set(self._settling)
        deadline = time.monotonic() + SETTLING_WAIT_S
        while now & self._settling and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    async def seed_added(self, committed: dict[tuple, int]) -> int:
        """Add the log's spend of the budget buckets a reload starts counting (``committed``:
        bucket -> nano-dollars settled by the reload's cut) to Redis, once per data directory
        and bucket; raises :class:`StateUnavailable` when Redis does not take it."""
        buckets = [b for b, amount in committed.items() if amount]
        if not buckets:
            return 0
        keys = [self._seeded_keys, *(self._bucket_key(b) for b in buckets)]
        args: list[Any] = [f"s:{self.dir_id}", self.dir_id]
        for b in buckets:
            args += [committed[b], self._expire_at(b)]
        return int(await self.client.eval(self._seed_added, keys, args, "seeding"))

    async def move_reservations(self) -> int:
        """After a time-zone change (:meth:`Limits.switch_zone`), move the reservations this process
        holds in Redis to the new zone's windows of their admission (where they settle); how many
        moved. One Redis does not take stays where it is, released there when its request settles."""
        calls = []
        for rid, h in list(self._held.items()):
            moved = tuple((s, who, w, self.local.bounds(h.at, w)[0]) for s, who, w, _ in h.buckets)
            if h.admitted is None or moved == h.buckets:
                continue
            keys, args = list(h.admitted[0]), list(h.admitted[1])
            for i, bucket in enumerate(moved):
                keys[3 + i], args[9 + 3 * i] = self._bucket_key(bucket), self._expire_at(bucket)
            expiries = args[9 : 9 + 3 * len(moved) : 3]
            keep = max([int(float(args[4])) + 60, *expiries])  # as ADMIT: never gone before its buckets
            self._held[rid] = h._replace(admitted=(keys, args), buckets=moved)  # RESTORE puts it there too
            calls.append(([keys[2], *keys[3 : 3 + len(moved)]], [keep, *expiries]))
        done = await asyncio.gather(
            *(self.client.eval(self._move, k, a, "reservation move") for k, a in calls), return_exceptions=True
        )  # fmt: skip
        for r in done:
            if isinstance(r, BaseException) and not isinstance(r, StateUnavailable):
                raise r
        failed = sum(isinstance(r, StateUnavailable) for r in done)
        if failed:
            log.warning("shared state: %d reservations left in the old time zone's buckets (no answer)", failed)
        return sum(r == 1 for r in done)

    async def _send_settle(
        self, rid: str, subject: Subject, admitted: float, at: float, cost: int, tokens: int, reserved: bool
    ) -> None:  # fmt: skip
        """Settle in Redis: give back the reservation ``rid`` (if Redis holds one) and commit
        ``cost`` to ``subject``'s buckets of the moment it was admitted; kept for later if Redis
        does not answer — as a reservation to give back only when admitted in Redis (``reserved``:
        one admitted locally while Redis was down holds none, unless the admission's script ran
        but its answer was lost; that one waits for its lease)."""
        s = _Settlement(rid, subject, admitted, at, cost, tokens)
        token = object()  # under way until Redis answered (or it is queued): :meth:`settling_done`
        self._settling.add(token)
        try:
            sent = self.client.up and await self._settle_in_redis(rid, at, cost, tokens, self._cost_buckets(s))
        finally:
            self._settling.discard(token)
        if not sent:
            self._queue(s if reserved else s._replace(rid=""))
        elif (self._pending or self._pending_spend) and self._sender is None:
            # Redis takes settlements again without having been down (it refused some with an
            # error reply: read-only after a failover, MISCONF...): no reconnection will send
            # the kept ones, so they follow this one, off this request's path
            self._sender = asyncio.get_running_loop().create_task(self._send_pending())

    def _cost_buckets(self, s: _Settlement) -> list[tuple]:
        return self.local.commit_buckets(s.subject, s.admitted) if s.cost else []

    async def _settle_in_redis(self, rid: str, at: float, cost: int, tokens: int, buckets: list[tuple]) -> bool:
        """Run SETTLE; False when Redis did not take it."""
        if not self.client.up:
            return False
        keys = [self._seeded_keys, self._flights_key, self._flight_prefix + rid]
        keys += [self._bucket_key(b) for b in buckets]
        args = [self.member, repr(at), cost, tokens, len(buckets), *(self._expire_at(b) for b in buckets)]
        try:
            seeded = await self.client.eval(self._settle, keys, args, "settlement")
        except StateUnavailable:  # down, or an error reply (full: OOM): kept for later, never raised
            return False
        if not seeded:  # Redis restarted empty: the log (which will hold this row) re-seeds it
            with contextlib.suppress(StateUnavailable):  # taken, not seeded: the next settle or admission retries
                await self.reseed()
        return True

    def _queue(self, s: _Settlement) -> None:
        """Keep a settlement Redis missed, in memory bounded by the number of budget buckets:
        one that gives back a reservation Redis holds is kept as it is (up to
        :data:`MAX_PENDING_FLIGHTS`); any other only adds its cost to its buckets' sums (settlements
        of one bucket add up: nothing is lost). Over the cap a reservation waits for its lease to
        end and its settled tokens are not counted in the rate windows (which look back a minute)."""
        if s.rid and len(self._pending) < MAX_PENDING_FLIGHTS:
            self._pending.append(s)
            return
        spend = self._pending_spend
        for bucket in self._cost_buckets(s):
            spend[bucket] = spend.get(bucket, 0) + s.cost

    @property
    def pending(self) -> int:
        """How many entries the settlements Redis missed take (one per reservation, one per
        bucket), counting those being sent since it answered again until each is sent."""
        return len(self._pending) + len(self._pending_spend) + self._sending

    async def stop(self) -> None:
        """Stop sending kept settlements (before the client closes): what is left stays unsent,
        as a Redis down at shutdown would leave it."""
        task, self._sender = self._sender, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- reconnection and seeding ---------------------------------------------------------
    async def _reconnected(self) -> None:
        """Redis answers again: re-seed it if it lost this directory's spend (the queued
        settlements are then in the log it is seeded from), else send what it missed. Redis
        failing again before that leaves them queued for its next return."""
        if not await self.client.run(lambda: self.client.redis.sismember(self._seeded_keys, self.member), "check"):
            await self.reseed()
            return
        await self._send_pending()

    async def _send_pending(self) -> None:
        """Send the settlements Redis missed (down, or refused them); those it does not take
        stay kept for the next time. One sending at a time: they are taken out as it starts."""
        pending, self._pending = self._pending, []
        spend, self._pending_spend = self._pending_spend, {}
        left = len(pending) + len(spend)
        self._sending += left
        try:
            for s in pending:
                if not await self._settle_in_redis(s.rid, s.at, s.cost, s.tokens, self._cost_buckets(s)):
                    self._queue(s)
                self._sending, left = self._sending - 1, left - 1
            now = time.time()
            for bucket, cost in spend.items():
                if not await self._settle_in_redis("", now, cost, 0, [bucket]):
                    self._pending_spend[bucket] = self._pending_spend.get(bucket, 0) + cost
                self._sending, left = self._sending - 1, left - 1
        finally:
            self._sending -= left
            if self._sender is asyncio.current_task():
                self._sender = None

    async def reseed(self) -> None:
        """Add this data directory's log (spend of the current windows, the last minute's rate
        windows) to a Redis that does not hold it; concurrent callers share one seeding."""
        if self._seeding is not None:
            await asyncio.shield(self._seeding)
            return
        if time.monotonic() < self._seed_refused_until:  # a full Redis: not one log read per request
            raise StateUnavailable("Redis refused the seeding a moment ago")
        self._seeding = asyncio.get_running_loop().create_future()
        try:
            from .seed import seed_args

            state = await asyncio.to_thread(self._log_state)
            args = seed_args(state, self.dir_id, self.member, self._bucket_key, self._expire_at, self.client.key)
            added = await self.client.eval(self._seed, [self._seeded_keys], args, "seeding")
            self._pending.clear()  # settled before the flush the log was read after: counted in it
            self._pending_spend.clear()
            held = [_restore_call(*h.admitted) for h in list(self._held.values()) if h.admitted is not None]
            restored = await asyncio.gather(*(self.client.eval(self._restore, k, a, "seeding") for k, a in held))
            if any(restored):
                log.warning("shared state: %d reservations of requests in flight put back", sum(restored))
            log.warning(
                "shared state: %s Redis from the log of %s", "seeded" if added else "already seeded", self.dir_id
            )
            self._seeding.set_result(None)
        except BaseException as exc:
            if isinstance(exc, StateUnavailable):
                self._seed_refused_until = time.monotonic() + SEED_RETRY_S
            self._seeding.set_exception(exc)
            self._seeding.exception()  # retrieved: callers re-raise it from their await
            raise
        finally:
            self._seeding = None

    # -- reading --------------------------------------------------------------------------
    async def spend(self, scope: str, who: str | None, window: str, at: float) -> tuple[float, float]:
        """(committed, in flight) of one budget bucket at ``at``, across every process."""
        [(c, r)] = await self.bucket_spends([(scope, who, window, self.local.bounds(at, window)[0])])
        return c / NANO, r / NANO

    async def bucket_spends(self, buckets: list[tuple]) -> list[tuple[int, int]]:
        """(committed, reserved) nano-dollars of each budget bucket ``(scope, who, window, start)``,
        across every process: one script call each, sent together on the pipelined connection."""
        calls = (self.client.eval(self._spend, [self._bucket_key(b)], [], "spend") for b in buckets)
        return [(int(c), int(r)) for c, r in await asyncio.gather(*calls)]

    async def top_spenders(self, scope: str, window: str, start: float, seen: dict[str, int], n: int) -> list[str]:
        """The ``n`` subjects of ``scope`` that spent most in the window starting at ``start``,
        over every process. Redis keeps no index of the buckets (finding them would scan its
        keys), so each process adds to one sorted set per window the spend it has seen per
        subject (``seen``: a lower bound of the shared spend — the figure its last admission read
        plus its own settlements since), keeping each subject's largest; spend only grows within a
        window, so the set ranks by the shared spend, as late as the last process to add to it."""
        key = self.client.key("top", scope, window, int(start))
        expire = self._expire_at((scope, None, window, start))

        async def call() -> list[Any]:
            pipe = self.client.redis.pipeline(transaction=False)
            if seen:
                pipe.zadd(key, dict(seen), gt=True)
            pipe.expireat(key, expire)
            pipe.zrevrange(key, 0, n - 1)
            return await pipe.execute()

        replies = await self.client.run(call, "budget view")
        return [m.decode() for m in replies[-1]]

    async def fill_spend(self, rows: list[dict]) -> None:
        """Replace ``spent_usd`` / ``in_flight_usd`` of :meth:`Gateway.key_spend` rows with the
        shared figures (left as they are when Redis does not answer)."""
        now = time.time()
        for row in rows:
            try:
                spent, held = await self.spend(row["scope"], row["name"], row["window"], now)
            except StateUnavailable:
                return
            row["spent_usd"], row["in_flight_usd"] = round(spent, 9), round(held, 9)


def _restore_call(keys: list[str], args: list[Any]) -> tuple[list[str], list[Any]]:
    """RESTORE's keys and arguments from an admission's (see scripts.ADMIT and scripts.RESTORE)."""
    nb, nr = args[5], args[6]
    return keys[1:], [*args[2:5], nb, nr, *args[9 : 9 + 3 * nb : 3]]


def _refusing_rate(rates: list[Rate], first: Rate, window: tuple, column: int) -> Rate:
    """The limit of ``window`` that refused on ``column`` (1: rpm, 2: tpm): its tightest."""
    field = "rpm" if column == 1 else "tpm"
    same = [r for r in rates if (r.limit.scope, r.who) == window and getattr(r.limit, field) is not None]
    return min(same, key=lambda r: getattr(r.limit, field)) if same else first
