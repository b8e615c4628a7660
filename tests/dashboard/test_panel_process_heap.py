"""The dashboard process freezes its start-up heap, so full garbage collections (Panel runs one
after sessions close) scan only what sessions made since."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_settle_heap_moves_the_start_up_objects_out_of_the_collectors_reach():
    code = textwrap.dedent(
        """
        import gc, time
        import panel, bokeh.plotting, pandas
        from llmgw_kernel.dashboard.panel_process import settle_heap
        before = len(gc.get_objects())
        t0 = time.process_time(); gc.collect(); full_before = time.process_time() - t0
        settle_heap()
        t0 = time.process_time(); gc.collect(); full_after = time.process_time() - t0
        print(before, gc.get_freeze_count(), len(gc.get_objects()), full_before, full_after)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    before, frozen, tracked, full_before, full_after = out.stdout.split()
    assert int(frozen) >= int(before) // 2 > 10_000  # the imported libraries' objects
    assert int(tracked) < 1_000  # what a full collection still scans
    assert float(full_after) < float(full_before)
