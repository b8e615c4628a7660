"""The explicit package list in pyproject.toml names every package folder (nothing ships half)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_package_folder_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "llmgw_kernel").rglob("*")
        if p.is_file() and p.suffix in (".py", ".yaml", ".json") and "__pycache__" not in p.parts
    }
    on_disk.add("llmgw_kernel.dashboards")  # mapped from dashboards/ via package-dir
    assert listed == on_disk
    assert config["package-dir"] == {"llmgw_kernel.dashboards": "dashboards"}
    assert (ROOT / "dashboards" / "overview.py").exists()


def test_test_module_names_are_unique():
    """Test folders have no __init__.py, so pytest imports test modules by basename: two
    files with one name in different folders break collection of the whole suite."""
    from collections import Counter
    from pathlib import Path

    names = Counter(p.name for p in Path(__file__).parent.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
