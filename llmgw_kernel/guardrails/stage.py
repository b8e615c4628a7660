"""The guardrail stage: run a route's checks on every text a request carries (input) or an
answer holds (output), and act on what they find.

Texts (OpenAI form — a ``/v1/messages`` request is checked after its translation, so its
system prompt, content blocks, ``tool_use`` inputs and ``tool_result`` s are covered):

- chat requests: every message's ``content`` (a string, or the ``text``/``refusal`` of its
  parts), ``refusal``, each ``tool_calls[j].function.arguments`` and a legacy
  ``function_call.arguments``; tool results are ``tool`` messages;
- embeddings requests: ``input`` (a string or each string of a list);
- answers: the same fields of each choice's ``message`` (its ``logprobs``, which spell out
  the tokens, are removed: they would show what was redacted or blocked).

Every check runs on the text as it came (so one check's placeholders never hide a value from
another). Findings of ``redact`` checks are merged (overlaps: the earlier, then longer, span
stands) and replaced by the request's :class:`~.redact.Redactor`; a finding of a ``block``
check raises :class:`~.verdicts.Blocked`; every finding is a :class:`~.verdicts.Reason` in the
request's :class:`~.verdicts.Verdicts`. Tool-call arguments are JSON: when a placeholder
would break it (a value outside a string), the values of the parsed arguments are checked
and replaced one by one instead. Streams: :mod:`.stream`.
"""

from __future__ import annotations

from typing import Any

import orjson

from .compile import Check
from .findings import Finding
from .redact import Redactor
from .verdicts import Blocked, Reason, Verdicts


class GuardrailFailure(Exception):
    """A check raised: the request is refused rather than passed on unchecked. The message
    names the check and the exception's type only (its text may quote the text checked);
    the exception itself is the ``__cause__``, for the server's log."""

    def __init__(self, check: str, exc: BaseException) -> None:
        self.check = check
        super().__init__(f"guardrail {check!r} failed ({type(exc).__name__}); the request was not sent on")


def scan(checks: tuple[Check, ...], text: str, stage: str, where: str) -> tuple[list[Finding], list[Reason]]:
    """Every check on ``text``: the spans to redact (sorted, non-overlapping) and the reasons."""
    spans: list[Finding] = []
    reasons: list[Reason] = []
    for check in checks:
        try:
            found = check.detector.find(text)
        except Exception as exc:  # a detector bug or a custom rule's exception: fail closed
            raise GuardrailFailure(check.name, exc) from exc
        for f in found:
            reasons.append(Reason(stage, check.name, f.rule, f.type, check.action, where, f.start, f.end, f.score))
            if check.action == "redact":
                spans.append(f)
    if len(spans) > 1:
        spans = merged(spans)
    return spans, reasons


def merged(spans: list[Finding]) -> list[Finding]:
    """``spans`` sorted by start, an overlapping span dropped (the earlier, then longer, stands)."""
    out: list[Finding] = []
    for f in sorted(spans, key=lambda f: (f.start, -f.end)):
        if not out or f.start >= out[-1].end:
            out.append(f)
    return out


def commit(verdicts: Verdicts, reasons: list[Reason]) -> None:
    """Record ``reasons``; raise :class:`Blocked` for the first one a ``block`` check gave."""
    if reasons:
        verdicts.add(reasons)
        for r in reasons:
            if r.action == "block":
                raise Blocked(r)


class Pass:
    """One stage over one request or answer: texts are checked, recorded and rewritten in
    place (``changed`` says whether any was)."""

    __slots__ = ("checks", "stage", "redactor", "verdicts", "changed")

    def __init__(self, checks: tuple[Check, ...], stage: str, redactor: Redactor, verdicts: Verdicts) -> None:
        self.checks = checks
        self.stage = stage
        self.redactor = redactor
        self.verdicts = verdicts
        self.changed = False

    def text(self, value: str, where: str) -> str:
        spans, reasons = scan(self.checks, value, self.stage, where)
        commit(self.verdicts, reasons)
        if not spans:
            return value
        self.changed = True
        return self.redactor.apply(value, spans)

    def json_text(self, value: str, where: str) -> str:
        """A JSON document held in a string (tool-call arguments), kept valid JSON."""
        spans, reasons = scan(self.checks, value, self.stage, where)
        if not spans:
            commit(self.verdicts, reasons)
            return value
        out = self.redactor.apply(value, spans)
        try:
            orjson.loads(out)
        except orjson.JSONDecodeError:
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:  # not JSON to begin with: text it is
                pass
            else:  # a placeholder landed outside a string: check the values one by one
                return orjson.dumps(self._leaves(parsed, where)).decode()
        commit(self.verdicts, reasons)
        self.changed = True
        return out

    def _leaves(self, value: Any, where: str) -> Any:
        if isinstance(value, str):
            return self.text(value, where)
        if isinstance(value, dict):
            return {k: self._leaves(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self._leaves(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
            new = self.text(text, where)
            return value if new == text else new
        return value

    def message(self, msg: Any, where: str) -> None:
        """Every text of one chat message (request) or choice message (answer)."""
        if not isinstance(msg, dict):
            return
        content = msg.get("content")
        if isinstance(content, str):
            msg["content"] = self.text(content, f"{where}.content")
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict):
                    for key in ("text", "refusal"):
                        if isinstance(part.get(key), str):
                            part[key] = self.text(part[key], f"{where}.content[{j}].{key}")
        if isinstance(msg.get("refusal"), str):
            msg["refusal"] = self.text(msg["refusal"], f"{where}.refusal")
        calls = msg.get("tool_calls")
        for j, call in enumerate(calls if isinstance(calls, list) else ()):
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                fn["arguments"] = self.json_text(fn["arguments"], f"{where}.tool_calls[{j}].function.arguments")
        legacy = msg.get("function_call")
        if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
            legacy["arguments"] = self.json_text(legacy["arguments"], f"{where}.function_call.arguments")


def guard_request(
    checks: tuple[Check, ...], body: dict[str, Any], endpoint: str, redactor: Redactor, verdicts: Verdicts
) -> bool:
    """Input checks over a validated chat or embeddings request, rewriting ``body`` in place.
    Returns whether anything was redacted; raises :class:`Blocked` or :class:`GuardrailFailure`."""
    p = Pass(checks, "input", redactor, verdicts)
    if endpoint == "embeddings":
        value = body.get("input")
        if isinstance(value, str):
            body["input"] = p.text(value, "input")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    value[i] = p.text(item, f"input[{i}]")
        return p.changed
    for i, msg in enumerate(body.get("messages") or ()):
        p.message(msg, f"messages[{i}]")
    return p.changed


def guard_completion(
    checks: tuple[Check, ...], completion: dict[str, Any], redactor: Redactor, verdicts: Verdicts
) -> bool:
    """Output checks over a ``chat.completion``, rewriting it in place. Returns whether
    anything was redacted; raises :class:`Blocked` or :class:`GuardrailFailure`."""
    p = Pass(checks, "output", redactor, verdicts)
    choices = completion.get("choices")
    for i, choice in enumerate(choices if isinstance(choices, list) else ()):
        if isinstance(choice, dict):
            p.message(choice.get("message"), f"choices[{i}].message")
            if choice.get("logprobs") is not None:  # the tokens' own text: it would show what was redacted
                choice["logprobs"] = None
                p.changed = True
    return p.changed


def guard_completion_bytes(checks: tuple[Check, ...], raw: bytes, redactor: Redactor, verdicts: Verdicts) -> bytes:
    """:func:`guard_completion` over a JSON body: the body to send (``raw`` itself when nothing
    changed or it is not a chat completion — then there is no text to check)."""
    try:
        completion = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if not isinstance(completion, dict) or not guard_completion(checks, completion, redactor, verdicts):
        return raw
    return orjson.dumps(completion)
