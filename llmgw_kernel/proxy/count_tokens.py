"""``POST /v1/messages/count_tokens``: Anthropic's token counting, answered by the gateway.

No upstream call: the request is translated to an OpenAI chat request exactly as
``/v1/messages`` translates it (:func:`.anthropic_request.to_openai_request`, so a body
``/v1/messages`` refuses is refused here too, except for ``thinking``, which only configures
the answer), then counted offline with
:func:`llmgw_kernel.pricing.tokens.count_tokens` for the model of the route's **first**
target (the one a request goes to unless routing rules or weights pick another):

- exact when that model has an OpenAI tokenizer (``o200k_base`` / ``cl100k_base`` from
  ``bpe-openai``) and the prompt is text only;
- an estimate (``ceil(chars / 4)`` per text plus the chat-format overhead) otherwise: other
  providers' models, and prompts with images, tool calls or tool definitions (their
  serialisation by the provider is not public; tool definitions are counted as their JSON).

The answer is Anthropic's ``{"input_tokens": N}`` plus three fields the SDK keeps as extras:
``estimated`` (bool), ``tokenizer`` (the encoding, or ``"chars/4"``) and ``model`` (the
upstream model counted for); the ``x-llmgw-token-count`` header says ``exact`` or
``estimate``. Counting is not logged (it costs nothing and reaches no provider), but it needs
the same virtual key and model permission as ``/v1/messages``; errors are in Anthropic's format.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from ..keys.store import AuthError, VirtualKey
from ..keys.store import check_model as key_allows
from ..pricing.tokens import count_tokens, encoding_name
from .anthropic_request import to_openai_request
from .anthropic_response import anthropic_error
from .asgi import Receive, Scope, Send, header, read_body, send_json
from .errors import GatewayError, not_found_model
from .runtime import Gateway
from .validate import check_model, load_json

Caller = Callable[[Gateway, Scope], VirtualKey | None]


def counted(policy: Any, body: Any) -> dict[str, Any]:
    """The answer for an Anthropic count_tokens body under ``policy`` (a 400/404 GatewayError)."""
    if isinstance(body, dict):  # count_tokens takes no max_tokens (the translation requires one), and
        # `thinking` only configures the answer: counting a prompt never needs the chat equivalent /v1/messages lacks
        body = {**{k: v for k, v in body.items() if k != "thinking"}, "max_tokens": body.get("max_tokens") or 1}
    chat = to_openai_request(body)
    route = check_model(chat)
    if route not in policy.routes:
        raise not_found_model(route, list(policy.routes))
    model = policy.routes[route].targets[0].model
    n, estimated = count_tokens(chat["messages"], model)
    tools = chat.get("tools")
    if tools:  # counted as their JSON: an estimate whatever the tokenizer
        extra, _ = count_tokens(orjson.dumps(tools).decode(), model)
        n, estimated = n + extra, True
    has_tokenizer = not count_tokens("", model)[1]  # an OpenAI encoding, and bpe-openai installed
    tokenizer = encoding_name(model) if has_tokenizer else None
    return {"input_tokens": n, "estimated": estimated, "tokenizer": tokenizer or "chars/4", "model": model}


async def handle(gw: Gateway, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
    """Serve one count_tokens request; ``caller`` authenticates the key (a 401 GatewayError)."""
    try:
        key = caller(gw, scope)
        policy = gw.snapshot.policy
        raw = await read_body(receive, policy.server.max_request_bytes, header(scope, b"content-length"))
        body = load_json(raw)
        if key is not None and isinstance(body, dict):
            try:
                key_allows(key, str(body.get("model")))
            except AuthError as exc:
                raise GatewayError(exc.status, exc.message, "permission_error", code=exc.code) from None
        answer = await asyncio.to_thread(counted, policy, body)  # the tokenizer's first load is slow
    except GatewayError as err:
        out = anthropic_error(err.status, err.body())
        await send_json(send, err.status, orjson.dumps(out), err.headers)
        return
    kind = b"estimate" if answer["estimated"] else b"exact"
    await send_json(send, 200, orjson.dumps(answer), [(b"x-llmgw-token-count", kind)])


__all__ = ["counted", "handle"]
