"""What numba's compile of the replay kernels costs a fresh tree, and what loading them costs the
next process: ``replay()`` of the live policy twice in one process over a 25,000-row synthetic log
(the compiled fold runs from 20,000 rows: ``fold.COMPILED_FROM_ROWS``), CPU seconds of each call.

    cd <tree> && PYTHONPATH=$PWD /work/main/.venv/bin/python /work/main/benchmarks/replay_first_compile.py DIR
    # run it twice: the first run in a tree without llmgw_kernel/replay/__pycache__/*.nbi compiles,
    # the second loads the cached machine code (DIR: where the log is made once and reused)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import replay_scale  # noqa: E402

from llmgw_kernel import replay  # noqa: E402


def main() -> None:
    d = Path(sys.argv[1]) / "log"
    policy = d.parent / "policy-live.yaml"
    if not d.exists():
        replay_scale.generate(d, 25_000, seed=7)
        policy.write_text(yaml.safe_dump(replay_scale.policy_doc("live")))
    t1 = time.process_time()
    replay(policy, str(d))
    t2 = time.process_time()
    r = replay(policy, str(d))
    t3 = time.process_time()
    print(f"first replay CPU {t2 - t1:.2f} s, second {t3 - t2:.2f} s, differs {r.summary['differs_from_log']}")


if __name__ == "__main__":
    main()
