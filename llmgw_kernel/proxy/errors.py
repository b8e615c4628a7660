"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from collections.abc import Sequence

import orjson


class GatewayError(Exception):
    """An error the client sees. ``outcome`` is what the log records."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        *,
        param: str | None = None,
        code: str | None = None,
        outcome: str = "client_error",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.headers = headers or []  # extra response headers (Retry-After, x-should-retry)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.outcome = outcome

    def body(self) -> bytes:
        return orjson.dumps(
            {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        )


def bad_request(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def not_found_model(model: str, known: list[str]) -> GatewayError:
    hint = f" Available: {', '.join(known[:20])}." if known else ""
    return GatewayError(
        404, f"The model '{model}' does not exist on this gateway.{hint}", param="model", code="model_not_found"
    )


def _listing(supported: Sequence[str]) -> str:
    if not supported:
        return ""
    return f". Supported routes: {', '.join(supported)} (described in GET /openapi.json)"


def not_found_path(path: str, supported: Sequence[str] = ()) -> GatewayError:
    """404 for a path the API does not have; ``supported`` (``"POST /v1/..."``) is named in the message."""
    return GatewayError(404, f"Unknown path: {path}{_listing(supported)}", code="not_found")


def method_not_allowed(method: str, path: str, supported: Sequence[str] = ()) -> GatewayError:
    """405 (the caller adds ``Allow``); ``supported`` is named in the message."""
    message = f"Method {method} is not allowed on {path}{_listing(supported)}"
    return GatewayError(405, message, code="method_not_allowed")


def guardrail_error(exc: Exception) -> GatewayError:
    """The client's error for a guardrail verdict: ``block`` → 400 ``guardrail_blocked`` naming
    the check, rule, type and where (never the value); a check that failed → 500
    ``guardrail_error`` (the request is refused, not passed on unchecked)."""
    from ..guardrails.verdicts import Blocked

    if isinstance(exc, Blocked):
        return GatewayError(400, str(exc), param=exc.reason.where, code="guardrail_blocked")
    import logging

    logging.getLogger("llmgw.guardrails").error("%s", exc, exc_info=exc.__cause__)
    return GatewayError(500, str(exc), "server_error", code="guardrail_error", outcome="error")
