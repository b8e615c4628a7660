"""The gateway's live state: the current policy snapshot, the log writer, metrics, the
shared upstream connection pool, and the watcher that hot-reloads the policy file.

A request captures ``gateway.snapshot`` once and uses it to the end, so a reload never
changes the policy under an in-flight request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..cache.service import SNAPSHOT_EVERY_S, CacheService
from ..datadir import replica_home
from ..decisions.limits import Limits
from ..keys.secrets import Secrets
from ..keys.store import KeyStore, VirtualKey
from ..log.writer import LogWriter
from ..logs import access_events
from ..policy.extras import load_servable
from ..policy.load import PolicyError
from ..policy.model import Policy, Target
from ..providers import Adapter, AdapterContext, build_adapter
from ..state.breakers import SharedBreakers
from ..state.config import StateConfigError, redis_settings
from ..state.service import SharedState, start_shared_state
from ..workers import WORKER_ENV
from .breaker import Breakers
from .budget_metrics import BudgetCollector
from .cache_verify import count_skipped_checks
from .metrics import Metrics

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("llmgw.runtime")
_Select = Callable[[tuple, float], bool]  # (budget bucket, the reload's cut) -> selected


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything derived from one policy, built once per (re)load."""

    policy: Policy
    adapters: dict[str, Adapter]
    targets: dict[str, dict[str, Target]]  # route -> target id -> target
    version_header: bytes
    models: list[dict]
    models_body: bytes

    def resolve(self, route: str, target_id: str) -> tuple[Target, Adapter]:
        target = self.targets[route][target_id]
        return target, self.adapters[target.provider]


def build_snapshot(policy: Policy, ctx: AdapterContext) -> Snapshot:
    adapters = {name: build_adapter(name, p, ctx) for name, p in policy.providers.items()}
    targets = {r: {t.id: t for t in route.all_targets} for r, route in policy.routes.items()}
    usable = [
        r
        for r, route in policy.routes.items()
        if any(adapters[t.provider].unavailable_reason() is None for t in route.targets)
    ]
    models: dict = {
        "object": "list",
        "data": [{"id": r, "object": "model", "created": 0, "owned_by": "llmgw"} for r in usable],
    }
    return Snapshot(policy, adapters, targets, policy.version.encode(), models["data"], orjson.dumps(models))


@dataclass
class Gateway:
    policy_path: Path
    data_dir: Path
    reload_interval_s: float = 0.5
    metrics: Metrics = field(default_factory=Metrics)
    breakers: Breakers = field(init=False)  # per (route, target); survives policy reloads
    snapshot: Snapshot = field(init=False)
    writer: LogWriter = field(init=False)
    cache: CacheService = field(init=False)
    secrets: Secrets = None  # type: ignore[assignment]  # loaded at start unless given (serve checks it first)
    keys: KeyStore = field(init=False)
    limits: Limits = field(init=False)
    shared: SharedState | None = None  # budgets, rates and keys shared through Redis (None: this process alone)
    admin_token: str | None = None
    replica: str | None = None  # this process's replica id when several share the data directory (datadir.py)
    draining: bool = False
    started: bool = False
    last_reload_error: str | None = None
    _session: aiohttp.ClientSession | None = None
    _watch_task: asyncio.Task | None = None
    _breaker_link: SharedBreakers | None = None  # circuits shared through Redis (state.breakers: shared)
    _stamp: tuple[int, int, int] | None = None
    _served_files: Any = None  # the live file's bytes as loaded (a Version), archived if an edit replaces them
    _restore: asyncio.Future | None = None
    _state_at_start: tuple[str, Any] | None = None  # (URL, Redis settings) the shared state was set up with
    grouped: bool = field(default_factory=lambda: WORKER_ENV in os.environ)  # a worker of `serve --workers N`

    def __post_init__(self) -> None:
        self.breakers = Breakers(notify=self.metrics.circuit_transition)
        self.metrics.set_circuit_probe(self.breakers.states)

    async def start(self) -> None:
        import aiohttp

        policy = load_servable(self.policy_path)
        self._stamp = _stat(self.policy_path)
        self._served_files = _read_version(self.policy_path)
        self.admin_token = os.environ.get("LLMGW_ADMIN_TOKEN") or None
        if self.secrets is None:
            self.secrets = await asyncio.to_thread(Secrets, self.data_dir)  # a wrong master key stops here
        self.keys = await asyncio.to_thread(KeyStore, self.data_dir, self.secrets.pepper)
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            json_serialize=None,  # type: ignore[arg-type]
        )
        self.writer = LogWriter(
            self.data_dir, policy.log.flush_ms, on_flush=access_events, replica=self.replica, worker_process=True
        )  # segments written and merged in a child process: none of it holds the event loop's GIL
        # after the writer: it folds what a crash left in the journal into the log first
        self.limits = await asyncio.to_thread(rebuild_limits, policy, self.data_dir, self.keys)
        self.cache = CacheService(replica_home(self.data_dir, self.replica))  # a replica snapshots its own
        self.metrics.set_log_probe(lambda: (self.writer.rows_written, self.writer.buffered, self.writer.flush_errors))
        self.metrics.registry.register(BudgetCollector(self))
        count_skipped_checks(self)  # checks the spend cap skipped, in /metrics
        self._install(policy)
        self._state_at_start = redis_settings(policy.state)
        self.shared = await start_shared_state(self, policy)
        if self.shared is not None:  # exact-cache entries live in Redis: not restored here
            self.cache.share(self.shared.client, self.data_dir, self.writer.flush, lambda: self.snapshot.policy)
            self._breaker_link = SharedBreakers(self.shared.client, self.breakers).start()
        self._restore = asyncio.get_running_loop().run_in_executor(self.cache.pool, self._restore_cache, policy)
        self._watch_task = asyncio.get_running_loop().create_task(self._watch())
        self.started = True

    def _restore_cache(self, policy: Policy) -> None:
        try:
            source, n = self.cache.restore(policy, self.data_dir)
            self.cache.restored = source
            if n:
                log.info("cache restored from %s: %d entries", source, n)
        except Exception:
            self.cache.restored = "failed"
            log.exception("cache restore failed; starting with an empty cache")

    async def maintain_cache(self) -> None:
        """Delete expired entries, then snapshot the cache if it changed."""
        policy, now = self.snapshot.policy, time.time()
        try:
            n = self.cache.purge_exact(policy, now)
            n += await asyncio.get_running_loop().run_in_executor(
                self.cache.pool, self.cache.purge_semantic, policy, now
            )
            if n:
                log.debug("cache purge: %d expired entries deleted", n)
        except Exception:
            log.exception("cache purge failed")
        await self.save_cache()

    async def save_cache(self) -> None:
        """Snapshot the cache (on the cache worker) if it changed since the last snapshot."""
        if not self.cache.dirty:
            return
        try:
            n = await asyncio.get_running_loop().run_in_executor(self.cache.pool, self.cache.save)
            log.debug("cache snapshot: %d entries", n)
        except Exception:
            log.exception("cache snapshot failed")

    async def stop(self) -> None:
        self.draining = True
        if self._watch_task:
            self._watch_task.cancel()
        if self._session:
            await self._session.close()
        await self.save_cache()
        self.cache.close()
        if self._breaker_link is not None:
            await self._breaker_link.stop()
        if self.shared is not None:
            await self.shared.close()
        await asyncio.to_thread(self.writer.close)

    def _install(self, policy: Policy) -> None:
        assert self._session is not None
        self.snapshot = build_snapshot(policy, AdapterContext(self._session, self.secrets.credential))
        self.writer.set_flush_ms(policy.log.flush_ms)
        self.metrics.set_policy(policy.version, str(self.policy_path), policy.routes)
        self.breakers.sync(policy)
        self.cache.sync(policy)

    def refresh_snapshot(self) -> None:
        """Rebuild the snapshot of the current policy (a stored credential changed)."""
        self._install(self.snapshot.policy)

    def key_spend(self, key: VirtualKey, now: float | None = None) -> list[dict]:
        """Spend against every budget that applies to ``key`` in the current windows."""
        from ..decisions.limits import Subject, applicable_budgets, window_bounds

        now = time.time() if now is None else now
        subject = Subject(key.id, key.settings.team, key.settings.user, "")
        out = []
        for b in applicable_budgets(self.snapshot.policy, key, subject):
            spent, held = self.limits.spend(b.limit.scope, b.who, b.limit.window, now)
            start, end = window_bounds(now, b.limit.window, self.limits.timezone)
            out.append({
                "scope": b.limit.scope, "name": b.who, "window": b.limit.window, "mode": b.limit.mode,
                "budget_usd": b.limit.usd, "spent_usd": round(spent, 9), "in_flight_usd": round(held, 9),
                "window_start": start.isoformat(), "resets_at": end.isoformat(),
            })  # fmt: skip
        return out

    async def key_spend_now(self, key: VirtualKey) -> list[dict]:
        """:meth:`key_spend`, with the spend of every process when the state is shared (read
        from Redis; this process's view if Redis does not answer)."""
        rows = self.key_spend(key)
        if self.shared is not None:
            await self.shared.limits.fill_spend(rows)
        return rows

    async def reload_if_changed(self) -> bool:
        stamp = _stat(self.policy_path)
        if stamp is None:
            self._file_gone()
            return False
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            policy = await asyncio.to_thread(load_servable, self.policy_path)
            self._refuse_unservable(policy)
        except (PolicyError, StateConfigError) as exc:
            self.last_reload_error = str(exc)
            self.metrics.reloads.labels("invalid").inc()
            log.error("policy change rejected, still serving %s:\n%s", self.snapshot.policy.version, exc)
            return False
        self.last_reload_error = None
        if policy.version == self.snapshot.policy.version:
            return False
        loaded = await asyncio.to_thread(_read_version, self.policy_path)
        try:
            switched = await self._count_for(policy)
        except Exception as exc:  # the log (or Redis) did not answer: keep serving the old policy, retry
            self._stamp = None
            self.last_reload_error = f"the spend {policy.version}'s budgets read could not be seeded: {exc!r}"
            self.metrics.reloads.labels("invalid").inc()
            log.exception("policy change not applied, still serving %s", self.snapshot.policy.version)
            return False
        # in the step _count_for ended in: no admission between the new counting and the policy reading it
        old = self.snapshot.policy.version
        replaced, self._served_files = self._served_files, loaded
        self._install(policy)
        self.metrics.reloads.labels("ok").inc()
        log.info("policy reloaded: %s -> %s", old, policy.version)
        if switched and self.shared is not None:  # this process's reservations, to the new zone's windows
            await self.shared.limits.move_reservations()
        await asyncio.to_thread(_keep_replaced, self.policy_path, replaced, old)
        return True

    async def _count_for(self, policy: Policy) -> bool:
        """Make the live admission count the spend ``policy``'s budgets read, and only that, in
        its time zone; the caller installs ``policy`` in the same step as this returns. True when
        the time zone changed.

        What it adds is seeded from the log, exactly once (docs/budgets.md, "Hot reload"), at a
        cut (:meth:`_seed_at_cut`): the added buckets start counting at the cut, the log's spend
        settled by it is added. A new time zone adds every bucket: the new zone's count every
        commit from the cut on (beside the old zone's, which the old policy keeps reading until
        the switch), then replace them with the log's spend by the cut added. Buckets the new
        policy does not read are dropped."""
        from ..decisions.limits import budget_timezone, counted_in, counting_missing, live_counting

        lim = self.limits
        pairs, named = live_counting(policy)
        zone = budget_timezone(policy)
        if zone != lim.timezone:
            old = lim.counted, lim.named, lim.keys
            lim.start_zone(zone, pairs, named)
            try:  # a bucket starting at the same instant in both zones holds in Redis all it should already
                seeded = await self._seed_at_cut(
                    policy, (pairs, named, lim.keys), lambda b, cut: b[3] == self._window_start(zone, cut, b[2]),
                    lambda b, cut: not (b[3] == lim.bounds(cut, b[2])[0] and counted_in(*old, b)),
                )  # fmt: skip
            except BaseException:
                lim.next_zone = None
                raise
            lim.switch_zone(seeded, time.time())
            lim.count_as(pairs, named)
            return True
        add_pairs, add_named = counting_missing(lim, pairs, named)
        if add_pairs or add_named:
            before = lim.counted or frozenset(), lim.named
            lim.counted = before[0] | add_pairs
            lim.named = {**before[1], **{k: before[1].get(k, frozenset()) | w for k, w in add_named.items()}}

            def new(b: tuple, cut: float) -> bool:
                # a pair added for every subject covers buckets counted already (a named one, a virtual key's)
                return not counted_in(*before, lim.keys, b)

            try:
                added = await self._seed_at_cut(policy, (add_pairs, add_named, None), new, new)
            except BaseException:
                lim.count_as(*before)
                raise
            committed = lim.committed
            for bucket, amount in added.items():
                committed[bucket] = committed.get(bucket, 0) + amount
        lim.count_as(pairs, named)
        return False

    async def _seed_at_cut(self, policy: Policy, counting: Any, keep: _Select, to_shared: _Select) -> dict[tuple, int]:
        """The log's spend, in ``counting``'s buckets ``keep(bucket, cut)`` selects, settled by a
        cut taken now (the caller started counting them live in this step); with shared state,
        those ``to_shared(bucket, cut)`` selects are added to Redis once per data directory.

        On the event loop, in this step, the cut ``cut`` is taken: every settlement after it is
        counted live and has a settle time after ``cut``, every one before it is in the log once
        the writer is flushed (rows are handed to the writer in the settlement's step; with shared
        state, once Redis answered: those under way are waited for). The log is read off the loop."""
        cut = time.time()
        while time.time() <= cut + 2e-6:  # a settlement after this step has a later time (µs columns too)
            pass
        if self.shared is not None:  # a shared settlement hands its row over once Redis answered
            await self.shared.limits.settling_done()
        seeded = await asyncio.to_thread(self._seed_spend, policy, counting, cut)
        added = {b: v for b, v in seeded.committed.items() if keep(b, cut)}
        if self.shared is not None:
            await self.shared.limits.seed_added({b: v for b, v in added.items() if to_shared(b, cut)})
        n = len(added)
        log.info(
            "budgets of %s: spend seeded from the log in %d bucket%s (settled by the cut %.6f)",
            policy.version, n, "" if n == 1 else "s", cut,
        )  # fmt: skip
        return added

    @staticmethod
    def _window_start(timezone: str, at: float, window: str) -> float:
        from ..decisions.limits import window_bounds

        return window_bounds(at, window, timezone)[0].timestamp()

    def _seed_spend(self, policy: Policy, counting: Any, cut: float) -> Limits:
        """The log's spend settled by ``cut`` in ``counting``'s buckets (blocking: a thread)."""
        from ..replay.limits_stage import rebuild_from_log

        self.writer.flush()  # every row settled by ``cut`` was handed to the writer by then
        return rebuild_from_log(policy, self.data_dir, self.keys.history, counting=counting, settled_by=cut)

    def _file_gone(self) -> None:
        """The live policy file is missing (deleted, or mid-rename by a tool that does not replace
        atomically): say so in /health once, keep serving, and read it again when it is back."""
        if self._stamp is None:
            return
        self._stamp = None
        version = self.snapshot.policy.version
        self.last_reload_error = f"the policy file {self.policy_path} is missing; still serving {version}"
        log.warning("policy file %s is missing; still serving %s", self.policy_path, version)

    def _refuse_unservable(self, policy: Policy) -> None:
        """Raise :class:`StateConfigError` if this process cannot serve ``policy`` as it was started.

        The shared state is set up once, at start: a reload that names another Redis (URL
        variable, prefix, timeouts...) is refused rather than silently ignored, and a worker of a
        group without shared state refuses limits each worker would enforce alone (the rule the
        supervisor applies at start, :func:`.workers.policy_limit_reasons`). ``state.breakers``
        follows a reload, unless it asks for Redis where there is none (docs/deploy.md).
        """
        from ..workers import policy_limit_reasons

        found = redis_settings(policy.state)
        if found != self._state_at_start:
            raise StateConfigError(
                f"{_state_change(self._state_at_start, found)}: the shared state is set up at start only; restart "
                "the gateway to change state"
            )
        reasons = policy_limit_reasons(policy) if self.grouped and self.shared is None else []
        if reasons:
            raise StateConfigError(
                f"{'; '.join(reasons)}, and the workers of this `llmgw serve --workers` group have no shared state: "
                "each would enforce them alone. Restart with LLMGW_REDIS_URL set (or the policy's "
                "state: {redis: {url_env: NAME}}), or with one worker (docs/deploy.md)"
            )

    async def _watch(self) -> None:
        last_snapshot = time.monotonic()
        while True:
            await asyncio.sleep(self.reload_interval_s)
            try:
                await self.reload_if_changed()
            except Exception:
                log.exception("policy watcher failed; will retry")
            if time.monotonic() - last_snapshot >= SNAPSHOT_EVERY_S:
                last_snapshot = time.monotonic()
                await self.maintain_cache()


def _state_change(before: tuple[str, Any] | None, after: tuple[str, Any] | None) -> str:
    """What a reload changes in the shared state, as an error says it (never the URL: it may carry a password)."""
    if before is None or after is None:
        named = ["no Redis" if f is None else f"Redis from {f[1].url_env}" for f in (before, after)]
        return f"the shared state would change from {named[0]} to {named[1]}"
    old, new = before[1].model_dump(), after[1].model_dump()
    return "state.redis changed: " + ", ".join(f"{k} {old[k]!r} -> {new[k]!r}" for k in new if old[k] != new[k])


def _read_version(path: Path) -> Any:
    from ..policy.versions import read_file_version

    try:
        return read_file_version(path)
    except OSError:
        return None


def _keep_replaced(live: Path, replaced: Any, version_id: str) -> None:
    """A version replaced by editing the live file (not by ``llmgw policy promote``, which
    archives it first) is archived from the bytes it was loaded from, so its requests can be
    replayed under it (``replay(versions=...)``) and rolled back to."""
    from ..policy.versions import archive_version, is_archived

    if replaced is None:
        return
    try:
        if not is_archived(live, version_id):
            entry = archive_version(live, replaced, version_id)
            log.info("policy %s was replaced by an edit of %s: archived as %s", version_id, live, entry)
    except OSError as exc:
        log.warning("could not archive the replaced policy %s: %s", version_id, exc)


def rebuild_limits(policy: Policy, data_dir: Path, keys: KeyStore) -> Limits:
    """Spend and rate windows as of now, from the settled costs and recent admissions in the
    request log (no counter to lose; docs/budgets.md), counted in what ``policy``'s budgets and
    the virtual keys read (:func:`~llmgw_kernel.decisions.limits.live_counting`)."""
    from ..decisions.limits import live_counting
    from ..replay.limits_stage import rebuild_from_log

    return rebuild_from_log(policy, data_dir, keys.history, counting=(*live_counting(policy), _KeyIds(keys)))


class _KeyIds:
    """The ids of the virtual keys, as the key store holds them now (any may get a budget)."""

    __slots__ = ("store",)

    def __init__(self, store: KeyStore) -> None:
        self.store = store

    def __contains__(self, key_id: object) -> bool:
        return key_id in self.store.keys


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
