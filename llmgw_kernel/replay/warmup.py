"""Compile the replay kernels ahead, so that nobody waits on numba's compile unawares.

The first replay of 20,000 rows or more (:data:`.fold.COMPILED_FROM_ROWS`) and the first
threshold sweep in a fresh environment compile the numba kernels (~50 CPU s for the composed
fold, a few for the sweep's; docs/benchmarks.md), then every later process loads them from
numba's on-disk cache (``__pycache__`` beside the modules, or ``NUMBA_CACHE_DIR``) in about a
second. :func:`warm` compiles them now, on a small synthetic log made in a temporary folder: a
replay with a budget and a semantic cache through the compiled fold, and two-threshold sweeps
with the budget (the fold over neighbour lists) and without (the sweep's own loop).
The kernels' inputs are typed the same for every window (:func:`.jit.read_only`), so what it
compiles is what a real replay loads.

    python -m llmgw_kernel.replay.warmup [--if-cold]   # e.g. after pip install; tests/conftest.py
                                                       # runs it in the background at a session's start
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml


def warm(rows: int = 300) -> dict[str, float]:
    """Compile (or load, when cached) the replay kernels; CPU seconds of each step. Without
    numba (the ``fast`` extra) nothing is compiled and nothing is timed."""
    from . import cache_sweep_kernel, fold

    if not cache_sweep_kernel.available():
        return {}
    from ..cache import synthetic_log
    from . import replay
    from .cache_sweep import sweep_semantic_threshold

    took: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="llmgw-warm-") as tmp:
        log, policy = Path(tmp) / "log", Path(tmp) / "policy.yaml"
        t = time.process_time()
        synthetic_log.generate(log, rows, seed=0, chunk=rows, keys=1)  # one key: semantic groups fill
        policy.write_text(yaml.safe_dump(synthetic_log.policy_doc(budget_usd=1000.0)))
        took["log"] = time.process_time() - t
        t = time.process_time()
        start, fold.COMPILED_FROM_ROWS = fold.COMPILED_FROM_ROWS, 0  # this small window folded compiled
        try:
            replay(policy, str(log))
        finally:
            fold.COMPILED_FROM_ROWS = start
        took["replay fold"] = time.process_time() - t
        t = time.process_time()  # with a budget: the fold over neighbour lists made by group_lists
        sweep_semantic_threshold(policy, str(log), [0.85, 0.9], estimate=False)
        policy.write_text(yaml.safe_dump(synthetic_log.policy_doc()))  # no budget: the sweep's own kernel
        sweep_semantic_threshold(policy, str(log), [0.85, 0.9], estimate=False)
        took["sweeps"] = time.process_time() - t
    return took


def cold() -> bool:
    """Whether a kernel has no machine code in numba's on-disk cache for its source as it is now
    (numba's cache index, read as its dispatchers read it: an index of another version of the
    source counts as empty)."""
    from . import cache_sweep_kernel, fold_kernel

    kernels: tuple[Any, ...] = (fold_kernel._fold, cache_sweep_kernel._compiled, cache_sweep_kernel.group_lists)
    try:
        return any(not k._cache._cache_file._load_index() for k in kernels)
    except (AttributeError, OSError):  # another numba's internals: compile, to be sure
        return True


def _one_at_a_time() -> int:
    """An exclusive lock (held until the process exits) that one warm-up of this installation
    holds at a time: a second one started meanwhile (a test session per pytest-xdist worker)
    waits for it, then finds the kernels cached instead of compiling them again beside it."""
    import fcntl
    import hashlib

    here = hashlib.sha256(str(Path(__file__).resolve().parent).encode()).hexdigest()[:16]
    fd = os.open(Path(tempfile.gettempdir()) / f"llmgw-warmup-{here}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def main(argv: list[str] | None = None) -> None:
    """``python -m llmgw_kernel.replay.warmup [--if-cold]``: compile the kernels (``--if-cold``:
    only when one is not cached), say what it took."""
    from . import cache_sweep_kernel

    _one_at_a_time()
    if "--if-cold" in (sys.argv[1:] if argv is None else argv) and cache_sweep_kernel.available() and not cold():
        print("the replay kernels are cached: nothing to compile")
        return
    took = warm()
    if not took:
        print("numba is not installed (the [fast] extra): the replay runs its Python fold, nothing to compile")
        return
    print(", ".join(f"{k} {v:.1f} CPU s" for k, v in took.items()))


if __name__ == "__main__":
    main()
