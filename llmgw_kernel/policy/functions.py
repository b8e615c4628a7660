"""Rule functions: ``rule: module:function`` on a route, loaded from the policy's folder.

The module is a file beside the policy (``rule: tiers:route_by_tier`` next to
``policies/live.yaml`` is ``policies/tiers.py``; ``pkg.mod:f`` is ``policies/pkg/mod.py``).
It is loaded with importlib *from that path* — never through ``sys.path`` — and cached by
(path, mtime), so an edited module is re-read on the next policy load. A policy given as a
mapping resolves modules in ``./policies/``.

The function takes one argument, the :class:`~llmgw_kernel.decisions.context.RouteContext`,
and returns target ids (``"provider/model"``) or a ``RouteChoice(targets, reason)``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

_CACHE: dict[tuple[str, int, int], ModuleType] = {}


def policy_folder(source: str | None) -> Path:
    """Where a policy's rule modules live: the policy file's folder, else ``./policies``."""
    return Path(source).resolve().parent if source else Path("policies").resolve()


def module_path(folder: Path, module: str) -> Path:
    return folder.joinpath(*module.split(".")).with_suffix(".py")


def _load_module(path: Path) -> ModuleType:
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    name = "llmgw_policy_" + hashlib.blake2b(str(path).encode(), digest_size=6).hexdigest() + "_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _CACHE[key] = module
    return module


def load_rule_function(ref: str, source: str | None) -> tuple[Callable[[Any], Any], str]:
    """The function named by ``module:function`` and a digest of its module's source.

    Raises ``ValueError`` with a message fit for ``routes.<name>.rule: ...``.
    """
    module_name, func_name = ref.split(":", 1)
    folder = policy_folder(source)
    path = module_path(folder, module_name)
    shown = f"{folder.name}/" if source else "policies/"
    if not path.is_file():
        raise ValueError(f"module {module_name!r} not found in {shown} (looked for {path})")
    try:
        module = _load_module(path)
    except Exception as exc:  # a broken module is a policy error, not a crash
        raise ValueError(f"module {module_name!r} failed to import: {type(exc).__name__}: {exc}") from None
    func = getattr(module, func_name, None)
    if func is None or not callable(func):
        raise ValueError(f"module {module_name!r} has no function {func_name!r}")
    _check_signature(func, ref)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return func, digest


def _check_signature(func: Callable[..., Any], ref: str) -> None:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        raise ValueError(f"{ref} has no inspectable signature") from None
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if inspect.iscoroutinefunction(func):
        raise ValueError(f"{ref} must be a plain function, not async")
    if not positional or len(required) > 1 or (required and required[0] is not positional[0]):
        raise ValueError(f"{ref} must take exactly one argument (ctx: RouteContext), got {sig}")
