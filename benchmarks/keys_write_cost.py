"""Cost of one key-store write (create, update, revoke) against the number of stored keys.

    .venv/bin/python benchmarks/keys_write_cost.py [--sizes 0,1000,3000,10000] [--writes 100]

For each size: seed that many keys in a fresh directory (``KeyStore.create_many``, one
fsync), then time ``--writes`` rounds of create + update + revoke. Reports CPU µs per write
(``time.process_time``: what a write costs the process, whatever the disk does), wall ms per
write (includes the fsync, so it depends on the disk and on load), the seeding time and the
time to load the journal at start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmgw_kernel.keys.secrets import Secrets  # noqa: E402
from llmgw_kernel.keys.store import KeySettings, KeyStore  # noqa: E402


def measure(size: int, writes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        pepper = Secrets(tmp).pepper
        t0 = time.perf_counter()
        store = KeyStore(tmp, pepper)
        store.create_many(KeySettings(name=f"seed-{i}", team=f"t{i % 7}") for i in range(size))
        seed_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        KeyStore(tmp, pepper)
        load_s = time.perf_counter() - t0
        cpu, wall = [], []
        for i in range(writes):
            c0, w0 = time.process_time(), time.perf_counter()
            record, _ = store.create(KeySettings(name=f"bench-{i}"))
            store.update(record.id, KeySettings(name=f"bench-{i}", rpm=60))
            store.revoke(record.id)
            cpu.append((time.process_time() - c0) / 3)
            wall.append((time.perf_counter() - w0) / 3)
    return {
        "size": size,
        "cpu_us_p50": statistics.median(cpu) * 1e6,
        "cpu_us_p90": statistics.quantiles(cpu, n=10)[-1] * 1e6,
        "wall_ms_p50": statistics.median(wall) * 1e3,
        "seed_s": seed_s,
        "load_ms": load_s * 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="0,1000,3000,10000")
    ap.add_argument("--writes", type=int, default=100)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
    print("| keys stored | CPU µs/write p50 | p90 | wall ms/write p50 (fsync) | seeding s | load at start ms |")
    print("|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        r = measure(size, args.writes)
        print(f"| {size:,} | {r['cpu_us_p50']:.0f} | {r['cpu_us_p90']:.0f} | {r['wall_ms_p50']:.2f} | "
              f"{r['seed_s']:.2f} | {r['load_ms']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
