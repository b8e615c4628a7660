"""What does a start cost with the false-hit bound's outcome journal? (docs/cache.md, "The
outcome journal is bounded")

Writes a journal of ``--outcomes`` outcomes as the gateway appended them before the bound
(three regions, one answer in twelve wrong, deterministic), then restores it twice in this
process, as ``llmgw serve`` does on start (``Learning.restore`` on the cache worker): the first
start reads the legacy journal and compacts it, the second reads the compacted one. Per start:
CPU seconds (``process_time``), the peak of Python allocations (tracemalloc) and the journal's
size after it. ``--runs`` repetitions, each on a fresh journal.

    .venv/bin/python benchmarks/outcome_journal.py --runs 3
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from llmgw_kernel.cache.core import Caches
from llmgw_kernel.cache.learning import Learning
from llmgw_kernel.cache.outcomes import OUTCOMES_FILE

REGIONS = [("support", "minilm"), ("sales", "minilm"), ("support", "bge")]


def line(i: int) -> bytes:
    """The i-th outcome (the stream of tests/cache/test_bound_journal.py)."""
    h = int.from_bytes(hashlib.sha256(str(i).encode()).digest()[:8], "big")
    route, model = REGIONS[h % 3]
    return orjson.dumps({
        "known_at": 1000.0 + i, "route": route, "model": model, "source": f"e{i % 70_000}", "request": f"q{i}",
        "similarity": 0.80 + (h >> 8) % 2001 / 10_000, "same": (h >> 32) % 12 != 0,
        "by": "sampled" if (h >> 24) % 10 == 0 else "shadow",
    }) + b"\n"  # fmt: skip


def start(data_dir: Path) -> tuple[float, float, float]:
    """One start's restore: (CPU s, peak MB, journal MB after it)."""
    pool = ThreadPoolExecutor(1)
    tracemalloc.start()
    c0 = time.process_time()
    Learning(Caches(), pool, data_dir, lambda m: None).restore()  # type: ignore[arg-type,return-value]
    cpu = time.process_time() - c0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    pool.shutdown()
    return cpu, peak / 1e6, (data_dir / OUTCOMES_FILE).stat().st_size / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outcomes", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for run in range(args.runs):
        d = Path(tempfile.mkdtemp(prefix="outcome-journal-"))
        (d / OUTCOMES_FILE).write_bytes(b"".join(line(i) for i in range(args.outcomes)))
        legacy = (d / OUTCOMES_FILE).stat().st_size / 1e6
        for which in ("first start (legacy journal)", "next start"):
            cpu, peak, size = start(d)
            print(f"run {run + 1} {which}: {cpu:.2f} CPU s, peak {peak:.1f} MB, journal {legacy:.1f} -> {size:.1f} MB")
            legacy = size


if __name__ == "__main__":
    main()
