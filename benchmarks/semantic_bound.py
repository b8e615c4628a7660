"""The false-hit bound on labelled prompt pairs: hit rate and observed false-hit rate of
``max_false_hit_rate`` (0.5%, 1%, 2%) against static thresholds at the same observed precision.

One namespace, one pass: every ``text_a`` is cached first, then each ``text_b`` is asked
once, in a seeded order. The upstream's answer to a prompt is the id of its meaning: prompts
joined by a ``label=1`` pair (transitively) get the same answer, every other prompt its own,
so two answers agree exactly when the prompts mean the same. A miss asks the upstream and
its answer is stored; under the bound, the miss is also compared with its nearest verified
entry (an outcome), and a ``verify_rate`` share of hits is asked upstream too. Every decision
is made by ``cache/core.py`` ``Caches`` (the live decision core). The static thresholds are
folded over the same pass from precomputed neighbour lists through the same
``decisions.cache.choose`` (``--check-static`` replays one threshold through ``Caches`` and
asserts the two agree).

Two scopes: one namespace (the issue's test), and a namespace per pair (an ask sees only its own
``text_a``, so unlabelled cross-pair paraphrases cannot count as wrong; the route's learned
threshold is still one). Recall = correct hits / asks whose meaning was already in the cache
(per pair: the pairs labelled the same); false-hit rate = wrong hits / hits. "Best static" is
the static threshold (0.50-1.00, step 0.005) with the highest recall whose observed false-hit
rate is at most the bound's observed one (chosen in hindsight, on the test set itself: an
upper bound for any static threshold).

    .venv/bin/python benchmarks/semantic_bound.py --data-dir DIR --embeddings /tmp/semcache-vec.npz

``--warmup-learns``: the questions are cached the way traffic caches them (each asked, never
served from the cache, and compared with its nearest verified entry under the bound), so the
learned threshold also starts from that evidence; by default they are stored and teach nothing.

``DIR`` holds ``qqp_dev_5k.csv`` (development set) and ``meancache_chat_smoke.csv`` (held
out); CSV ``text_a,text_b,label``; the files stay outside the repository.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmgw_kernel import load_policy  # noqa: E402
from llmgw_kernel.cache.bound import DEFAULT_VERIFY_RATE, Outcome  # noqa: E402
from llmgw_kernel.cache.core import Caches, Query, semantic_model  # noqa: E402
from llmgw_kernel.cache.exact import Entry  # noqa: E402
from llmgw_kernel.decisions import cache as decide  # noqa: E402

SETS = (("qqp_dev_5k.csv", "development"), ("meancache_chat_smoke.csv", "held out"))
BOUNDS = (0.005, 0.01, 0.02)
STATIC = [round(0.5 + 0.005 * i, 3) for i in range(101)]
NEIGHBOURS = 16


def load(path: Path) -> list[tuple[str, str, bool]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [(r["text_a"], r["text_b"], r["label"] == "1") for r in csv.DictReader(f)]


def meanings(rows: list[tuple[str, str, bool]]) -> dict[str, str]:
    """Each prompt's answer: the representative of its label=1 component (union-find)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, same in rows:
        find(a), find(b)
        if same:
            parent[find(a)] = find(b)
    return {t: "answer:" + hashlib.sha256(find(t).encode()).hexdigest()[:12] for t in parent}


def order(n: int, seed: str) -> list[int]:
    """A seeded permutation (a hash of the index, so it never depends on a RNG's version)."""
    return sorted(range(n), key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())


def embed(texts: list[str], cache: Path | None, model: str | None = None) -> np.ndarray:
    """The texts' vectors from ``model`` (default: the cache's default model), cached in ``cache``."""
    key = hashlib.sha256("\x00".join([model, *texts] if model else texts).encode()).hexdigest()[:16]
    if cache is not None and cache.exists():
        data = np.load(cache, allow_pickle=False)
        if str(data["key"]) == key:
            return data["v"]
    from llmgw_kernel.cache.embedder import Embedder

    emb = Embedder(model)
    emb.load()
    if not emb.ready:
        raise SystemExit(f"model {emb.name}: {emb.error}")
    c0 = time.process_time()
    vecs = emb.encode(texts)
    print(f"(encoded {len(texts)} texts in {time.process_time() - c0:.1f} s CPU, {emb.name})", file=sys.stderr)
    if cache is not None:
        np.savez(cache, key=np.array(key), v=vecs)
    return vecs


class Pass:
    """The prepared data of one set: prompts, vectors, features, answers, order."""

    def __init__(self, rows: list[tuple[str, str, bool]], vecs: dict[str, np.ndarray]) -> None:
        self.answer = meanings(rows)
        self.questions = list(dict.fromkeys(a for a, _, _ in rows))
        self.asks = [rows[i] for i in order(len(rows), "semantic_bound")]
        texts = list(dict.fromkeys([*self.questions, *(b for _, b, _ in self.asks)]))
        self.vec = vecs
        self.feat = {t: decide.features(t) for t in texts}
        self.positives = sum(1 for _, _, same in rows if same)
        seen = {self.answer[t] for t in self.questions}
        self.answerable = 0  # asks whose answer was in the cache's reach when asked (shared scope)
        for _, b, _ in self.asks:
            self.answerable += self.answer[b] in seen
            seen.add(self.answer[b])


def policy(**semantic: Any) -> Any:
    return load_policy({
        "providers": {"d": {"kind": "demo"}},
        "cache": {"semantic": {"ttl_s": 3e7, "max_entries": 1_000_000, **semantic}, "namespace": []},
        "routes": {"m": {"targets": [{"provider": "d", "model": "echo"}]}},
    }).cache_for("m")  # fmt: skip


def run_caches(
    p: Pass, settings: Any, verify_rate: float, paired: bool = False, warmup: bool = False
) -> dict[str, Any]:
    """One pass through ``Caches`` (the live decision core), learning as the gateway does.
    ``paired``: each pair in a namespace of its own (an ask sees only its own ``text_a``; the
    route's learned threshold is still one, learned from every namespace). ``warmup``: the
    questions are cached the way traffic caches them — each asked upstream (``x-llmgw-cache:
    refresh``: never served from the cache) and, under the bound, compared with its nearest
    verified entry (a shadow outcome); else they are stored directly and teach nothing."""
    caches, model = Caches(), semantic_model(settings.semantic)
    bound = settings.semantic.max_false_hit_rate

    def query(text: str, k: int) -> Query:
        ns = f"pair-{k}" if paired else "ns"
        return Query(settings, "m", ns, None, True, "ctx", p.vec[text], p.feat[text], model)

    firsts = [(a, k) for k, (a, _, _) in enumerate(p.asks)] if paired else [(a, 0) for a in p.questions]
    for i, (text, k) in enumerate(firsts):
        truth = p.answer[text].encode()
        if warmup and bound is not None:
            near = caches.lookup_semantic(query(text, k), float(i)).nearest
            if near is not None:
                same = near.entry.body == truth
                caches.learn(
                    Outcome(i + 0.5, "m", model, near.entry.request_id, f"q{i}", near.similarity, same, "shadow")
                )
        caches.store(query(text, k), Entry(f"q{i}", float(i), truth, "d/echo", None))
    hits = wrong = right = checks = shadow = 0
    c0 = time.process_time()
    for k, (_, text, _) in enumerate(p.asks):
        ts, rid = 1e7 + k, f"a{k}"
        found = caches.lookup_semantic(query(text, k), ts)
        truth = p.answer[text].encode()
        if found.entry is not None:
            hits += 1
            ok = found.entry.body == truth
            right += ok
            wrong += not ok
            sampled = int.from_bytes(hashlib.sha256(rid.encode()).digest()[:8], "big") / 2**64 < verify_rate
            if bound is not None and sampled:
                checks += 1
                caches.learn(Outcome(ts, "m", model, found.entry.request_id, rid, found.similarity or 0, ok, "sampled"))
            continue
        if bound is not None and found.nearest is not None:
            shadow += 1
            same = found.nearest.entry.body == truth
            near = found.nearest
            caches.learn(Outcome(ts + 0.5, "m", model, near.entry.request_id, rid, near.similarity, same, "shadow"))
        caches.store(query(text, k), Entry(rid, ts + 0.5, truth, "d/echo", None))
    cpu = time.process_time() - c0
    final = caches.bound("m", model).threshold(bound) if bound is not None else None
    return summary(p, hits, wrong, right, paired) | {
        "verify_calls": checks, "shadow_compared": shadow, "final_threshold": final, "cpu_s": round(cpu, 2),
    }  # fmt: skip


def summary(p: Pass, hits: int, wrong: int, right: int, paired: bool = False) -> dict[str, Any]:
    """Recall: correct hits over the asks whose answer the cache could have had (their pair's
    ``text_a`` means the same; shared: also any earlier prompt of the same meaning)."""
    return {
        "hits": hits,
        "hit_rate": round(hits / len(p.asks), 4),
        "false_hits": wrong,
        "false_hit_rate": round(wrong / hits, 4) if hits else None,
        "recall": round(right / (p.positives if paired else p.answerable), 4),
    }


def neighbour_lists(p: Pass) -> tuple[list[list[tuple[float, int]]], list[str]]:
    """Per ask, its nearest earlier prompts (questions, then earlier asks), best first."""
    texts = [*p.questions, *(b for _, b, _ in p.asks)]
    m = np.stack([p.vec[t] for t in texts])
    nq = len(p.questions)
    out: list[list[tuple[float, int]]] = []
    for k in range(len(p.asks)):
        sims = m[: nq + k] @ m[nq + k]
        top = np.argpartition(-sims, NEIGHBOURS)[:NEIGHBOURS] if len(sims) > NEIGHBOURS else np.arange(len(sims))
        top = top[np.lexsort((top, -sims[top]))]
        out.append([(float(sims[j]), int(j)) for j in top])
    return out, texts


def run_static(p: Pass, nb: list[list[tuple[float, int]]], texts: list[str], t: float) -> dict[str, Any]:
    """One static threshold over the pass (an ask that hit is not stored), through ``choose``."""
    nq = len(p.questions)
    stored = [True] * len(texts)
    hits = wrong = right = 0
    for k, (_, text, _) in enumerate(p.asks):
        cands = [decide.Candidate(s, j, p.feat[texts[j]]) for s, j in nb[k] if stored[j]][: decide.CANDIDATES]
        verdict = decide.choose(t, True, p.feat[text], cands)
        if verdict.entry is None:
            continue
        stored[nq + k] = False
        hits += 1
        ok = p.answer[texts[verdict.entry]] == p.answer[text]
        right += ok
        wrong += not ok
    return summary(p, hits, wrong, right) | {"threshold": t}


def run_static_paired(p: Pass, sims: list[float], t: float) -> dict[str, Any]:
    """One static threshold, each pair in its own namespace (an ask sees its ``text_a`` only)."""
    hits = wrong = right = 0
    for k, (a, b, _) in enumerate(p.asks):
        if decide.choose(t, True, p.feat[b], [decide.Candidate(sims[k], 0, p.feat[a])]).entry is None:
            continue
        hits += 1
        ok = p.answer[a] == p.answer[b]
        right += ok
        wrong += not ok
    return summary(p, hits, wrong, right, True) | {"threshold": t}


def best_static(static: list[dict[str, Any]], max_rate: float) -> dict[str, Any] | None:
    ok = [s for s in static if s["hits"] and s["false_hit_rate"] <= max_rate]
    return max(ok, key=lambda s: (s["recall"], -s["threshold"])) if ok else None


def table(p: Pass, static: list[dict[str, Any]], verify_rate: float, paired: bool, warmup: bool = False) -> None:
    """The bound at each of :data:`BOUNDS` against the best static threshold at its precision."""
    print(
        "| bound | hit rate | false-hit rate | recall | verify calls | final t "
        "| best static at that false-hit rate (t: hit rate / FHR / recall) | recall x |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for delta in BOUNDS:
        r = run_caches(p, policy(max_false_hit_rate=delta, verify_rate=verify_rate), verify_rate, paired, warmup)
        s = best_static(static, r["false_hit_rate"] if r["hits"] else delta)
        ref = f"{s['threshold']}: {s['hit_rate']} / {s['false_hit_rate']} / {s['recall']}" if s else "none"
        ratio = f"{r['recall'] / s['recall']:.2f}" if s and s["recall"] else "-"
        print(
            f"| {delta:.1%} | {r['hit_rate']} | {r['false_hit_rate']} ({r['false_hits']}/{r['hits']}) | "
            f"{r['recall']} | {r['verify_calls']} | {r['final_threshold']} | {ref} | {ratio} |"
        )
        print(f"  (pass CPU {r['cpu_s']} s, {r['shadow_compared']} misses compared)", file=sys.stderr)
    for delta in BOUNDS:
        print(f"best static with false-hit rate <= {delta:.1%}: {best_static(static, delta)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--embeddings", type=Path, default=None, help="cache the vectors in this .npz file")
    ap.add_argument("--model", default=None, help="a sentence-transformers model directory (default: the cache's)")
    ap.add_argument("--verify-rate", type=float, default=DEFAULT_VERIFY_RATE)
    ap.add_argument("--check-static", type=float, default=None, help="replay this static threshold through Caches")
    ap.add_argument("--warmup-learns", action="store_true", help="the questions are cached by traffic: compared too")
    args = ap.parse_args()
    data = {name: load(args.data_dir / name) for name, _ in SETS}
    texts = list(dict.fromkeys(t for rows in data.values() for a, b, _ in rows for t in (a, b)))
    vecs = dict(zip(texts, embed(texts, args.embeddings, args.model), strict=True))
    for name, role in SETS:
        p = Pass(data[name], vecs)
        print(f"\n## {name} ({role}): {len(p.questions)} cached, {len(p.asks)} asked, {p.positives} same")
        print(f"\n### one namespace ({p.answerable} asks answerable)\n")
        nb, all_texts = neighbour_lists(p)
        static = [run_static(p, nb, all_texts, t) for t in STATIC]
        if args.check_static is not None:
            via_core = run_caches(p, policy(threshold=args.check_static), 0.0)
            folded = run_static(p, nb, all_texts, args.check_static)
            drop = ("threshold", "verify_calls", "shadow_compared", "final_threshold", "cpu_s")
            assert {k: v for k, v in via_core.items() if k not in drop} == {
                k: v for k, v in folded.items() if k not in drop
            }, (via_core, folded)
            print(f"static {args.check_static}: Caches and the neighbour fold agree: {folded}\n")
        table(p, static, args.verify_rate, False, args.warmup_learns)
        print("\n### a namespace per pair, one learned threshold\n")
        sims = [float(p.vec[a] @ p.vec[b]) for a, b, _ in p.asks]
        table(p, [run_static_paired(p, sims, t) for t in STATIC], args.verify_rate, True, args.warmup_learns)


if __name__ == "__main__":
    main()
