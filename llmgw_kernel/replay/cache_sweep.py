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
depend on the cache) and the compiled replay fold folds the window, everything is read over
columns — the compiled fold's own inputs, one run of it (semantic search off) for which
requests look the cache up and when, the neighbour lists from the window's float32 matrix
(:mod:`.cache_sweep_inputs`: no object per request) — and every threshold is folded by a
compiled loop over those lookups (:mod:`.cache_sweep_kernel`, numba: microseconds per
request). With budgets or token limits (a hit then changes who is admitted, so what reaches the
cache), each threshold is the compiled replay fold itself over inputs made once, its semantic
lookups walking neighbour lists found once for every lookup any threshold may make, and the
store scoring only the lookups the lists cannot decide for certain
(:func:`.cache_sweep_inputs.coupled_lists`, :func:`.fold_semantic.searching`). A window the
compiled fold does not fold runs the composed Python fold per threshold over the composer's
per-row objects, searching the same neighbour lists (:class:`NeighbourCaches`). Results equal a
full :func:`~llmgw_kernel.replay` at each threshold as long as every semantic group is searched
exactly (groups up to 2,048 entries; larger ones go through hnswlib live, which may return
slightly different neighbours).

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
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import orjson

from ..cache.core import Caches, Query, semantic_settings
from ..decisions import cache as decide
from ..policy.load import PolicySource, load_policy, validate_policy
from ..policy.model import BOUND_OPTIONS
from .cache_stage import HIT_KINDS, Outcome, Row, _model, features_of, summary
from .cache_sweep_inputs import Neighbours, Recorded, coupled, coupled_lists, neighbour_lists, recorded, verified

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from ..cache.exact import Entry
    from ..policy.model import Policy
    from .fold import Composer
    from .fold_inputs import Inputs

#: answers less similar than this make a semantic hit count as likely wrong
ANSWER_AGREEMENT = 0.8
DEFAULT_THRESHOLDS = tuple(round(0.80 + 0.01 * i, 2) for i in range(20))


def with_semantic_threshold(policy: PolicySource, threshold: float) -> Policy:
    """``policy`` with every semantic cache (top level and route overrides) at ``threshold``.
    A cache under a false-hit bound becomes a fixed-threshold one: ``max_false_hit_rate`` and
    the options that only apply with it are dropped (the two are alternatives; the sweep
    decides every cache at the swept threshold)."""
    pol = load_policy(policy)
    doc = pol.model_dump(mode="json", exclude_unset=True)
    caches = [doc.get("cache"), *(route.get("cache") for route in (doc.get("routes") or {}).values())]
    for cache in caches:
        if isinstance(cache, dict) and isinstance(cache.get("semantic"), dict):
            semantic = cache["semantic"]
            for name in ("max_false_hit_rate", *BOUND_OPTIONS):
                semantic.pop(name, None)
            semantic["threshold"] = threshold
    return validate_policy(doc, pol.source)


class NeighbourCaches(Caches):
    """The cache decision core with its semantic search over precomputed neighbour lists (one
    threshold of a sweep, folded in Python): what it adds to a semantic store is only counted,
    for eviction; what it finds is the first entries of the list still cached."""

    def __init__(self, neighbours: Neighbours, threshold: float, rows: list[Row]) -> None:
        super().__init__()
        self.nb, self.threshold, self.rows = neighbours, threshold, rows
        self.count: dict[tuple[str, str], int] = defaultdict(int)
        self.slot: dict[int, tuple[tuple[str, str], int, int, Entry]] = {}  # row -> (store, ordinal, max, entry)

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


class Swept(NamedTuple):
    """One threshold's cache outcome, per window row."""

    threshold: float
    kinds: np.ndarray  # object: hit, semantic-hit, miss, bypass; None: it did not reach a cache
    source: np.ndarray  # int64: the row (window rows, then warm rows) whose answer a hit was served; -1
    saved: np.ndarray  # object: what a hit saved (its source's cost under the candidate); None


def semantic_hits(s: Swept) -> list[tuple[int, int]]:
    """(request row, source row) of each semantic hit of one threshold."""
    hits = np.flatnonzero((s.kinds == "semantic-hit") & (s.source >= 0))
    return list(zip(hits.tolist(), s.source[hits].tolist(), strict=True))


class Sweep(NamedTuple):
    """Every threshold's outcome, and what names a source row."""

    results: list[Swept]
    rids: Callable[[np.ndarray], list[str | None]]  # request id of rows (window, then warm rows)
    targets: Callable[[np.ndarray], list[str | None]]  # the target that produced each row's answer

    def source_targets(self, s: Swept) -> Callable[[np.ndarray], list[str | None]]:
        """The target that produced the answer each hit (window rows) of ``s`` was served."""
        return lambda rows: self.targets(s.source[rows])


def fold_thresholds(c: Composer, thresholds: list[float], compiled: bool | None = None) -> Sweep:
    """The cache outcome of every request at each threshold, composed as a full replay.

    Compiled (``compiled`` None: when numba is installed) when the compiled replay fold folds this
    window: when admission does not depend on the cache, its inputs are read over columns
    (:func:`.cache_sweep_inputs.recorded`) and each threshold is folded by
    :func:`.cache_sweep_kernel.fold_threshold`; when it does (budgets, token limits), each
    threshold is the compiled replay fold over neighbour lists (:func:`_fold_coupled`).
    Otherwise each threshold runs the composed (Python) fold with :class:`NeighbourCaches`,
    over the composer's per-row objects."""
    from . import cache_sweep_kernel as kernel
    from .fold_inputs import inputs

    if compiled is None:
        compiled = kernel.available()
    inp = inputs(c) if compiled and thresholds else None
    if inp is not None:
        if coupled(inp):
            got = _fold_coupled(c, inp, thresholds)
            if got is not None:
                return got
        else:
            rec = recorded(c, inp, min(thresholds))
            if rec is not None:
                return _fold_compiled(c.n, rec, thresholds)
    return _fold_objects(c, thresholds)


def _fold_coupled(c: Composer, inp: Inputs, thresholds: list[float]) -> Sweep | None:
    """Each threshold by the compiled replay fold itself — admission, the caches and the cost
    composed, as :func:`~llmgw_kernel.replay` folds the candidate at that threshold — over inputs
    made once, its semantic lookups searching neighbour lists found once
    (:func:`.cache_sweep_inputs.coupled_lists`). None when the compiled fold declines."""
    import dataclasses

    from .fold_kernel import fold_arrays
    from .fold_semantic import searching

    a, n = inp.arrays, c.n
    lists = coupled_lists(inp, min(thresholds))
    out: list[Swept] = []
    with searching(lists):
        for t in thresholds:
            at_t = dataclasses.replace(inp, arrays={**a, "s_thr": np.where(a["s_on"], t, a["s_thr"])})
            got = fold_arrays(c, at_t)
            if got is None:
                return None
            out.append(_swept(t, got[0], inp, n))
    d = inp.decoding
    return Sweep(out, _take(d.rids), _take(d.targets))


_CACHE_KINDS = np.array([None, "bypass", "hit", "miss", "semantic-hit"], dtype=object)  # fold_kernel's codes


def _swept(t: float, out: Any, inp: Inputs, n: int) -> Swept:
    """One threshold's outcome from the compiled fold's output (``fold_kernel.Out``)."""
    kind = np.asarray(out.cache_kind)
    hit = (kind == 2) | (kind == 4)
    source = np.where(hit, out.cache_src, -1).astype(np.int64)
    saved = np.full(n, None, object)
    own = np.flatnonzero(out.saved_has & ~out.saved_warm)
    saved[own] = out.saved[own].astype(object)
    for i in np.flatnonzero(out.saved_warm).tolist():  # a source from before the window
        saved[i] = inp.decoding.warm_cost(int(source[i]))
    return Swept(t, _CACHE_KINDS[kind], source, saved)


def _take(col: Any) -> Callable[[np.ndarray], list[str | None]]:
    """The values of an Arrow column at rows."""
    import pyarrow as pa  # type: ignore[import-untyped]

    return lambda rows: col.take(pa.array(rows, pa.int64())).to_pylist()  # type: ignore[no-any-return]


def _fold_compiled(n: int, rec: Recorded, thresholds: list[float]) -> Sweep:
    """Each threshold folded by the compiled sweep kernel over ``rec``."""
    from . import cache_sweep_kernel as kernel

    names = np.array([None, "hit", "semantic-hit", "miss"], dtype=object)
    saved_of = _objects_of(rec.up_cost, rec.up_has)
    order = rec.inputs.order
    out: list[Swept] = []
    for t in thresholds:
        kind, src = kernel.fold_threshold(t, rec.inputs)
        kinds = rec.fixed.copy()
        kinds[order] = names[kind[order]]
        source = src[:n].copy()
        saved = np.full(n, None, object)
        hits = np.flatnonzero(source >= 0)
        own = hits[source[hits] < n]
        saved[own] = saved_of[source[own]]
        for i in hits[source[hits] >= n].tolist():  # a source from before the window
            saved[i] = rec.warm_cost(int(source[i]))
        out.append(Swept(t, kinds, source, saved))

    return Sweep(out, _take(rec.rids), _take(rec.targets))


def _objects_of(values: np.ndarray, has: np.ndarray) -> np.ndarray:
    obj = values.astype(object)
    obj[~has] = None
    return obj


def _fold_objects(c: Composer, thresholds: list[float]) -> Sweep:
    """Each threshold by the composed Python fold (:class:`NeighbourCaches`)."""
    rows_ = c.all_rows
    out: list[Swept] = []
    if thresholds:
        stored = store_times(c)
        m, n = len(rows_), c.n
        rank = np.empty(m, np.int64)  # insertion order at equal store times: warm rows, then window rows
        rank[n:] = np.arange(m - n)
        rank[:n] = np.arange(m - n, m)
        nb = neighbours(c, stored, rank, min(thresholds))
        index = {id(r): r.i for r in rows_}
        for t in thresholds:
            folded = c.run(NeighbourCaches(nb, t, rows_), threshold=t)
            outs = [o if o is not None else _NOT_CONSIDERED for o in folded.cache]
            kinds = np.array([o.kind for o in outs] + [None], object)[:-1]
            source = np.array([index[id(o.source)] if o.source is not None else -1 for o in outs], np.int64)
            saved = np.array([*folded.saved, None], object)[:-1]
            out.append(Swept(t, kinds, source, saved))
    return Sweep(out, lambda rows: [rows_[i].rid for i in rows.tolist()],
                 lambda rows: [rows_[i].target for i in rows.tolist()])  # fmt: skip


def store_times(c: Composer) -> np.ndarray:
    """When each row's answer enters the cache if it misses (NaN: it stores nothing), per row
    of ``c.all_rows`` — as the composed Python fold schedules it (``fold.Composer.run``; the
    compiled sweep reads the compiled fold's schedule, :func:`.cache_sweep_inputs.store_times`):
    a request that ran live stores its logged answer at its logged store time (nothing if it
    failed); one that runs only in replay stores when it would have finished; a warm row
    (before the window) stored what the log says."""
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


def neighbours(c: Composer, stored: np.ndarray, rank: np.ndarray, floor: float) -> Neighbours:
    """:func:`.cache_sweep_inputs.neighbour_lists` over the composer's per-row objects: each
    window row's earlier-stored visible rows of its semantic group (route, model, namespace,
    context) with similarity >= ``floor``, best first, verified."""
    rows_ = c.all_rows
    m = len(rows_)
    members: dict[tuple[str, str, str, str], list[int]] = defaultdict(list)
    ttl: dict[tuple[str, str, str, str], float] = {}
    verify, feat = np.zeros(m, np.bool_), np.full(m, -1, np.int64)
    texts: dict[Any, int] = {}
    features: list[Any] = []
    prepared = [*c.prepared, *(p for _, p in c.warm)]
    for i, (r, p) in enumerate(zip(rows_, prepared, strict=True)):
        q = _semantic_query(r, p, i)
        if q is None:
            continue
        key = (q.route, q.model or "", q.ns, q.context or "")
        members[key].append(i)
        ttl[key] = q.settings.semantic.ttl_s  # type: ignore[union-attr]
        verify[i] = q.settings.semantic.verify  # type: ignore[union-attr]
        if r.features_json is not None and features_of(r.features_json) is not None:
            feat[i] = texts.setdefault(r.features_json, len(texts))
            if feat[i] == len(features):
                features.append(features_of(r.features_json))
    queries = np.zeros(m, np.bool_)
    queries[: c.n] = True
    ts = np.array([r.ts for r in rows_], np.float64)

    def vectors(ids: np.ndarray) -> np.ndarray:
        return np.stack([rows_[j].matrix[rows_[j].vi] for j in ids.tolist()])

    keys = list(members)
    groups = [np.asarray(members[k], np.int64) for k in keys]
    nb = neighbour_lists(groups, stored, rank, ts, [ttl[k] for k in keys], queries, vectors, floor)
    return verified(nb, verify, feat, features)


def _semantic_query(r: Row, p: Any, i: int) -> Query | None:
    """Row ``i`` as the core's query when it takes part in a semantic cache (its features left
    out: grouping does not read them)."""
    if p.settings is None or p.settings.semantic is None or r.vi < 0:
        return None
    q = Query(p.settings, r.route or "", p.ns, p.key, p.read, r.context, r.vector, None, r.model, i)
    return q if semantic_settings(q) is not None else None


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
    sweep = fold_thresholds(composer, ts_list)
    positives = _positives(pol, composer.rows, window["endpoint"], labels) if labels is not None else None
    agreement = _answer_agreement(con, composer.all_rows, sweep.results) if estimate else None
    table = []
    for s in sweep.results:
        summ = summary(window, s.kinds, s.saved, sweep.source_targets(s))
        pairs = semantic_hits(s)
        row = {"threshold": s.threshold, **{k: summ[k] for k in ("considered", "exact_hits", "semantic_hits",
                                                                  "hit_rate")}}  # fmt: skip
        row["saved_usd"] = summ["saved_usd"]
        row["latency_ms_p50"] = summ["latency_ms_p50"]
        row.update(_estimate(pairs, agreement, answer_threshold))
        row.update(_labelled(pairs, sweep.rids, labels, positives))
        table.append(row)
    return pd.DataFrame(table)


def _estimate(
    hits: list[tuple[int, int]], agreement: dict[tuple[int, int], float] | None, answer_threshold: float
) -> dict[str, Any]:
    """The label-free estimate over one threshold's semantic hits (request row, source row)."""
    none = {"est_false_hit_rate_low": None, "est_false_hit_rate_high": None}
    if agreement is None:
        return {"evaluable": None, "est_false_hits": None, "est_false_hit_rate": None, **none}
    sims = [agreement[pair] for pair in hits if pair in agreement]
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
    hits: list[tuple[int, int]], rids: Callable[[np.ndarray], list[str | None]],
    labels: Mapping[str, Hashable] | None, positives: int | None,
) -> dict[str, Any]:  # fmt: skip
    """Precision and recall of one threshold's semantic hits (request row, source row) against ``labels``."""
    if labels is None:
        return {"precision": float("nan"), "recall": float("nan")}
    flat = rids(np.asarray([k for pair in hits for k in pair], np.int64))
    named = list(zip(flat[::2], flat[1::2], strict=True))
    judged = [
        (labels[a], labels[b]) for a, b in named if a is not None and b is not None and a in labels and b in labels
    ]
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


def _answer_agreement(con: Any, rs: list[Row], results: list[Swept]) -> dict[tuple[int, int], float]:
    """Similarity of the answer each semantic hit would have served to the answer the model
    gave (both from the log), for every (request, source) hit pair of any threshold."""
    pairs = {(i, j) for s in results for i, j in semantic_hits(s) if rs[i].ok and rs[i].logged not in HIT_KINDS}
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
