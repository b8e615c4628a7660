"""Output guardrails on the texts of a passed-through Responses answer that its chat form does not
hold: reasoning summaries (and reasoning texts), and what built-in tools show the client —
``file_search_call`` result texts, ``code_interpreter_call`` logs, ``mcp_call`` output and error,
and the titles of ``url_citation`` annotations (what a web search shows). The chat form (message
text, refusals, function-call arguments) is checked by the pipeline as for chat; these texts are
checked here with the request's own :class:`~llmgw_kernel.guardrails.request.RequestGuard`, so
they share its placeholders and its verdicts (the log's ``guardrails`` column), and a ``block``
ends the request as one on the message text does.

Whole answers: :func:`guard_answer` rewrites the ``response`` before the pipeline sees its chat
form, and checks a message of several parts (or with annotations) part by part, moving the
annotations' offsets with a redaction. Streams (:class:`StreamTexts`): reasoning summary and
reasoning text deltas are held back and checked across event boundaries with the route's bounded
hold-back (the stream guard of chat, one channel per text); tool items arrive whole in
``response.output_item.added``/``.done`` and are checked there; the events that repeat a text
(``*.done``, ``response.completed``) carry what the client was sent. The message text of a
stream is the pipeline's (its stream guard), and the relay moves its annotations with it
(:func:`align`, used by :class:`~.passthrough_responses.Relay`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import orjson

from ..guardrails.compile import Check
from ..guardrails.findings import Finding
from ..guardrails.request import RequestGuard
from ..guardrails.stage import GuardrailFailure, Pass, commit, scan
from ..guardrails.stream import StreamGuard

#: item type -> (list field, text fields of each element) of the texts it shows the client
_LISTS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "reasoning": (("summary", ("text",)), ("content", ("text",))),
    "file_search_call": (("results", ("text",)),),
    "code_interpreter_call": (("outputs", ("logs",)),),
}
#: item type -> its own text fields
_FIELDS = {"mcp_call": ("output", "error")}
#: stream delta / done events of the held texts -> the item list their text is in
_DELTA = {"response.reasoning_summary_text.delta": "summary", "response.reasoning_text.delta": "content"}
_DONE = {"response.reasoning_summary_text.done": "summary", "response.reasoning_text.done": "content"}
_PART_DONE = "response.reasoning_summary_part.done"
#: events that carry whole texts (items, parts, annotations) this module checks
_WHOLE = frozenset({"response.output_item.added", "response.output_item.done", "response.content_part.added",
                    "response.content_part.done", "response.output_text.annotation.added", "response.completed",
                    "response.incomplete"})  # fmt: skip
#: a placeholder of :class:`~llmgw_kernel.guardrails.redact.Redactor` (``<PHONE_NUMBER_1>``)
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9]+>")
#: placeholders in one text past which :func:`align` gives up (its match backtracks per placeholder)
_MAX_ALIGNED = 64


def item_texts(item: Any, where: str) -> Iterator[tuple[dict[str, Any], str, str]]:
    """(holder, field, where) of every text of an output item that the chat form does not hold."""
    if not isinstance(item, dict):
        return
    kind = item.get("type")
    for name, fields in _LISTS.get(str(kind), ()):
        for i, element in enumerate(item.get(name) or ()):
            for field in fields:
                if isinstance(element, dict) and isinstance(element.get(field), str):
                    yield element, field, f"{where}.{name}[{i}].{field}"
    for field in _FIELDS.get(str(kind), ()):
        if isinstance(item.get(field), str):
            yield item, field, f"{where}.{field}"
    if kind == "message":
        for j, part in enumerate(item.get("content") or ()):
            yield from part_titles(part, f"{where}.content[{j}]")


def part_titles(part: Any, where: str) -> Iterator[tuple[dict[str, Any], str, str]]:
    """(holder, field, where) of the annotation titles of a content part (a cited page's title)."""
    for k, note in enumerate(part.get("annotations") or () if isinstance(part, dict) else ()):
        if isinstance(note, dict) and isinstance(note.get("title"), str):
            yield note, "title", f"{where}.annotations[{k}].title"


def check_items(items: list[Any], check: Callable[[str, str], str], first: int = 0) -> None:
    """Check (and redact in place) the texts of ``items`` the chat form does not hold."""
    for n, item in enumerate(items):
        for holder, field, where in item_texts(item, f"output[{first + n}]"):
            holder[field] = check(holder[field], where)


def _pass(guard: RequestGuard) -> Pass:
    return Pass(guard.rails.output, "output", guard.redactor, guard.verdicts)


class Guarded(NamedTuple):
    """A whole answer after :func:`guard_answer`: its bytes, and the text a ``block`` check fired
    on (or a check failed on), if any — left for the pipeline to block (see there)."""

    raw: bytes
    blocked: str | None = None


class _Stop(Exception):
    def __init__(self, text: str) -> None:
        self.text = text


class _Native:
    """Output checks on the texts of one whole answer, recorded in the request's verdicts —
    except a text a ``block`` check fires on (or a check fails on), which stops them (:class:`_Stop`)
    unrecorded."""

    __slots__ = ("guard", "changed")

    def __init__(self, guard: RequestGuard) -> None:
        self.guard = guard
        self.changed = False

    def spans(self, checks: tuple[Check, ...], text: str, where: str) -> list[Finding]:
        try:
            spans, reasons = scan(checks, text, "output", where)
        except GuardrailFailure:
            raise _Stop(text) from None
        if any(r.action == "block" for r in reasons):
            raise _Stop(text)
        commit(self.guard.verdicts, reasons)
        self.changed = self.changed or bool(spans)
        return spans

    def text(self, text: str, where: str) -> str:
        spans = self.spans(self.guard.rails.output, text, where)
        return self.guard.redactor.apply(text, spans) if spans else text


def guard_answer(raw: bytes, resp: dict[str, Any], guard: RequestGuard | None) -> Guarded:
    """A whole ``response`` (``raw``, parsed and of the documented shape: ``resp``, which this
    may change) with its texts checked before the pipeline reads its chat form (``raw`` itself
    when nothing changed).

    The texts the chat form does not hold get every output check. When the message text comes in
    several ``output_text`` parts or has annotations, each part gets the ``redact`` and ``block``
    checks here, part by part, so a redaction stays in its part and
    moves the part's annotation offsets (:func:`redact_part`); the pipeline then checks the chat
    form as for chat — the ``flag`` checks, and what no part held alone (a value split over two
    parts), which :func:`~.passthrough_responses.patched` puts back as before. A text a ``block``
    check fires on is not acted on here: it is returned (:attr:`Guarded.blocked`) for the chat form
    the pipeline checks, whose same checks block it there — so the answer is accounted as a
    blocked chat answer is (its attempt, target and usage logged, its cost charged)."""
    if guard is None or not guard.rails.output:
        return Guarded(raw)
    native = _Native(guard)
    output = resp["output"]
    parts = list(_text_parts(output))
    # one part without annotations: the pipeline's check of the chat form is exact, and done once
    many = len(parts) > 1 or any(part.get("annotations") for _, part in parts)
    acting = tuple(c for c in guard.rails.output if c.action != "flag") if many else ()
    try:
        check_items(output, native.text)
        for where, part in parts if acting else ():
            redact_part(part, native, acting, where)
    except _Stop as stop:
        return Guarded(raw, stop.text)
    return Guarded(orjson.dumps(resp) if native.changed else raw)


def _text_parts(output: list[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, part) of every ``output_text`` part of the messages of ``output``."""
    for n, item in enumerate(output):
        if isinstance(item, dict) and item.get("type") == "message":
            for j, part in enumerate(item.get("content") or ()):
                if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str):
                    yield f"output[{n}].content[{j}].text", part


def redact_part(part: dict[str, Any], native: _Native, checks: tuple[Check, ...], where: str) -> None:
    """Check one ``output_text`` part; a redaction replaces its values and moves its annotations'
    offsets with the text (an edge inside a value goes to the placeholder's edge); its logprobs
    (the tokens' own text) are emptied."""
    text = part["text"]
    spans = native.spans(checks, text, where)
    if not spans:
        return
    redactor = native.guard.redactor
    edits = [(f.start, f.end, redactor.placeholder(f.type, text[f.start : f.end])) for f in spans]
    part["text"] = redactor.apply(text, spans)
    move_notes(part.get("annotations"), edits)
    if part.get("logprobs"):
        part["logprobs"] = []


def align(original: str, client: str) -> list[tuple[int, int, str]] | None:
    """The edits (start, end, placeholder) that made ``client`` of ``original`` — a text the
    stream guard redacted, whose spans it does not report — read from the placeholders in
    ``client`` (None: it is not ``original`` with spans replaced, or has too many to read)."""
    holders = _PLACEHOLDER.findall(client)
    if len(holders) > _MAX_ALIGNED:
        return None
    pattern = "(.+?)".join(re.escape(piece) for piece in _PLACEHOLDER.split(client))
    found = re.fullmatch(pattern, original, re.DOTALL)
    if found is None:
        return None
    return [(found.start(n + 1), found.end(n + 1), holder) for n, holder in enumerate(holders)]


def move_notes(notes: Any, edits: list[tuple[int, int, str]]) -> None:
    """Move the offsets of a part's annotations with its redacted text (see :func:`moved`)."""
    for note in notes or ():
        for field, is_end in (("start_index", False), ("end_index", True), ("index", False)):
            if isinstance(note, dict) and isinstance(note.get(field), int):
                note[field] = moved(note[field], edits, is_end)


def moved(offset: int, edits: list[tuple[int, int, str]], is_end: bool) -> int:
    """Where ``offset`` of a text is once ``edits`` (start, end, placeholder; sorted, disjoint)
    replaced its spans: an offset inside a replaced span goes to the placeholder's start (or,
    for the end of an annotation, its end)."""
    delta = 0
    for start, end, placeholder in edits:
        if offset >= end:
            delta += len(placeholder) - (end - start)
        elif offset > start:
            return start + delta + (len(placeholder) if is_end else 0)
        else:
            break
    return offset + delta


class StreamTexts:
    """The extra texts of one passed-through stream, checked event by event (module docstring).
    :meth:`event` returns the events to keep in the upstream's place (rewritten, none, or a
    released delta before a ``*.done``); it raises :class:`Blocked` on a ``block``."""

    __slots__ = ("_guard", "_stream", "_channels", "_texts", "_memo")

    def __init__(self, guard: RequestGuard) -> None:
        self._guard = guard
        self._stream = StreamGuard(guard.rails.output, guard.redactor, guard.verdicts, guard.rails.holdback)
        self._channels: dict[tuple[Any, str, int], tuple[int, dict[str, Any]]] = {}  # text -> (channel, last delta)
        self._texts: dict[tuple[Any, str, int], str] = {}  # text -> what the client was sent
        self._memo: dict[str, str] = {}  # a whole text checked -> what the client gets

    def event(self, payload: bytes, event: dict[str, Any]) -> list[tuple[bytes, dict[str, Any]]]:
        kind = event.get("type")
        if kind in _DELTA:
            return self._delta(event, _DELTA[kind])
        if kind in _DONE:
            return self._done(payload, event, _DONE[kind])
        if kind == _PART_DONE:
            text = self._texts.get((event.get("item_id"), "summary", event.get("summary_index", 0)))
            part = event.get("part")
            if text is not None and isinstance(part, dict) and part.get("text") != text:
                part["text"] = text
                return [(orjson.dumps(event), event)]
            return [(payload, event)]
        if kind not in _WHOLE:
            return [(payload, event)]
        p = _pass(self._guard)
        if kind in ("response.output_item.added", "response.output_item.done"):
            event["item"] = self._client_item(event.get("item"), p, f"output[{event.get('output_index', 0)}]")
        elif kind in ("response.content_part.added", "response.content_part.done"):
            self._check(part_titles(event.get("part"), f"content[{event.get('content_index', 0)}]"), p)
        elif kind == "response.output_text.annotation.added":
            self._check(part_titles({"annotations": [event.get("annotation")]}, "annotation"), p)
        elif kind in ("response.completed", "response.incomplete"):
            resp = event.get("response") or {}
            items = resp.get("output") or []
            resp["output"] = [self._client_item(item, p, f"output[{n}]") for n, item in enumerate(items)]
        return [(orjson.dumps(event), event)] if p.changed else [(payload, event)]

    def _check(self, texts: Iterator[tuple[dict[str, Any], str, str]], p: Pass) -> None:
        """Check texts, each distinct text once a stream (its events repeat it: added, done, completed)."""
        for holder, field, where in texts:
            value = holder[field]
            if value not in self._memo:
                self._memo[value] = p.text(value, where)
            holder[field] = self._memo[value]
            p.changed = p.changed or holder[field] != value

    def _key(self, event: dict[str, Any], name: str) -> tuple[Any, str, int]:
        index = event.get("summary_index" if name == "summary" else "content_index", 0)
        return (event.get("item_id"), name, index if isinstance(index, int) else 0)

    def _feed(self, key: tuple[Any, str, int], text: str, final: bool) -> str:
        """The text the hold-back releases for one text's channel after ``text`` arrived."""
        channel = self._channels[key][0]
        choice = {
            "index": channel,
            "delta": {"content": text} if text else {},
            "finish_reason": "stop" if final else None,
        }
        released = []
        for out in self._stream.feed(orjson.dumps({"choices": [choice]})):
            for c in orjson.loads(out).get("choices") or ():
                released.append((c.get("delta") or {}).get("content") or "")
        sent = "".join(released)
        self._texts[key] = self._texts.get(key, "") + sent
        return sent

    def _delta(self, event: dict[str, Any], name: str) -> list[tuple[bytes, dict[str, Any]]]:
        key = self._key(event, name)
        channel = self._channels[key][0] if key in self._channels else len(self._channels)
        self._channels[key] = (channel, event)
        sent = self._feed(key, str(event.get("delta") or ""), False)
        if not sent:
            return []
        out = {**event, "delta": sent}
        return [(orjson.dumps(out), out)]

    def _done(self, payload: bytes, event: dict[str, Any], name: str) -> list[tuple[bytes, dict[str, Any]]]:
        key = self._key(event, name)
        if key not in self._channels:  # a text without deltas: checked whole
            self._channels[key] = (len(self._channels), {**event, "type": event["type"].replace(".done", ".delta")})
            tail = self._feed(key, str(event.get("text") or ""), True)
            done = {**event, "text": tail}
            return [(orjson.dumps(done), done)]
        template = self._channels[key][1]
        tail = self._feed(key, "", True)
        done = {**event, "text": self._texts.get(key, "")}
        kept = [(payload, event) if done == event else (orjson.dumps(done), done)]
        if tail:
            delta = {**template, "delta": tail}
            kept.insert(0, (orjson.dumps(delta), delta))
        return kept

    def _client_item(self, item: Any, p: Pass, where: str) -> Any:
        """An item as the client gets it: a reasoning item with its texts as the hold-back released
        them, any other with its texts checked."""
        if not isinstance(item, dict):
            return item
        if item.get("type") != "reasoning":
            self._check(item_texts(item, where), p)
            return item
        for name in ("summary", "content"):
            for index, part in enumerate(item.get(name) or ()):
                text = self._texts.get((item.get("id"), name, index))
                if isinstance(part, dict) and text is not None:
                    p.changed = p.changed or part.get("text") != text
                    part["text"] = text
                elif isinstance(part, dict) and isinstance(part.get("text"), str):  # never streamed: checked whole
                    self._check(iter([(part, "text", f"{where}.{name}[{index}].text")]), p)
        return item
