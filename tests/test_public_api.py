"""The package's public names are listed once, import lazily, and stay importable."""

from __future__ import annotations

import subprocess
import sys

import llmgw_kernel


def test_all_names_resolve():
    for name in llmgw_kernel.__all__:
        assert getattr(llmgw_kernel, name) is not None, name
    assert sorted(llmgw_kernel.__all__) == [
        "Policy", "PolicyError", "ReplayResult", "__version__", "load_policy", "open_log", "plan_route", "replay",
    ]  # fmt: skip


def test_import_is_light():
    """Importing the package must not pull in the heavy stack (serving starts fast and small)."""
    code = "import sys, llmgw_kernel; print(','.join(m for m in ('duckdb','pandas','panel','pyarrow','aiohttp') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_python_dash_m_works_like_the_command():
    out = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"llmgw {llmgw_kernel.__version__}"
