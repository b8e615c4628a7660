"""Where one ``replay()`` spends CPU and memory, step by step, in one process.

    .venv/bin/python benchmarks/replay_steps.py --rows 1000000
    .venv/bin/python benchmarks/replay_steps.py --rows 1000000 --scenario routing

``replay()`` of ``replay_scale.py``'s log under its live policy (routing + budgets + rpm + exact
cache; ``--scenario routing``: its routing-only candidate, decided over columns), with timers
wrapped around its steps (the functions it calls are replaced by timed wrappers for the run;
nothing else changes): the imports a replay loads (those ``replay_scale.py``'s child imports
before its clock, and the package's own: one-off per process, not in its "call CPU"), opening
the log, loading the window, the guardrails' decisions, the state before it, routing,
``Composer()``, the fold (``Composer.run``: reading its columns, its inputs, the kernel), each
stage's columns and summary, the blocked requests' figures and the log's own figures; the rest
of ``replay()`` (the id/ts/route columns, the differs, freeing memory; the DataFrame is built
only when ``.decisions`` is read) is the remainder. CPU time is ``process_time`` (this process,
all threads), with its sys CPU and minor page faults (``getrusage``: sys is mostly fresh pages
handed out); RSS and peak after each step. One run: repeat it for a spread. ``--again``: a second
call's steps in the same process; ``--mallopt``/``--no-release``: the allocator's levers tried on
the first call; ``--fresh-pages``: what touching fresh memory costs here, 4 KiB vs huge pages.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
STEPS: list[tuple[str, float, float, float]] = []  # (step, CPU s, RSS MB, peak MB), in the order they end
#: per step, net of the timed steps inside it: (sys CPU s, minor page faults), in STEPS' order
KERNEL: list[tuple[float, int]] = []


def _kernel() -> tuple[float, int]:
    """(sys CPU s, minor page faults) of this process so far: sys is mostly fresh pages handed out."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_stime, r.ru_minflt


def _rss() -> tuple[float, float]:
    rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(name: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        t, (sys0, flt0) = time.process_time(), _kernel()
        inner = sum(s[1] for s in STEPS)
        inner_k = (sum(k[0] for k in KERNEL), sum(k[1] for k in KERNEL))
        out = fn(*args, **kwargs)
        spent = time.process_time() - t - (sum(s[1] for s in STEPS) - inner)  # minus timed steps inside
        sys1, flt1 = _kernel()
        KERNEL.append((sys1 - sys0 - (sum(k[0] for k in KERNEL) - inner_k[0]),
                       flt1 - flt0 - (sum(k[1] for k in KERNEL) - inner_k[1])))  # fmt: skip
        STEPS.append((name, spent, *_rss()))
        return out

    return call


def _instrument() -> None:
    from llmgw_kernel.replay import fold, guardrails_stage, stages, window

    pkg = sys.modules["llmgw_kernel.replay"]  # the package (its name also calls replay())

    pkg.open_log = _timed("open log", pkg.open_log)
    window.load_window = _timed("load window", window.load_window)
    guardrails_stage.guardrail_decisions = _timed("guardrails: decide", guardrails_stage.guardrail_decisions)
    guardrails_stage.blocked_summary = _timed("summary: blocked", guardrails_stage.blocked_summary)
    pkg._observed = _timed("the log's own figures", pkg._observed)
    pkg._state_before = _timed("state before", pkg._state_before)
    stages.route_window = _timed("routing", stages.route_window)
    stages.stateless_outcome = _timed("stateless outcome", stages.stateless_outcome)
    fold.Composer.__init__ = _timed("Composer()", fold.Composer.__init__)  # type: ignore[method-assign]
    fold.Composer.run = _timed("fold", fold.Composer.run)  # type: ignore[method-assign]
    _instrument_fold()
    stages.STAGES = tuple(
        stages.Stage(s.name, _timed(f"columns: {s.name}", s.columns), _timed(f"summary: {s.name}", s.summarize))
        for s in stages.STAGES
    )


def _instrument_fold() -> None:
    """Timers inside the fold (``fold: ...`` steps, each net of the timed steps inside it): the
    window's scan of the fold's columns, their compaction, the cache's keys (bodies) and teams
    (metadata), the rest of the cache's arrays, the order, limit groups, admission and serving
    facts, the rest of the inputs, the kernel (numba's load included) and its decoding."""
    from llmgw_kernel.replay import fold_cache_inputs, fold_codes, fold_inputs, fold_kernel, window

    window.Window.prefetch = _timed("scans (prefetch)", window.Window.prefetch)  # type: ignore[method-assign]
    fold_codes.Cols.compact = _timed("fold: compact", fold_codes.Cols.compact)  # type: ignore[method-assign]
    fold_cache_inputs._keys = _timed("fold: keys (bodies)", fold_cache_inputs._keys)
    fold_cache_inputs._teams = _timed("fold: teams (metadata)", fold_cache_inputs._teams)
    fold_inputs.cache_arrays = _timed("fold: cache arrays", fold_inputs.cache_arrays)
    for name in ("plan_codes", "_order", "_groups", "_calendar", "_admission", "_served", "_checks"):
        setattr(fold_inputs, name, _timed(f"fold: {name.lstrip('_')}", getattr(fold_inputs, name)))
    fold_kernel.inputs = _timed("fold: inputs (rest)", fold_kernel.inputs)
    fold_kernel.fold_arrays = _timed("fold: kernel", fold_kernel.fold_arrays)
    fold_kernel.FoldedArrays.__init__ = _timed("fold: decode", fold_kernel.FoldedArrays.__init__)  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    sys.dont_write_bytecode = False  # as replay_scale.py's child: bytecode cached, as in a user's install
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/llmgw-replay-scale"))
    ap.add_argument("--scenario", choices=("full", "routing"), default="full")
    ap.add_argument("--again", action="store_true",
                    help="replay a second time in the same process and print its steps too (what differs is "
                    "the first call's one-off work: fresh pages, numba, footers)")  # fmt: skip
    ap.add_argument("--mallopt", action="append", default=[], metavar="NAME=BYTES",
                    help="glibc mallopt before the first call: trim_threshold, top_pad or mmap_threshold "
                    "(setting any of them stops glibc's dynamic mmap threshold)")  # fmt: skip
    ap.add_argument(
        "--no-release",
        action="store_true",
        help="replay.window.release_memory does nothing (no malloc_trim, no Arrow pool release)",
    )
    ap.add_argument("--fresh-pages", action="store_true",
                    help="only time touching 60 fresh 1M-row int32 arrays, as 4 KiB pages and on 2 MiB-aligned "
                    "huge pages (MADV_HUGEPAGE through numpy's own advice), then exit")  # fmt: skip
    args = ap.parse_args(argv)
    if args.fresh_pages:
        _fresh_pages()
        return
    _malloc(args.mallopt)
    if args.no_release:
        from llmgw_kernel.replay import fold_cache_inputs, fold_inputs, stages, window

        for mod in (window, stages, fold_inputs, fold_cache_inputs):
            mod.release_memory = lambda: None  # type: ignore[attr-defined]
    import replay_scale

    data_dir = replay_scale.ensure_log(args.cache_dir, args.rows)
    start = time.process_time()
    import importlib

    from llmgw_kernel import replay

    for name in ("duckdb", "pandas", "pyarrow", "llmgw_kernel.replay.stages", "llmgw_kernel.replay.window"):
        importlib.import_module(name)  # as replay_scale.py's child, before its clock ("call CPU")
    _instrument()
    STEPS.append(("imports", time.process_time() - start, *_rss()))
    KERNEL.append(_kernel())
    policy = data_dir / ("policy-live.yaml" if args.scenario == "full" else "policy-routing.yaml")
    _call(replay, policy, data_dir, start)
    if args.again:
        import gc

        gc.collect()
        print("-- the second call in this process --")
        STEPS.clear()
        KERNEL.clear()
        STEPS.append(("(start)", 0.0, *_rss()))
        KERNEL.append((0.0, 0))
        base_sys, base_flt = _kernel()
        _call(replay, policy, data_dir, time.process_time(), (base_sys, base_flt))


MALLOPT = {"trim_threshold": -1, "top_pad": -2, "mmap_threshold": -3}  # glibc's M_* parameter numbers


def _malloc(settings: list[str]) -> None:
    import ctypes

    for item in settings:
        name, _, value = item.partition("=")
        if not ctypes.CDLL(None).mallopt(MALLOPT[name], int(value)):
            raise SystemExit(f"mallopt {item} refused")


def _fresh_pages(arrays: int = 60, rows: int = 1_000_000) -> None:
    """What first touches of fresh memory cost here, 4 KiB pages vs 2 MiB huge pages: sys CPU s
    and minor faults of filling ``arrays`` new int32 arrays of ``rows`` each, kept alive."""
    import numpy as np

    huge = 1 << 21

    def aligned(n: int) -> np.ndarray:  # >= 4 MiB: numpy advises MADV_HUGEPAGE; aligned to 2 MiB
        buf = np.empty(max(4 * n + huge, 1 << 22), np.uint8)
        at = (-buf.ctypes.data) % huge
        return buf[at : at + 4 * n].view(np.int32)

    for kind, make in (("4 KiB pages", lambda n: np.empty(n, np.int32)), ("2 MiB huge pages", aligned)):
        keep = []
        (sys0, flt0), t = _kernel(), time.process_time()
        for _ in range(arrays):
            a = make(rows)
            a[:] = 1
            keep.append(a)
        sys1, flt1 = _kernel()
        print(f"{arrays} x {rows:,} int32 on {kind}: {time.process_time() - t:.3f} CPU s (sys {sys1 - sys0:.3f}), "
              f"{flt1 - flt0:,} minor faults")  # fmt: skip
        del keep


def _call(replay: Any, policy: Path, data_dir: Path, start: float, base: tuple[float, int] = (0.0, 0)) -> None:
    """One ``replay()``, its steps printed (``start``: when the clock started; ``base``: sys s and
    faults before it, for a second call)."""
    result = replay(policy, str(data_dir))
    total = time.process_time() - start
    rest = total - sum(s[1] for s in STEPS)
    sys_end, flt_end = _kernel()
    sys_end, flt_end = sys_end - base[0], flt_end - base[1]
    kernel = [*KERNEL, (sys_end - sum(k[0] for k in KERNEL), flt_end - sum(k[1] for k in KERNEL))]
    for (name, cpu, rss, peak), (sys_s, flt) in zip([*STEPS, ("rest of replay()", rest, *_rss())], kernel, strict=True):
        print(f"{name:<24} {cpu:7.2f} CPU s (sys {sys_s:5.2f}, {flt:7,} minor faults)   RSS {rss:7,.0f} MB   "
              f"peak {peak:7,.0f} MB")  # fmt: skip
    n = result.summary["requests"]
    call = total - STEPS[0][1]  # as replay_scale.py's "call CPU": the imports before the clock
    print(f"{n:,} rows: {total:.2f} CPU s, call {call:.2f} CPU s (sys {sys_end - KERNEL[0][0]:.2f}, "
          f"{flt_end - KERNEL[0][1]:,} minor faults; {n / call:,.0f} requests/s per core), differs "
          f"from the log {result.summary['differs_from_log']}; load average {os.getloadavg()}")  # fmt: skip


if __name__ == "__main__":
    main()
