"""The Responses API's part of the pass-through (:mod:`.passthrough`): the forwarded body, the
upstream's answer read as chat for the pipeline, and the client's stream relayed from the
upstream's own events.

Whole answers: the ``response`` becomes a chat completion (message text → ``content``, refusals
→ ``refusal``, ``function_call`` items → ``tool_calls``, ``status`` → ``finish_reason``, usage →
chat usage) for the output guardrails, the cache and the log; the client gets the upstream's
bytes unchanged, or — when a guardrail redacted something — the same response with the redacted
texts put back (:func:`patched`).

Streams (:class:`Relay`): each upstream event becomes one chat chunk naming its position
(``x_native``): text, refusal and argument deltas carry their text, the ``*.done`` events end
the chunk's choice (so the stream guard releases what it holds before the item closes), every
other event is an empty chunk. The client gets the upstream's events as they are, in order,
as the pipeline passes each chunk on; a delta whose text the guard held back or redacted is
replaced by a delta with the text released, and the events that repeat the whole text
(``*.done``, ``response.completed``) then carry the redacted text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..guardrails.request import RequestGuard
from ..providers import StreamReply
from ..providers.http import loads_object
from .chat_sse import ChatChunks
from .passthrough import Lenient, Passthrough, apply_changes, upstream_failure
from .passthrough_guard import Guarded, StreamTexts, align, guard_answer, move_notes
from .responses_request import to_chat_request

#: Responses ``incomplete_details.reason`` → chat ``finish_reason``
_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}
#: delta events → the chat delta key their text goes to
_DELTAS = {"response.output_text.delta": "content", "response.refusal.delta": "refusal",
           "response.function_call_arguments.delta": "arguments"}  # fmt: skip
#: events that end one text (the stream guard releases what it holds for the choice)
_DONES = frozenset({"response.output_text.done", "response.refusal.done", "response.function_call_arguments.done"})
_ENDS = frozenset({"response.completed", "response.incomplete"})
_FAILS = frozenset({"response.failed", "error"})


class ResponsesDialect:
    endpoint = "responses"

    def translate(self, body: Any) -> tuple[dict[str, Any], Lenient]:
        lenient = Lenient()
        return to_chat_request(body, lenient), lenient

    def guard_native(self, raw: bytes, guard: RequestGuard | None) -> Guarded:
        return guard_answer(raw, response_object(raw), guard)  # another shape is refused before any check

    def forward(self, pt: Passthrough, messages: list[Any]) -> dict[str, Any]:
        body = orjson.loads(orjson.dumps(pt.request))
        apply_changes(body, pt.forwarded_messages(messages))
        body.pop("metadata", None)  # the gateway's, as for chat
        body.setdefault("store", False)  # nothing kept upstream unless the client asked
        return body

    def to_chat(self, raw: bytes) -> tuple[bytes, dict[str, Any] | None]:
        chat = as_chat(response_object(raw))
        return orjson.dumps(chat), chat.get("usage")

    async def chat_events(
        self, payloads: AsyncIterator[bytes], pt: Passthrough, reply: StreamReply
    ) -> AsyncIterator[bytes]:
        events = pt.events if pt.events is not None else []
        head: dict[str, Any] = {"object": "chat.completion.chunk"}
        calls: dict[str, int] = {}  # function_call item id -> chat tool_call index
        guard = pt.guard
        texts = StreamTexts(guard) if guard is not None and guard.rails.output else None
        ended = False
        async for payload in payloads:
            event = loads_object(payload)
            if event is None:
                continue
            kind = event.get("type")
            if kind in _FAILS:
                err = event.get("error") if kind == "error" else (event.get("response") or {}).get("error")
                message = (err or event).get("message") if isinstance(err or event, dict) else None
                raise upstream_failure(f"the upstream's response failed: {message or kind}")
            ended = ended or kind in _ENDS
            for kept, what in texts.event(payload, event) if texts is not None else [(payload, event)]:
                yield self._chunk(kept, what, events, head, calls, reply)
        if not ended:  # a clean EOF is still a cut: the client's SDK waits for the response's end
            raise upstream_failure("the upstream's stream ended without `response.completed`")

    def _chunk(self, payload: bytes, event: dict[str, Any], events: list[tuple[bytes, dict[str, Any]]],
               head: dict[str, Any], calls: dict[str, int], reply: StreamReply) -> bytes:  # fmt: skip
        """The chat chunk of one (kept) upstream event, which joins ``events``."""
        kind = event.get("type")
        events.append((payload, event))
        if kind == "response.created":  # the chunks' head from here on
            resp = event.get("response") or {}
            head.update(id=resp.get("id"), model=resp.get("model"))
        chunk = {**head, "x_native": len(events) - 1, "choices": _choices(event, calls)}
        if kind in _ENDS:
            resp = event.get("response") or {}
            reply.usage = chat_usage(resp.get("usage"))
            chunk["usage"] = reply.usage
        return orjson.dumps(chunk)


def _choices(event: dict[str, Any], calls: dict[str, int]) -> list[dict[str, Any]]:
    """The chat choices of one upstream event (none for most)."""
    kind = event.get("type")
    delta: dict[str, Any]
    if kind in _DELTAS:
        key, text = _DELTAS[kind], event.get("delta") or ""
        if key == "arguments":
            index = calls.get(str(event.get("item_id") or ""), 0)
            delta = {"tool_calls": [{"index": index, "function": {"arguments": text}}]}
        else:
            delta = {key: text}
        return [{"index": 0, "delta": delta, "finish_reason": None}]
    item = event.get("item") or {}
    if kind == "response.output_item.added" and item.get("type") == "function_call":
        index = calls[item.get("id") or ""] = len(calls)
        call = {"index": index, "id": item.get("call_id"), "type": "function",
                "function": {"name": item.get("name") or "", "arguments": ""}}  # fmt: skip
        return [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]
    if kind in _DONES:
        return [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    if kind in _ENDS:
        return [{"index": 0, "delta": {}, "finish_reason": finish_reason(event.get("response") or {})}]
    return []


def response_object(raw: bytes) -> dict[str, Any]:
    """The whole answer ``raw`` if it has the documented shape of a ``response`` (an object
    ``"response"`` whose ``output`` is a list of objects), else the upstream's fault: an
    ``UpstreamError`` (the next target is tried, the client gets a 502 before any byte, nothing is
    cached) — never a 200 whose chat form is empty."""
    resp = loads_object(raw)
    if resp is None or resp.get("object") != "response":
        raise upstream_failure("the upstream answer is not a Responses `response`")
    output = resp.get("output")
    if not isinstance(output, list) or not all(isinstance(item, dict) for item in output):
        raise upstream_failure("the upstream's `response` has an `output` that is not a list of items")
    return resp


def finish_reason(resp: dict[str, Any]) -> str:
    """The chat ``finish_reason`` of a ``response``."""
    if resp.get("status") == "incomplete":
        reason = (resp.get("incomplete_details") or {}).get("reason")
        return _FINISH.get(str(reason), "length")
    calls = any(isinstance(o, dict) and o.get("type") == "function_call" for o in resp.get("output") or ())
    return "tool_calls" if calls else "stop"


def chat_usage(usage: Any) -> dict[str, Any] | None:
    """Responses usage → chat usage (what cost, limits and the log read)."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": usage.get("total_tokens") or prompt + completion}  # fmt: skip
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens")
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    if reasoning:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def as_chat(resp: dict[str, Any]) -> dict[str, Any]:
    """A ``response`` as a ``chat.completion``: its message text, refusal and function calls."""
    texts, refusals, calls = [], [], []
    for item in resp.get("output") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") == "output_text":
                    texts.append(part.get("text") or "")
                elif isinstance(part, dict) and part.get("type") == "refusal":
                    refusals.append(part.get("refusal") or "")
        elif item.get("type") == "function_call":
            fn = {"name": item.get("name"), "arguments": item.get("arguments") or ""}
            calls.append({"id": item.get("call_id"), "type": "function", "function": fn})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if refusals:
        message["refusal"] = "".join(refusals)
    if calls:
        message["tool_calls"] = calls
    choice = {"index": 0, "message": message, "finish_reason": finish_reason(resp)}
    return {"id": resp.get("id"), "object": "chat.completion", "created": resp.get("created_at") or 0,
            "model": resp.get("model") or "", "choices": [choice], "usage": chat_usage(resp.get("usage"))}  # fmt: skip


def patched(raw: bytes, chat: bytes) -> bytes:
    """The upstream's ``response`` (its parts already checked one by one:
    :func:`~.passthrough_guard.guard_answer`) with what the pipeline's checks of ``chat`` (its
    guarded chat form) changed put back: each function call's arguments into its item, and —
    only when a check changed the message text or refusal as a whole (a value split over two
    parts) — that text into the first part (the others emptied, annotations dropped: their
    offsets no longer point into it)."""
    resp = orjson.loads(raw)
    message = (orjson.loads(chat).get("choices") or [{}])[0].get("message") or {}
    _put_texts(resp.get("output") or [], message, (as_chat(resp).get("choices") or [{}])[0].get("message") or {})
    return orjson.dumps(resp)


def _put_texts(output: list[Any], message: dict[str, Any], before: dict[str, Any]) -> None:
    left = {"output_text": message.get("content") or "", "refusal": message.get("refusal") or ""}
    changed = {"output_text": left["output_text"] != (before.get("content") or ""),
               "refusal": left["refusal"] != (before.get("refusal") or "")}  # fmt: skip
    field = {"output_text": "text", "refusal": "refusal"}
    calls = iter(message.get("tool_calls") or ())
    for item in output:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or ():
                kind = part.get("type") if isinstance(part, dict) else None
                if kind in left and changed[kind]:
                    part[field[kind]], left[kind] = left[kind], ""
                    if kind == "output_text":
                        part["annotations"] = []
                        if part.get("logprobs"):
                            part["logprobs"] = []  # the tokens' own text would show what was redacted
        elif item.get("type") == "function_call":
            call = next(calls, None)
            if call is not None:
                item["arguments"] = (call.get("function") or {}).get("arguments") or ""


class Relay(ChatChunks):
    """The client's stream of a passed-through request, from the pipeline's (guarded) chat chunks
    and the upstream's events (see the module docstring). A :class:`~.translated_send.StreamTranslator`."""

    __slots__ = ("_events", "_next", "_pending", "_last", "_texts", "_changed", "_calls", "_seq",
                 "_response", "_notes", "_edits", "_closed")  # fmt: skip

    def __init__(self, events: list[tuple[bytes, dict[str, Any]]]) -> None:
        super().__init__()
        self._events = events
        self._next = 0  # the first upstream event not yet relayed
        self._pending: dict[Any, list[tuple[bytes, dict[str, Any]]]] = {}  # chat key -> deltas not yet relayed
        self._last: dict[Any, dict[str, Any]] = {}  # chat key -> its last delta event (a released text's shape)
        self._texts: dict[Any, str] = {}  # native text key -> the text the client got
        self._changed: set[Any] = set()  # native text keys whose text the client got differently
        self._calls: dict[int, str] = {}  # chat tool_call index -> function_call item id
        self._seq = 0
        self._response: dict[str, Any] = {}  # the response as ``response.created`` announced it
        self._notes: dict[Any, list[tuple[bytes, dict[str, Any]]]] = {}  # part -> annotation events held
        self._edits: dict[Any, list[tuple[int, int, str]] | None] = {}  # changed part -> its redactions
        self._closed: set[Any] = set()  # parts whose text is final (their annotations go at once)

    def _end(self, out: list[bytes]) -> None:
        """Nothing: the upstream's own events (relayed as they come) end the client's stream."""

    def _chunk(self, chunk: dict[str, Any], out: list[bytes]) -> None:
        if isinstance(chunk.get("error"), dict):  # the gateway ends the stream: what is held is never sent
            self._fail(chunk["error"], out)
            return
        last = chunk.get("x_native")
        upto = last + 1 if isinstance(last, int) else self._next
        others = []
        for payload_, event in self._events[self._next : upto]:
            key = _chat_key(event, self._calls)
            if key is None:
                others.append((payload_, event))
            else:
                self._pending.setdefault(key, []).append((payload_, event))
                self._last[key] = event
        self._next = max(self._next, upto)
        choice = (chunk.get("choices") or [{}])[0]
        self._release(choice.get("delta") or {}, out)
        if choice.get("finish_reason") is not None:
            self._pending.clear()
            self._last.clear()
        for payload_, event in others:
            self._other(payload_, event, out)

    def _fail(self, err: dict[str, Any], out: list[bytes]) -> None:
        """``error`` then ``response.failed`` (as the translated stream ends), and nothing after."""
        self._ended = True
        code, message = err.get("code"), err.get("message")
        self._emit({"type": "error", "code": code, "message": message, "param": err.get("param"),
                    "sequence_number": self._seq}, out, None)  # fmt: skip
        failed = {**self._response, "status": "failed", "error": {"code": code, "message": message}}
        self._emit({"type": "response.failed", "response": failed, "sequence_number": self._seq}, out, None)

    def _release(self, delta: dict[str, Any], out: list[bytes]) -> None:
        """Relay the text the guard released, per chat key: the upstream's deltas when it is their text."""
        released: dict[Any, str] = {}
        for key in ("content", "refusal"):
            if isinstance(delta.get(key), str) and delta[key]:
                released[key] = delta[key]
        for call in delta.get("tool_calls") or ():
            args = (call.get("function") or {}).get("arguments")
            if isinstance(args, str) and args:
                released[("arguments", call.get("index", 0))] = args
        for key, text in released.items():
            pending = self._pending.get(key) or []
            template = self._last.get(key)
            if pending and "".join(e.get("delta") or "" for _, e in pending) == text:
                for payload, event in pending:
                    self._note(event, event.get("delta") or "", False)
                    self._emit(event, out, payload)
            elif template is not None:
                self._note(template, text, True)
                self._emit({**template, "delta": text}, out, None)
            self._pending[key] = []

    def _note(self, event: dict[str, Any], text: str, rebuilt: bool) -> None:
        key = _text_key(event)
        self._texts[key] = self._texts.get(key, "") + text
        if rebuilt:
            self._changed.add(key)

    def _other(self, payload: bytes, event: dict[str, Any], out: list[bytes]) -> None:
        item = event.get("item") or {}
        if event.get("type") == "response.created" and isinstance(event.get("response"), dict):
            self._response = event["response"]
        if event.get("type") == "response.output_item.added" and item.get("type") == "function_call":
            self._calls[len(self._calls)] = item.get("id") or ""
        kind = event.get("type")
        if kind == "response.output_text.annotation.added":  # its offsets hold once the part's text does
            self._notes.setdefault(_part_key(event), []).append((payload, event))
            if _part_key(event) in self._closed:
                self._relay_notes(_part_key(event), out)
            return
        if kind == "response.output_text.done":
            self._part_done(event, out)
        elif kind in _ENDS:  # parts that never said done: their annotations as they are, unless redacted
            for key in list(self._notes):
                self._relay_notes(key, out)
        if self._changed and _patch(event, self._texts, self._changed, self._edits):
            self._emit(event, out, None)
        else:
            self._emit(event, out, payload)

    def _part_done(self, event: dict[str, Any], out: list[bytes]) -> None:
        """A part's text is final: read its redactions, then relay its annotations, moved with them
        (dropped when they cannot be read)."""
        key = _part_key(event)
        if key in self._changed:
            self._edits[key] = align(str(event.get("text") or ""), self._texts.get(key, ""))
        self._closed.add(key)
        self._relay_notes(key, out)

    def _relay_notes(self, key: Any, out: list[bytes]) -> None:
        for payload, note in self._notes.pop(key, []):
            if key not in self._changed:
                self._emit(note, out, payload)
            elif (edits := self._edits.get(key)) is not None:
                move_notes([note.get("annotation")], edits)
                self._emit(note, out, None)

    def _emit(self, event: dict[str, Any], out: list[bytes], payload: bytes | None) -> None:
        """One event: the upstream's bytes (``payload``), or ``event`` re-encoded (None)."""
        kind = str(event.get("type") or "message").encode()
        if payload is None:
            payload = orjson.dumps(event)
        seq = event.get("sequence_number")
        self._seq = seq + 1 if isinstance(seq, int) else self._seq + 1
        out.append(b"event: " + kind + b"\ndata: " + payload + b"\n\n")


def _chat_key(event: dict[str, Any], calls: dict[int, str]) -> Any:
    """The chat delta key of an upstream delta event (None: not a delta)."""
    key = _DELTAS.get(event.get("type") or "")
    if key != "arguments":
        return key
    item_id = event.get("item_id")
    for index, known in calls.items():
        if known == item_id:
            return ("arguments", index)
    return ("arguments", 0)


def _part_key(event: dict[str, Any]) -> tuple[Any, ...]:
    """The text key of an ``output_text`` part's event."""
    return (event.get("item_id"), event.get("content_index", 0), "content")


def _text_key(event: dict[str, Any]) -> tuple[Any, ...]:
    return (event.get("item_id"), event.get("content_index", 0), _DELTAS.get(event.get("type") or ""))


def _patch(event: dict[str, Any], texts: dict[Any, str], changed: set[Any], edits: dict[Any, Any]) -> bool:
    """Put the client's texts into an event that repeats a whole text; True if it changed."""
    kind = event.get("type")
    key = (event.get("item_id"), event.get("content_index", 0))
    if kind == "response.output_text.done" and (*key, "content") in changed:
        event["text"] = texts[(*key, "content")]
    elif kind == "response.refusal.done" and (*key, "refusal") in changed:
        event["refusal"] = texts[(*key, "refusal")]
    elif kind == "response.function_call_arguments.done" and (event.get("item_id"), 0, "arguments") in changed:
        event["arguments"] = texts[(event.get("item_id"), 0, "arguments")]
    elif kind == "response.content_part.done" and ((*key, "content") in changed or (*key, "refusal") in changed):
        part = event.get("part") or {}
        for field, name in (("text", "content"), ("refusal", "refusal")):
            if (*key, name) in changed and field in part:
                part[field] = texts[(*key, name)]
        _move_annotations(part, (*key, "content"), changed, edits)
    elif kind == "response.output_item.done":
        return _patch_item(event.get("item") or {}, texts, changed, edits)
    elif kind in _ENDS:
        hit = [_patch_item(i, texts, changed, edits) for i in (event.get("response") or {}).get("output") or ()]
        return any(hit)
    else:
        return False
    return True


def _patch_item(item: Any, texts: dict[Any, str], changed: set[Any], edits: dict[Any, Any]) -> bool:
    if not isinstance(item, dict):
        return False
    hit = False
    if item.get("type") == "function_call" and (item.get("id"), 0, "arguments") in changed:
        item["arguments"], hit = texts[(item.get("id"), 0, "arguments")], True
    for index, part in enumerate(item.get("content") or ()):
        for field, name in (("text", "content"), ("refusal", "refusal")):
            if isinstance(part, dict) and field in part and (item.get("id"), index, name) in changed:
                part[field], hit = texts[(item.get("id"), index, name)], True
        _move_annotations(part, (item.get("id"), index, "content"), changed, edits)
    return hit


def _move_annotations(part: Any, key: Any, changed: set[Any], edits: dict[Any, Any]) -> None:
    """A redacted part's annotations, moved with its text (dropped when its redactions cannot be read)."""
    if key not in changed or not isinstance(part, dict) or not part.get("annotations"):
        return
    if edits.get(key) is None:
        part["annotations"] = []
    else:
        move_notes(part["annotations"], edits[key])
