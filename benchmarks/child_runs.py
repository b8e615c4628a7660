"""One benchmark scenario per fresh child process (``script --child SCENARIO --data-dir D --out F``),
its CPU (user + sys of the child and its threads: interpreter start and imports included), wall
time and peak RSS read from ``wait4``, and what the child wrote to ``F`` (JSON). Shared by
``replay_scale.py`` and ``replay_semantic_scale.py``."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def run_child(script: str, scenario: str, data_dir: Path, profile: bool = False, top: int = 30) -> dict[str, Any]:
    """``{"cpu_s", "wall_s", "rss_mb", **facts}`` of one run (``profile``: under cProfile, its top
    functions printed)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable]
        if profile:
            cmd += ["-m", "cProfile", "-o", str(Path(tmp) / "prof")]
        cmd += [script, "--child", scenario, "--data-dir", str(data_dir), "--out", str(out)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{scenario}: child exited {os.waitstatus_to_exitcode(status)}")
        if profile:
            import pstats

            pstats.Stats(str(Path(tmp) / "prof")).sort_stats("tottime").print_stats(25)
            pstats.Stats(str(Path(tmp) / "prof")).sort_stats("cumulative").print_stats(top)
        facts = json.loads(out.read_text())
    return {"cpu_s": ru.ru_utime + ru.ru_stime, "wall_s": wall, "rss_mb": ru.ru_maxrss / 1024, **facts}


def spread(values: list[float], fmt: str) -> str:
    """``min / median / max`` of ``values``, each formatted with ``fmt``."""
    return f"{fmt.format(min(values))} / {fmt.format(statistics.median(values))} / {fmt.format(max(values))}"
