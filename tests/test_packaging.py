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


def test_only_the_tests_conftest_is_imported_as_conftest():
    """Regression: notebooks/conftest.py, imported by the bare name ``conftest``, shadowed
    tests/conftest.py for every test doing ``from conftest import ...`` (109 collection errors
    in the whole suite). Any other conftest.py must sit in a package (its name is then dotted)."""
    root = Path(__file__).resolve().parents[1]
    others = [p for p in root.rglob("conftest.py") if ".venv" not in p.parts and p != root / "tests" / "conftest.py"]
    assert [p for p in others if not (p.parent / "__init__.py").exists()] == []
