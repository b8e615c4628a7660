"""The compiled fold's run alone: ``replay()`` of the live policy over replay_scale's log with
``fold_kernel.fold_arrays`` (the kernel over the window's inputs) called 7 times, each from a fresh
state, CPU seconds (``process_time``) of each call — the first includes loading the cached machine
code (or compiling it). Nothing else changes: the last call's result is the replay's.

    cd <tree> && PYTHONPATH=$PWD /work/main/.venv/bin/python /work/main/benchmarks/replay_kernel_runs.py \\
        [--rows 1000000] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import replay_scale  # noqa: E402

from llmgw_kernel import replay  # noqa: E402
from llmgw_kernel.replay import fold_kernel  # noqa: E402

CALLS = 7


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/llmgw-replay-scale"))
    args = ap.parse_args()
    data_dir = replay_scale.ensure_log(args.cache_dir, args.rows)
    run = fold_kernel.fold_arrays

    def timed(c: Any, inp: Any) -> Any:
        took, got = [], None
        for _ in range(CALLS):
            t = time.process_time()
            got = run(c, inp)
            took.append(time.process_time() - t)
        rest = sorted(took[1:])
        print(f"kernel CPU s: {' '.join(f'{x:.3f}' for x in took)}; calls 2-{CALLS}: min {rest[0]:.3f}, "
              f"median {(rest[2] + rest[3]) / 2:.3f}; load {os.getloadavg()[0]:.1f}")  # fmt: skip
        return got

    fold_kernel.fold_arrays = timed  # type: ignore[assignment]
    r = replay(data_dir / "policy-live.yaml", data_dir)
    print("differs from the log", r.summary["differs_from_log"])


if __name__ == "__main__":
    main()
