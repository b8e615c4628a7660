"""Rule functions: ``rule: module:function`` on a route, loaded from the policy's folder.

The module is a file beside the policy (``rule: tiers:route_by_tier`` next to
``policies/live.yaml`` is ``policies/tiers.py``; ``pkg.mod:f`` is ``policies/pkg/mod.py``).
It is loaded with importlib *from that path* — never through ``sys.path`` — and cached by
(path, SHA-256 of its content): the code that runs is the code the digest (part of the
policy version) was computed over, and an edited module is re-read on the next policy load.
A policy given as a mapping resolves modules in ``./policies/``. A module is part of the
policy version: promote installs and archives it with the YAML (docs/policy.md#lifecycle).

The function takes one argument, the :class:`~llmgw_kernel.decisions.context.RouteContext`,
and returns target ids (``"provider/model"``) or a ``RouteChoice(targets, reason)``.
A custom guardrail (``guardrails.input[i].rule``, ``{type: custom}``) is loaded the same way;
it takes one text and returns :class:`~llmgw_kernel.guardrails.findings.Finding` s.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from .conditions import RULE_PATTERN

_CACHE: dict[tuple[str, str], ModuleType] = {}


def policy_folder(source: str | None) -> Path:
    """Where a policy's rule modules live: the policy file's folder, else ``./policies``."""
    return Path(source).resolve().parent if source else Path("policies").resolve()


def module_path(folder: Path, module: str) -> Path:
    return folder.joinpath(*module.split(".")).with_suffix(".py")


def module_file(module: str) -> str:
    """A rule module's file, relative to the policy's folder (``pkg.mod`` -> ``pkg/mod.py``)."""
    return "/".join(module.split(".")) + ".py"


def rule_module_files(data: Mapping[str, Any]) -> list[str]:
    """The rule module files a policy document refers to (relative to its folder), read from
    the raw mapping so that it works for a policy that does not validate too."""
    routes = data.get("routes")
    refs: list[Any] = []
    sections: list[Any] = [data.get("guardrails")]
    for route in routes.values() if isinstance(routes, Mapping) else ():
        if isinstance(route, Mapping):
            refs.append(route.get("rule"))
            sections.append(route.get("guardrails"))
    for section in sections:  # custom guardrails: {type: custom, rule: module:function}
        for stage in ("input", "output"):
            checks = section.get(stage) if isinstance(section, Mapping) else None
            refs += [c.get("rule") for c in checks if isinstance(c, Mapping)] if isinstance(checks, list) else []
    files = {module_file(ref.split(":", 1)[0]) for ref in refs if isinstance(ref, str) and re.match(RULE_PATTERN, ref)}
    return sorted(files)


def _load_module(path: Path) -> tuple[ModuleType, str]:
    code = path.read_bytes()
    digest = hashlib.sha256(code).hexdigest()
    key = (str(path), digest)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached, digest
    name = "llmgw_policy_" + hashlib.blake2b(str(path).encode(), digest_size=6).hexdigest() + "_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    exec(compile(code, str(path), "exec"), module.__dict__)  # the bytes that were hashed
    _CACHE[key] = module
    return module, digest


def load_rule_function(
    ref: str, source: str | None, argument: str = "ctx: RouteContext"
) -> tuple[Callable[[Any], Any], str]:
    """The function named by ``module:function`` and a digest of its module's source.
    ``argument`` describes the one argument it must take (for the error message).

    Raises ``ValueError`` with a message fit for ``routes.<name>.rule: ...``.
    """
    module_name, func_name = ref.split(":", 1)
    folder = policy_folder(source)
    path = module_path(folder, module_name)
    shown = f"{folder.name}/" if source else "policies/"
    if not path.is_file():
        raise ValueError(f"module {module_name!r} not found in {shown} (looked for {path})")
    try:
        module, digest = _load_module(path)
    except Exception as exc:  # a broken module is a policy error, not a crash
        raise ValueError(f"module {module_name!r} failed to import: {type(exc).__name__}: {exc}") from None
    func = getattr(module, func_name, None)
    if func is None or not callable(func):
        raise ValueError(f"module {module_name!r} has no function {func_name!r}")
    _check_signature(func, ref, argument)
    return func, digest[:12]


def _check_signature(func: Callable[..., Any], ref: str, argument: str) -> None:
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
        raise ValueError(f"{ref} must take exactly one argument ({argument}), got {sig}")
