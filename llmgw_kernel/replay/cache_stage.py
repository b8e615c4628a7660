"""Cache replay: fold a policy's exact and semantic caches over a logged window.

The live cache's decision core (:class:`~llmgw_kernel.cache.core.Caches`: the same
``ExactStore`` and ``SemanticStore`` and the same lookup the live proxy calls for each
request) is driven by logged facts only: arrival times, the times answers entered the cache,
the exact keys, the namespaces' parts (key, team, namespace header), the logged prompt
embeddings and verification features. So replaying the live policy reproduces every live
cache outcome (``compare_to_log() == 0``); a candidate (threshold, TTL, namespaces, size,
exact on/off) gets what it would have done.

Embeddings are held once, as the window's float32 matrix (read in bounded chunks by
:meth:`~.window.Window.embeddings`); a :class:`Row` keeps the index of its vector in it (no
Python object per vector), and its verification features as the logged JSON, parsed when a
lookup needs them.

Where the candidate stores an answer the live proxy did not (a live hit that becomes a
miss), the answer would have entered the cache when that request finished (``ts_end``).
Requests without a logged embedding (model not loaded yet, ``bodies: none``, not a text
user turn) never take part in semantic matching, live or replayed; a live exact hit carries
no embedding of its own and borrows the one of the identical earlier request.

Estimates: saved cost = the source answer's tokens at the candidate's price of the target
that produced it; latency of a request that becomes a hit = the median logged latency of
hits of that kind (1 ms if the log has none); of a hit that becomes a miss = the latency of
the request whose answer it was served.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]

from ..cache.core import Caches, Query
from ..cache.embedder import DEFAULT_MODEL
from ..cache.exact import SHARED_UNAVAILABLE, Entry
from ..decisions import cache as decide
from .columns import epoch, json_value, known_floats
from .routing_estimates import quantile
from .window import as_window

if TYPE_CHECKING:
    from ..policy.model import CacheSettings, Policy

Columns = dict[str, list[Any]]
HIT_KINDS = ("hit", "semantic-hit")


def _team(metadata: Any) -> str | None:
    meta = json_value(metadata)
    if isinstance(meta, dict) and meta.get("team") is not None:
        return str(meta["team"])
    return None


_NO_VECTORS = np.empty((0, 0), np.float32)


class Row:
    """The cache-relevant facts of one logged request (its vector: row ``vi`` of ``matrix``)."""

    __slots__ = (
        "i", "rid", "ts", "route", "ok", "key_id", "team", "control", "ns_header", "key", "context",
        "matrix", "vi", "features_json", "model", "temperature", "stored_at", "done_at", "logged", "source",
        "target", "pt", "ct", "latency", "lookup_at", "version", "logged_threshold", "unanswered",
    )  # fmt: skip

    def __init__(self, w: Columns, i: int, matrix: np.ndarray = _NO_VECTORS, vi: int = -1) -> None:
        self.i = i
        self.rid: str = w["request_id"][i]
        self.ts: float = epoch(w["ts"][i])
        self.route: str | None = w["route"][i]
        self.ok = w["outcome"][i] == "ok"
        self.key_id = w["key_id"][i]
        self.team = w["_team"][i] if "_team" in w else _team(w["metadata"][i])
        self.control = w["cache_control"][i]
        self.ns_header = w["cache_ns_header"][i]
        self.key = w["cache_key"][i]
        self.context = w["cache_context"][i]
        self.matrix, self.vi = matrix, vi
        self.features_json: Any = w["cache_features"][i]
        self.model = w["embedding_model"][i]
        self.temperature = w["temperature"][i]
        stored = w["cache_stored_ts"][i]
        self.stored_at: float | None = float(stored) if stored is not None else None
        end = w["ts_end"][i]
        self.done_at = epoch(end) if end is not None else self.ts
        self.logged = w["cache"][i]
        self.source = w["cache_source"][i]
        self.target = w["target"][i]
        self.pt, self.ct = w["prompt_tokens"][i], w["completion_tokens"][i]
        self.latency = w["latency_ms"][i]
        looked = w["cache_lookup_ts"][i] if "cache_lookup_ts" in w else None
        self.lookup_at: float | None = float(looked) if looked is not None else None
        self.version: str | None = w["policy_version"][i] if "policy_version" in w else None
        applied = w["cache_threshold"][i] if "cache_threshold" in w else None
        self.logged_threshold: float | None = float(applied) if applied is not None else None
        # live, the shared cache did not answer its lookup (Redis unreachable): it found nothing
        self.unanswered = "cache_reason" in w and w["cache_reason"][i] == SHARED_UNAVAILABLE

    @property
    def vector(self) -> np.ndarray | None:
        """The logged prompt embedding (a view into the window's matrix), None without one."""
        return self.matrix[self.vi] if self.vi >= 0 else None

    @property
    def features(self) -> decide.Features | None:
        """The logged verification features (rows keep the logged JSON; see :func:`features_of`)."""
        return features_of(self.features_json)

    def query(
        self, settings: CacheSettings, ns: str, key: str | None, read: bool, replaying: str | None = None
    ) -> Query:
        """This request, as the cache decision core reads it. Replaying the policy version that
        served it (``replaying``), a semantic decision under ``max_false_hit_rate`` applies the
        threshold it logged (the one live learning had reached then) and the entry floors of the
        outcomes known before its logged lookup, so the replay is exact."""
        q = Query(settings, self.route or "", ns, key, read, self.context, self.vector, self.features, self.model,
                  self.i)  # fmt: skip
        if replaying is not None and replaying == self.version:
            q.threshold, q.looked_up = self.logged_threshold, self.lookup_at
        return q


#: parsed features by their logged JSON: rows repeating a prompt share its features
_PARSED: dict[Any, decide.Features | None] = {}
_PARSED_MAX = 65_536


def features_of(raw: Any) -> decide.Features | None:
    """Logged ``cache_features`` (JSON text or a dict) as :class:`~decide.Features`; the most
    recent distinct texts are remembered (at most :data:`_PARSED_MAX`)."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        return decide.Features.from_json(raw) if isinstance(raw, dict) else None
    found = _PARSED.get(raw, _PARSED)
    if found is not _PARSED:
        return found  # type: ignore[return-value]
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    feats = json_value(raw)
    parsed = _PARSED[raw] = decide.Features.from_json(feats) if isinstance(feats, dict) else None
    return parsed


def vectors_of(window: Any) -> tuple[np.ndarray, np.ndarray]:
    """The window's embeddings as (float32 matrix, matrix row of each window row or -1).

    A :class:`~.window.Window` reads them as one matrix in bounded chunks; a dict of columns
    (tests, small windows) is stacked from its ``embedding`` list."""
    n = len(window["request_id"])
    where = np.full(n, -1, np.int64)
    bulk = getattr(window, "embeddings", None)
    if bulk is not None:
        matrix, rows_ = bulk()
        where[rows_] = np.arange(len(rows_))
        return matrix, where
    listed = window.get("embedding") or [None] * n
    present = [k for k, v in enumerate(listed) if v is not None]
    if not present:
        return _NO_VECTORS, where
    where[present] = np.arange(len(present))
    return np.stack([np.asarray(listed[k], np.float32) for k in present]), where


#: the columns a :class:`Row` reads: strings (one Python object per distinct value), numbers, times
_ROW_STRINGS = ("route", "outcome", "key_id", "cache_control", "cache_ns_header", "cache_key", "cache_context",
                "cache_features", "embedding_model", "cache", "cache_source", "target", "policy_version")  # fmt: skip
_ROW_NUMBERS = ("temperature", "cache_stored_ts", "prompt_tokens", "completion_tokens", "latency_ms", "cache_lookup_ts",
                "cache_threshold")  # fmt: skip


def _row_columns(window: Any) -> Columns:
    """The columns :class:`Row` reads, as lists. From a :class:`~.window.Window` they are read
    in bulk and not kept by the window: strings dictionary-encoded (rows share one object per
    distinct value: keys, contexts and features repeat), times as epoch seconds, the team
    parsed once per distinct ``metadata``. A dict of lists is read as it is."""
    codes_of = getattr(window, "codes", None)
    if codes_of is None:
        return window  # type: ignore[no-any-return]
    cols: Columns = {"request_id": window["request_id"]}
    for name in (*_ROW_STRINGS, "cache_reason") if "cache_reason" in window else _ROW_STRINGS:
        codes, values = codes_of(name)
        cols[name] = np.array([*values, None], dtype=object)[codes].tolist()
    codes, values = codes_of("metadata")
    cols["_team"] = np.array([*(_team(v) for v in values), None], dtype=object)[codes].tolist()
    for name in _ROW_NUMBERS:
        cols[name] = window.arrow(name).to_pylist()
    cols["ts"] = window.epoch("ts").tolist()
    cols["ts_end"] = [None if t != t else t for t in window.epoch("ts_end").tolist()]  # NaN: not logged
    return cols


def rows(window: Columns, borrow_from: Sequence[Row] = ()) -> list[Row]:
    """Cache facts of every logged request, with exact hits borrowing their source's embedding
    (from an earlier row of the window, or of ``borrow_from``: rows logged before it)."""
    matrix, where = vectors_of(window)
    at = where.tolist()
    cols = _row_columns(window)
    out = [Row(cols, i, matrix, at[i]) for i in range(len(window["request_id"]))]
    by_key: dict[str, Row] = {}
    for r in [*borrow_from, *out]:
        if r.key is None:
            continue
        if r.vi < 0:
            src = by_key.get(r.key)
            if src is not None:
                r.matrix, r.vi, r.features_json = src.matrix, src.vi, src.features_json
                r.model, r.context = src.model, src.context
        elif r.key not in by_key:
            by_key[r.key] = r
    return out


class Outcome:
    __slots__ = ("kind", "reason", "source", "similarity")

    def __init__(self, kind: str | None, reason: str | None = None, source: Row | None = None, sim=None) -> None:
        self.kind, self.reason, self.source, self.similarity = kind, reason, source, sim


#: the live decision core's stores, the default semantic index of a replay (the name it had)
StoreIndex = Caches


class Prepared:
    """A request's threshold-independent cache facts under one policy.

    ``entry`` is what the request stores if it misses (None: nothing to store): made when
    asked for, from its row (a live miss stored its answer when it finished; a live hit would
    have, had it missed), so a replay holds no entry per request."""

    __slots__ = ("settings", "bypass", "ns", "key", "read", "source")

    def __init__(
        self, settings: CacheSettings | None, bypass: str | None, ns: str, key: str | None, read: bool,
        source: Row | None,
    ) -> None:  # fmt: skip
        self.settings = settings  # None: not cached
        self.bypass = bypass
        self.ns = ns
        self.key = key  # scoped exact key
        self.read = read
        self.source = source  # the row whose answer is stored on a miss (None: nothing to store)

    @property
    def entry(self) -> Entry | None:
        r = self.source
        if r is None:
            return None
        return Entry(r.rid, r.stored_at if r.stored_at is not None else r.done_at, b"", r.target, None)


_NOT_CACHED = Prepared(None, None, "", None, False, None)


def prepare(policy: Policy, rs: list[Row], endpoint: list[str], bodies: Any = None) -> list[Prepared]:
    """What every request is, to ``policy``'s caches (computed once, reused per threshold).

    A request that never reached a cache live (refused by a limit, or its route had no cache)
    logged no exact key; with its body logged (``bodies: full``) the key is computed from it,
    so a candidate that admits it or caches its route can hit. Without a body it cannot.
    ``bodies``: the window (its ``request_body`` is read for those rows only) or a list."""
    per_route: dict[str | None, CacheSettings | None] = {}
    namespaces: dict[tuple[Any, ...], str] = {}  # one string per distinct namespace
    out: list[Prepared] = []
    wanted = _keyless(policy, rs, endpoint) if bodies is not None else {}
    if wanted:
        found = _bodies(bodies, sorted(wanted))
        for i, raw in found.items():
            wanted[i].key = _key_from_body(wanted[i].route or "", raw)
    for r, ep in zip(rs, endpoint, strict=True):
        if r.route not in per_route:
            per_route[r.route] = policy.cache_for(r.route) if r.route is not None else None
        s = per_route[r.route] if ep == "chat.completions" else None
        if s is None:
            out.append(_NOT_CACHED)
            continue
        nkey = (r.route, r.key_id, r.team, r.ns_header, id(s))
        ns = namespaces.get(nkey)
        if ns is None:
            ns = namespaces[nkey] = decide.namespace(s, r.route or "", r.key_id, r.team, r.ns_header)
        skey = decide.scoped(ns, r.key) if r.key is not None else None
        bypass = decide.bypass_reason(s, {"temperature": r.temperature} if r.temperature is not None else {}, r.control)
        # a live miss stored nowhere (shared cache unreachable, answer over its size cap) fills no cache here either
        storable = (r.ok and not (r.logged == "miss" and r.stored_at is None)) or r.logged in HIT_KINDS
        read = r.control != decide.NO_CACHE and not r.unanswered
        out.append(Prepared(s, bypass, ns, skey, read, r if storable else None))
    return out


def _keyless(policy: Policy, rs: list[Row], endpoint: list[str]) -> dict[int, Row]:
    """The rows (by window row) on a cached route that logged no exact key and no cache outcome:
    they never reached a cache live, their key comes from their body."""
    out: dict[int, Row] = {}
    cached: dict[str | None, bool] = {}
    for r, ep in zip(rs, endpoint, strict=True):
        if r.key is not None or r.logged is not None or ep != "chat.completions":
            continue
        if r.route not in cached:
            cached[r.route] = r.route is not None and policy.cache_for(r.route) is not None
        if cached[r.route]:
            out[r.i] = r
    return out


def _bodies(bodies: Any, idx: list[int]) -> dict[int, Any]:
    """The logged request bodies of window rows ``idx`` (from a window: only those rows read)."""
    take = getattr(bodies, "take", None)
    if take is not None and not dict.__contains__(bodies, "request_body"):  # streamed: only these rows kept
        taken = take("request_body", np.asarray(idx, np.int64)).to_pylist()
        return dict(zip(idx, taken, strict=True))
    listed = bodies.get("request_body") if hasattr(bodies, "arrow") else bodies
    return {i: listed[i] for i in idx} if listed is not None else {}


def _key_from_body(route: str, raw: Any) -> str | None:
    body = json_value(raw)
    if not isinstance(body, dict) or "unparsed" in body:
        return None
    return decide.exact_key(route, body)


class CacheState:
    """A candidate's caches while the composed fold runs (see :mod:`.fold`): the live decision
    core (:class:`~llmgw_kernel.cache.core.Caches`), filled by stores scheduled at the times
    answers entered the cache.

    ``index``: the core to decide with (default: a fresh :class:`Caches`, the live stores; a
    sweep passes one that searches precomputed neighbour lists); ``threshold`` overrides every
    route's semantic threshold (the sweep's); ``version``: the candidate's policy version."""

    def __init__(
        self, rs: list[Row], index: Caches | None = None, threshold: float | None = None, version: str | None = None
    ) -> None:
        self.caches = index if index is not None else Caches()
        self.threshold = threshold
        self.version = version  # the candidate's policy version: its rows replay their logged thresholds
        self.by_rid = {r.rid: r for r in rs}
        self.pending: list[tuple[float, int, Row, str | None, str, CacheSettings, Entry]] = []
        self.seq = 0

    def flush(self, until: float) -> None:
        """Put every answer stored before ``until`` into its store."""
        pending = self.pending
        while pending and pending[0][0] < until:
            _, _, r, skey, ns, s, entry = heapq.heappop(pending)
            self.put(r, skey, ns, s, entry)

    def put(self, r: Row, skey: str | None, ns: str, s: CacheSettings, entry: Entry) -> None:
        self.caches.store(r.query(s, ns, skey, True), entry)

    def store_later(self, r: Row, p: Prepared, entry: Entry) -> None:
        """``r``'s answer enters the cache at ``entry.stored_at``."""
        assert p.settings is not None
        self.seq += 1
        heapq.heappush(self.pending, (entry.stored_at, self.seq, r, p.key, p.ns, p.settings, entry))

    def lookup(self, r: Row, p: Prepared, at: float | None = None) -> Outcome:
        """The cache outcome of ``r`` (it reached the cache: admitted, with a cache on its route).

        Visibility is decided at arrival (``r.ts``) over the stores as they were when they
        were consulted: at the logged ``cache_lookup_ts``, else at ``at`` (its admission), else
        at arrival. An answer stored between arrival and lookup under the same exact key
        replaced one the request could see, as it did live."""
        s = p.settings
        assert s is not None
        self.flush(r.lookup_at if r.lookup_at is not None else (at if at is not None else r.ts))
        if p.bypass is not None:
            return Outcome("bypass", p.bypass)
        found = self.caches.lookup(r.query(s, p.ns, p.key, p.read, self.version), r.ts, self.threshold)
        if found.entry is None:
            return Outcome("miss", found.reason, None, found.similarity)
        return Outcome(found.kind, None, self.by_rid[found.entry.request_id], found.similarity)


def _model(name: str | None) -> str:
    """The embedding model a semantic cache named ``name`` uses."""
    return name or DEFAULT_MODEL


def summary(
    window: Any, kinds: np.ndarray, saved: np.ndarray, source_targets: Callable[[np.ndarray], list[str | None]]
) -> dict[str, Any]:
    """Hit counts, saved cost and estimated latency of one replayed cache outcome per request —
    the one rule of ``summary["cache"]`` (the composed replay's and each threshold of a sweep).

    ``kinds``: each request's outcome (object array: ``hit``, ``semantic-hit``, ``miss``,
    ``bypass``, None: it did not reach a cache; or int8 codes into :data:`.fates.CACHE_KIND`,
    the fold's own: no string compared per row); ``saved``: what each hit saved (its source's
    replayed cost; unpriced: None in an object array, NaN in a float64 one — a column as
    :func:`.columns.numbers` holds it, read without a Python float per row);
    ``source_targets(rows)``: the target that produced the answer each hit in ``rows`` was served.
    Latency: a request that becomes a hit takes the median logged latency of live hits of its
    kind (1 ms without one); a live hit that becomes a miss takes its logged source's latency."""
    from .fates import CACHE_KIND  # (not at the top: .fates imports .fold, which imports this module)

    if kinds.dtype == object:
        reached, exact, semantic = kinds != None, kinds == "hit", kinds == "semantic-hit"  # noqa: E711
    else:  # codes
        exact, semantic = kinds == CACHE_KIND.index("hit"), kinds == CACHE_KIND.index("semantic-hit")
        reached = kinds != 0
    if not reached.any():  # nothing reached a cache (a stateless replay): no column is read
        return {"considered": 0, "exact_hits": 0, "semantic_hits": 0, "hit_rate": None, "saved_usd": 0.0,
                "saved_unpriced_targets": [], "latency_ms_p50": None, "latency_ms_mean": None}  # fmt: skip
    w = as_window(window)
    hits = exact | semantic
    values, known = known_floats(saved)
    priced = hits & known
    total = float(np.cumsum(values[priced])[-1]) if priced.any() else 0.0  # in row order
    unpaid = np.flatnonzero(hits & ~priced)
    unpriced = {t for t in source_targets(unpaid) if t} if len(unpaid) else set()
    latency = w.numpy("latency_ms")
    logged = _logged_is(w, "cache")
    live_hit = logged["hit"] | logged["semantic-hit"]
    typical = {k: quantile(latency[logged[k] & ~np.isnan(latency)], 0.5) for k in HIT_KINDS}
    est = latency.copy()
    for k, got in (("hit", exact), ("semantic-hit", semantic)):  # a new hit: as long as a typical live hit
        est[got & ~live_hit] = typical[k] if typical[k] is not None else 1.0
    lost = ~hits & live_hit  # a live hit that becomes a miss takes as long as its source did
    origin = _origin_latency(w, np.flatnonzero(lost))
    est[lost] = np.where(np.isnan(origin), latency[lost], origin)
    lat = est[reached & ~np.isnan(latency)]
    considered, n_exact, n_semantic = int(reached.sum()), int(exact.sum()), int(semantic.sum())
    from .costs_columnar import float_sum  # Python's sum of a float64 array, bit for bit

    return {
        "considered": considered,
        "exact_hits": n_exact,
        "semantic_hits": n_semantic,
        "hit_rate": round((n_exact + n_semantic) / considered, 6) if considered else None,
        "saved_usd": round(total, 6),
        "saved_unpriced_targets": sorted(unpriced),
        "latency_ms_p50": quantile(lat, 0.5),
        "latency_ms_mean": round(float_sum(lat) / len(lat), 3) if len(lat) else None,
    }


def _logged_is(w: Any, name: str) -> dict[str, np.ndarray]:
    """Where a logged string column holds each hit kind (by the window's codes: no object per row)."""
    codes, values = w.codes(name)
    return {k: np.array([v == k for v in values] + [False], np.bool_)[codes] for k in HIT_KINDS}


def _origin_latency(w: Any, rows: np.ndarray) -> np.ndarray:
    """The logged latency of each row's logged cache source (NaN: no source in the window, or no
    latency logged)."""
    from .stateless import source_rows

    out = np.full(len(rows), np.nan)
    if not len(rows):
        return out
    at = source_rows(w, w.arrow("cache_source").take(pa.array(rows, pa.int64())))
    ok = at >= 0
    out[ok] = w.numpy("latency_ms")[at[ok]]
    return out


def embeddings_column(values: Any) -> list[np.ndarray | None]:
    """A logged FLOAT[] column as float32 vectors (None where NULL; small windows only: a
    replay reads the matrix, :func:`vectors_of`)."""
    return [None if v is None else np.asarray(v, np.float32) for v in values]
