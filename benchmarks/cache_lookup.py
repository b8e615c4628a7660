"""What one cache lookup costs, in process (no server): exact key + lookup, semantic search
at 100k entries in one group, and one-prompt embedding.

    .venv/bin/python benchmarks/cache_lookup.py [--entries 100000] [--queries 2000] [--prompts 200]
        [--skip exact,semantic,real,embed] [--sweep] [--data-dir /work/shared/data/semcache]

(a) exact: ``exact_key`` + ``scoped`` + ``ExactStore.get`` on a realistic chat body (system
    prompt, three earlier turns, a user question), the store holding 10,000 entries; µs of
    CPU per lookup (process CPU time over a loop), and per-call wall percentiles.
(b) semantic: ``SemanticStore.search`` (k = 3, as the live cache asks) in one group of
    ``--entries`` random L2-normalised 384-d vectors, added one by one through
    ``SemanticStore.add`` (so the group switches to hnswlib at EXACT_MAX like the live
    cache). Queries are stored vectors plus noise, renormalised (cosine ≈ 0.95 to their
    source). Reports build CPU time, RSS growth, search p50/p99 (wall, per call, with thread
    CPU time alongside), and how often the source vector came back first (recall@1).
    Random vectors are the hard case for HNSW (no cluster structure).
(c) embedding: ``Embedder.encode([text])`` on ~200 varied prompts taken from the shared
    dev sets (read from their path, not copied), lengths 2–60 words; p50/p99 wall and
    thread CPU per call.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmgw_kernel.cache import semantic as semantic_mod  # noqa: E402
from llmgw_kernel.cache.exact import Entry, ExactStore  # noqa: E402
from llmgw_kernel.cache.semantic import SemanticStore  # noqa: E402
from llmgw_kernel.decisions.cache import exact_key, scoped  # noqa: E402

DIM = 384


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def loadavg() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def chat_body(i: int) -> dict:
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {
                "role": "system",
                "content": "You are a concise assistant for an e-commerce support team. "
                "Answer in at most three sentences and cite the order id when relevant.",
            },
            {"role": "user", "content": "Hi, I ordered a pair of running shoes last week (order 4471-22)."},
            {"role": "assistant", "content": "Thanks! I can see order 4471-22: it shipped on Monday with DHL."},
            {"role": "user", "content": f"When will it arrive in Lyon, and can I change the size to 43? ({i})"},
        ],
        "temperature": 0,
        "max_tokens": 256,
        "stream": False,
        "user": "support-bot",
    }


def bench_exact(n_store: int = 10_000, loops: int = 20_000) -> dict:
    store = ExactStore()
    ns = "route=gpt-4o-mini\x1fkey=key_123\x1fteam=support"
    now = time.time()
    for i in range(n_store):
        store.put(
            scoped(ns, exact_key("gpt-4o-mini", chat_body(i))), Entry(f"req_{i}", now - 1, b"{}", "o/m", None), 10**7
        )
    bodies = [chat_body(i % n_store) for i in range(1000)]
    hits = 0
    # CPU over the whole loop
    gc.collect()
    c0, w0 = time.process_time(), time.perf_counter()
    for j in range(loops):
        b = bodies[j % 1000]
        if store.get(scoped(ns, exact_key("gpt-4o-mini", b)), now, 600) is not None:
            hits += 1
    cpu = time.process_time() - c0
    wall = time.perf_counter() - w0
    # per call
    per = []
    for j in range(2000):
        b = bodies[j % 1000]
        t = time.perf_counter()
        store.get(scoped(ns, exact_key("gpt-4o-mini", b)), now, 600)
        per.append(time.perf_counter() - t)
    key_only = []
    for j in range(2000):
        b = bodies[j % 1000]
        t = time.perf_counter()
        exact_key("gpt-4o-mini", b)
        key_only.append(time.perf_counter() - t)
    return {
        "loops": loops,
        "hits": hits,
        "cpu_us": 1e6 * cpu / loops,
        "wall_us": 1e6 * wall / loops,
        "p50_us": 1e6 * pct(per, 50),
        "p99_us": 1e6 * pct(per, 99),
        "key_p50_us": 1e6 * pct(key_only, 50),
        "body_bytes": len(str(bodies[0]).encode()),
    }


def bench_semantic(entries: int, queries: int, noise: float, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((entries, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    store = SemanticStore(DIM)
    now = time.time()
    entry = Entry("req", now - 10, b"{}", None, None)
    gc.collect()
    rss0 = rss_mb()
    c0, w0 = time.process_time(), time.perf_counter()
    for i in range(entries):
        store.add("ns", "ctx", vecs[i], entry, None, 10**7)
    build_cpu = time.process_time() - c0
    build_wall = time.perf_counter() - w0
    rss1 = rss_mb()
    src = rng.integers(0, entries, queries)
    q = vecs[src] + noise * rng.standard_normal((queries, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    cos_src = np.einsum("ij,ij->i", q, vecs[src])
    # eids are assigned 0.. in insertion order, so eid == row
    for i in range(50):  # warm
        store.search("ns", "ctx", q[i], now, 600, 3)
    lat, tcpu, found = [], [], 0
    for i in range(queries):
        t, c = time.perf_counter(), time.thread_time()
        cands = store.search("ns", "ctx", q[i], now, 600, 3)
        tcpu.append(time.thread_time() - c)
        lat.append(time.perf_counter() - t)
        found += bool(cands) and cands[0].entry == int(src[i])
    group = next(iter(store._groups.values()))
    # the index alone, without the Python visibility filter, to split the cost
    raw = []
    if group.index is not None:
        for i in range(queries):
            t = time.perf_counter()
            group.index.knn_query(q[i][None, :], k=3)
            raw.append(time.perf_counter() - t)
    return {
        "entries": entries,
        "queries": queries,
        "hnsw": group.index is not None,
        "build_cpu_s": build_cpu,
        "build_wall_s": build_wall,
        "rss_delta_mb": rss1 - rss0,
        "p50_ms": 1e3 * pct(lat, 50),
        "p99_ms": 1e3 * pct(lat, 99),
        "max_ms": 1e3 * max(lat),
        "cpu_p50_ms": 1e3 * pct(tcpu, 50),
        "cpu_p99_ms": 1e3 * pct(tcpu, 99),
        "recall1": found / queries,
        "cos_src_median": float(np.median(cos_src)),
        "raw_p50_ms": 1e3 * pct(raw, 50) if raw else None,
        "raw_p99_ms": 1e3 * pct(raw, 99) if raw else None,
    }


def sweep(entries: int, queries: int, noise: float, builds: list[tuple[int, int]], efs: list[int]) -> None:
    """hnswlib alone at ``entries`` random vectors: build (M, ef_construction) x search ef, with
    the same Python visibility filter the store passes and without it. One thread, bulk add."""
    import hnswlib

    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((entries, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    src = rng.integers(0, entries, queries)
    q = vecs[src] + noise * rng.standard_normal((queries, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    alive = np.ones(entries, bool)
    stored = np.zeros(entries)
    ts, ttl = 1.0, 600.0

    def visible(slot: int) -> bool:
        return bool(alive[slot]) and stored[slot] < ts < stored[slot] + ttl

    for m, efc in builds:
        index = hnswlib.Index(space="ip", dim=DIM)
        index.init_index(max_elements=entries, M=m, ef_construction=efc)
        index.set_num_threads(1)
        c0 = time.process_time()
        index.add_items(vecs, np.arange(entries))
        build = time.process_time() - c0
        for ef in efs:
            index.set_ef(ef)
            for filt in (visible, None):
                lat, hit = [], 0
                for i in range(queries):
                    t = time.thread_time()
                    labels, _ = index.knn_query(q[i][None, :], k=3, filter=filt)
                    lat.append(time.thread_time() - t)
                    hit += int(labels[0][0]) == int(src[i])
                print(
                    f"sweep M={m} efC={efc} (build {build:.0f} s CPU) ef={ef} filter={'py' if filt else 'none'}: "
                    f"CPU p50 {1e3 * pct(lat, 50):.3f} p99 {1e3 * pct(lat, 99):.3f} ms recall@1 {hit / queries:.3f}",
                    flush=True,
                )


def bench_real(data_dir: str) -> dict:
    """Real embeddings: every distinct ``text_a`` of both dev sets stored in one group (past
    EXACT_MAX, so through hnswlib), queried with the ``text_b`` of each label-1 pair; recall@1
    is against an exact brute-force search over the same vectors."""
    from llmgw_kernel.cache.embedder import Embedder

    rows = []
    for name in ("qqp_dev_5k.csv", "meancache_chat_smoke.csv"):
        with open(Path(data_dir) / name, newline="", encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    stored = list(dict.fromkeys(r["text_a"] for r in rows))
    queries = [r["text_b"] for r in rows if r["label"] == "1"]
    emb = Embedder(None)
    emb.load()
    c0 = time.process_time()
    sv = emb.encode(stored)
    qv = emb.encode(queries)
    enc_cpu = time.process_time() - c0
    store = SemanticStore(DIM)
    now = time.time()
    entry = Entry("req", now - 10, b"{}", None, None)
    c0 = time.process_time()
    for v in sv:
        store.add("ns", "ctx", v, entry, None, 10**7)
    build_cpu = time.process_time() - c0
    truth = np.argmax(qv @ sv.T, axis=1)
    lat, agree = [], 0
    for i in range(len(qv)):
        t = time.thread_time()
        cands = store.search("ns", "ctx", qv[i], now, 600, 3)
        lat.append(time.thread_time() - t)
        agree += bool(cands) and cands[0].entry == int(truth[i])
    group = next(iter(store._groups.values()))
    return {
        "entries": len(sv), "queries": len(qv), "hnsw": group.index is not None, "encode_cpu_s": enc_cpu,
        "build_cpu_s": build_cpu, "cpu_p50_ms": 1e3 * pct(lat, 50), "cpu_p99_ms": 1e3 * pct(lat, 99),
        "recall1": agree / len(qv),
    }  # fmt: skip


def prompts(data_dir: str, n: int) -> list[str]:
    texts: list[str] = []
    seen = set()
    files = ["meancache_chat_smoke.csv", "qqp_dev_5k.csv"]
    for name in files:
        with open(Path(data_dir) / name, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                for t in (row["text_a"], row["text_b"]):
                    if t not in seen and 2 <= len(t.split()) <= 60:
                        seen.add(t)
                        texts.append(t)
    rng = np.random.default_rng(3)
    # half chat-style (MeanCache), half QQP, shuffled; plus a few long multi-sentence ones
    mc = [t for t in texts[:900]]
    rest = texts[900:]
    pick = [mc[i] for i in rng.choice(len(mc), n // 2, replace=False)]
    pick += [rest[i] for i in rng.choice(len(rest), n - n // 2 - 10, replace=False)]
    pick += [" ".join(rest[j] for j in rng.choice(len(rest), 4, replace=False)) for _ in range(10)]
    rng.shuffle(pick)
    return pick


def bench_embed(data_dir: str, n: int) -> dict:
    from llmgw_kernel.cache.embedder import Embedder

    emb = Embedder(None)
    c0 = time.process_time()
    emb.load()
    load_cpu = time.process_time() - c0
    texts = prompts(data_dir, n)

    def via_st(t: str) -> None:  # sentence-transformers' own encode (the path before the fast one)
        emb._model.encode([t], batch_size=32, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)

    for t in texts[:20]:
        emb.encode([t])
        via_st(t)
    lat, tcpu, st_cpu = [], [], []
    for t in texts:  # alternating, so both paths see the same machine load
        w, c = time.perf_counter(), time.thread_time()
        emb.encode([t])
        tcpu.append(time.thread_time() - c)
        lat.append(time.perf_counter() - w)
        c = time.thread_time()
        via_st(t)
        st_cpu.append(time.thread_time() - c)
    ratio = float(np.median(np.asarray(tcpu) / np.asarray(st_cpu)))
    words = [len(t.split()) for t in texts]
    return {
        "prompts": len(texts),
        "words_median": float(np.median(words)),
        "words_max": max(words),
        "load_s": emb.load_s,
        "load_cpu_s": load_cpu,
        "p50_ms": 1e3 * pct(lat, 50),
        "p99_ms": 1e3 * pct(lat, 99),
        "cpu_p50_ms": 1e3 * pct(tcpu, 50),
        "cpu_p99_ms": 1e3 * pct(tcpu, 99),
        "st_cpu_p50_ms": 1e3 * pct(st_cpu, 50),
        "st_cpu_p99_ms": 1e3 * pct(st_cpu, 99),
        "ratio": ratio,
        "fast_path": emb._one is not None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--noise", type=float, default=0.016, help="per-dimension noise σ (0.016 → cosine ≈ 0.95)")
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--skip", default="")
    ap.add_argument("--data-dir", default="/work/shared/data/semcache")
    ap.add_argument("--sweep", action="store_true", help="only: hnswlib M/ef_construction/ef sweep at --entries")
    args = ap.parse_args()
    if args.sweep:
        sweep(args.entries, args.queries, args.noise, [(16, 200), (8, 100), (12, 100)], [16, 32, 64, 128])
        return
    skip = set(filter(None, args.skip.split(",")))
    print(
        f"# cache_lookup  pid {os.getpid()}  loadavg {loadavg()}  "
        f"EXACT_MAX={semantic_mod.EXACT_MAX} HNSW M/efC/ef={semantic_mod.HNSW_M}/"
        f"{semantic_mod.HNSW_EF_CONSTRUCTION}/{semantic_mod.HNSW_EF}"
    )
    if "exact" not in skip:
        r = bench_exact()
        print(
            f"exact: {r['cpu_us']:.1f} µs CPU per lookup (exact_key + scoped + get, {r['loops']} loops, "
            f"{r['hits']} hits; wall {r['wall_us']:.1f} µs); per call p50 {r['p50_us']:.1f} µs p99 "
            f"{r['p99_us']:.1f} µs; exact_key alone p50 {r['key_p50_us']:.1f} µs; body ≈ {r['body_bytes']} B"
        )
    if "semantic" not in skip:
        for n in (2048, args.entries):
            r = bench_semantic(n, args.queries, args.noise)
            extra = (
                f"; index alone (no filter) p50 {r['raw_p50_ms']:.3f} p99 {r['raw_p99_ms']:.3f} ms"
                if r["raw_p50_ms"] is not None
                else ""
            )
            print(
                f"semantic {r['entries']:,} entries ({'hnswlib' if r['hnsw'] else 'exact numpy'}): build "
                f"{r['build_cpu_s']:.1f} s CPU ({r['build_wall_s']:.1f} s wall), RSS +{r['rss_delta_mb']:.0f} MB; "
                f"search k=3 p50 {r['p50_ms']:.3f} ms p99 {r['p99_ms']:.3f} ms max {r['max_ms']:.2f} ms "
                f"(thread CPU p50 {r['cpu_p50_ms']:.3f} p99 {r['cpu_p99_ms']:.3f} ms); recall@1 "
                f"{r['recall1']:.3f} (query↔source cosine median {r['cos_src_median']:.3f}){extra}"
            )
            gc.collect()
    if "real" not in skip:
        r = bench_real(args.data_dir)
        print(
            f"semantic, real embeddings: {r['entries']:,} dev-set prompts stored "
            f"({'hnswlib' if r['hnsw'] else 'exact numpy'}; build {r['build_cpu_s']:.1f} s CPU), {r['queries']:,} "
            f"paraphrase queries: search thread CPU p50 {r['cpu_p50_ms']:.3f} ms p99 {r['cpu_p99_ms']:.3f} ms; "
            f"top-1 agrees with brute force {r['recall1']:.3f}"
        )
    if "embed" not in skip:
        r = bench_embed(args.data_dir, args.prompts)
        print(
            f"embed: {r['prompts']} prompts (median {r['words_median']:.0f} words, max {r['words_max']}): "
            f"encode([text]) p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms wall; thread CPU p50 "
            f"{r['cpu_p50_ms']:.1f} p99 {r['cpu_p99_ms']:.1f} ms (single-text fast path: {r['fast_path']}); "
            f"sentence-transformers encode alternated with it: thread CPU p50 {r['st_cpu_p50_ms']:.1f} p99 "
            f"{r['st_cpu_p99_ms']:.1f} ms; per-prompt CPU ratio fast/st median {r['ratio']:.2f}; "
            f"load {r['load_s']:.1f} s ({r['load_cpu_s']:.1f} s CPU)"
        )
    print(f"# loadavg at end {loadavg()}")


if __name__ == "__main__":
    main()
