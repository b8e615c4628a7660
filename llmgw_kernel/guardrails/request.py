"""One request's guardrails: the route's checks, the placeholder table its input and output
share, and the verdicts the log and metrics get."""

from __future__ import annotations

import dataclasses
from typing import Any

from .compile import Guardrails
from .redact import Redactor
from .stage import guard_completion_bytes, guard_request
from .stream import StreamGuard
from .verdicts import Verdicts


class RequestGuard:
    """Created when a request's route has guardrails; used by the pipeline at each stage."""

    __slots__ = ("rails", "redactor", "verdicts")

    def __init__(self, rails: Guardrails) -> None:
        self.rails = rails
        self.redactor = Redactor()
        self.verdicts = Verdicts()

    def check_request(self, body: dict[str, Any], endpoint: str) -> bool:
        """Input checks; ``body`` is rewritten in place. True when something was redacted."""
        if not self.rails.input:
            return False
        return guard_request(self.rails.input, body, endpoint, self.redactor, self.verdicts)

    def redact_blocked(self, body: dict[str, Any], endpoint: str) -> None:
        """``body`` of a request an input check blocked, with what the ``block`` and ``redact``
        checks found replaced, for a log that keeps redacted bodies: the value a block kept
        from the provider stays out of the log too. (Verdicts are not recorded again.)"""
        checks = tuple(dataclasses.replace(c, action="redact") if c.action == "block" else c for c in self.rails.input)
        guard_request(checks, body, endpoint, self.redactor, Verdicts())

    def check_completion(self, raw: bytes) -> bytes:
        """Output checks on a JSON chat completion: the body to send."""
        if not self.rails.output:
            return raw
        return guard_completion_bytes(self.rails.output, raw, self.redactor, self.verdicts)

    def stream(self) -> StreamGuard | None:
        """Output checks on a stream (None: the route has none, chunks pass as they come)."""
        if not self.rails.output:
            return None
        return StreamGuard(self.rails.output, self.redactor, self.verdicts, self.rails.holdback)
