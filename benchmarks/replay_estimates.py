"""CPU time of a replay's estimates over a warm window (one process, repeated calls).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/replay_estimates.py --cache-dir /tmp/llmgw-replay-scale --rows 1000000

Loads ``replay_scale.py``'s log (made first if missing), reads the columns the estimates read
(their scan is the window's, not the estimates') and ``attempt_arrays`` (memoised per window: the
routing summary reads it too), then times ``costs_columnar.estimates_columnar`` (the fold's: failure
rates, route means, latency medians) and, where the tree has it, ``cost_estimates`` (the stateless
path's: failure rates and route means) — ``process_time``, min / median / max of ``--calls``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/llmgw-replay-scale"))
    ap.add_argument("--calls", type=int, default=7)
    args = ap.parse_args(argv)
    import replay_scale

    from llmgw_kernel.replay import costs_columnar, open_log, routing_estimates
    from llmgw_kernel.replay.window import load_window

    w = load_window(open_log(str(replay_scale.ensure_log(args.cache_dir, args.rows))))
    for name in ("route", "outcome", "cache"):
        w.codes(name)
    for name in ("latency_ms", "prompt_tokens", "completion_tokens"):
        w.numpy(name), w.valid(name)
    routing_estimates.attempt_arrays(w)
    for name in ("estimates_columnar", "cost_estimates"):
        fn = getattr(costs_columnar, name, None)
        if fn is None:
            continue
        spent = []
        for _ in range(args.calls):
            t = time.process_time()
            fn(w)
            spent.append(time.process_time() - t)
        print(f"{name}: CPU s min {min(spent):.4f} median {statistics.median(spent):.4f} max {max(spent):.4f}")


if __name__ == "__main__":
    main()
