"""Semantic-cache verification on labelled prompt pairs: precision and recall at one threshold
(default: the shipped 0.95), with and without ``verify``, and of the verifier alone.

A pair is predicted positive (one cached answer may serve both) iff cosine >= t (all-MiniLM-L6-v2)
and, with verification, ``verify(features(a), features(b))`` is None. "Verifier alone" treats
every pair as a candidate: its precision/recall say what verification keeps and drops whatever
the threshold. A seeded sample keeps the run short; ``--embeddings`` caches the vectors in a file
so that two checkouts (before / after a change to verification) are compared on the same numbers:

    .venv/bin/python benchmarks/cache_verify_devsets.py --data-dir DIR --sample 1000 --embeddings /tmp/v.npz

The data sets (CSV ``text_a,text_b,label``) live outside the repository.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmgw_kernel.decisions.cache import features, verify  # noqa: E402
from llmgw_kernel.decisions.cache_features import RULES  # noqa: E402
from llmgw_kernel.policy.model import DEFAULT_SEMANTIC_THRESHOLD  # noqa: E402

SETS = ("qqp_dev_5k.csv", "meancache_chat_smoke.csv")


def load(path: Path, sample: int, seed: int) -> list[tuple[str, str, bool]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = [(r["text_a"], r["text_b"], r["label"] == "1") for r in csv.DictReader(f)]
    if sample and sample < len(rows):
        rows = random.Random(seed).sample(rows, sample)
    return rows


def vectors(texts: list[str], cache: Path | None) -> dict[str, np.ndarray]:
    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    if cache is not None and cache.exists():
        data = np.load(cache)
        if str(data["key"]) == key:
            return dict(zip(texts, data["v"], strict=True))
    from llmgw_kernel.cache.embedder import Embedder

    emb = Embedder(None)
    emb.load()
    if not emb.ready:
        sys.exit(f"model failed: {emb.error}")
    c0 = time.process_time()
    vecs = emb.encode(texts)
    print(f"(encoded {len(texts)} texts in {time.process_time() - c0:.1f} s CPU)")
    if cache is not None:
        np.savez(cache, key=np.array(key), v=vecs)
    return dict(zip(texts, vecs, strict=True))


def pr(pred: list[bool], y: list[bool]) -> str:
    tp = sum(p and t for p, t in zip(pred, y, strict=True))
    npred, npos = sum(pred), sum(y)
    p = f"{tp / npred:.3f}" if npred else "–"
    return f"{p} / {tp / npos:.3f} ({npred} predicted)"


def recall_at(cos: list[float], ok: list[bool], y: list[bool], precision: float) -> tuple[float, float | None]:
    """The highest recall any cosine threshold reaches at ``precision`` or better among the pairs
    verification lets through (``ok``), and that threshold."""
    kept = sorted(((c, lab) for c, o, lab in zip(cos, ok, y, strict=True) if o), key=lambda x: -x[0])
    npos, tp, best, at = sum(y), 0, 0.0, None
    for i, (c, lab) in enumerate(kept, 1):
        tp += lab
        if tp / i >= precision and (i == len(kept) or kept[i][0] < c) and tp / npos > best:
            best, at = tp / npos, c
    return best, at


def ablation(rows: list[tuple[str, str, bool]], vec: dict[str, np.ndarray], feats: dict) -> None:
    """Recall at fixed precision with every rule, without each, and with each alone."""
    y = [lab for _, _, lab in rows]
    cos = [float(np.dot(vec[a], vec[b])) for a, b, _ in rows]
    configs: dict[str, frozenset[str]] = {"cosine alone": frozenset(RULES), "all rules": frozenset()}
    configs |= {f"without {r}": frozenset({r}) for r in RULES}
    configs |= {f"{r} alone": frozenset(RULES) - {r} for r in RULES}
    print("| rules | R @ P≥0.95 (t) | R @ P≥0.99 (t) |")
    print("|---|---|---|")
    for label, skip in configs.items():
        ok = [verify(feats[a], feats[b], skip) is None for a, b, _ in rows]
        cells = []
        for target in (0.95, 0.99):
            r, t = recall_at(cos, ok, y, target)
            cells.append(f"{r:.3f} ({t:.3f})" if t is not None else "0")
        print(f"| {label} | {' | '.join(cells)} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--sample", type=int, default=1000, help="pairs per set (0: all)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threshold", type=float, default=DEFAULT_SEMANTIC_THRESHOLD)
    ap.add_argument("--embeddings", type=Path, default=None, help="cache file for the vectors (.npz)")
    ap.add_argument("--ablate", action="store_true", help="recall at fixed precision with and without each rule")
    args = ap.parse_args()

    sets = {name: load(Path(args.data_dir) / name, args.sample, args.seed) for name in SETS}
    texts = sorted({t for rows in sets.values() for a, b, _ in rows for t in (a, b)})
    vec = vectors(texts, args.embeddings)
    c0 = time.process_time()
    feats = {t: features(t) for t in texts}
    fcpu = (time.process_time() - c0) / len(texts)
    t = args.threshold
    print(f"threshold {t}; sample {args.sample or 'all'} pairs per set (seed {args.seed}); "
          f"features {1e6 * fcpu:.0f} µs CPU per text")  # fmt: skip
    print()
    print(f"| set | pairs (pos) | cosine ≥ {t} | cosine ≥ {t} + verify | verify alone | verify rejects (label 0 / 1) |")
    print("|---|---|---|---|---|---|")
    for name, rows in sets.items():
        y = [lab for _, _, lab in rows]
        cos = [float(np.dot(vec[a], vec[b])) for a, b, _ in rows]
        why = [verify(feats[a], feats[b]) for a, b, _ in rows]
        ok = [w is None for w in why]
        near = [c >= t for c in cos]
        reasons = Counter((w, lab) for w, lab in zip(why, y, strict=True) if w)
        by = ", ".join(f"{w} {reasons[(w, False)]}/{reasons[(w, True)]}" for w in sorted({w for w, _ in reasons}))
        print(
            f"| {name} | {len(rows)} ({sum(y)}) | {pr(near, y)} | "
            f"{pr([n and o for n, o in zip(near, ok, strict=True)], y)} | {pr(ok, y)} | {by} |"
        )
    if args.ablate:
        for name, rows in sets.items():
            print(f"\n{name}:\n")
            ablation(rows, vec, feats)


if __name__ == "__main__":
    main()
