"""The threshold sweep, checked end to end on the shared dev sets.

Every labelled pair of a dev set is served through a real ``llmgw serve`` (demo provider,
exact + semantic cache, verification on, live threshold 0.99): ``text_a`` then ``text_b``,
each pair in its own cache namespace (``x-llmgw-cache-namespace: pair-<i>``), so ``text_b``
can only ever be answered by ``text_a``. Then ``sweep_semantic_threshold`` replays the log
at every threshold with labels (``text_b`` shares ``text_a``'s label iff the pair is labelled
1) and its precision / recall are printed beside the pair-level figures computed directly
(cosine >= t and ``verify``), which is what the sweep must reproduce.

    .venv/bin/python benchmarks/cache_devsets_sweep.py [--set qqp_dev_5k] [--limit 0] [--data-dir DIR]

The label-free estimate is not measured here: the dev sets hold prompts, not answers.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmgw_kernel import load_policy, open_log  # noqa: E402
from llmgw_kernel.cache_traffic import wait_for_models  # noqa: E402
from llmgw_kernel.replay.cache_sweep import sweep_semantic_threshold  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "semcache"
THRESHOLDS = [round(0.70 + 0.02 * i, 2) for i in range(15)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def policy() -> dict:
    return {
        "providers": {"demo": {"kind": "demo"}},
        "routes": {"demo": {"targets": [{"provider": "demo", "model": "demo-echo"}]}},
        "cache": {"exact": {"ttl_s": 86400}, "semantic": {"threshold": 0.99, "ttl_s": 86400}, "namespace": []},
        "log": {"flush_ms": 200},
    }


async def serve_pairs(url: str, pairs: list[tuple[str, str, int]], concurrency: int = 8) -> None:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one(i: int, a: str, b: str, label: int) -> None:
            async with sem:
                for side, text in (("a", a), ("b", b)):
                    r = await client.post(
                        "/v1/chat/completions",
                        json={"model": "demo", "messages": [{"role": "user", "content": text}],
                              "metadata": {"pair": i, "side": side, "label": label}},
                        headers={"x-llmgw-cache-namespace": f"pair-{i}"},
                    )  # fmt: skip
                    r.raise_for_status()

        await asyncio.gather(*(one(i, a, b, lab) for i, (a, b, lab) in enumerate(pairs)))


def make_log(data: Path, pairs: list[tuple[str, str, int]]) -> Path:
    data.mkdir(parents=True, exist_ok=True)
    pol = data / "policy.yaml"
    pol.write_text(yaml.safe_dump(policy()))
    port = free_port()
    with open(data / "serve.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmgw_kernel", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--policy", str(pol), "--data-dir", str(data), "--no-dashboards"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_models(url, proc, timeout=120)
        asyncio.run(serve_pairs(url, pairs))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return pol


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="qqp_dev_5k")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    with open(SHARED / f"{args.set}.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if args.limit:
        rows = rows[: args.limit]
    pairs = [(r["text_a"], r["text_b"], int(r["label"])) for r in rows]
    data = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="llmgw-devsweep-")) / "data"
    pol = data / "policy.yaml"
    if not pol.exists():
        t = time.perf_counter()
        make_log(data, pairs)
        print(f"served {2 * len(pairs)} requests in {time.perf_counter() - t:.0f} s -> {data}")
    con = open_log(data)
    logged = con.execute(
        "SELECT request_id, CAST(metadata->>'pair' AS INT), metadata->>'side', embedding, cache_features "
        "FROM requests ORDER BY ts"
    ).fetchall()
    labels = {rid: (f"{p}a" if side == "a" or pairs[p][2] == 1 else f"{p}b") for rid, p, side, _, _ in logged}
    # pair-level reference from the logged embeddings and features (what the sweep must reproduce)
    from llmgw_kernel.decisions.cache import Features, verify

    by_pair: dict[int, dict[str, tuple]] = {}
    for _, p, side, emb, feats in logged:
        by_pair.setdefault(p, {})[side] = (emb, feats)
    cos, ok, y, dup = [], [], [], []
    for p, sides in by_pair.items():
        (ea, fa), (eb, fb) = sides["a"], sides["b"]
        dup.append(pairs[p][0] == pairs[p][1])
        if ea is None or eb is None:  # an exact repeat logs no embedding of its own
            cos.append(1.0), ok.append(True), y.append(pairs[p][2])
            continue
        cos.append(float(np.dot(np.asarray(ea, np.float32), np.asarray(eb, np.float32))))
        ok.append(verify(Features.from_json(_j(fb)), Features.from_json(_j(fa))) is None)
        y.append(pairs[p][2])
    cos_a, ok_a, y_a, dup_a = map(np.array, (cos, ok, y, dup))
    t = time.process_time()
    table = sweep_semantic_threshold(load_policy(pol), con, THRESHOLDS, labels=labels, estimate=False)
    cpu = time.process_time() - t
    print(f"\n{args.set}: {len(pairs)} pairs, sweep of {len(THRESHOLDS)} thresholds {cpu:.1f} s CPU")
    print("| t | sweep precision | pair-level precision | sweep recall | pair-level recall | semantic hits |")
    print("|---:|---:|---:|---:|---:|---:|")
    for _, r in table.iterrows():
        pred = (cos_a >= r["threshold"]) & ok_a & ~dup_a
        tp = int((pred & (y_a == 1)).sum())
        prec = tp / pred.sum() if pred.sum() else float("nan")
        rec = tp / int(((y_a == 1) & ~dup_a).sum())
        print(
            f"| {r['threshold']:.2f} | {r['precision']:.3f} | {prec:.3f} | {r['recall']:.3f} | {rec:.3f} | "
            f"{r['semantic_hits']} |"
        )


def _j(v):
    import orjson

    return orjson.loads(v) if isinstance(v, str) else v


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
