"""Pass-through of ``/v1/responses`` and ``/v1/completions`` to ``openai`` and ``azure`` targets,
decided per attempt.

The pipeline serves these APIs on a chat form of the request (routing, limits, cache key,
input guardrails, the log row and replay all read it). :class:`Passthrough` is the request's
:class:`~.pipeline.Upstream`: on each attempt it looks at the target's adapter —

- an OpenAI-format adapter (``openai``, ``azure``): the client's own body goes to the
  provider's ``/responses`` (``/completions``) with ``model`` replaced, the redactions the input
  guardrails made on the chat form written back into it, and ``metadata`` kept out (as for
  chat: it is the gateway's). The answer is handed to the pipeline in chat form (so output
  guardrails, the cache, usage and the log read what they always read) while the upstream's own
  JSON or SSE events are kept here for the client (:attr:`answer`, :attr:`events`), relayed
  as they are unless a guardrail changed their text;
- any other kind: the chat form goes to the adapter's chat API, as before — unless the
  request holds something only OpenAI can serve (built-in tools, ``include``-only features,
  stored state, unknown fields: :attr:`native`), which is then refused for that target like an
  unsupported parameter (the next target is tried; if none can, the client gets a 400 naming it).

An OpenAI-compatible server without the endpoint (404/405) is asked through chat instead, on the
same attempt, when the request translates. Stored state (``store: true``,
``previous_response_id``, ``conversation``, ``background``, ``item_reference`` items) is
forwarded only when every target of the request's plan is on one ``openai``/``azure`` provider
(one upstream holds the state); otherwise it is the 400 it always was. Without ``store`` the
gateway sends ``store: false``, so nothing is kept upstream unless the client asked.
A request with parts only pass-through can serve is not cached (``x-llmgw-cache`` is
``no-store`` for it, logged, so replay bypasses it too): the cache holds chat answers, which
cannot carry built-in tool items. docs/providers.md has the whole picture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson

from ..decisions.cache import NO_STORE
from ..guardrails.request import RequestGuard
from ..log.record import RequestRecord
from ..policy.model import Target
from ..providers import Adapter, Reply, StreamReply, UpstreamError
from ..providers.base import unsupported
from ..providers.openai import OpenAIAdapter
from .errors import GatewayError
from .passthrough_guard import Guarded
from .runtime import Snapshot
from .validate import load_json

#: upstream statuses that say "no such endpoint here" (an OpenAI-compatible server without it)
_NO_ENDPOINT = frozenset({404, 405})
_KINDS = frozenset({"openai", "azure"})


class Dialect(Protocol):
    """One API's part of the pass-through: its endpoint and its wire format."""

    endpoint: str

    def translate(self, body: Any) -> tuple[dict[str, Any], Lenient]:
        """(chat form, what the lenient translation met) of a request; a 400 GatewayError if invalid."""

    def forward(self, pt: Passthrough, messages: list[Any]) -> dict[str, Any]:
        """The body sent upstream, given the chat ``messages`` after the input guardrails."""

    def to_chat(self, raw: bytes) -> tuple[bytes, dict[str, Any] | None]:
        """(chat completion, chat usage) of a whole upstream answer (UpstreamError if unreadable)."""

    def chat_events(self, payloads: AsyncIterator[bytes], pt: Passthrough, reply: StreamReply) -> AsyncIterator[bytes]:
        """The chat chunks of an upstream stream, each naming (``x_native``) the event it answers."""

    def guard_native(self, raw: bytes, guard: RequestGuard | None) -> Guarded:
        """A whole upstream answer with its texts checked per part, and those its chat form does not hold."""


class Lenient:
    """What a lenient translation met: ``native`` (param, why) for each part only an OpenAI
    upstream can serve, the ``stateful`` params among them, and ``slots``: (path in the chat
    ``messages``, path in the client's body) of every chat text. A client path ending in a list
    is a text joined from the parts of that list."""

    __slots__ = ("native", "stateful", "slots")

    def __init__(self) -> None:
        self.native: list[tuple[str, str]] = []
        self.stateful: list[str] = []
        self.slots: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = []


class Passthrough:
    """One request's per-attempt choice between pass-through and translation (module docstring)."""

    __slots__ = ("dialect", "snap", "rec", "request", "lenient", "messages", "answer", "answer_chat", "events",
                 "include_usage", "guard")  # fmt: skip

    def __init__(self, dialect: Dialect, snap: Snapshot) -> None:
        self.dialect = dialect
        self.snap = snap
        self.rec: RequestRecord | None = None
        self.request: dict[str, Any] = {}  # the client's body, as parsed
        self.lenient: Lenient | None = None
        self.messages = b""  # the chat messages before the input guardrails (JSON)
        self.answer: bytes | None = None  # the upstream's whole answer, when the last attempt passed through
        self.answer_chat: bytes | None = None  # ... and its chat form as handed to the pipeline
        self.events: list[tuple[bytes, dict[str, Any]]] | None = None  # a passed-through stream's events
        self.include_usage = False  # the gateway asked a completions stream for usage the client did not
        self.guard: RequestGuard | None = None  # the request's guardrails (the pipeline sets it)

    # -- request side ---------------------------------------------------------------------------
    def parse(self, raw: bytes, rec: RequestRecord) -> dict[str, Any]:
        """The chat form of the raw body (the log keeps it); a 400 GatewayError when invalid."""
        original = load_json(raw)  # a 400 if not JSON or nested deeper than the gateway's limit
        chat, lenient = self.dialect.translate(original)
        self.request, self.lenient, self.rec = original, lenient, rec
        self.messages = orjson.dumps(chat.get("messages") or [])
        rec.request_raw = orjson.dumps(chat)
        return chat

    def cache_control(self, body: dict[str, Any]) -> str | None:
        """``no-store`` for a request only pass-through can serve: the cache holds chat answers."""
        return NO_STORE if self.lenient is not None and self.lenient.native else None

    def forwarded_messages(self, messages: list[Any]) -> list[tuple[tuple[Any, ...], Any]] | None:
        """(native path, new text) of every chat text the input guardrails changed (None: none)."""
        before = orjson.loads(self.messages)
        if before == messages or self.lenient is None:
            return None
        changes = []
        for chat_path, native_path in self.lenient.slots:
            old, new = _get(before, chat_path), _get(messages, chat_path)
            if old != new:
                changes.append((native_path, new))
        return changes

    # -- per attempt ----------------------------------------------------------------------------
    def _passes(self, adapter: Adapter) -> bool:
        """Whether this attempt passes through; refuses (per target) what translation cannot serve."""
        self.answer = self.answer_chat = None
        self.events = None
        if isinstance(adapter, OpenAIAdapter) and adapter.provider.passthrough is not False:
            self._check_state()
            return True
        if self.lenient is not None and self.lenient.native:
            param, why = self.lenient.native[0]
            raise unsupported(param, f"{why} (only an openai or azure target serves it, by pass-through)")
        return False

    def _check_state(self) -> None:
        """Stored state only when one openai/azure provider serves every target of the plan."""
        lenient, rec = self.lenient, self.rec
        if lenient is None or not lenient.stateful or rec is None:
            return
        providers = set()
        for target_id in rec.plan or ():
            target, adapter = self.snap.resolve(rec.route or "", target_id)
            providers.add((target.provider, adapter.provider.kind))
        if len(providers) != 1 or next(iter(providers))[1] not in _KINDS:
            param = lenient.stateful[0]
            raise GatewayError(
                400,
                f"'{param}' is not supported on route '{rec.route}': it needs server-side storage, which only a "
                "route whose every target is on one openai or azure provider has; send the whole conversation as "
                "`input`",
                param=param,
                code="unsupported_parameter",
            )

    async def chat(self, adapter: Adapter, target: Target, body: dict[str, Any]) -> Reply:
        """One attempt of a whole answer."""
        if not self._passes(adapter):
            return await adapter.chat(body, target)
        assert isinstance(adapter, OpenAIAdapter)
        try:
            raw = await adapter.native(self.dialect.endpoint, self.dialect.forward(self, body["messages"]), target)
        except UpstreamError as err:
            if err.status in _NO_ENDPOINT and not (self.lenient and self.lenient.native):
                return await adapter.chat(body, target)
            raise
        raw, blocked = self.dialect.guard_native(raw, self.guard)
        chat, usage = self.dialect.to_chat(raw)
        if blocked is not None:  # the pipeline's output checks block it as they block a chat answer's text
            chat = _holding(chat, blocked)
        self.answer, self.answer_chat = raw, chat
        return Reply(chat, usage)

    async def chat_stream(
        self, adapter: Adapter, target: Target, body: dict[str, Any], include_usage: bool
    ) -> StreamReply:
        """One attempt of a stream (returns once the upstream accepted it)."""
        if not self._passes(adapter):
            return await adapter.chat_stream(body, target, include_usage)
        assert isinstance(adapter, OpenAIAdapter)
        forwarded = self.dialect.forward(self, body["messages"])
        self.include_usage = False
        if self.dialect.endpoint == "completions" and adapter.provider.stream_usage and not include_usage:
            forwarded["stream_options"] = {**(forwarded.get("stream_options") or {}), "include_usage": True}
            self.include_usage = True
        try:
            payloads = await adapter.native_stream(self.dialect.endpoint, forwarded, target)
        except UpstreamError as err:
            if err.status in _NO_ENDPOINT and not (self.lenient and self.lenient.native):
                return await adapter.chat_stream(body, target, include_usage)
            raise
        self.events = []
        reply = StreamReply(_never())
        reply.events = self.dialect.chat_events(payloads, self, reply)
        return reply


def apply_changes(body: dict[str, Any], changes: list[tuple[tuple[Any, ...], Any]] | None) -> None:
    """Write redacted texts back into the client's body (a joined text goes whole into its first part)."""
    for path, text in changes or ():
        *parent_path, last = path
        if isinstance(last, list):  # a text joined from the parts of a list: the first text part takes it
            parts = _get(body, tuple(parent_path))
            texts = [p for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
            for n, part in enumerate(texts):
                part["text"] = text if n == 0 else ""
            continue
        _get(body, tuple(parent_path))[last] = text


def _holding(chat: bytes, text: str) -> bytes:
    """The chat form of an answer with its message replaced by ``text``, a text a ``block`` check
    fired on where the chat form does not hold it: the pipeline's output checks run the same checks
    on it and block the answer (it is neither logged nor cached: a blocked answer never is)."""
    completion = orjson.loads(chat)
    completion["choices"] = [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
    return orjson.dumps(completion)


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


async def _never() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover


def upstream_failure(message: str) -> UpstreamError:
    """An upstream answer the gateway cannot read (the next target is tried, before the first byte)."""
    return UpstreamError("protocol", message)
