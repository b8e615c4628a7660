"""What the exact store's lock costs the event loop (docs/cache.md#persistence-and-rebuild):
a put with and without the lock at ``max_entries`` entries (every put evicts), the copy a
snapshot makes under the lock (the longest the loop can wait for it), and a whole snapshot.

    .venv/bin/python benchmarks/cache_snapshot_cost.py [--entries 10000] [--puts 200000]

CPU time (time.process_time), one thread.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmgw_kernel.cache.exact import Entry, ExactStore  # noqa: E402
from llmgw_kernel.cache.service import CacheService  # noqa: E402


def fill(store: ExactStore, n: int, start: int, max_entries: int) -> float:
    body = b'{"id":"chatcmpl-x","choices":[{"message":{"role":"assistant","content":"' + b"x" * 400 + b'"}}]}'
    keys = [f"{i:064x}" for i in range(start, start + n)]
    c0 = time.process_time()
    for k in keys:
        store.put(k, Entry("req", 1.0, body, "d/echo", None), max_entries)
    return time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--puts", type=int, default=200_000)
    args = ap.parse_args()
    n, m = args.entries, args.puts

    for label, lock in (("with lock", None), ("without lock", contextlib.nullcontext())):
        store = ExactStore()
        if lock is not None:
            store._lock = lock  # type: ignore[assignment]
        fill(store, n, 0, n)
        cpu = fill(store, m, n, n)  # every put evicts the oldest
        print(f"put at {n:,} entries ({label}): {1e6 * cpu / m:.2f} µs CPU")

    store = ExactStore()
    fill(store, n, 0, n)
    reps = 200
    c0 = time.process_time()
    for _ in range(reps):
        with store._lock:
            store._entries.copy()  # what ExactStore.items() does under its lock
    print(f"copy under the lock at {n:,} entries: {1e3 * (time.process_time() - c0) / reps:.3f} ms CPU")

    with tempfile.TemporaryDirectory() as tmp:
        svc = CacheService(Path(tmp))
        svc.exact["r"] = store
        c0 = time.process_time()
        rows = svc.save()
        print(f"snapshot of {rows:,} exact entries: {1e3 * (time.process_time() - c0):.0f} ms CPU (on the worker)")
        svc.close()


if __name__ == "__main__":
    main()
