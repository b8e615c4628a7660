"""What numba's compile of the replay kernels costs a fresh tree, and what loading them costs the
next process: ``replay()`` of the live policy twice in one process over a 25,000-row synthetic log
(the compiled fold runs from 20,000 rows: ``fold.COMPILED_FROM_ROWS``), CPU seconds of each call,
and of each function numba compiled in it (its compile's CPU, functions it compiled inside
included; "LLVM": the part under numba's LLVM lock — LLVM's optimisation and machine code —, the
rest is numba's own: type inference, its passes, lowering to LLVM IR).

    cd <tree> && NUMBA_CACHE_DIR=$(mktemp -d) PYTHONPATH=$PWD /work/main/.venv/bin/python \\
        /work/main/benchmarks/replay_first_compile.py DIR [--warm]
    # a fresh NUMBA_CACHE_DIR compiles; run it again with the same one: the next process loads the
    # cached machine code. --warm: llmgw_kernel.replay.warmup.warm() first (what it takes), then the
    # replays (they then load what it compiled). DIR: where the log is made once and reused.
"""

from __future__ import annotations

import collections
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
t0 = time.process_time()
import numba  # noqa: E402, F401
from numba.core import event  # noqa: E402

IMPORT_NUMBA = time.process_time() - t0
COMPILE: dict[str, float] = collections.defaultdict(float)  # function -> CPU s (inclusive)
LLVM: dict[str, float] = collections.defaultdict(float)  # function -> CPU s under the LLVM lock, its own


class _Timer(event.Listener):  # type: ignore[misc]
    """CPU time of each numba compile (``numba:compile``) and of its LLVM part (``numba:llvm_lock``)."""

    def __init__(self) -> None:
        self.stack: list[tuple[str, float]] = []
        self.llvm_at = 0.0

    def on_start(self, ev: Any) -> None:
        if ev.kind == "numba:compile":
            self.stack.append((ev.data["dispatcher"].py_func.__qualname__, time.process_time()))
        else:
            self.llvm_at = time.process_time()

    def on_end(self, ev: Any) -> None:
        if ev.kind == "numba:compile":
            name, at = self.stack.pop()
            COMPILE[name] += time.process_time() - at
        else:
            LLVM[self.stack[-1][0] if self.stack else "(none)"] += time.process_time() - self.llvm_at


_timer = _Timer()
for _kind in ("numba:compile", "numba:llvm_lock"):
    event.register(_kind, _timer)

import replay_scale  # noqa: E402

from llmgw_kernel import replay  # noqa: E402


def main() -> None:
    d = Path(sys.argv[1]) / "log"
    policy = d.parent / "policy-live.yaml"
    if not d.exists():
        replay_scale.generate(d, 25_000, seed=7)
        policy.write_text(yaml.safe_dump(replay_scale.policy_doc("live")))
    if "--warm" in sys.argv[2:]:
        from llmgw_kernel.replay.warmup import warm

        print("warm():", ", ".join(f"{k} {v:.2f} CPU s" for k, v in warm().items()))
    t1 = time.process_time()
    replay(policy, str(d))
    t2 = time.process_time()
    r = replay(policy, str(d))
    t3 = time.process_time()
    print(f"import numba {IMPORT_NUMBA:.2f} CPU s; first replay CPU {t2 - t1:.2f} s, second {t3 - t2:.2f} s, "
          f"differs {r.summary['differs_from_log']}")  # fmt: skip
    print(f"compiled: {sum(LLVM.values()):.2f} CPU s under the LLVM lock in all; by function (>= 0.5 CPU s):")
    for name in sorted(COMPILE, key=lambda n: -COMPILE[n]):
        if COMPILE[name] >= 0.5:
            print(f"  {name}: {COMPILE[name]:.2f} CPU s (LLVM {LLVM[name]:.2f})")


if __name__ == "__main__":
    main()
