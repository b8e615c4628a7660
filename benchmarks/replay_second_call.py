"""A first and a second ``replay()`` in one process, step by step, with what holds the memory.

    LLMGW_REPLAY_CACHE=off .venv/bin/python benchmarks/replay_second_call.py --cache-dir DIR

``replay_scale.py``'s 1M-row log (``--cache-dir``, ``--rows``) under its live policy, replayed
twice in one process (a notebook's next replay), with ``replay_steps.py``'s timers: per step its
CPU s, RSS and peak (VmHWM, reset by writing 5 to ``/proc/self/clear_refs`` before the second
call, so the second call's peak is its own, not the first's), and beside them glibc malloc's live
and free bytes (``mallinfo2``: free heap counts whether or not its pages were given back) and
Arrow's allocated bytes. Between the calls: ``del result; gc.collect()``, then
``window.release_memory()``, each with RSS. ``--warm-up``: a 3,000-row replay through the
compiled fold first (numba loaded before the first 1M-row call). One run: repeat for a spread.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]  # fmt: skip


def _status() -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    got = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            got[line.split(":")[0]] = int(line.split()[1]) / 1024
    return got["VmRSS"], got["VmHWM"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "llmgw-replay-scale")
    ap.add_argument("--warm-up", action="store_true", help="a 3,000-row compiled replay before the first call")
    args = ap.parse_args(argv)
    import pyarrow as pa  # type: ignore[import-untyped]
    import replay_scale
    import replay_steps as rs

    data_dir = replay_scale.ensure_log(args.cache_dir, args.rows)
    from llmgw_kernel import replay
    from llmgw_kernel.replay import fold
    from llmgw_kernel.replay.window import release_memory

    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _MallInfo2
    heap: list[tuple[float, float, float]] = []

    def rss() -> tuple[float, float]:
        m = mallinfo2()
        heap.append((m.uordblks / 2**20, m.fordblks / 2**20, pa.total_allocated_bytes() / 2**20))
        return _status()

    rs._rss = rss
    rs._instrument()
    policy = data_dir / "policy-live.yaml"
    if args.warm_up:
        small = Path(tempfile.mkdtemp()) / "small"
        replay_scale.generate(small, 3000, seed=5, chunk=1500)
        was, fold.COMPILED_FROM_ROWS = fold.COMPILED_FROM_ROWS, 0
        del replay(policy, str(small)).summary
        fold.COMPILED_FROM_ROWS = was
        gc.collect()
        release_memory()
        print(f"after the warm-up: RSS / peak {_status()[0]:,.0f} / {_status()[1]:,.0f} MB")
    for call in ("first", "second"):
        rs.STEPS.clear()
        heap.clear()
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here
        start = time.process_time()
        result = replay(policy, str(data_dir))
        spent, (_, peak) = time.process_time() - start, _status()
        differs = result.summary["differs_from_log"]
        print(f"-- the {call} call: {spent:.2f} CPU s, peak {peak:,.0f} MB, differs {differs}")
        for (name, cpu, at, top), (used, free, arrow) in zip(rs.STEPS, heap[-len(rs.STEPS) :], strict=True):
            print(f"  {name:<24} {cpu:6.2f} CPU s  RSS {at:6,.0f}  peak {top:6,.0f} MB | malloc live {used:5,.0f}"
                  f" free {free:5,.0f} | Arrow {arrow:5,.0f} MB")  # fmt: skip
        del result
        gc.collect()
        arrow_mb = pa.total_allocated_bytes() / 2**20
        print(f"after del + gc.collect(): RSS {_status()[0]:,.0f} MB, Arrow {arrow_mb:,.0f} MB")
        release_memory()
        print(f"after release_memory(): RSS {_status()[0]:,.0f} MB")


if __name__ == "__main__":
    main()
