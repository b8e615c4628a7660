"""Is a 20-threshold sweep at most twice one replay? And how good is the label-free estimate?

Makes (or reuses) a log of labelled synthetic traffic through a real ``llmgw serve``
(:mod:`llmgw_kernel.cache_traffic`, served at threshold 0.99 so would-be hits keep their own
answers), then measures, in process CPU time:

* one ``replay(live_policy, log)`` (all stages; routing + cache);
* ``sweep_semantic_threshold`` over 20 thresholds (0.80..0.99) without the label-free estimate;
* the same with the estimate (loads the model once, embeds the answers of hit pairs);

and prints, per threshold, the estimated false-hit rate beside the labelled one.

    .venv/bin/python benchmarks/cache_sweep.py [--n 2000] [--data-dir DIR] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmgw_kernel import load_policy, open_log, replay  # noqa: E402
from llmgw_kernel.cache_traffic import intent_labels, make_cache_log  # noqa: E402
from llmgw_kernel.replay.cache_sweep import DEFAULT_THRESHOLDS, sweep_semantic_threshold  # noqa: E402


def cpu() -> float:
    return time.process_time()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--data-dir", default=None, help="reuse a log made earlier (else a temp dir)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    data = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="llmgw-sweep-")) / "data"
    if not (data / "cache-traffic-policy.yaml").exists():
        t = time.perf_counter()
        make_cache_log(data, n=args.n, seed=0, policy_threshold=0.99)
        print(f"log: {args.n} requests in {time.perf_counter() - t:.1f} s -> {data}")
    policy = load_policy(data / "cache-traffic-policy.yaml")
    con = open_log(data)
    n = con.execute("SELECT count(*) FROM requests").fetchall()[0][0]
    labels = intent_labels(con)
    rows = []
    for _ in range(args.rounds):
        t = cpu()
        result = replay(policy, con)
        one = cpu() - t
        assert result.compare_to_log() == 0
        t = cpu()
        sweep_semantic_threshold(policy, con, DEFAULT_THRESHOLDS, labels=labels, estimate=False)
        sweep = cpu() - t
        rows.append((one, sweep))
    t = cpu()
    table = sweep_semantic_threshold(policy, con, DEFAULT_THRESHOLDS, labels=labels, estimate=True)
    with_estimate = cpu() - t
    best = min(rows, key=lambda r: r[1] / r[0])
    med = sorted(rows, key=lambda r: r[1] / r[0])[len(rows) // 2]
    print(f"\n{n} logged requests; CPU seconds (rounds: {args.rounds})")
    print("| | one replay | sweep, 20 thresholds | ratio |")
    print("|---|---|---|---|")
    for one, sweep in rows:
        print(f"| round | {one:.2f} | {sweep:.2f} | {sweep / one:.2f} |")
    print(
        f"\nmedian ratio {med[1] / med[0]:.2f}, best {best[1] / best[0]:.2f}; "
        f"sweep with the label-free estimate (model load + answer embeddings): {with_estimate:.2f} s"
    )
    print(
        "\n| threshold | semantic hits | evaluable | est. false-hit rate (95% CI) | labelled false-hit rate "
        "| precision | recall |"
    )
    print("|---|---|---|---|---|---|---|")
    for _, r in table.iterrows():
        est = (
            "–"
            if r["est_false_hit_rate"] is None or r["evaluable"] == 0
            else (
                f"{r['est_false_hit_rate']:.3f} ({r['est_false_hit_rate_low']:.3f}–{r['est_false_hit_rate_high']:.3f})"
            )
        )
        prec = r["precision"]
        print(
            f"| {r['threshold']:.2f} | {r['semantic_hits']} | {r['evaluable']} | {est} | "
            f"{(1 - prec):.3f} | {prec:.3f} | {r['recall']:.3f} |"
        )


if __name__ == "__main__":
    main()
