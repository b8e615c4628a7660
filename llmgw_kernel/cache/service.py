"""The live cache: exact and semantic stores per route, the embedding models, one worker
thread, snapshots and rebuild from the log (docs/cache.md).

Every decision is made by the cache decision core (:class:`.core.Caches`, which replay
calls too) over :mod:`llmgw_kernel.decisions.cache`'s rules; this module calls it for one
request at a time and moves work off the event loop:

- an exact lookup is a dict lookup on the loop, before anything else: an exact hit never
  waits for an embedding;
- embedding, verification features and the semantic search run as one job on the cache
  worker thread (one thread, one torch thread); stores are submitted to the same thread, so
  a lookup always sees every entry stored before the request arrived;
- until a model has loaded, semantic lookups are skipped (``cache_reason`` says so).

Threads: the loop owns the exact stores (lookups and stores), the worker the semantic ones;
a snapshot (worker) copies the exact entries under each store's lock, and the maps of stores
change and are walked only under ``CacheService._maps`` (a restore fills them from the worker
while the loop serves).

State survives restarts: :meth:`CacheService.save` writes a snapshot on shutdown (and every
``SNAPSHOT_EVERY_S`` while it changes); on start the snapshot is loaded, or, when there is
none, entries are rebuilt from the request log where it kept response bodies.

With shared state (:meth:`CacheService.share`), the exact entries live in Redis instead
(:mod:`llmgw_kernel.state.exact_cache`): a lookup and a store are each one pipelined script
call, awaited, whose stamps the log keeps; the visibility rule stays
:func:`~.exact.visible`. Redis not answering makes the lookup a miss and the store a no-op
(``cache_reason`` and ``llmgw_state_unavailable_total`` say so), never an error. Semantic
entries stay in this process.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from ..decisions import cache as decide
from ..decisions.cost import cost_usd
from ..durable import fsync_path
from .core import Caches, Found, Query, semantic_model
from .embedder import DEFAULT_MODEL, Embedder
from .exact import SHARED_UNAVAILABLE, Entry, ExactStore
from .learning import Learning

if TYPE_CHECKING:
    import numpy as np

    from ..log.record import RequestRecord
    from ..policy.model import CacheSettings, Policy
    from ..state.client import StateClient
    from ..state.exact_cache import Logged, SharedExactCache
    from .semantic import SemanticStore

log = logging.getLogger("llmgw.cache")

SNAPSHOT_EVERY_S = 60.0
#: expired entries are deleted this long after they expire (a request that arrived before the
#: expiry but is slow to be looked up, e.g. a large upload, still sees what it may see)
PURGE_MARGIN_S = 60.0
SNAPSHOT_DIR = "cache"


class Hit(NamedTuple):
    kind: str  # hit | semantic-hit
    entry: Entry
    similarity: float | None


def key_id(presented: str | None) -> str | None:
    """How the log names a client's key: never the key itself."""
    if not presented:
        return None
    return "sha256:" + hashlib.sha256(presented.encode()).hexdigest()[:12]


class CacheService:
    def __init__(self, data_dir: Path) -> None:
        self.directory = Path(data_dir) / SNAPSHOT_DIR
        self.caches = Caches()
        self.exact: dict[str, ExactStore] = self.caches.exact  # route -> store
        self.semantic: dict[tuple[str, str], SemanticStore] = self.caches.semantic  # (route, model) -> store
        self.embedders: dict[str, Embedder] = {}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmgw-cache")
        self.hits = self.semantic_hits = self.misses = 0
        self.dirty = False
        self.restored: str | None = None  # snapshot | log | empty, once start-up restore finished
        self.learning = Learning(self.caches, self.pool, Path(data_dir), self.embedder)
        self.bounded: dict[tuple[str, str], float] = {}  # (route, model) -> max_false_hit_rate in force
        self.shared: SharedExactCache | None = None  # exact entries in Redis (None: in this process)
        self._seeding: asyncio.Task | None = None  # the start-up seeding of Redis from the log

    def share(self, client: StateClient, log_dir: Path, flush: Callable[[], Any], policy: Callable[[], Policy]) -> None:
        """Keep exact entries in Redis through ``client`` from now on (call on the loop, before
        :meth:`restore`: the local exact stores are then neither restored nor consulted), and
        seed Redis from the log of ``log_dir`` now and whenever it answers again (``flush``
        writes this process's buffered rows first; ``policy`` is the one in force)."""
        from ..state.exact_cache import SharedExactCache
        from ..state.seed import dir_id

        self.shared = SharedExactCache(client, PURGE_MARGIN_S)
        seed = functools.partial(self.seed_shared, log_dir, dir_id(log_dir), flush, policy)
        client.on_up(seed)
        self._seeding = asyncio.get_running_loop().create_task(seed())

    async def seed_shared(
        self, log_dir: Path, dir_id: str, flush: Callable[[], Any], policy: Callable[[], Policy]
    ) -> None:
        """Give Redis this data directory's logged answers unless it holds them already (a
        first start, or Redis came back empty). Never raises: a Redis that stops answering
        meanwhile is seeded when it is back."""
        from ..state.client import StateUnavailable

        assert self.shared is not None
        now = policy()
        if not any((s := now.cache_for(r)) is not None and s.exact is not None for r in now.routes):
            return  # no exact cache: nothing in the log to give (a reload that adds one starts empty)
        try:
            if await self.shared.seeded(dir_id):
                return
            await asyncio.to_thread(flush)
            logged = await asyncio.to_thread(_logged_exact, now, log_dir)
            n = await self.shared.seed(dir_id, logged)
        except StateUnavailable as exc:
            log.warning("shared exact cache: not seeded from the log yet (%s)", exc)
            return
        except Exception:
            log.exception("shared exact cache: seeding from the log failed")
            return
        log.info("shared exact cache: %d answers of %d in the log filed in Redis", n, len(logged))

    def _stores(self) -> tuple[list[tuple[str, ExactStore]], list[tuple[tuple[str, str], SemanticStore]]]:
        """The exact and semantic stores, copied (another thread may be adding one)."""
        return self.caches.stores()

    # -- configuration -----------------------------------------------------------------------

    def sync(self, policy: Policy) -> None:
        """Start loading every embedding model the policy's routes need (in the background)."""
        bounded = {}
        for route in policy.routes:
            settings = policy.cache_for(route)
            if settings is not None and settings.semantic is not None:
                self.embedder(settings.semantic.model).start()
                if settings.semantic.max_false_hit_rate is not None:
                    bounded[(route, semantic_model(settings.semantic))] = settings.semantic.max_false_hit_rate
        self.bounded = bounded

    def embedder(self, model: str | None) -> Embedder:
        name = model or DEFAULT_MODEL
        emb = self.embedders.get(name)
        if emb is None:
            emb = self.embedders[name] = Embedder(name)
        return emb

    def report(self) -> dict[str, Any]:
        """What /health says about the cache."""
        exact, semantic = self._stores()
        return {
            "restored": self.restored,
            "exact_store": "memory" if self.shared is None else ("redis" if self.shared.client.up else "redis (down)"),
            "exact_entries": {r: len(s) for r, s in exact},
            "semantic_entries": {f"{r} ({m})": len(s) for (r, m), s in semantic},
            "models": {name: (f"failed: {e.error}" if e.error else e.state) for name, e in self.embedders.items()},
            **({"bound": self.learning.report(self.bounded)} if self.bounded else {}),
        }

    # -- the request path --------------------------------------------------------------------

    def prepare(
        self,
        settings: CacheSettings,
        rec: RequestRecord,
        body: dict[str, Any],
        control: str | None,
        ns_header: str | None,
    ) -> Query | None:
        """The request's cache identity, or None when it bypasses the cache (reason on ``rec``)."""
        route = rec.route or ""
        rec.cache_control, rec.cache_ns_header = control, ns_header
        team = (rec.metadata or {}).get("team")
        ns = decide.namespace(settings, route, rec.key_id, None if team is None else str(team), ns_header)
        rec.cache_namespace = ns
        raw_key = decide.exact_key(route, body)
        rec.cache_key = raw_key
        why = decide.bypass_reason(settings, body, control)
        if why is not None:
            rec.cache, rec.cache_reason = "bypass", why
            return None
        q = Query(settings, route, ns, decide.scoped(ns, raw_key), control != decide.NO_CACHE)
        if settings.semantic is not None:
            q.text = decide.semantic_text(body)
            if q.text is not None:
                q.context = rec.cache_context = decide.semantic_context(route, body)
        rec.cache = "miss"
        if not q.read:
            rec.cache_reason = decide.NO_CACHE
        return q

    async def lookup(self, q: Query, rec: RequestRecord) -> Hit | None:
        """The request's hit, if any. Visibility is decided at arrival (``rec.ts``) over the
        stores as they are now, which the log keeps as ``cache_lookup_ts``: an entry stored
        after arrival but before this lookup may have replaced (same exact key) or evicted one
        the request could see, so replay needs the stores' state at this instant, not at arrival."""
        rec.cache_lookup_ts = time.time()  # the semantic job below is queued now, behind every earlier store
        entry = await self._lookup_exact(q, rec) if self._shares(q) else self.caches.lookup_exact(q, rec.ts)
        if entry is not None:
            self.hits += 1
            rec.cache, rec.cache_source = "hit", entry.request_id
            return Hit("hit", entry, None)
        sem = q.settings.semantic
        if sem is None:
            self.misses += 1
            return None
        if q.text is None:
            rec.cache_reason = rec.cache_reason or "semantic: not a text user turn"
            self.misses += 1
            return None
        emb = self.embedder(sem.model)
        if not emb.ready:
            emb.start()
            rec.cache_reason = rec.cache_reason or f"semantic: model {emb.state}"
            self.misses += 1
            return None
        q.model = rec.embedding_model = emb.name
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(self.pool, self._semantic_job, q, emb, rec.ts)
        rec.embedding, rec.cache_features = q.vector, q.features.to_json() if q.features else None
        if found is not None:
            rec.cache_similarity, rec.cache_threshold, q.nearest = found.similarity, found.threshold, found.nearest
            if found.entry is not None:
                self.semantic_hits += 1
                rec.cache, rec.cache_source = "semantic-hit", found.entry.request_id
                rec.cache_reason = None
                # sampled: the proxy asks upstream once the answer is served; skipped_cap: it does not
                rec.cache_verify = self.learning.hit(q, rec.request_id, rec.key_id)
                return Hit("semantic-hit", found.entry, found.similarity)
            rec.cache_reason = rec.cache_reason or found.reason
        self.misses += 1
        return None

    def _shares(self, q: Query) -> bool:
        """Whether ``q``'s exact entry lives in Redis (shared state on, an exact cache, a key)."""
        return self.shared is not None and q.settings.exact is not None and q.key is not None

    async def _lookup_exact(self, q: Query, rec: RequestRecord) -> Entry | None:
        """The shared exact entry visible to ``rec`` (None: a miss, also when Redis does not
        answer). The lookup's stamp becomes ``cache_lookup_ts``: the stores it saw are exactly
        those stamped before it."""
        from ..state.client import StateUnavailable

        assert self.shared is not None and q.settings.exact is not None and q.key is not None
        if not q.read:
            return None
        try:
            entry, rec.cache_lookup_ts = await self.shared.get(q.route, q.key, rec.ts, q.settings.exact.ttl_s)
        except StateUnavailable:
            rec.cache_reason = SHARED_UNAVAILABLE
            self.shared.client.metrics.unavailable.labels("cache_miss").inc()
            return None
        return entry

    async def _store_shared(self, q: Query, rec: RequestRecord, entry: Entry) -> float | None:
        """File ``entry`` in Redis: its stamp, or None when it was not stored (reason on ``rec``)."""
        from ..state.client import StateUnavailable

        assert self.shared is not None and q.settings.exact is not None and q.key is not None
        try:
            stored = await self.shared.put(
                q.route, q.key, entry, q.ns, rec.key_id, q.settings.exact.ttl_s, q.settings.exact.max_entries
            )
        except StateUnavailable:
            self.shared.client.metrics.unavailable.labels("cache_not_stored").inc()
            stored = None
        if stored is None or stored.at is None:
            rec.cache_reason = rec.cache_reason or (stored.reason if stored else f"not stored: {SHARED_UNAVAILABLE}")
            return None
        return stored.at

    def _semantic_job(self, q: Query, emb: Embedder, ts: float) -> Found | None:
        """Embed the prompt, compute its verification features, and (unless ``no-cache``) ask
        the decision core (None: not looked up)."""
        assert q.text is not None and q.context is not None and q.settings.semantic is not None
        q.vector = emb.encode([q.text])[0]
        q.features = decide.features(q.text)
        return self.caches.lookup_semantic(q, ts) if q.read else None

    async def store(self, q: Query, rec: RequestRecord, body: bytes | LazyBody) -> None:
        """Keep a fresh answer (called on the loop once it is final, before its row is logged:
        with shared state the row carries the store's stamp, so the store is awaited — one
        pipelined round trip)."""
        usage = rec.usage if isinstance(rec.usage, dict) else None
        stored_at: float | None
        if self._shares(q):
            fresh = Entry(rec.request_id, 0.0, body_bytes(body), rec.target, usage)
            stored_at = await self._store_shared(q, rec, fresh)
        else:
            stored_at = time.time()
            self.caches.store_exact(q, Entry(rec.request_id, stored_at, body, rec.target, usage))  # type: ignore[arg-type]
        if q.settings.semantic is not None and q.vector is not None:
            stored_at = stored_at or time.time()
            self.pool.submit(self.caches.add_semantic, q, Entry(rec.request_id, stored_at, body, rec.target, usage))  # type: ignore[arg-type]
        rec.cache_stored_ts = stored_at  # None: stored nowhere (the shared store did not take it)
        if q.nearest is not None:  # a miss under the bound: compare its answer with the nearest entry's
            rec.cache_verify = "shadow"
            self.learning.compare_later(q, q.nearest, body, rec.request_id, "shadow", None)
        self.dirty = True

    def checked(self, q: Query, request_id: str, fresh: bytes, cost: float | None) -> None:
        """A sampled hit's fresh answer arrived (the proxy asked upstream): compare and learn."""
        if q.nearest is not None:
            self.learning.compare_later(q, q.nearest, fresh, request_id, "sampled", cost)

    def feedback(self, request_id: str, correct: bool, key: str | None) -> bool:
        """A user's verdict on a recent semantic hit under the bound (False: unknown to us)."""
        return self.learning.feedback(request_id, correct, key)

    @staticmethod
    def saved_usd(policy: Policy, entry: Entry) -> float | None:
        usage = entry.usage or {}
        return cost_usd(policy, entry.target, usage.get("prompt_tokens"), usage.get("completion_tokens"))

    # -- expiry --------------------------------------------------------------------------------

    def purge_exact(self, policy: Policy, now: float) -> int:
        """Free expired exact answers (on the event loop: the loop owns the exact stores)."""
        n = 0
        for route, store in self._stores()[0]:
            s = policy.cache_for(route)
            if s is not None and s.exact is not None:
                n += store.purge(now - PURGE_MARGIN_S, s.exact.ttl_s)
        return n

    def purge_semantic(self, policy: Policy, now: float) -> int:
        """Delete expired semantic entries from their indexes (on the cache worker)."""
        n = 0
        for (route, _), store in self._stores()[1]:
            s = policy.cache_for(route)
            if s is not None and s.semantic is not None:
                n += store.purge(now - PURGE_MARGIN_S, s.semantic.ttl_s)
        return n

    # -- persistence -------------------------------------------------------------------------

    def save(self) -> int:
        """Write a snapshot (atomically) of every entry; returns how many. Runs on the worker,
        while the loop keeps storing: it copies each exact store under its lock, and clears
        ``dirty`` before copying, so an entry stored meanwhile makes the next snapshot run."""

        self.dirty = False
        try:
            lines: list[bytes] = []
            vectors: list[np.ndarray] = []
            exact, semantic = self._stores()
            for route, store in exact:
                for key, e in store.items():
                    lines.append(orjson.dumps({"kind": "exact", "route": route, "key": key, **_entry_json(e)}))
            self._semantic_rows(semantic, lines, vectors)
            return self._write_snapshot(lines, vectors)
        except BaseException:
            self.dirty = True
            raise

    @staticmethod
    def _semantic_rows(
        semantic: list[tuple[tuple[str, str], SemanticStore]], lines: list[bytes], vectors: list[np.ndarray]
    ) -> None:
        for (route, model), sstore in semantic:
            for eid, sem in sstore.entries():
                ns, ctx = sem.group
                vectors.append(sstore.vector(eid))
                row = {
                    "kind": "semantic",
                    "route": route,
                    "model": model,
                    "ns": ns,
                    "ctx": ctx,
                    **_entry_json(sem.entry),
                }
                row["features"] = sem.features.to_json() if sem.features else None
                lines.append(orjson.dumps(row))

    def _write_snapshot(self, lines: list[bytes], vectors: list[np.ndarray]) -> int:
        import numpy as np

        tmp = self.directory.with_name(self.directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / "entries.jsonl").write_bytes(b"\n".join(lines))
        np.save(tmp / "vectors.npy", np.stack(vectors) if vectors else np.zeros((0, 0), np.float32))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        old = self.directory.with_name(self.directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.directory.exists():
            os.replace(self.directory, old)
        os.replace(tmp, self.directory)
        fsync_path(self.directory.parent)
        shutil.rmtree(old, ignore_errors=True)
        return len(lines)

    def restore(self, policy: Policy, log_dir: Path | None = None) -> tuple[str, int]:
        """Load the snapshot, else rebuild from the log; learn the journaled outcomes again. Runs
        on the worker before serving hits."""
        self.learning.restore()
        if (self.directory / "entries.jsonl").exists():
            n = self._load_snapshot(policy)
            return "snapshot", n
        if log_dir is not None:
            return "log", self._rebuild_from_log(policy, log_dir)
        return "empty", 0

    def _load_snapshot(self, policy: Policy) -> int:
        import numpy as np

        raw = (self.directory / "entries.jsonl").read_bytes()
        vectors = np.load(self.directory / "vectors.npy")
        rows = [orjson.loads(line) for line in raw.split(b"\n") if line]
        v = 0
        n = 0
        for row in sorted(rows, key=lambda r: r["stored_at"]):
            entry = Entry(row["request_id"], row["stored_at"], row["body"].encode(), row["target"], row["usage"])
            if row["kind"] == "exact":
                settings = policy.cache_for(row["route"])
                if settings is not None and settings.exact is not None and self.shared is None:
                    self.caches.exact_store(row["route"]).put(row["key"], entry, settings.exact.max_entries)
                    n += 1
            else:
                vec = vectors[v]
                v += 1
                settings = policy.cache_for(row["route"])
                if settings is None or settings.semantic is None:
                    continue
                feats = decide.Features.from_json(row["features"]) if row["features"] else None
                store = self.caches.semantic_store(row["route"], row["model"], len(vec))
                store.add(row["ns"], row["ctx"], vec, entry, feats, settings.semantic.max_entries)
                n += 1
        return n

    def _rebuild_from_log(self, policy: Policy, log_dir: Path) -> int:
        import numpy as np

        n = 0
        for row in _stored_rows(policy, log_dir):
            settings = policy.cache_for(row.route)
            assert settings is not None
            if settings.exact is not None and self.shared is None:  # shared: the entries are in Redis
                self.caches.exact_store(row.route).put(
                    decide.scoped(row.ns, row.key), row.entry, settings.exact.max_entries
                )
                n += 1
            if settings.semantic is not None and row.vec is not None and row.ctx is not None and row.model:
                arr = np.asarray(row.vec, np.float32)
                feats = row.feats
                f = (
                    decide.Features.from_json(orjson.loads(feats) if isinstance(feats, str) else feats)
                    if feats
                    else None
                )
                store = self.caches.semantic_store(row.route, row.model, len(arr))
                store.add(row.ns, row.ctx, arr, row.entry, f, settings.semantic.max_entries)
        return n

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)
        self.learning.journal.close()


class LazyBody:
    """A streamed answer, kept as its SSE payloads and assembled into a chat.completion the
    first time it is needed (a hit or a snapshot), so storing a stream costs nothing on the loop."""

    __slots__ = ("_events", "_usage", "_body")

    def __init__(self, events: list[bytes], usage: dict[str, Any] | None) -> None:
        self._events: list[bytes] | None = events
        self._usage = usage  # the client may not have asked for the usage chunk; the gateway did
        self._body: bytes | None = None

    def __bytes__(self) -> bytes:
        # the loop (a hit) and the worker (a snapshot) may both assemble it: the result is the
        # same, and a reader never sees the events dropped before the body is set
        body, events = self._body, self._events
        if body is None:
            if events is None:
                assert self._body is not None  # assembled by the other thread meanwhile
                return self._body
            from ..log.record import assemble_stream

            completion = assemble_stream(events) or {}
            if completion.get("usage") is None and self._usage:
                completion["usage"] = self._usage
            body = self._body = orjson.dumps(completion)
            self._events = None
        return body


class _StoredRow(NamedTuple):
    """A logged answer that entered the cache, with what each store needs of it."""

    route: str
    ns: str
    key: str  # unscoped exact key
    key_id: str | None
    entry: Entry
    ctx: str | None
    vec: Any
    model: str | None
    feats: Any


def _stored_rows(policy: Policy, log_dir: Path) -> list[_StoredRow]:
    """The answers the request log says entered a cache of ``policy`` within its longest TTL,
    oldest first (only where the log kept the response body); [] without a log."""
    from ..log.reader import open_log

    try:
        con = open_log(log_dir)
    except Exception as exc:  # no log yet
        log.info("no cache rebuild from the log: %s", exc)
        return []
    horizon = time.time() - max(decide.longest_ttl(policy), 0)
    try:
        rows = con.execute(
            "SELECT request_id, route, cache_stored_ts, response_body, target, prompt_tokens, completion_tokens, "
            "cache_namespace, cache_key, cache_context, embedding, embedding_model, cache_features, key_id "
            "FROM requests WHERE cache_stored_ts IS NOT NULL AND cache_stored_ts > ? AND response_body IS NOT NULL "
            "ORDER BY cache_stored_ts",
            [horizon],
        ).fetchall()
    except Exception as exc:  # an old log without the cache columns
        log.info("no cache rebuild from the log: %s", exc)
        return []
    finally:
        con.close()
    out = []
    for rid, route, stored, body, target, pt, ct, ns, key, ctx, vec, model, feats, kid in rows:
        if policy.cache_for(route) is None or ns is None or key is None:
            continue
        raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
        usage = {"prompt_tokens": pt, "completion_tokens": ct} if pt is not None or ct is not None else None
        out.append(_StoredRow(route, ns, key, kid, Entry(rid, stored, raw, target, usage), ctx, vec, model, feats))
    return out


def _logged_exact(policy: Policy, log_dir: Path) -> list[Logged]:
    """The answers the log says are in the exact cache now (within their TTL), oldest first."""
    from ..state.exact_cache import Logged

    out = []
    for row in _stored_rows(policy, log_dir):
        settings = policy.cache_for(row.route)
        if settings is not None and settings.exact is not None:
            scoped = decide.scoped(row.ns, row.key)
            out.append(Logged(row.route, scoped, row.entry, row.ns, row.key_id, settings.exact.ttl_s,
                              settings.exact.max_entries))  # fmt: skip
    return out


def body_bytes(body: bytes | LazyBody) -> bytes:
    return body if isinstance(body, bytes) else bytes(body)


def _entry_json(e: Entry) -> dict[str, Any]:
    return {
        "request_id": e.request_id, "stored_at": e.stored_at, "body": body_bytes(e.body).decode(),
        "target": e.target, "usage": e.usage,
    }  # fmt: skip
