"""Outside-style: a policy file that is not UTF-8 text, or never ends.

README: `llmgw policy validate FILE...` prints "one line per error, with its path ...; exit 1 on
errors"; a CLI usage error is one line, never a traceback (tests/test_cli_usage_errors.py).

By hand: a policy file saved as UTF-16 (an editor on Windows), or any byte that is not UTF-8, ended
`llmgw policy validate`, `llmgw policy promote`, `llmgw replay` and `llmgw forecast check` with a
`UnicodeDecodeError` traceback; `llmgw policy validate /dev/zero` (or a FIFO, or a log named by
mistake) read until memory ran out — `MAX_POLICY_BYTES` was checked only after the whole file was read.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

NOT_UTF8 = "routes: {}\n".encode("utf-16")  # a BOM and NULs: no UTF-8 decoder reads it


def _llmgw(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize(
    "args",
    [
        ("policy", "validate", "{policy}"),
        ("policy", "promote", "{policy}", "--policy", "{live}"),
        ("replay", "--policy", "{policy}", "--data-dir", "{data}"),
    ],
    ids=["validate", "promote", "replay"],
)
def test_a_policy_file_that_is_not_utf8_is_one_line_not_a_traceback(tmp_path: Path, args: tuple[str, ...]) -> None:
    policy = tmp_path / "candidate.yaml"
    policy.write_bytes(NOT_UTF8)
    from llmgw_kernel import open_log

    open_log(str(tmp_path / "data")).close()  # a log (empty) for replay to read
    names = {"policy": str(policy), "live": str(tmp_path / "live.yaml"), "data": str(tmp_path / "data")}
    done = _llmgw(*(a.format(**names) for a in args), cwd=tmp_path)
    assert done.returncode in (1, 2), done
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert "not UTF-8" in done.stderr + done.stdout, done


def test_validating_a_file_that_never_ends_is_refused(tmp_path: Path) -> None:
    done = _llmgw("policy", "validate", "/dev/zero", cwd=tmp_path)
    assert done.returncode == 1, done
    assert "at most" in done.stdout + done.stderr and "Traceback" not in done.stderr, done
