"""``kind: azure`` — Azure OpenAI deployments.

``base_url`` is the resource endpoint (``https://NAME.openai.azure.com``), the provider's
``api_version`` the ``api-version`` query parameter, and the target's ``model`` the deployment
name: ``{base_url}/openai/deployments/{model}/chat/completions?api-version=...`` (and
``/embeddings``, ``/completions``); the Responses API is
``{base_url}/openai/responses?api-version=...`` with the deployment as the body's ``model``. The
key goes in the ``api-key`` header. The body is OpenAI's, passed through as the OpenAI adapter
does, minus ``model`` (the deployment in the URL decides; Azure ignores it). Which newer
fields a deployment accepts depends on ``api_version`` (e.g.
``stream_options`` needs 2024-09-01-preview or later: set ``stream_usage: false`` for older
versions); Azure itself is the authority and answers 400 to what it lacks.

Content filtering: a prompt Azure's filter rejects comes back as HTTP 400 with
``error.code: content_filter``; the gateway answers 400 with a message that starts with
``content_filter:`` and names the filtered categories (``innererror.content_filter_result``).
It is not retried on another target: the content is the problem. An answer filtered while
generated is a 200 whose choice has ``finish_reason: content_filter``; it passes through as is.
Azure's annotation-only stream chunks (the leading ``prompt_filter_results`` chunk with no
choices, and choices that carry only ``content_filter_results`` without a ``delta``) are
removed, so clients that read ``choices[0].delta`` on every chunk keep working.
"""

from __future__ import annotations

from typing import Any

from ..policy.model import Provider, Target
from .base import AdapterContext
from .http import error_message, loads_object
from .openai import OpenAIAdapter


class AzureAdapter(OpenAIAdapter):
    def __init__(self, name: str, provider: Provider, ctx: AdapterContext) -> None:
        super().__init__(name, provider, ctx)
        self._deployments = f"{provider.base_url}/openai/deployments"
        self._query = f"?api-version={provider.api_version}"

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"api-key": key}

    def chat_url(self, target: Target) -> str:
        return f"{self._deployments}/{target.model}/chat/completions{self._query}"

    def embeddings_url(self, target: Target) -> str:
        return f"{self._deployments}/{target.model}/embeddings{self._query}"

    def upstream_body(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        body.pop("model", None)
        return body

    def native_url(self, endpoint: str, target: Target) -> str:
        if endpoint == "responses":  # the Responses API names the deployment in the body, not the path
            return f"{self.provider.base_url}/openai/responses{self._query}"
        return f"{self._deployments}/{target.model}/{endpoint}{self._query}"

    def native_body(self, endpoint: str, body: dict[str, Any], target: Target) -> dict[str, Any]:
        if endpoint == "responses":
            body["model"] = target.model  # the deployment name
            return body
        return self.upstream_body(body, target)

    def error_code(self, raw: bytes, status: int) -> str | None:
        """Only ``content_filter``: Azure's other codes are its own (``"429"``, ``DeploymentNotFound``,
        ...), not OpenAI's, so the client gets the gateway's (a context-window 400 gets OpenAI's)."""
        return "content_filter" if super().error_code(raw, status) == "content_filter" else None

    def error_message(self, raw: bytes, status: int) -> str:
        body = loads_object(raw) if raw else None
        err = body.get("error") if body else None
        if isinstance(err, dict) and err.get("code") == "content_filter":
            return content_filter_message(err)
        return error_message(raw, status)

    def relays(self, chunk: dict[str, Any]) -> bool:
        return not _annotation_only(chunk)


def content_filter_message(err: dict[str, Any]) -> str:
    """``content_filter: <Azure's message> (filtered: hate=high, jailbreak)``."""
    inner = err.get("innererror") or {}
    result = inner.get("content_filter_result") or err.get("content_filter_result") or {}
    hits = []
    for category, verdict in result.items() if isinstance(result, dict) else ():
        if isinstance(verdict, dict) and verdict.get("filtered"):
            severity = verdict.get("severity")
            hits.append(f"{category}={severity}" if severity else category)
    message = err.get("message") or "the prompt was filtered by Azure's content management policy"
    return f"content_filter: {message}" + (f" (filtered: {', '.join(hits)})" if hits else "")


def _annotation_only(chunk: dict[str, Any]) -> bool:
    """A chunk with nothing for an OpenAI client: no usage, and no choice with a ``delta``."""
    if chunk.get("usage"):
        return False
    return all(isinstance(c, dict) and "delta" not in c for c in chunk.get("choices") or [])
