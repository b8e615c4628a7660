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
cached prompts. The sweep does that once — for every request, every earlier request of the
same route, namespace and context whose answer was visible (stored before it arrived,
within the TTL) with similarity at or above the lowest threshold — and then replays each
threshold over those neighbour lists with the same decision code as live
(:func:`~llmgw_kernel.replay.cache_stage.simulate`). Each threshold gets its own cache
contents (a hit stores nothing, so what is cached depends on the threshold), its own
evictions and TTLs. Results equal a full :func:`~llmgw_kernel.replay` at each threshold as
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
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ..decisions import cache as decide
from ..policy.load import PolicySource, load_policy, validate_policy
from .cache_stage import HIT_KINDS, Outcome, Row, _model, summary

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from ..cache.exact import Entry
    from ..policy.model import Policy

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


class NeighbourIndex:
    """Semantic lookups over precomputed neighbour lists (one threshold's replay)."""

    def __init__(self, neighbours: Mapping[int, list[tuple[float, int, Row]]], threshold: float) -> None:
        self.neighbours = neighbours
        self.threshold = threshold  # candidates below it cannot answer: the walk stops there
        self.count: dict[tuple[str, str], int] = defaultdict(int)
        self.slot: dict[int, tuple[tuple[str, str], int, int]] = {}  # row -> (store, ordinal, max_entries)

    def add(self, r: Row, ns: str, entry: Entry, max_entries: int) -> None:
        key = (r.route or "", r.model or "")
        self.slot[r.i] = (key, self.count[key], max_entries)
        self.count[key] += 1

    def maybe(self, r: Row) -> bool:
        """False when no earlier request is similar enough to answer ``r`` at this threshold."""
        found = self.neighbours.get(r.i)
        return found is not None and len(found) > 0 and found[0][0] >= self.threshold

    def search(self, r: Row, ns: str, ttl_s: float) -> Iterator[tuple[decide.Candidate, str]]:
        """Lazily, as :func:`decide.choose` consumes them: the walk ends at the first answer."""
        threshold, slots, count = self.threshold, self.slot, self.count
        found = 0
        for sim, ji, j in self.neighbours.get(r.i, ()):
            if sim < threshold:
                return
            slot = slots.get(ji)
            if slot is None:
                continue  # not cached at this threshold (it was a hit, or not yet stored)
            key, ordinal, max_entries = slot
            if ordinal < count[key] - max_entries:
                continue  # evicted
            yield decide.Candidate(sim, ji, j.features), j.rid
            found += 1
            if found == decide.CANDIDATES:
                return


_NOT_CONSIDERED = Outcome(None)  # the request did not reach a cache (refused, not routed, no cache)


def _stored_at(r: Row) -> float:
    return r.stored_at if r.stored_at is not None else r.done_at


def neighbours(
    policy: Policy, rs: list[Row], endpoint: list[str], floor: float
) -> dict[int, list[tuple[float, int, Row]]]:
    """For each request, the earlier-stored requests of its semantic group visible when it
    arrived with similarity >= ``floor``, best first (ties: stored first, as live)."""
    groups: dict[tuple[str, str, str, str], list[Row]] = defaultdict(list)
    ttl: dict[tuple[str, str, str, str], float] = {}
    for r, ep in zip(rs, endpoint, strict=True):
        s = policy.cache_for(r.route) if r.route is not None and ep == "chat.completions" else None
        if (
            s is None
            or s.semantic is None
            or r.vector is None
            or r.context is None
            or r.model != _model(s.semantic.model)
        ):
            continue
        ns = decide.namespace(s, r.route or "", r.key_id, r.team, r.ns_header)
        key = (r.route or "", r.model, ns, r.context)
        groups[key].append(r)
        ttl[key] = s.semantic.ttl_s
    out: dict[int, list[tuple[float, int, Row]]] = {}
    for key, members in groups.items():
        if len(members) < 2:
            continue
        members.sort(key=lambda m: (_stored_at(m), m.i))  # the live insertion order
        vecs = np.stack([m.vector for m in members])  # type: ignore[misc]
        stored = np.array([_stored_at(m) for m in members])
        storable = np.array([m.ok or m.logged in HIT_KINDS for m in members])
        span = ttl[key]
        for r in members:
            # visible = stored in (ts - ttl, ts): a contiguous run of the stored-time order
            lo = int(np.searchsorted(stored, r.ts - span, side="right"))
            hi = int(np.searchsorted(stored, r.ts, side="left"))
            if hi <= lo:
                continue
            sims = vecs[lo:hi] @ r.vector
            keep = np.flatnonzero((sims >= floor) & storable[lo:hi])
            if not len(keep):
                continue
            order = keep[np.argsort(-sims[keep], kind="stable")]
            found = [members[lo + k] for k in order.tolist()]
            out[r.i] = list(zip(sims[order].tolist(), [m.i for m in found], found, strict=True))
    return out


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
    rs = composer.rows
    endpoint = window["endpoint"]
    nb = neighbours(pol, composer.all_rows, composer.all_endpoints, min(ts_list) if ts_list else 1.0)
    positives = _positives(pol, rs, endpoint, labels) if labels is not None else None
    results: list[tuple[float, list[Any], dict[str, Any]]] = []
    for t in ts_list:
        folded = composer.run(NeighbourIndex(nb, t), threshold=t)
        outs = [o if o is not None else _NOT_CONSIDERED for o in folded.cache]
        kinds = [o.kind for o in outs]
        sources = [o.source for o in outs]
        results.append((t, outs, summary(pol, rs, kinds, sources, saved=folded.saved)))
    agreement = _answer_agreement(con, composer.all_rows, results) if estimate else None
    table = []
    for t, outs, summ in results:
        hits = [(r, o.source) for r, o in zip(rs, outs, strict=True) if o.kind == "semantic-hit" and o.source]
        row = {"threshold": t, **{k: summ[k] for k in ("considered", "exact_hits", "semantic_hits", "hit_rate")}}
        row["saved_usd"] = summ["saved_usd"]
        row["latency_ms_p50"] = summ["latency_ms_p50"]
        row.update(_estimate(hits, agreement, answer_threshold))
        row.update(_labelled(hits, labels, positives))
        table.append(row)
    return pd.DataFrame(table)


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
    con: Any, rs: list[Row], results: list[tuple[float, list[Any], dict[str, Any]]]
) -> dict[tuple[int, int], float]:
    """Similarity of the answer each semantic hit would have served to the answer the model
    gave (both from the log), for every (request, source) hit pair of any threshold."""
    pairs = {
        (r.i, o.source.i)
        for _, outs, _ in results
        for r, o in zip(rs[: len(outs)], outs, strict=True)
        if o.kind == "semantic-hit" and o.source is not None and r.ok and r.logged not in HIT_KINDS
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
