"""A synthetic request log with prompt embeddings, written the way the live proxy writes it.

One :class:`~llmgw_kernel.log.record.RequestRecord` per request is filled in by the live
decision code — ``plan_route`` for the plan, the cache decision core
(:class:`~llmgw_kernel.cache.core.Caches`: exact lookup on the logged key, then the semantic
lookup, verification included) with the times the live proxy logs (lookup 0.5 ms after
arrival, the answer stored when it finished), ``cost_usd`` — and handed to the real
:class:`~llmgw_kernel.log.writer.LogWriter`. No model runs: the embeddings are synthetic
384-d float32 unit vectors, deterministic from the seed — 500 topics, 10 intents per topic
(cosine ≈ 0.8 between intents of a topic: near misses), 6 phrasings per intent (cosine
0.75–0.99 between phrasings: the threshold matters). The phrasings' texts are the traffic
model's (:func:`llmgw_kernel.traffic_bulk.prompt_text`), so verification features (and
rejections: one phrasing of every intent is negated) come from
:func:`~llmgw_kernel.decisions.cache.features`.

Traffic: the demo traffic profile drawn in bulk (:func:`llmgw_kernel.traffic_bulk.draw`: its
teams, keys, users, Monday-morning hours, Zipf-popular intents with exact repeats and
paraphrases) at 60 requests/s on average over a week, on three routes (:data:`ROUTE_MAP`:
``chat``: exact + semantic cache, weighted targets; ``assistant``: the same cache, declared
order; ``summarize``, the analysts' work: no cache); 64 keys (``keys``) shared over the teams as
the profile shares its keys, Zipf-skewed within a team, 4 system prompts (conversation
contexts), 10% of requests too hot to cache, 1% ``no-cache``; 4% of attempts fail (fallback to
the next target). The namespace is the default ``[key, team]``, so a semantic group is (route,
key, team, system prompt). The policy serves at threshold 0.90 with no budgets or rate limits
(``policy_doc(budget_usd=...)`` adds a daily team budget).

Used by ``benchmarks/replay_semantic_scale.py`` (1M rows) and the sweep tests.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..traffic_bulk import PHRASINGS, WEEK_START, draw, for_policy, prompt_text
from ..traffic_profile import PROFILES

START = WEEK_START  # 2026-11-02 08:00 UTC, a Monday
RATE_PER_S = 60.0
DIM = 384
TOPICS, INTENTS_PER_TOPIC = 500, 10
N_KEYS = 64
KEY_ZIPF = 0.6  # a team's first key sends most: some semantic groups are large
SYSTEM_PROMPTS = (
    "You are a concise assistant.",
    "You answer questions about our product catalogue.",
    "Reply in plain English, two sentences at most.",
    "You are a helpful research assistant; cite sources.",
)
FAIL_P = 0.04
#: the demo profile on this log's routes: half the assistant traffic is chat here, analysts summarize
ROUTE_MAP = {"assistant": {"assistant": 0.5, "chat": 0.5}, "analyst": {"summarize": 1.0}}
PRICING = {
    "gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.6},
    "gpt-4o": {"input_per_1m": 2.5, "output_per_1m": 10.0},
    "claude-3-5-haiku": {"input_per_1m": 0.8, "output_per_1m": 4.0},
    "claude-sonnet-4-5": {"input_per_1m": 3.0, "output_per_1m": 15.0},
}


def policy_doc(threshold: float = 0.9, budget_usd: float | None = None) -> dict[str, Any]:
    """The policy that served the log: routing with fallbacks, exact + semantic cache (and,
    with ``budget_usd``, a daily budget per team)."""
    mini, haiku = {"provider": "openai", "model": "gpt-4o-mini"}, {"provider": "anthropic", "model": "claude-3-5-haiku"}
    big, sonnet = {"provider": "openai", "model": "gpt-4o"}, {"provider": "anthropic", "model": "claude-sonnet-4-5"}
    doc: dict[str, Any] = {
        "providers": {
            "openai": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "OPENAI_API_KEY"},
            "anthropic": {"kind": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"},
        },
        "pricing": PRICING,
        "log": {"bodies": "full"},
        "routes": {
            "chat": {"targets": [{**mini, "weight": 70}, {**haiku, "weight": 30}]},
            "assistant": {"targets": [big, sonnet]},
            "summarize": {"targets": [mini], "cache": False},
        },
        "cache": {
            "exact": {"ttl_s": 600},
            "semantic": {"threshold": threshold, "ttl_s": 600},
            "max_temperature": 0.7,
        },
    }
    if budget_usd is not None:
        doc["budgets"] = {"limits": [{"scope": "team", "usd": budget_usd, "window": "day"}]}
    return doc


# -- synthetic prompts -----------------------------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def prompts(seed: int) -> tuple[list[str], np.ndarray]:
    """Texts and vectors of every (intent, phrasing), indexed ``intent * PHRASINGS + phrasing``.

    Topic centres are random unit vectors; an intent is its topic plus noise of norm 0.5
    (cosine ≈ 0.8 to the other intents of its topic); a phrasing is its intent plus noise of a
    norm drawn from [0.15, 0.7] per phrasing (cosine ≈ 0.75–0.99 between two phrasings)."""
    rng = np.random.default_rng(seed)
    topics = _unit(rng.standard_normal((TOPICS, DIM)))
    n_intents = TOPICS * INTENTS_PER_TOPIC
    noise = _unit(rng.standard_normal((n_intents, DIM)))
    intents = _unit(np.repeat(topics, INTENTS_PER_TOPIC, axis=0) + 0.5 * noise)
    scale = rng.uniform(0.15, 0.7, (n_intents * PHRASINGS, 1)).astype(np.float32)
    jitter = _unit(rng.standard_normal((n_intents * PHRASINGS, DIM)))
    vectors = _unit(np.repeat(intents, PHRASINGS, axis=0) + scale * jitter)
    return [prompt_text(i, k) for i in range(n_intents) for k in range(PHRASINGS)], vectors


# -- the log ---------------------------------------------------------------------------------
class _Live:
    """The live proxy's cache while the synthetic log is "served": the live decision core's
    stores, and the answers still to be stored (applied in time order)."""

    def __init__(self, policy: Any) -> None:
        from llmgw_kernel.cache.core import Caches

        self.policy = policy
        self.caches = Caches()
        self.pending: list[tuple[float, int, Any]] = []
        self.seq = 0

    def later(self, at: float, store: Any) -> None:
        self.seq += 1
        heapq.heappush(self.pending, (at, self.seq, store))

    def until(self, at: float) -> None:
        while self.pending and self.pending[0][0] < at:
            heapq.heappop(self.pending)[2]()


def _cache(live: _Live, rec: Any, body: dict[str, Any], control: str | None, vec: np.ndarray, feats: Any) -> Any:
    """The cache part of serving ``rec`` (as ``CacheService.prepare`` + ``lookup``): returns the
    Query to store the answer under (None: not cached), and sets ``rec.cache*``."""
    from llmgw_kernel.cache.core import Found, Query, semantic_model
    from llmgw_kernel.decisions import cache as decide

    settings = live.policy.cache_for(rec.route)
    if settings is None:
        return None, None
    route = rec.route
    rec.cache_control = control
    ns = rec.cache_namespace = decide.namespace(settings, route, rec.key_id, rec.team, None)
    raw = rec.cache_key = decide.exact_key(route, body)
    why = decide.bypass_reason(settings, body, control)
    if why is not None:
        rec.cache, rec.cache_reason = "bypass", why
        return None, None
    q = Query(settings, route, ns, decide.scoped(ns, raw), control != decide.NO_CACHE)
    q.context = rec.cache_context = decide.semantic_context(route, body)
    rec.cache = "miss"
    rec.cache_reason = decide.NO_CACHE if not q.read else None
    rec.cache_lookup_ts = rec.ts + 0.0005
    live.until(rec.cache_lookup_ts)
    entry = live.caches.lookup_exact(q, rec.ts)
    if entry is not None:
        rec.cache, rec.cache_source = "hit", entry.request_id
        return None, Found("hit", entry)
    q.model = rec.embedding_model = semantic_model(settings.semantic)
    q.vector, q.features = vec, feats
    rec.embedding, rec.cache_features = vec, feats.to_json()
    found = live.caches.lookup_semantic(q, rec.ts)
    if found.similarity is not None:
        rec.cache_similarity = found.similarity
    if found.entry is not None:
        rec.cache, rec.cache_source = "semantic-hit", found.entry.request_id
        return None, found
    rec.cache_reason = rec.cache_reason or found.reason
    return q, None


def _serve(live: _Live, rec: Any, body: dict[str, Any], control: str | None, draws: np.ndarray, vec: Any, feats: Any):
    """Fill ``rec`` as the pipeline does: plan → cache → attempts → cost (no limits apply)."""
    from llmgw_kernel.cache.exact import Entry
    from llmgw_kernel.decisions.context import route_context
    from llmgw_kernel.decisions.cost import cost_usd
    from llmgw_kernel.decisions.routing import plan_route

    policy = live.policy
    plan = plan_route(policy, rec.route, rec.request_id, route_context(rec.request_id, rec.route, body, rec.metadata))
    rec.plan, rec.route_reason, rec.end_user = plan.targets, plan.reason, rec.metadata.get("user")
    q, hit = _cache(live, rec, body, control, vec, feats)
    if hit is not None:
        usage = hit.entry.usage
        rec.status, rec.outcome, rec.cost_usd = 200, "ok", 0.0
        rec.saved_usd = cost_usd(policy, hit.entry.target, usage["prompt_tokens"], usage["completion_tokens"])
        rec.ts_end = rec.ts + 0.003 + 0.002 * float(draws[0])
        rec.latency_ms = round((rec.ts_end - rec.ts) * 1000, 3)
        return
    elapsed = 0.0
    for k, target in enumerate(plan.targets):
        ms = round(300.0 + 2500.0 * float(draws[1 + k % 3]), 3)
        failed = draws[4 + k % 3] < FAIL_P
        rec.attempts.append({"target": target, "status": 500 if failed else 200, "latency_ms": ms,
                             "error": "upstream_500: HTTP 500" if failed else None})  # fmt: skip
        elapsed += ms / 1000
        if not failed:
            provider, model = target.split("/", 1)
            rec.target, rec.provider, rec.upstream_model, rec.upstream_ms = target, provider, model, ms
            pt, ct = 20 + int(draws[7] * 900), 5 + int(draws[8] * 400)
            rec.usage = {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}
            rec.cost_usd = cost_usd(policy, target, pt, ct)
            rec.status, rec.outcome = 200, "ok"
            rec.response_raw = b'{"id":"c","object":"chat.completion","choices":[]}'
            if q is not None:
                stored = rec.cache_stored_ts = rec.ts + elapsed + 0.001
                entry = Entry(rec.request_id, stored, b"-", target, rec.usage)
                live.later(stored, lambda q=q, entry=entry: live.caches.store(q, entry))
            break
    else:
        rec.status, rec.outcome, rec.error_type = 502, "upstream_error", "upstream_500"
        rec.error_message = f"{plan.targets[-1]}: HTTP 500"
    rec.ts_end, rec.latency_ms = rec.ts + elapsed + 0.002, round((elapsed + 0.002) * 1000, 3)


def generate(data_dir: Path, rows: int, seed: int = 0, chunk: int = 20_000, keys: int = N_KEYS) -> None:
    """Write ``rows`` synthetic requests with embeddings to the log in ``data_dir``, and the
    policy that served them as ``policy-live.yaml`` (``keys``: about how many client keys share
    the traffic, each team at least one — fewer keys, larger semantic groups)."""
    from llmgw_kernel import load_policy
    from llmgw_kernel.cache.service import key_id
    from llmgw_kernel.decisions.cache import features
    from llmgw_kernel.log.record import RequestRecord
    from llmgw_kernel.log.writer import LogWriter

    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "policy-live.yaml").write_text(yaml.safe_dump(policy_doc(), sort_keys=False))
    live = _Live(load_policy(data_dir / "policy-live.yaml"))
    texts, vectors = prompts(seed)
    feats: dict[int, Any] = {}
    demo = PROFILES["demo"]
    scale = keys / sum(t.keys for t in demo.teams)
    profile = for_policy(demo, "semantic-log", ROUTE_MAP, keys=scale, users=100, key_zipf=KEY_ZIPF)
    d = draw(profile, rows, seed=seed, start=START, rate_per_s=RATE_PER_S, intents=TOPICS * INTENTS_PER_TOPIC,
             zipf_s=1.0)  # fmt: skip
    key_ids = [[key_id(f"sk-synthetic-{t.name}-{k}") for k in range(t.keys)] for t in profile.teams]
    rng = np.random.default_rng(seed + 1)
    system_i, draws = rng.integers(0, 4, rows), rng.random((rows, 10))
    writer = LogWriter(data_dir, flush_ms=3_600_000, journal=False)
    for i in range(rows):
        team, k, p = int(d.team[i]), int(d.key[i]), int(d.intent[i]) * PHRASINGS + int(d.phrasing[i])
        rid = "req_" + hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=12).hexdigest()
        rec = RequestRecord(rid, float(d.ts[i]), "chat.completions")
        rec.route = d.routes[d.route[i]]
        rec.key_id, rec.team = key_ids[team][k], d.teams[team]
        rec.metadata = {"team": rec.team, "user": f"{rec.team}-user-{d.user[i]}"}
        system = SYSTEM_PROMPTS[(team + k + (system_i[i] == 0)) % len(SYSTEM_PROMPTS)]
        body: dict[str, Any] = {"model": rec.route, "max_tokens": 512, "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": texts[p]}]}  # fmt: skip
        if draws[i, 9] < 0.10:
            body["temperature"] = rec.temperature = 1.0
        rec.request_raw = json.dumps(body).encode()
        control = "no-cache" if draws[i, 9] > 0.99 else None
        if p not in feats:
            feats[p] = features(texts[p])
        _serve(live, rec, body, control, draws[i], vectors[p], feats[p])
        writer.append(rec)
        if (i + 1) % chunk == 0 or i + 1 == rows:
            writer.flush()
            print(f"  generated {i + 1:,} rows", file=sys.stderr, flush=True)
    writer.close()
