"""``kind: gemini`` — the Gemini API (``{base_url}/v1beta/models/{model}:generateContent``,
``:streamGenerateContent?alt=sse``, ``:batchEmbedContents``). The key goes in the
``x-goog-api-key`` header, never in the URL (URLs end up in logs and error messages).

OpenAI → Gemini: messages → ``contents`` (roles user / model); system and developer messages →
``systemInstruction``; content parts → ``text`` / ``inlineData`` (data URLs, audio, files) /
``fileData`` (http image URLs, MIME type guessed from the extension); assistant ``tool_calls``
→ ``functionCall`` parts, ``tool`` messages → ``functionResponse`` parts named after the call
they answer (looked up by ``tool_call_id``); tools → ``functionDeclarations`` with schemas
reduced to Gemini's OpenAPI subset (see :mod:`._gemini_request`); ``tool_choice`` →
``toolConfig.functionCallingConfig``; sampling fields → ``generationConfig``;
``response_format`` → ``responseMimeType: application/json`` (+ ``responseSchema``).

Gemini → OpenAI: candidates → choices; ``functionCall`` parts → ``tool_calls`` (id: Gemini's
if it sent one, else derived from the response id, position, name and arguments, so it is
stable); a part's ``thoughtSignature`` rides along as the tool call's
``extra_content.google.thought_signature`` (the shape Google's own OpenAI endpoint uses) and
is sent back with the call — Gemini 3 requires it; a call without one gets Google's
documented ``skip_thought_signature_validator``. Thought parts are not returned.
``finishReason``: STOP → stop (tool_calls when the turn calls functions), MAX_TOKENS →
length, SAFETY / RECITATION / BLOCKLIST / PROHIBITED_CONTENT / SPII / IMAGE_* →
content_filter, anything else → stop; a prompt blocked outright (``promptFeedback.blockReason``,
no candidates) → one empty choice with content_filter; a stream that ends, even cleanly, before
a candidate's ``finishReason`` was cut (an upstream fault, never a ``stop``). ``usageMetadata`` → usage (thoughts
count as completion tokens and as ``reasoning_tokens``; cached content as ``cached_tokens``).
``logprobs`` are refused: few Gemini models return them, in another shape; a fallback target
that has them can serve the request instead.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from typing import Any, ClassVar

import orjson

from ..policy.model import Target
from ._gemini_request import convert_messages, convert_tool_choice, convert_tools, gemini_schema
from .base import Reply, UpstreamError, encode_embedding, unsupported
from .engine import BUILD, DROP, INT, MAP, REFUSE, STR, NativeAdapter, Param, Shape, shape_error
from .http import error_message, loads_object

FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    **dict.fromkeys(
        ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
         "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"),
        "content_filter",
    ),
}  # fmt: skip
THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
#: the embeddings fields gemini serves, and the types it takes (``input`` is checked below)
EMBEDDING_FIELDS: dict[str, Shape | None] = {
    "model": None, "input": None, "dimensions": INT, "encoding_format": STR, "user": STR,
}  # fmt: skip


def _stops(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _budget(effort: Any) -> int:
    if effort not in THINKING_BUDGETS:
        raise unsupported("reasoning_effort", f"reasoning_effort must be one of {', '.join(THINKING_BUDGETS)}")
    return THINKING_BUDGETS[effort]


class GeminiAdapter(NativeAdapter):
    kind = "gemini"
    PARAMS: ClassVar[dict[str, Param]] = {
        "messages": BUILD("system/developer → `systemInstruction`; parts → text/inlineData/fileData; "
                          "tool calls/results → `functionCall`/`functionResponse`"),
        "max_tokens": MAP("generationConfig.maxOutputTokens", min=1),
        "max_completion_tokens": MAP("generationConfig.maxOutputTokens", min=1),
        "temperature": MAP("generationConfig.temperature", min=0, max=2),
        "top_p": MAP("generationConfig.topP", min=0, max=1),
        "stop": MAP("generationConfig.stopSequences", transform=_stops, note="a string becomes a one-item list"),
        "n": MAP("generationConfig.candidateCount", min=1, max=8, note="one choice per candidate"),
        "seed": MAP("generationConfig.seed"),
        "presence_penalty": MAP("generationConfig.presencePenalty", note="models without penalties answer 400"),
        "frequency_penalty": MAP("generationConfig.frequencyPenalty", note="models without penalties answer 400"),
        "reasoning_effort": MAP("generationConfig.thinkingConfig.thinkingBudget", transform=_budget,
                                note="thinking tokens: none 0, minimal 512, low 1024, medium 8192, high 24576"),
        "tools": BUILD("`function` tools → `functionDeclarations`; schemas reduced to Gemini's OpenAPI subset"),
        "tool_choice": BUILD("auto → AUTO, required → ANY, none → NONE, {function} → ANY + allowedFunctionNames"),
        "response_format": BUILD("json_object → responseMimeType application/json; "
                                 "json_schema → + responseSchema"),
        "parallel_tool_calls": DROP("Gemini has no switch; it may return several calls in one turn"),
        "user": DROP("Gemini has no end-user field (the gateway logs it)"),
        "service_tier": DROP("OpenAI billing tier"),
        "store": DROP("OpenAI stored completions"),
        "logprobs": REFUSE("few Gemini models return log probabilities, in another shape"),
        "top_logprobs": REFUSE("few Gemini models return log probabilities, in another shape"),
        "logit_bias": REFUSE("no equivalent"),
        "audio": REFUSE("no audio output through this adapter"),
        "modalities": REFUSE("text output only through this adapter"),
        "prediction": REFUSE("no predicted outputs"),
        "web_search_options": REFUSE("Gemini's search grounding is a tool of its own, not mapped"),
    }  # fmt: skip

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key}

    def _model_url(self, model: str) -> str:
        path = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
        return f"{self.provider.base_url}/v1beta/{path}"

    def chat_url(self, target: Target, stream: bool) -> tuple[str, dict[str, str] | None]:
        base = self._model_url(target.model)
        return (f"{base}:streamGenerateContent", {"alt": "sse"}) if stream else (f"{base}:generateContent", None)

    def error_message(self, raw: bytes, status: int) -> str:
        err = google_error(raw)
        if err is None:
            return error_message(raw, status)
        return f"{err.get('status') or err.get('code') or status}: {err.get('message') or 'no message'}"

    def error_status(self, raw: bytes, status: int) -> int:
        # Google answers a wrong key with 400 INVALID_ARGUMENT (reason API_KEY_INVALID): a credential problem
        return 401 if status == 400 and b"API_KEY_INVALID" in raw else super().error_status(raw, status)

    # -- request -----------------------------------------------------------------------------------
    def build(self, body: dict[str, Any], out: dict[str, Any], target: Target, stream: bool) -> None:
        system, contents = convert_messages(body["messages"])
        if system:
            out["systemInstruction"] = system
        out["contents"] = contents
        tools = convert_tools(body.get("tools") or [])
        choice = convert_tool_choice(body.get("tool_choice"))
        if tools:
            out["tools"] = tools
            if choice:
                out["toolConfig"] = choice
        fmt = body.get("response_format") or {}
        kind = fmt.get("type")
        if kind in ("json_object", "json_schema"):
            gen = out.setdefault("generationConfig", {})
            gen["responseMimeType"] = "application/json"
            schema = (fmt.get("json_schema") or {}).get("schema") if kind == "json_schema" else None
            if schema:
                gen["responseSchema"] = gemini_schema(schema, "response_format.json_schema.schema")
        elif kind not in (None, "text"):
            raise unsupported("response_format", f"response_format type {kind!r} is not supported by gemini targets")

    # -- response ----------------------------------------------------------------------------------
    def to_openai(self, data: dict[str, Any], target: Target) -> dict[str, Any]:
        rid = data.get("responseId") or ""
        choices = [convert_candidate(c, pos, rid) for pos, c in enumerate(data.get("candidates") or [])]
        if not choices:
            if not (data.get("promptFeedback") or {}).get("blockReason"):
                raise UpstreamError("protocol", f"provider {self.name!r} answered without candidates")
            message = {"role": "assistant", "content": ""}
            choices = [{"index": 0, "message": message, "finish_reason": "content_filter", "logprobs": None}]
        return {
            "id": f"chatcmpl-{rid or 'gemini'}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": data.get("modelVersion") or target.model,
            "choices": choices,
            "usage": convert_usage(data.get("usageMetadata") or {}),
        }

    def translator(self, target: Target) -> GeminiStream:
        return GeminiStream(target.model)

    # -- embeddings --------------------------------------------------------------------------------
    async def embeddings(self, body: dict[str, Any], target: Target) -> Reply:
        """``batchEmbedContents``. Gemini reports no token counts for embeddings: the body says 0
        and the log row has no usage (``usage_source: none``) rather than a made-up number."""
        for name, value in body.items():
            if name not in EMBEDDING_FIELDS:
                raise unsupported(name, f"'{name}' is not supported by gemini embeddings")
            shape = EMBEDDING_FIELDS[name]
            if shape is not None and value is not None and (err := shape_error(value, shape, name)) is not None:
                raise unsupported(err.param, err.message)
        texts = [body["input"]] if isinstance(body.get("input"), str) else body.get("input")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise unsupported("input", "gemini embeddings take a string or a list of strings (not token ids)")
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise unsupported("encoding_format", "encoding_format must be float or base64")
        model_url = self._model_url(target.model)
        model = model_url.rsplit("/v1beta/", 1)[1]
        requests = [{"model": model, "content": {"parts": [{"text": t}]}} for t in texts]
        if body.get("dimensions") is not None:
            for r in requests:
                r["outputDimensionality"] = body["dimensions"]
        data = orjson.dumps({"requests": requests})
        raw = await self._read(await self._post(f"{model_url}:batchEmbedContents", data, self._timeout(target)[0]))
        vectors = (loads_object(raw) or {}).get("embeddings")
        if not isinstance(vectors, list) or len(vectors) != len(texts):
            raise UpstreamError("protocol", f"provider {self.name!r} answered without one embedding per input")
        items = [
            {"object": "embedding", "index": i, "embedding": encode_embedding(v.get("values") or [], fmt)}
            for i, v in enumerate(vectors)
        ]
        usage = {"prompt_tokens": 0, "total_tokens": 0}
        reply = {"object": "list", "data": items, "model": target.model, "usage": usage}
        return Reply(orjson.dumps(reply), None)


def google_error(raw: bytes) -> dict[str, Any] | None:
    """The ``error`` object of a Google error body (sometimes wrapped in a one-element list)."""
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
    if isinstance(body, list) and body:
        body = body[0]
    err = body.get("error") if isinstance(body, dict) else None
    return err if isinstance(err, dict) else None


def finish_reason(reason: str | None, calls: bool) -> str:
    finish = FINISH.get(reason or "STOP", "stop")
    return "tool_calls" if finish == "stop" and calls else finish


def call_id(rid: str, candidate: int, n: int, name: str, args: str) -> str:
    """A stable tool-call id for a function call Gemini sent without one."""
    digest = hashlib.blake2b(f"{rid}|{candidate}|{n}|{name}|{args}".encode(), digest_size=12).hexdigest()
    return f"call_{digest}"


def tool_call(part: dict[str, Any], candidate: int, n: int, rid: str) -> dict[str, Any]:
    fc = part["functionCall"]
    name = fc.get("name") or ""
    args = orjson.dumps(fc.get("args") or {}).decode()
    call: dict[str, Any] = {
        "id": fc.get("id") or call_id(rid, candidate, n, name, args),
        "type": "function",
        "function": {"name": name, "arguments": args},
    }
    signature = part.get("thoughtSignature") or fc.get("thoughtSignature")
    if signature:
        call["extra_content"] = {"google": {"thought_signature": signature}}
    return call


def convert_candidate(c: dict[str, Any], pos: int, rid: str) -> dict[str, Any]:
    index = c.get("index", pos)
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (c.get("content") or {}).get("parts") or []:
        if part.get("thought"):
            continue
        if "functionCall" in part:
            calls.append(tool_call(part, index, len(calls), rid))
        elif "text" in part:
            text.append(part["text"])
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    finish = finish_reason(c.get("finishReason"), bool(calls))
    return {"index": index, "message": message, "finish_reason": finish, "logprobs": None}


def convert_usage(u: dict[str, Any]) -> dict[str, Any]:
    prompt = (u.get("promptTokenCount") or 0) + (u.get("toolUsePromptTokenCount") or 0)
    thoughts = u.get("thoughtsTokenCount") or 0
    completion = (u.get("candidatesTokenCount") or 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": u.get("cachedContentTokenCount") or 0},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


class GeminiStream:
    """``streamGenerateContent?alt=sse`` payloads (each a whole GenerateContentResponse) → chunks.

    Text parts become content deltas; a function call arrives whole in one payload and becomes
    one tool-call delta with id, name and all its arguments. Usage is the last payload's.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = "chatcmpl-gemini"
        self.created = int(time.time())
        self.usage: dict[str, Any] | None = None
        self._rid = ""
        self._started: list[int] = []
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}  # candidate -> tool calls so far

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }  # fmt: skip

    def _open(self, index: int) -> Iterable[dict[str, Any]]:
        if index not in self._started:
            self._started.append(index)
            yield self._chunk(index, {"role": "assistant", "content": ""})

    def _close(self, index: int, finish: str) -> Iterable[dict[str, Any]]:
        if index not in self._finished:
            self._finished.add(index)
            yield self._chunk(index, {}, finish)

    def feed(self, data: dict[str, Any]) -> Iterable[dict[str, Any]]:
        if isinstance(data.get("error"), dict):
            err = data["error"]
            code = err.get("code")
            status = code if isinstance(code, int) and 400 <= code < 600 else 502
            raise UpstreamError("http", f"gemini stream error: {err.get('status', code)}: {err.get('message')}", status)
        if data.get("responseId") and not self._rid:
            self._rid = data["responseId"]
            self.id = f"chatcmpl-{self._rid}"
        self.model = data.get("modelVersion") or self.model
        if data.get("usageMetadata"):
            self.usage = convert_usage(data["usageMetadata"])
        candidates = data.get("candidates") or []
        if not candidates and (data.get("promptFeedback") or {}).get("blockReason"):
            yield from self._open(0)
            yield from self._close(0, "content_filter")
        for pos, c in enumerate(candidates):
            index = c.get("index", pos)
            yield from self._open(index)
            for part in (c.get("content") or {}).get("parts") or []:
                if part.get("thought"):
                    continue
                if "functionCall" in part:
                    n = self._calls[index] = self._calls.get(index, 0) + 1
                    call = {"index": n - 1, **tool_call(part, index, n - 1, self._rid)}
                    yield self._chunk(index, {"tool_calls": [call]})
                elif part.get("text"):
                    yield self._chunk(index, {"content": part["text"]})
            if c.get("finishReason"):
                yield from self._close(index, finish_reason(c["finishReason"], index in self._calls))

    def finish(self) -> None:
        cut = [i for i in self._started if i not in self._finished]
        if cut or not self._started:
            where = f"candidate {cut[0]}" if cut else "any candidate"
            raise UpstreamError("protocol", f"the upstream's stream ended without a `finishReason` for {where}")
