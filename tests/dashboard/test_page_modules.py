"""Which ``dashboards/`` a checkout serves: its own, even when another checkout is installed
editable (``llmgw_kernel.dashboards`` mapped to that one's folder)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_second_checkout_serves_its_own_pages(tmp_path: Path) -> None:
    """A copy of the checkout run with ``PYTHONPATH`` (how benchmarks compare code before and
    after in a ``git worktree``) loads the page modules next to its ``llmgw_kernel``. Before,
    the editable install's mapping won, so the copy's ``llmgw_kernel`` served the installed
    checkout's pages and an A/B of a page module compared the same code twice."""
    shutil.copytree(REPO / "llmgw_kernel", tmp_path / "llmgw_kernel", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "dashboards").mkdir()
    (tmp_path / "dashboards" / "__init__.py").write_text("")
    (tmp_path / "dashboards" / "policy.py").write_text('CHECKOUT = "copy"\n')
    code = (
        "from llmgw_kernel.dashboard.pages import load_page_module\n"
        "m = load_page_module('policy')\n"
        "print(getattr(m, 'CHECKOUT', 'installed'), m.__file__)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    assert out == ["copy", str(tmp_path / "dashboards" / "policy.py")]


def test_the_installed_checkout_loads_its_pages_as_the_package() -> None:
    """In the checkout itself the pages keep their package name (nothing loaded twice)."""
    from llmgw_kernel.dashboard.pages import load_page_module, repo_dashboards_dir

    module = load_page_module("policy")
    assert Path(module.__file__ or "").resolve() == (repo_dashboards_dir() / "policy.py").resolve()
    if module.__name__ != "llmgw_kernel.dashboards.policy":  # a checkout not installed editable
        assert module.__name__ == "llmgw_dashboards.policy"
