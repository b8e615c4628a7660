"""Provider adapters, one module each, found through a registry keyed by policy ``kind``.

Adding a provider is one module and one entry in ``_REGISTRY``; nothing else branches on it.
Modules are imported on first use, so a policy that never names a provider never loads it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .base import Adapter, AdapterContext, Reply, StreamReply, UpstreamError

if TYPE_CHECKING:
    from ..policy.model import Provider

_REGISTRY: dict[str, str] = {
    "openai": "llmgw_kernel.providers.openai:OpenAIAdapter",
    "anthropic": "llmgw_kernel.providers.anthropic:AnthropicAdapter",
    "gemini": "llmgw_kernel.providers.gemini:GeminiAdapter",
    "azure": "llmgw_kernel.providers.azure:AzureAdapter",
    "demo": "llmgw_kernel.providers.demo:DemoAdapter",
}


def build_adapter(name: str, provider: Provider, ctx: AdapterContext) -> Adapter:
    """The adapter for ``provider`` (a policy entry named ``name``)."""
    module, _, cls = _REGISTRY[provider.kind].partition(":")
    return getattr(importlib.import_module(module), cls)(name, provider, ctx)


__all__ = ["Adapter", "AdapterContext", "Reply", "StreamReply", "UpstreamError", "build_adapter"]
