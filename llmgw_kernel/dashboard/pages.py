"""Which dashboard pages exist, at which URL, and where their modules are found.

A page module (in the top-level ``dashboards/`` folder) exposes ``page(ctx)``, called once
per browser session with the server's shared :class:`~.context.Context` (the log's query
cache, the gateway's live state, the policy file) and returning a Panel object. Installed,
``dashboards/`` is the package ``llmgw_kernel.dashboards``; in a checkout that is not
installed that way it is found next to the ``llmgw_kernel`` folder.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

# URL path -> page module name (a file ``dashboards/<name>.py``).
PAGES: dict[str, str] = {
    "/": "overview", "/overview": "overview", "/cost": "cost", "/budgets": "budgets", "/cache": "cache",
    "/routing": "routing", "/policy": "policy", "/guardrails": "guardrails", "/request": "request",
}  # fmt: skip

_PACKAGE = "llmgw_kernel.dashboards"
_FALLBACK_PACKAGE = "llmgw_dashboards"


class DashboardsNotFound(RuntimeError):
    """The page modules are neither installed nor next to the package."""


def repo_dashboards_dir() -> Path:
    """``dashboards/`` of the checkout this ``llmgw_kernel`` was imported from."""
    return Path(__file__).resolve().parents[2] / "dashboards"


def load_page_module(name: str) -> ModuleType:
    """Import ``dashboards/<name>.py`` (as ``llmgw_kernel.dashboards.<name>`` if installed).

    The checkout's own ``dashboards/`` (next to this ``llmgw_kernel``) wins over an installed
    package held elsewhere: an editable install maps ``llmgw_kernel.dashboards`` to the folder
    it was installed from, so a second checkout (a ``git worktree`` run with ``PYTHONPATH``,
    as benchmarks compare code before and after) would otherwise serve the first one's pages
    over its own ``llmgw_kernel``."""
    path = repo_dashboards_dir() / f"{name}.py"
    try:
        spec = importlib.util.find_spec(f"{_PACKAGE}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in (_PACKAGE, f"{_PACKAGE}.{name}"):
            raise
        spec = None
    if spec is not None and (not path.is_file() or _same_file(spec.origin, path)):
        return importlib.import_module(f"{_PACKAGE}.{name}")
    if not path.is_file():
        raise DashboardsNotFound(
            f"dashboard page {name!r} not found: there is no module {_PACKAGE}.{name} and no file "
            f"{path}. Install llmgw from a checkout that has the dashboards/ folder "
            f"(pip install -e .) or run without dashboards (llmgw serve --no-dashboards)."
        )
    qualified = f"{_FALLBACK_PACKAGE}.{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    if _FALLBACK_PACKAGE not in sys.modules:
        package = ModuleType(_FALLBACK_PACKAGE)
        package.__path__ = [str(path.parent)]
        sys.modules[_FALLBACK_PACKAGE] = package
    spec = importlib.util.spec_from_file_location(qualified, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[qualified]
        raise
    return module


def _same_file(origin: str | None, path: Path) -> bool:
    return origin is not None and Path(origin).resolve() == path.resolve()


def build_apps(
    data_dir: str | os.PathLike[str],
    policy_path: str | os.PathLike[str] | None = None,
    gateway_url: str | None = None,
    pages: dict[str, str] | None = None,
) -> tuple[dict[str, Callable[[], Any]], list[Any]]:
    """(URL path -> a function that builds that page for one session, [the shared context])."""
    from .context import Context

    ctx = Context(data_dir, policy_path, gateway_url)
    apps = {url: _bind(load_page_module(name).page, ctx) for url, name in (pages or PAGES).items()}
    return apps, [ctx]


def _bind(page: Callable[[Any], Any], ctx: Any) -> Callable[[], Any]:
    def app() -> Any:
        return page(ctx)

    app.__name__ = getattr(page, "__module__", "page").rsplit(".", 1)[-1]
    return app


__all__ = ["PAGES", "DashboardsNotFound", "build_apps", "load_page_module", "repo_dashboards_dir"]
