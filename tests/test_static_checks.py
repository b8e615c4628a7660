"""The code is clean: mypy over llmgw_kernel, ruff lint and format over the Python the repository
ships (all configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_is_clean() -> None:
    # the cache (.mypy_cache, git-ignored) makes a re-run take seconds; a clean clone takes ~1-2 min
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_is_clean() -> None:
    paths = ["llmgw_kernel", "tests", "benchmarks", "dashboards", "notebooks"]
    for args in (["check", *paths], ["format", "--check", *paths]):
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
