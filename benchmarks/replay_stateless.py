"""The routing-only replay's stateless outcome at scale: its cache-source lookup timed, and the
outcome's answer hashed (for before/after comparisons of ``replay/stateless.py``).

    cd <tree> && PYTHONPATH=$PWD <venv>/bin/python <after>/benchmarks/replay_stateless.py --cache-dir <copy>
    cd <tree> && PYTHONPATH=$PWD <venv>/bin/python <after>/benchmarks/replay_stateless.py --cache-dir <copy> --hash

One ``replay()`` of ``replay_scale.py``'s routing-only candidate over its log (``--cache-dir``:
where that log and its replay cache are). Inside the call, ``stages.stateless_outcome`` is
wrapped: by default ``stateless._source_rows`` of every window row is timed once (the first call
in the process: CPU, sys CPU and minor page faults) and ``--repeat`` more times (min / median),
then the replay goes on. ``--hash``: instead, SHA-256 of the outcome's arrays (served by, cost,
known), of ``result.summary`` as JSON, and of the decisions frame as CSV — equal before and after
when the answer is unchanged (the frame costs ~10 s at 1M rows).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _kernel() -> tuple[float, float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.process_time(), r.ru_stime, r.ru_minflt


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/llmgw-replay-scale"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--hash", action="store_true")
    args = ap.parse_args(argv)
    import numpy as np
    import replay_scale

    from llmgw_kernel import replay
    from llmgw_kernel.replay import stages, stateless

    data_dir = replay_scale.ensure_log(args.cache_dir, args.rows)
    outcome = stages.stateless_outcome
    got: dict[str, Any] = {}

    def wrapped(policy: Any, window: Any, routing: Any, estimates: Any = None) -> Any:
        if not args.hash:
            rows = np.arange(len(window), dtype=np.int64)
            t0, s0, f0 = _kernel()
            stateless._source_rows(window, rows)
            t1, s1, f1 = _kernel()
            later = []
            for _ in range(args.repeat):
                t = time.process_time()
                stateless._source_rows(window, rows)
                later.append(time.process_time() - t)
            print(f"source lookup, first call: {1000 * (t1 - t0):.1f} ms CPU (sys {1000 * (s1 - s0):.1f}), "
                  f"{f1 - f0:,} minor faults; later {args.repeat}: min {1000 * min(later):.1f} ms, "
                  f"median {1000 * statistics.median(later):.1f} ms")  # fmt: skip
        got["outcome"] = outcome(policy, window, routing, estimates)
        return got["outcome"]

    stages.stateless_outcome = wrapped  # type: ignore[assignment]
    result = replay(data_dir / "policy-routing.yaml", data_dir)
    if args.hash:
        o = got["outcome"]
        h = hashlib.sha256()
        for a in (o.served_by, o.cost, o.cost_known):
            h.update(np.ascontiguousarray(a).tobytes())
        print("outcome", h.hexdigest(), sorted(o.unpriced), sorted(o.unmeasured))
        print("summary", hashlib.sha256(json.dumps(result.summary, sort_keys=True, default=str).encode()).hexdigest())
        print("decisions", hashlib.sha256(result.decisions.to_csv(index=False).encode()).hexdigest())
    print("differs from the log", result.summary["differs_from_log"])


if __name__ == "__main__":
    main()
