"""Which semantic-cache threshold? Sweep many in one pass over a log, with a label-free
estimate of wrong answers and, when labels are given, precision and recall.

>>> import tempfile
>>> from llmgw_kernel import load_policy
>>> p = load_policy({"providers": {"d": {"kind": "demo"}}, "cache": {"semantic": {}},
...                  "routes": {"m": {"targets": [{"provider": "d", "model": "echo"}]}}})
>>> list(sweep_semantic_threshold(p, tempfile.mkdtemp(), [0.9, 0.95], estimate=False)["threshold"])
[0.9, 0.95]
>>> with_semantic_threshold(p, 0.91).cache.semantic.threshold
0.91

How it stays fast: the expensive part of a cache replay is finding each request's nearest
cached prompts. The sweep does that once — for every request, every earlier-stored request of
the same route, namespace and context whose answer was visible when it arrived (stored
before it, within the TTL) with similarity at or above the lowest threshold, best first — and
verifies each such pair once. Each threshold is then decided by the live decision core
(:class:`~llmgw_kernel.cache.core.Caches`) searching those lists instead of the store: its
own cache contents (a hit stores nothing, so what is cached depends on the threshold), its
own evictions and TTLs, composed with admission and cost as a full replay.

When no budget and no token rate limit applies to any request (admission then does not
depend on the cache), one composed fold records which requests reach the cache and when, and
every threshold is folded by a compiled loop over those lookups
(:mod:`.cache_sweep_kernel`, numba: microseconds per request); otherwise each threshold runs
the composed fold. Results equal a full :func:`~llmgw_kernel.replay` at each threshold as
long as every semantic group is searched exactly (groups up to 2,048 entries; larger ones go
through hnswlib live, which may return slightly different neighbours).

The label-free estimate: a semantic hit of request *i* served *j*'s answer. Where the log
also holds the answer the model gave *i* itself (*i* was not served from the cache live),
the two answers are embedded and compared; a hit whose answers are less similar than
``answer_threshold`` counts as likely wrong. ``est_false_hit_rate`` is that share among the
hits that can be checked (``evaluable``); ``est_false_hits`` scales it to all semantic hits.
It needs logged response bodies (``log.bodies: full``) and the embedding model.
``est_false_hit_rate_low``/``_high`` bound the rate (95% Wilson interval): only requests
that were live *misses* can be checked, so at thresholds at or above the live one few hits
are checkable and the interval is wide — serve at a high threshold while collecting the
traffic you tune on (as the notebook does), then sweep downwards.

With ``labels`` (request id → intent/cluster), a semantic hit is correct iff both requests
carry the same label: ``precision`` = correct / labelled semantic hits; ``recall`` = correct
semantic hits / requests that had an earlier same-label request visible in their namespace
and context (exact repeats excluded).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import orjson

from ..cache.core import Caches, Query, semantic_settings
from ..decisions import cache as decide
from ..decisions.cost import cost_usd
from ..decisions.limits import applicable_budgets, applicable_rates
from ..policy.load import PolicySource, load_policy, validate_policy
from .cache_stage import HIT_KINDS, Outcome, Row, _model, features_of, summary
from .fold import UPSTREAM

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from ..cache.exact import Entry
    from ..policy.model import Policy
    from .fold import Composer, Folded

#: answers less similar than this make a semantic hit count as likely wrong
ANSWER_AGREEMENT = 0.8
DEFAULT_THRESHOLDS = tuple(round(0.80 + 0.01 * i, 2) for i in range(20))


def with_semantic_threshold(policy: PolicySource, threshold: float) -> Policy:
    """``policy`` with every semantic cache (top level and route overrides) at ``threshold``."""
    pol = load_policy(policy)
    doc = pol.model_dump(mode="json", exclude_unset=True)
    top = doc.get("cache")
    if isinstance(top, dict) and isinstance(top.get("semantic"), dict):
        top["semantic"]["threshold"] = threshold
    for route in (doc.get("routes") or {}).values():
        cache = route.get("cache")
        if isinstance(cache, dict) and isinstance(cache.get("semantic"), dict):
            cache["semantic"]["threshold"] = threshold
    return validate_policy(doc, pol.source)


class Neighbours(NamedTuple):
    """Per row of ``Composer.all_rows`` (CSR): its candidate rows ``j[ptr[i]:ptr[i+1]]``, best
    first, their similarity, and whether verification lets each answer it."""

    ptr: np.ndarray
    j: np.ndarray
    sim: np.ndarray
    ok: np.ndarray

    def of(self, i: int) -> range:
        return range(int(self.ptr[i]), int(self.ptr[i + 1]))


class NeighbourCaches(Caches):
    """The cache decision core with its semantic search over precomputed neighbour lists (one
    threshold of a sweep, folded in Python): what it adds to a semantic store is only counted,
    for eviction; what it finds is the first entries of the list still cached. It records the
    rows it was asked to look up, in order (the compiled sweep replays that order)."""

    def __init__(self, neighbours: Neighbours, threshold: float, rows: list[Row]) -> None:
        super().__init__()
        self.nb, self.threshold, self.rows = neighbours, threshold, rows
        self.count: dict[tuple[str, str], int] = defaultdict(int)
        self.slot: dict[int, tuple[tuple[str, str], int, int, Entry]] = {}  # row -> (store, ordinal, max, entry)
        self.looked: list[int] = []

    def lookup(self, q: Query, ts: float, threshold: float | None = None) -> Any:
        self.looked.append(q.row)
        return super().lookup(q, ts, threshold)

    def add_semantic(self, q: Query, entry: Entry) -> None:
        sem = semantic_settings(q)
        if sem is None:
            return
        key = (q.route, q.model or "")
        self.slot[q.row] = (key, self.count[key], sem.max_entries, entry)
        self.count[key] += 1

    def search(self, q: Query, ts: float, ttl_s: float, entries: dict[int, Entry]) -> Iterator[decide.Candidate]:
        """Lazily, as :func:`decide.choose` consumes them: the walk ends at the first answer."""
        nb, slots, count, threshold = self.nb, self.slot, self.count, self.threshold
        for p in nb.of(q.row):
            sim = float(nb.sim[p])
            if sim < threshold:
                return
            j = int(nb.j[p])
            slot = slots.get(j)
            if slot is None:
                continue  # not cached at this threshold (it was a hit, or not yet stored)
            key, ordinal, max_entries, entry = slot
            if ordinal < count[key] - max_entries:
                continue  # evicted
            entries[j] = entry
            yield decide.Candidate(sim, j, self.rows[j].features)


_NOT_CONSIDERED = Outcome(None)  # the request did not reach a cache (refused, not routed, no cache)


def store_times(c: Composer) -> np.ndarray:
    """When each row's answer enters the cache if it misses (NaN: it stores nothing), per row
    of ``c.all_rows`` — as the composed fold schedules it (``fold.Composer.run``): a request
    that ran live stores its logged answer at its logged store time (nothing if it failed); one
    that runs only in replay stores when it would have finished; a warm row (before the window)
    stored what the log says."""
    n = c.n
    out = np.full(len(c.all_rows), np.nan)
    for i, (r, p, f) in enumerate(zip(c.rows, c.prepared, c.facts, strict=True)):
        if p.settings is None or f is None or not c.plans[i]:
            continue
        if f.ran and r.logged not in HIT_KINDS:
            if p.entry is not None:
                out[i] = p.entry.stored_at
            continue
        at_lookup = max(r.lookup_at, f.decide_at) if r.lookup_at is not None else f.decide_at
        out[i] = max(c.served(f, r, c.plans[i])[2], at_lookup)  # type: ignore[arg-type]
    for k, (r, p) in enumerate(c.warm):
        if p.settings is not None and p.entry is not None and r.stored_at is not None and p.key is not None:
            out[n + k] = p.entry.stored_at
    return out


def _semantic_rows(c: Composer) -> Iterator[tuple[int, Row, Query]]:
    """Every row (window and warm) taking part in a semantic cache, as the core's query
    (without its features: grouping does not read them)."""
    prepared = [*c.prepared, *(p for _, p in c.warm)]
    for i, (r, p) in enumerate(zip(c.all_rows, prepared, strict=True)):
        if p.settings is None or p.settings.semantic is None or r.vi < 0:
            continue
        q = Query(p.settings, r.route or "", p.ns, p.key, p.read, r.context, r.vector, None, r.model, i)
        if semantic_settings(q) is not None:
            yield i, r, q


def neighbours(c: Composer, stored: np.ndarray, rank: np.ndarray, floor: float) -> Neighbours:
    """For each row, the rows of its semantic group whose answer, stored at ``stored``, was
    visible when it arrived (``stored < ts < stored + ttl_s``), with similarity >= ``floor``,
    best first (ties: inserted first, i.e. by (store time, ``rank``) — the live order)."""
    groups: dict[tuple[str, str, str, str], list[int]] = defaultdict(list)
    ttl: dict[tuple[str, str, str, str], float] = {}
    rows_ = c.all_rows
    check: dict[int, bool] = {}
    for i, _r, q in _semantic_rows(c):
        key = (q.route, q.model or "", q.ns, q.context or "")
        groups[key].append(i)
        sem = q.settings.semantic
        assert sem is not None
        ttl[key] = sem.ttl_s
        check[i] = sem.verify
    found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for key, members in groups.items():
        if len(members) < 2:
            continue
        ids = np.asarray(members, np.int64)
        ids = ids[~np.isnan(stored[ids])]
        ids = ids[np.lexsort((rank[ids], stored[ids]))]  # the insertion order
        if not len(ids):
            continue
        matrix = rows_[members[0]].matrix
        vecs = matrix[[rows_[j].vi for j in ids.tolist()]]
        at = stored[ids]
        span = ttl[key]
        for i in members:
            r = rows_[i]
            lo = int(np.searchsorted(at, r.ts - span - 1.0, side="left"))
            hi = int(np.searchsorted(at, r.ts, side="left"))
            if hi <= lo:
                continue
            seen = at[lo:hi]
            sims = vecs[lo:hi] @ matrix[r.vi]  # as the live store scores: one product over the rows
            keep = np.flatnonzero((sims >= floor) & (seen + span > r.ts))
            if len(keep):
                order = keep[np.argsort(-sims[keep], kind="stable")]
                found[i] = (ids[lo + order], sims[order])
    return _csr(len(rows_), found, rows_, check)


def _csr(
    m: int, found: dict[int, tuple[np.ndarray, np.ndarray]], rows_: list[Row], check: dict[int, bool]
) -> Neighbours:
    """The lists as CSR arrays, each pair verified once (:func:`decide.verify`)."""
    counts = np.zeros(m + 1, np.int64)
    for i, (js, _) in found.items():
        counts[i + 1] = len(js)
    ptr = np.cumsum(counts)
    j_all = np.empty(int(ptr[-1]), np.int64)
    sim_all = np.empty(int(ptr[-1]), np.float64)
    ok = np.ones(int(ptr[-1]), np.bool_)
    verdicts: dict[tuple[Any, Any], bool] = {}  # by the two logged feature texts: prompts repeat
    for i, (js, sims) in found.items():
        a, b = int(ptr[i]), int(ptr[i + 1])
        j_all[a:b], sim_all[a:b] = js, sims
        mine = rows_[i].features_json
        if not check[i] or mine is None:
            continue
        for p, j in enumerate(js.tolist(), a):
            theirs = rows_[j].features_json
            if theirs is None:
                continue
            passed = verdicts.get((mine, theirs))
            if passed is None:
                query, cand = features_of(mine), features_of(theirs)
                passed = verdicts[(mine, theirs)] = query is None or cand is None or decide.verify(query, cand) is None
            ok[p] = passed
    return Neighbours(ptr, j_all, sim_all, ok)


def sweep_semantic_threshold(
    policy: PolicySource,
    log: duckdb.DuckDBPyConnection | str | os.PathLike[str],
    thresholds: Iterable[float] = DEFAULT_THRESHOLDS,
    since: Any = None,
    until: Any = None,
    labels: Mapping[str, Hashable] | None = None,
    estimate: bool = True,
    answer_threshold: float = ANSWER_AGREEMENT,
) -> pd.DataFrame:
    """One row per threshold: hits, hit rate, saved cost and latency, the label-free
    false-hit estimate, and precision/recall against ``labels`` if given."""
    import pandas as pd

    from ..log.reader import open_log
    from . import _state_before, load_window
    from .stages import decide

    pol = load_policy(policy)
    ts_list = sorted({round(float(t), 6) for t in thresholds})
    con = log if hasattr(log, "execute") else open_log(log)  # type: ignore[arg-type]
    window = load_window(con, since, until)
    history, start, warm = _state_before(pol, con, window, since)
    composer = decide(pol, window, history, start, warm, fold=False).composer
    assert composer is not None  # not folded: always prepared
    rs = composer.rows
    positives = _positives(pol, rs, window["endpoint"], labels) if labels is not None else None
    results = [(t, kinds, sources, _summary(window, kinds, sources, saved))
               for t, kinds, sources, saved in fold_thresholds(composer, ts_list)]  # fmt: skip
    agreement = _answer_agreement(con, composer.all_rows, results) if estimate else None
    table = []
    for t, kinds, sources, summ in results:
        hits = [(r, src) for r, k, src in zip(rs, kinds, sources, strict=True) if k == "semantic-hit" and src]
        row = {"threshold": t, **{k: summ[k] for k in ("considered", "exact_hits", "semantic_hits", "hit_rate")}}
        row["saved_usd"] = summ["saved_usd"]
        row["latency_ms_p50"] = summ["latency_ms_p50"]
        row.update(_estimate(hits, agreement, answer_threshold))
        row.update(_labelled(hits, labels, positives))
        table.append(row)
    return pd.DataFrame(table)


def _summary(window: Any, kinds: list[str | None], sources: list[Row | None], saved: list[float | None]) -> Any:
    """``summary["cache"]`` of one threshold (:func:`.cache_stage.summary`)."""

    def targets(rows: np.ndarray) -> list[str | None]:
        return [sources[i].target for i in rows.tolist()]  # type: ignore[union-attr]  # hits have a source

    return summary(window, _objects(kinds), _objects(saved), targets)


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), object)
    out[:] = values
    return out


#: one threshold's result: (threshold, kind per request, source row per request, saved per request)
Swept = tuple[float, list[str | None], list[Row | None], list[float | None]]


def fold_thresholds(c: Composer, thresholds: list[float], compiled: bool | None = None) -> list[Swept]:
    """The cache outcome of every request at each threshold, composed as a full replay.

    Compiled (``compiled`` None: when numba is installed and admission does not depend on the
    cache, see :func:`uncoupled`): one composed fold records the lookups, then each threshold
    is folded by :func:`.cache_sweep_kernel.fold_threshold`. Otherwise each threshold runs the
    composed fold with :class:`NeighbourCaches`."""
    from . import cache_sweep_kernel as kernel

    if not thresholds:
        return []
    stored = store_times(c)
    m, n = len(c.all_rows), c.n
    rank = np.empty(m, np.int64)  # insertion order at equal store times: warm rows, then by lookup
    rank[n:] = np.arange(m - n)
    if compiled is None:
        compiled = kernel.available() and uncoupled(c)
    if not compiled:
        rank[:n] = np.arange(m - n, m)
        nb = neighbours(c, stored, rank, min(thresholds))
        out: list[Swept] = []
        for t in thresholds:
            folded = c.run(NeighbourCaches(nb, t, c.all_rows), threshold=t)
            outs = [o if o is not None else _NOT_CONSIDERED for o in folded.cache]
            out.append((t, [o.kind for o in outs], [o.source for o in outs], folded.saved))
        return out
    recorder = NeighbourCaches(_no_neighbours(m), float("inf"), c.all_rows)
    first = c.run(recorder, threshold=float("inf"))
    order = np.asarray(recorder.looked, np.int64)
    rank[order] = (m - n) + np.arange(len(order))
    inputs = sweep_inputs(c, order, stored, neighbours(c, stored, rank, min(thresholds)))
    names = np.array([None, "hit", "semantic-hit", "miss"], dtype=object)
    fixed = [o.kind if o is not None else None for o in first.cache]  # bypass / not considered
    up_cost = _upstream_cost(c, first)
    out = []
    for t in thresholds:
        kind, src = kernel.fold_threshold(t, inputs)
        kinds = fixed.copy()
        sources: list[Row | None] = [None] * n
        saved: list[float | None] = [None] * n
        for i, k, j in zip(order.tolist(), names[kind[order]].tolist(), src[order].tolist(), strict=True):
            kinds[i] = k
            if j >= 0:
                sources[i] = c.all_rows[j]
                saved[i] = up_cost(j)
        out.append((t, kinds, sources, saved))
    return out


def uncoupled(c: Composer) -> bool:
    """True when no budget and no token rate limit applies to any request of the window: then
    admission does not depend on the cache (a hit changes only a request's cost and tokens)."""
    seen: set[tuple[Any, ...]] = set()
    for f in c.facts:
        if f is None or not c.plans[f.i]:
            continue
        pol = c.row_policy[f.i]
        memo = (id(pol), f.subject, f.key_version)
        if memo in seen:
            continue
        seen.add(memo)
        key = c.key_of(f)
        if applicable_budgets(pol, key, f.subject) or any(
            r.limit.tpm is not None for r in applicable_rates(pol, key, f.subject)
        ):
            return False
    return True


def _no_neighbours(m: int) -> Neighbours:
    return Neighbours(np.zeros(m + 1, np.int64), np.empty(0, np.int64), np.empty(0), np.empty(0, np.bool_))


def _upstream_cost(c: Composer, first: Folded) -> Any:
    """What serving row ``j`` upstream costs under the candidate (a hit's saving when ``j``
    answered it): the composed fold's cost where ``first`` served it upstream, else the fold's
    estimate; a row from before the window: its logged tokens at the candidate's price."""
    memo: dict[int, float | None] = {}

    def cost(j: int) -> float | None:
        if j not in memo:
            if j >= c.n:
                src = c.all_rows[j]
                memo[j] = cost_usd(c.policy, src.target, src.pt, src.ct)
            elif first.served_by[j] == UPSTREAM:
                memo[j] = first.cost[j]
            else:
                f, plan = c.facts[j], c.plans[j]
                assert f is not None and plan is not None
                memo[j] = c.served(f, c.rows[j], plan)[0]
        return memo[j]

    return cost


def sweep_inputs(c: Composer, order: np.ndarray, stored: np.ndarray, nb: Neighbours) -> Any:
    """The compiled sweep's integer-coded columns (:class:`.cache_sweep_kernel.SweepInputs`)."""
    from .cache_sweep_kernel import SweepInputs

    m, n = len(c.all_rows), c.n
    prepared = [*c.prepared, *(p for _, p in c.warm)]
    keys: dict[tuple[str, str], int] = {}
    routes: dict[str, int] = {}
    sem_stores: dict[tuple[str, str], int] = {}
    i64 = np.int64
    lkey, skey, store_of = np.full(m, -1, i64), np.full(m, -1, i64), np.zeros(m, i64)
    ttl_e, max_e, max_s, sst = np.zeros(m), np.zeros(m, i64), np.zeros(m, i64), np.zeros(m, i64)
    sem_q, sem_s = np.zeros(m, np.bool_), np.zeros(m, np.bool_)
    for i, (r, p) in enumerate(zip(c.all_rows, prepared, strict=True)):
        s = p.settings
        if s is None:
            continue
        route = r.route or ""
        if s.exact is not None and p.key is not None:
            skey[i] = keys.setdefault((route, p.key), len(keys))
            store_of[i] = routes.setdefault(route, len(routes))
            ttl_e[i], max_e[i] = s.exact.ttl_s, s.exact.max_entries
            if p.read and i < n:
                lkey[i] = skey[i]
    for i, _r, q in _semantic_rows(c):
        sem = q.settings.semantic
        assert sem is not None
        sem_s[i], sem_q[i] = True, q.read
        sst[i] = sem_stores.setdefault((q.route, q.model or ""), len(sem_stores))
        max_s[i] = sem.max_entries
    ts = np.array([r.ts for r in c.all_rows], np.float64)
    flush = np.array([_flush_at(c, i) for i in order.tolist()], np.float64)
    return SweepInputs(ts, lkey, skey, store_of, ttl_e, max_e, sem_q, sem_s, sst, max_s, stored, nb.ptr, nb.j,
                       nb.sim, nb.ok, order, flush, np.arange(n, m, dtype=i64), len(keys), len(routes),
                       len(sem_stores))  # fmt: skip


def _flush_at(c: Composer, i: int) -> float:
    """When row ``i``'s lookup consulted the stores (``CacheState.lookup``: the logged lookup
    time, else its admission)."""
    r, f = c.rows[i], c.facts[i]
    assert f is not None
    return r.lookup_at if r.lookup_at is not None else f.decide_at


def _estimate(
    hits: list[tuple[Row, Row]], agreement: dict[tuple[int, int], float] | None, answer_threshold: float
) -> dict[str, Any]:
    none = {"est_false_hit_rate_low": None, "est_false_hit_rate_high": None}
    if agreement is None:
        return {"evaluable": None, "est_false_hits": None, "est_false_hit_rate": None, **none}
    sims = [agreement[(r.i, src.i)] for r, src in hits if (r.i, src.i) in agreement]
    if not sims:
        return {"evaluable": 0, "est_false_hits": 0.0 if not hits else None, "est_false_hit_rate": None, **none}
    wrong = sum(1 for s in sims if s < answer_threshold)
    rate = wrong / len(sims)
    low, high = wilson(wrong, len(sims))
    return {
        "evaluable": len(sims), "est_false_hits": round(rate * len(hits), 3), "est_false_hit_rate": round(rate, 6),
        "est_false_hit_rate_low": round(low, 6), "est_false_hit_rate_high": round(high, 6),
    }  # fmt: skip


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n (honest with few samples).

    >>> [round(x, 3) for x in wilson(0, 5)]
    [0.0, 0.434]
    """
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _labelled(
    hits: list[tuple[Row, Row]], labels: Mapping[str, Hashable] | None, positives: int | None
) -> dict[str, Any]:
    if labels is None:
        return {"precision": float("nan"), "recall": float("nan")}
    judged = [(labels[r.rid], labels[src.rid]) for r, src in hits if r.rid in labels and src.rid in labels]
    correct = sum(1 for a, b in judged if a == b)
    return {
        "precision": correct / len(judged) if judged else float("nan"),
        "recall": correct / positives if positives else float("nan"),
    }


def _stored_at(r: Row) -> float:
    return r.stored_at if r.stored_at is not None else r.done_at


def _positives(policy: Policy, rs: list[Row], endpoint: list[str], labels: Mapping[str, Hashable]) -> int:
    """Requests (not exact repeats) with an earlier same-label request visible in their group."""
    seen: dict[tuple[Any, ...], list[tuple[float, str | None]]] = defaultdict(list)
    count = 0
    for r, ep in zip(rs, endpoint, strict=True):
        s = policy.cache_for(r.route) if r.route is not None and ep == "chat.completions" else None
        if s is None or s.semantic is None or r.vector is None or r.context is None or r.rid not in labels:
            continue
        ns = decide.namespace(s, r.route or "", r.key_id, r.team, r.ns_header)
        key = (r.route, ns, r.context, labels[r.rid])
        earlier = seen[key]
        if any(stored < r.ts < stored + s.semantic.ttl_s and k != r.key for stored, k in earlier):
            count += 1
        if r.ok or r.logged in HIT_KINDS:
            earlier.append((_stored_at(r), r.key))
    return count


def _answer_text(body: Any) -> str | None:
    if isinstance(body, str):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(body, dict):
        return None
    choices = body.get("choices") or []
    if not choices:
        return None
    msg = choices[0].get("message") or {}
    text = msg.get("content")
    if isinstance(text, str) and text.strip():
        return text
    calls = msg.get("tool_calls")
    return orjson.dumps(calls).decode() if calls else None


_LOADED: dict[str, Any] = {}


def _embedder(model: str | None) -> Any:
    from ..cache.embedder import Embedder

    name = _model(model)
    emb = _LOADED.get(name)
    if emb is None:
        emb = Embedder(name)
        emb.load()
        if not emb.ready:
            raise RuntimeError(f"cannot load the embedding model {name}: {emb.error}")
        _LOADED[name] = emb
    return emb


def _answer_agreement(
    con: Any, rs: list[Row], results: list[tuple[float, list[Any], list[Any], dict[str, Any]]]
) -> dict[tuple[int, int], float]:
    """Similarity of the answer each semantic hit would have served to the answer the model
    gave (both from the log), for every (request, source) hit pair of any threshold."""
    pairs = {
        (r.i, src.i)
        for _, kinds, sources, _ in results
        for r, k, src in zip(rs[: len(kinds)], kinds, sources, strict=True)
        if k == "semantic-hit" and src is not None and r.ok and r.logged not in HIT_KINDS
    }
    if not pairs:
        return {}
    wanted = sorted({rs[i].rid for p in pairs for i in p})
    bodies = dict(
        con.execute(
            "SELECT request_id, response_body FROM requests WHERE list_contains(?, request_id)", [wanted]
        ).fetchall()
    )
    texts = {rid: _answer_text(bodies.get(rid)) for rid in wanted}
    ordered = [rid for rid in wanted if texts[rid]]
    if not ordered:
        return {}
    model = next((r.model for r in rs if r.model), None)
    vecs = _embedder(model).encode([texts[rid] for rid in ordered])  # type: ignore[misc]
    at = {rid: k for k, rid in enumerate(ordered)}
    out: dict[tuple[int, int], float] = {}
    for i, j in pairs:
        a, b = at.get(rs[i].rid), at.get(rs[j].rid)
        if a is not None and b is not None:
            out[(i, j)] = float(vecs[a] @ vecs[b])
    return out
