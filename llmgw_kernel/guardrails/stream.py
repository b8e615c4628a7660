"""Output checks over an OpenAI ``chat.completion.chunk`` stream, across chunk boundaries.

A value can arrive split over several chunks (``"0912 34"`` then ``"5 678"``), so the text of
each choice's ``content``, ``refusal`` and each tool call's ``arguments`` (a *channel*) is
held back before it is sent:

- the last ``holdback`` characters of a channel are kept until more text (or the end of the
  choice) arrives; the first text is released as soon as there is any beyond them, later
  text in steps of at least :data:`MIN_RELEASE` characters (one run of the checks per step);
- a finding that straddles the release point pulls it back to the finding's start, so no part
  of a value that is being detected is sent — up to ``4 × holdback`` characters in all, past
  which the finding is released (replaced) as it stands;
- the checks run on the held text plus up to ``holdback`` characters already sent before it
  (their context words count), and a finding is acted on once, when its last character is
  released: ``redact`` replaces it (with the request's placeholders), ``block`` raises
  :class:`~.verdicts.Blocked` before any of it is sent, ``flag`` records it.

So a value of at most ``holdback`` characters is redacted or blocked whatever the chunking;
a longer one is if the detector recognises it from the part that is held. The cost is the
time-to-first-token: the first text of a channel is sent once more than ``holdback``
characters have arrived (or the choice ends), i.e. after the upstream generated that much
(docs/guardrails.md#streams measures it). Chunks are rebuilt with the released text;
a chunk left with nothing to say is dropped; the text still held when a choice finishes
rides on its ``finish_reason`` chunk (or on one more chunk before ``[DONE]``).
"""

from __future__ import annotations

from typing import Any

import orjson

from .compile import Check
from .findings import Finding
from .redact import Redactor
from .stage import commit, merged, scan
from .verdicts import Reason, Verdicts

#: characters released at a time at least (bounds the checks to one run per this many characters)
MIN_RELEASE = 16
_HEAD_KEYS = ("id", "object", "created", "model", "system_fingerprint")


class _Channel:
    """One stream of text: the held part, the sent context before it, and its offset."""

    __slots__ = ("held", "context", "sent", "where")

    def __init__(self, where: str) -> None:
        self.held = ""
        self.context = ""  # the last characters released (as received), for context words
        self.sent = 0  # characters released so far (offsets in reasons count from the stream's start)
        self.where = where


class StreamGuard:
    """Feed it the upstream's ``data:`` payloads; it returns the payloads to send."""

    __slots__ = ("checks", "redactor", "verdicts", "holdback", "step", "_channels", "_head")

    def __init__(self, checks: tuple[Check, ...], redactor: Redactor, verdicts: Verdicts, holdback: int) -> None:
        self.checks = checks
        self.redactor = redactor
        self.verdicts = verdicts
        self.holdback = holdback
        self.step = min(MIN_RELEASE, holdback)  # holdback 0: every chunk is checked and sent at once
        self._channels: dict[tuple[int, Any], _Channel] = {}
        self._head: dict[str, Any] = {"object": "chat.completion.chunk"}

    def feed(self, payload: bytes) -> list[bytes]:
        """The payloads to send for one upstream payload (raises :class:`Blocked`)."""
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return [payload]
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not isinstance(choices, list) or not choices:
            return [payload]  # the usage chunk, an error: no text
        self._head = {k: chunk[k] for k in _HEAD_KEYS if k in chunk}
        kept = [c for c in choices if not isinstance(c, dict) or self._choice(c)]
        if not kept and set(chunk) <= {*_HEAD_KEYS, "choices"}:
            return []
        chunk["choices"] = kept
        return [orjson.dumps(chunk)]

    def close(self) -> list[bytes]:
        """At the end of the stream: the text still held (choices that never finished)."""
        by_choice: dict[int, dict[str, Any]] = {}
        for index, key in list(self._channels):
            delta = by_choice.setdefault(index, {})
            self._flush_into(delta, index, key)
        choices = [{"index": i, "delta": d, "finish_reason": None} for i, d in sorted(by_choice.items()) if d]
        return [orjson.dumps({**self._head, "choices": choices})] if choices else []

    # -- one choice ---------------------------------------------------------------------------------
    def _choice(self, choice: dict[str, Any]) -> bool:
        """Rewrite one choice of a chunk in place; False when nothing is left to send."""
        index = choice.get("index", 0)
        if choice.get("logprobs") is not None:  # the tokens' own text, not held back: not sent at all
            choice["logprobs"] = None
        delta = choice.get("delta")
        final = choice.get("finish_reason") is not None
        if isinstance(delta, dict):
            for key in ("content", "refusal"):
                text = delta.get(key)
                if isinstance(text, str) and text:
                    out = self._push(index, key, text, final)
                    if out:
                        delta[key] = out
                    else:
                        del delta[key]
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                delta["tool_calls"] = [c for c in calls if not isinstance(c, dict) or self._call(index, c, final)]
                if not delta["tool_calls"]:
                    del delta["tool_calls"]
        else:
            delta = choice["delta"] = {}
        if final:
            for i, key in [k for k in self._channels if k[0] == index]:
                self._flush_into(delta, i, key)
        return bool(delta) or final or any(k not in ("index", "delta", "finish_reason", "logprobs") for k in choice)

    def _call(self, index: int, call: dict[str, Any], final: bool) -> bool:
        fn = call.get("function")
        args = fn.get("arguments") if isinstance(fn, dict) else None
        if not isinstance(fn, dict) or not isinstance(args, str) or not args:
            return True
        out = self._push(index, ("tool", call.get("index", 0)), args, final)
        fn["arguments"] = out
        return bool(out) or "id" in call or bool(fn.get("name"))

    def _flush_into(self, delta: dict[str, Any], index: int, key: Any) -> None:
        """Release what a channel still holds into ``delta`` (its choice is over)."""
        channel = self._channels.get((index, key))
        if channel is None or not channel.held:
            self._channels.pop((index, key), None)
            return
        out = self._release(channel, final=True)
        del self._channels[(index, key)]
        if not out:
            return
        if isinstance(key, tuple):
            delta.setdefault("tool_calls", []).append({"index": key[1], "function": {"arguments": out}})
        else:
            delta[key] = delta.get(key, "") + out

    # -- one channel --------------------------------------------------------------------------------
    def _push(self, index: int, key: Any, text: str, final: bool) -> str:
        channel = self._channels.get((index, key))
        if channel is None:
            where = f"choices[{index}]." + (f"tool_calls[{key[1]}].arguments" if isinstance(key, tuple) else key)
            channel = self._channels[(index, key)] = _Channel(where)
        channel.held += text
        if final:
            out = self._release(channel, final=True)
            del self._channels[(index, key)]
            return out
        if len(channel.held) <= self.holdback or (channel.sent and len(channel.held) < self.holdback + self.step):
            return ""  # the first text goes as soon as there is any beyond the holdback; later, a step at a time
        return self._release(channel, final=False)

    def _release(self, channel: _Channel, final: bool) -> str:
        """Check the held text and release what is safe to send (redacted)."""
        window = channel.context + channel.held
        off = len(channel.context)
        _, reasons = scan(self.checks, window, "output", channel.where)
        cut = len(window) if final else len(window) - self.holdback
        cut = _pull_back(reasons, cut, off, len(window) - 4 * max(self.holdback, self.step))
        if cut <= off:
            return ""
        base = channel.sent - off  # window offset -> offset in the stream
        done = [r for r in reasons if off < r.end <= cut]
        commit(self.verdicts, [_shifted(r, base) for r in done])
        spans = [Finding(r.type, max(r.start, off) - off, r.end - off, r.score, r.rule)
                 for r in done if r.action == "redact"]  # fmt: skip
        released = window[off:cut]
        out = self.redactor.apply(released, merged(spans)) if spans else released
        channel.context = window[max(0, cut - max(self.holdback, MIN_RELEASE)) : cut]
        channel.held = window[cut:]
        channel.sent += len(released)
        return out


def _pull_back(reasons: list[Reason], cut: int, off: int, floor: int) -> int:
    """The release point, moved back to the start of the findings that straddle it — unless
    one of them began in text already sent (before ``off``) or before ``floor`` (held too
    long): then it moves forward past them, and they are released whole, as they stand."""
    lo = max(off, floor)
    while straddling := [r for r in reasons if r.start < cut < r.end]:
        if any(r.start < lo for r in straddling):
            break
        cut = min(r.start for r in straddling)
    while straddling := [r for r in reasons if r.start < cut < r.end]:
        cut = max(r.end for r in straddling)
    return cut


def _shifted(r: Reason, base: int) -> Reason:
    return Reason(r.stage, r.check, r.rule, r.type, r.action, r.where, r.start + base, r.end + base, r.score)
