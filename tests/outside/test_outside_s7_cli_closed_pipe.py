"""Outside-style: an `llmgw` command whose output is piped into a reader that stops early.

`llmgw replay --json | head -c 300` and `llmgw policy schema | head` are how an analyst peeks at
output. By hand both ended with Python's `BrokenPipeError: [Errno 32] Broken pipe` traceback on
stderr (from `print` after `head` exited). A closed pipe is the reader's choice, not an error: the
command stops quietly, as `cat` or `git log` do (exit status 141 or 0 is fine; no traceback).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmgw_kernel", "policy", "schema"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10)  # the reader takes a little, then goes away
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err[-2000:]
    assert code in (0, 141, -13, 1), code
