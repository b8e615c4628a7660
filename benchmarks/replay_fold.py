"""The composed fold: CPU per request of ``Composer.run()`` (Python) vs ``run_compiled()`` (numba).

    .venv/bin/python benchmarks/replay_fold.py                 # the 100k-row synthetic log, 3 runs each
    .venv/bin/python benchmarks/replay_fold.py --rows 20000 --runs 5
    .venv/bin/python benchmarks/replay_fold.py --cold          # compile into an empty numba cache first
    .venv/bin/python benchmarks/replay_fold.py --rows 1000000 --no-python   # the compiled fold alone

The log is ``benchmarks/replay_scale.py``'s (generated once into ``--cache-dir``), replayed
under its live policy (routing + budgets + rate limits + exact cache). The window is loaded and
the composer prepared once (not timed: ``Composer.__init__`` is the same for both folds); then
each fold runs ``--runs`` times, CPU time (``process_time``: this process, all threads) per run.
The compiled fold is split into its parts: coding the inputs (Python/numpy, including
``Composer.served`` for every row), the kernel, and building the ``Folded``. The first call's
compile (``--cold``) or load from numba's on-disk cache is reported apart. Both folds' results
are compared field by field before timing (``--no-python``: the Python fold is neither run nor
compared — at 1M rows it takes ~45 CPU s a run; the tests compare the two).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _composer(data_dir: Path) -> Any:
    from llmgw_kernel import load_policy
    from llmgw_kernel.log.reader import open_log
    from llmgw_kernel.replay import _state_before, load_window
    from llmgw_kernel.replay.stages import decide

    pol = load_policy(data_dir / "policy-live.yaml")
    con = open_log(str(data_dir))
    window = load_window(con, None, None)
    history, start, warm = _state_before(pol, con, window, None)
    return decide(pol, window, history, start, warm, fold=False).composer


def _cpu(fn: Any, *args: Any) -> tuple[float, Any]:
    t = time.process_time()
    out = fn(*args)
    return time.process_time() - t, out


def _same(a: Any, b: Any) -> bool:
    names = ("admission", "admission_reason", "admission_limit", "cost", "served_by", "saved")
    if any(getattr(a, k) != getattr(b, k) for k in names) or a.unpriced != b.unpriced:
        return False
    key = lambda o: None if o is None else (o.kind, o.reason, o.source, o.similarity)  # noqa: E731
    return [key(o) for o in a.cache] == [key(o) for o in b.cache]


def _line(name: str, secs: list[float], n: int) -> str:
    us = sorted(s / n * 1e6 for s in secs)
    med = statistics.median(us)
    return (
        f"{name:<28} CPU/request µs min {us[0]:7.2f}  median {med:7.2f}  max {us[-1]:7.2f}"
        f"   ({1e6 / med:,.0f} requests/s per core)"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/llmgw-replay-scale"))
    ap.add_argument("--cold", action="store_true", help="compile into an empty numba cache (compile time)")
    ap.add_argument("--no-python", action="store_true", help="time the compiled fold only")
    args = ap.parse_args(argv)
    if args.cold:
        os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-cold-")
    import replay_scale

    from llmgw_kernel.replay import fold_inputs, fold_kernel

    data_dir = replay_scale.ensure_log(args.cache_dir, args.rows)
    prep, c = _cpu(_composer, data_dir)
    n = c.n
    print(f"{n:,} requests ({data_dir}); load + Composer() {prep:.2f} CPU s (not in the figures below)")
    first, compiled = _cpu(fold_kernel.run_compiled, c)
    py_secs: list[float] = []
    ker_secs: list[float] = []
    parts: dict[str, list[float]] = {"inputs": [], "kernel": [], "Folded": []}
    python = None
    for _ in range(0 if args.no_python else args.runs):
        s, python = _cpu(c.run, None, None, False)
        py_secs.append(s)
    for _ in range(args.runs):
        s, compiled = _cpu(fold_kernel.run_compiled, c)
        ker_secs.append(s)
        s, inp = _cpu(fold_inputs.inputs, c)
        parts["inputs"].append(s)
        s, kernel = _cpu(fold_kernel.fold_arrays, c, inp)
        parts["kernel"].append(s)
        s, _ = _cpu(fold_kernel.FoldedArrays, c, inp, *kernel)
        parts["Folded"].append(s)
    assert compiled is not None
    if python is not None:
        print("results equal field by field:", _same(python, compiled))
    kind = "compile (empty cache)" if args.cold else "load from numba's cache (or compile)"
    print(f"first run_compiled() incl. {kind}: {first:.2f} CPU s")
    if py_secs:
        print(_line("Composer.run(compiled=False)", py_secs, n))
    print(_line("run_compiled()", ker_secs, n))
    for name, secs in parts.items():
        print(_line(f"  {name}", secs, n))
    print(f"load average {os.getloadavg()}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (whole process)")


if __name__ == "__main__":
    main()
