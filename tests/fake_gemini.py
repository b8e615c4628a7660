"""A fake Gemini API (``/v1beta/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse``,
``:batchEmbedContents``) over real HTTP, strict like the real one, written from the public REST
reference (GenerateContentRequest / GenerateContentResponse / Schema / BatchEmbedContentsRequest).

It rejects what Gemini rejects: unknown fields anywhere (``Unknown name "messages"``, OpenAI
shapes such as ``max_tokens`` or ``image_url`` parts), roles other than user/model in
``contents``, empty contents or parts, a part with two data fields, ``functionResponse``
without a name or outside a user turn, a function-response turn whose count of responses
differs from the preceding turn's function calls, schema keys outside Gemini's OpenAPI subset
(``additionalProperties``, ``$schema``, ``$ref``, ...), out-of-range generation config,
``responseSchema`` without ``responseMimeType: application/json``. Authentication: the
``x-goog-api-key`` header (missing → 403 PERMISSION_DENIED, wrong → 400 API_KEY_INVALID, as
Google answers); stricter than Google, it also refuses a ``key`` in the URL and any
``Authorization`` header, because the gateway must never send either. Every malformed request
(all of the above but a wrong key) is recorded in ``.invalid``. ``gemini-3*`` models
require a ``thoughtSignature`` on the first function call of every model turn, as Gemini 3 does.

Behaviour by model: ``gemini-429`` / ``gemini-503`` → RESOURCE_EXHAUSTED / UNAVAILABLE;
``gemini-echo-key`` → INVALID_ARGUMENT quoting the key it received (a careless upstream: the
gateway must scrub it);
``gemini-blocked`` → ``promptFeedback.blockReason`` and no candidates; ``gemini-safety`` → a
candidate stopped by SAFETY; ``gemini-max`` → MAX_TOKENS; ``*tool*`` models call the first
declared function (``{"city": "Paris"}``) until a function response arrives, then answer with
it; ``gemini-thinking`` adds a thought part; ``gemini-stream-error-N`` streams N payloads and
then an in-stream UNAVAILABLE error; ``gemini-stream-ends`` streams its text and ends cleanly
without the last chunk, the one with ``finishReason`` (the JSON answer is whole); JSON mode answers ``{"city": "Paris"}``; anything
else echoes the last user text (one candidate per ``candidateCount``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any

from aiohttp import web
from fake_http import FakeServer

USAGE = {"promptTokenCount": 12, "candidatesTokenCount": 7, "totalTokenCount": 24, "cachedContentTokenCount": 3,
         "thoughtsTokenCount": 5, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}]}  # fmt: skip
SIGNATURE = base64.b64encode(b"fake-thought-signature").decode()
REQUEST_KEYS = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "safetySettings",
    "generationConfig",
    "cachedContent",
}
PART_DATA = {
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
}
PART_KEYS = PART_DATA | {"thought", "thoughtSignature", "videoMetadata"}
GEN_KEYS = {"stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
            "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty",
            "frequencyPenalty", "responseLogprobs", "logprobs", "thinkingConfig", "mediaResolution", "speechConfig"}  # fmt: skip
SCHEMA_KEYS = {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
               "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example",
               "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum"}  # fmt: skip
TYPES = {"string", "number", "integer", "boolean", "array", "object", "null"}
FORMATS = {"string": {"enum", "date-time"}, "number": {"float", "double"}, "integer": {"int32", "int64"}}
PATH = re.compile(r"^models/([^/:]+):(generateContent|streamGenerateContent|batchEmbedContents)$")


class Invalid(Exception):
    def __init__(self, message: str, code: int = 400, status: str = "INVALID_ARGUMENT", reason: str | None = None):
        super().__init__(message)
        self.code, self.status, self.reason = code, status, reason


def error(code: int, status: str, message: str, reason: str | None = None) -> web.Response:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason:
        err["details"] = [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com"}
        ]
    return web.json_response({"error": err}, status=code)


def unknown(keys: Any, allowed: set[str], where: str) -> None:
    for key in keys:
        if key not in allowed:
            raise Invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field.")


class FakeGemini(FakeServer):
    name = "fake-gemini"

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/{path:.+}", self.handle)
        app.router.add_post("/{path:.*}", self.elsewhere)

    async def elsewhere(self, request: web.Request) -> web.Response:
        await self.record(request)
        self.invalid.append(f"Method not found: {request.path} (the API lives under /v1beta)")
        return error(404, "NOT_FOUND", f"Method not found: {request.path}")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        match = PATH.match(request.match_info["path"])
        if match is None:
            self.invalid.append(f"Method not found: {request.path}")
            return error(404, "NOT_FOUND", f"Method not found: {request.path}")
        model, method = match.groups()
        try:
            self.authenticate(request)
        except Invalid as exc:
            if exc.reason != "API_KEY_INVALID":  # a wrong key is a credentials problem, not a malformed request
                self.invalid.append(str(exc))
            return error(exc.code, exc.status, str(exc), exc.reason)
        try:
            if method == "batchEmbedContents":
                return self.embed(model, body)
            if method == "streamGenerateContent" and request.query.get("alt") != "sse":
                raise Invalid("the fake only streams server-sent events: add alt=sse")
            self.validate(model, body)
        except Invalid as exc:
            self.invalid.append(str(exc))
            return error(exc.code, exc.status, str(exc), exc.reason)
        if model == "gemini-echo-key":
            return error(
                400, "INVALID_ARGUMENT", f"The fake quotes what it received: {request.headers['x-goog-api-key']}"
            )
        if model in ("gemini-429", "gemini-503"):
            code, status = (429, "RESOURCE_EXHAUSTED") if model == "gemini-429" else (503, "UNAVAILABLE")
            return error(code, status, "Resource has been exhausted" if code == 429 else "The model is overloaded.")
        responses = self.answer(model, body)
        if model.startswith("gemini-stream-error-"):  # an error payload after N good ones
            responses = responses[: int(model.rsplit("-", 1)[1])] + [
                {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
            ]
        if method == "generateContent":
            return web.json_response(merge(responses))
        if model == "gemini-stream-ends":  # the stream ends cleanly before the chunk with finishReason
            responses = responses[:-1]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in responses:
            await resp.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
        return resp

    # -- validation ---------------------------------------------------------------------------
    def authenticate(self, request: web.Request) -> None:
        if "key" in request.query:
            raise Invalid("the API key must not travel in the URL (URLs end up in logs)")
        if "authorization" in {k.lower() for k in request.headers}:
            raise Invalid(
                "Request had invalid authentication credentials. Expected OAuth 2 access token.", 401, "UNAUTHENTICATED"
            )
        key = request.headers.get("x-goog-api-key")
        if key is None:
            raise Invalid("Method doesn't allow unregistered callers. Please use API Key.", 403, "PERMISSION_DENIED")
        if key != self.api_key:
            raise Invalid("API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID")

    def validate(self, model: str, body: dict[str, Any]) -> None:
        unknown(body, REQUEST_KEYS, "")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise Invalid("* GenerateContentRequest.contents: contents is not specified")
        for i, content in enumerate(contents):
            unknown(content, {"role", "parts"}, f"contents[{i}]")
            role = content.get("role", "user")
            if role not in ("user", "model"):
                raise Invalid("Please use a valid role: user, model.")
            self.parts(content.get("parts"), f"contents[{i}]", role)
            calls = [p for p in content["parts"] if "functionCall" in p]
            if calls and model.startswith("gemini-3") and not calls[0].get("thoughtSignature"):
                raise Invalid(f"Function call is missing a thought_signature in functionCall parts of contents[{i}].")
            responses = [p for p in content["parts"] if "functionResponse" in p]
            before = [p for p in contents[i - 1]["parts"] if "functionCall" in p] if i else []
            if responses and len(responses) != len(before):
                raise Invalid(
                    "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn."
                )
        system = body.get("systemInstruction")
        if system is not None:
            unknown(system, {"role", "parts"}, "system_instruction")
            if system.get("role", "user") != "user":
                raise Invalid("system_instruction: role must be user or absent")
            self.parts(system.get("parts"), "system_instruction", "user")
        names = self.tools(body.get("tools") or [])
        config = (body.get("toolConfig") or {}).get("functionCallingConfig")
        if config is not None:
            unknown(config, {"mode", "allowedFunctionNames"}, "tool_config.function_calling_config")
            if config.get("mode") not in ("AUTO", "ANY", "NONE", "VALIDATED"):
                raise Invalid(f"Invalid value at 'tool_config.function_calling_config.mode': {config.get('mode')}")
            allowed = config.get("allowedFunctionNames")
            if allowed and (config["mode"] not in ("ANY", "VALIDATED") or not set(allowed) <= names):
                raise Invalid("allowed_function_names requires mode ANY and declared functions")
        self.generation(body.get("generationConfig") or {})

    def parts(self, parts: Any, where: str, role: str) -> None:
        if not isinstance(parts, list) or not parts:
            raise Invalid(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.")
        for k, part in enumerate(parts):
            unknown(part, PART_KEYS, f"{where}.parts[{k}]")
            data = [key for key in part if key in PART_DATA]
            if len(data) != 1:
                raise Invalid(f"{where}.parts[{k}]: exactly one data field is required, got {data}")
            value = part[data[0]]
            if data[0] == "text" and not isinstance(value, str):
                raise Invalid(f"{where}.parts[{k}].text must be a string")
            if data[0] == "inlineData":
                unknown(value, {"mimeType", "data"}, f"{where}.parts[{k}].inline_data")
                try:
                    base64.b64decode(value["data"], validate=True)
                except (KeyError, binascii.Error):
                    raise Invalid(f"{where}.parts[{k}].inline_data.data: invalid base64") from None
                if not value.get("mimeType"):
                    raise Invalid(f"{where}.parts[{k}].inline_data.mime_type is required")
            if data[0] == "fileData":
                unknown(value, {"mimeType", "fileUri"}, f"{where}.parts[{k}].file_data")
                if not value.get("fileUri"):
                    raise Invalid(f"{where}.parts[{k}].file_data.file_uri is required")
            if data[0] == "functionCall":
                unknown(value, {"name", "args", "id"}, f"{where}.parts[{k}].function_call")
                if role != "model" or not value.get("name") or not isinstance(value.get("args", {}), dict):
                    raise Invalid(f"{where}.parts[{k}].function_call: name required, args an object, model turns only")
            if data[0] == "functionResponse":
                unknown(value, {"name", "response", "id"}, f"{where}.parts[{k}].function_response")
                if not value.get("name"):
                    raise Invalid(
                        f"* GenerateContentRequest.{where}.parts[{k}].function_response.name: Name cannot be empty."
                    )
                if role != "user" or not isinstance(value.get("response"), dict):
                    raise Invalid(f"{where}.parts[{k}].function_response: response must be an object, in a user turn")

    def tools(self, tools: list[dict[str, Any]]) -> set[str]:
        names = set()
        for i, tool in enumerate(tools):
            unknown(tool, {"functionDeclarations", "googleSearch", "codeExecution", "urlContext"}, f"tools[{i}]")
            for j, decl in enumerate(tool.get("functionDeclarations") or []):
                where = f"tools[{i}].function_declarations[{j}]"
                unknown(
                    decl, {"name", "description", "parameters", "parametersJsonSchema", "response", "behavior"}, where
                )
                if not decl.get("name"):
                    raise Invalid(f"{where}.name: Name cannot be empty.")
                names.add(decl["name"])
                if "parameters" in decl:
                    schema(decl["parameters"], f"{where}.parameters")
        return names

    def generation(self, gen: dict[str, Any]) -> None:
        unknown(gen, GEN_KEYS, "generation_config")
        for key, lo, hi in (("temperature", 0, 2), ("topP", 0, 1), ("candidateCount", 1, 8),
                            ("presencePenalty", -2, 2), ("frequencyPenalty", -2, 2)):  # fmt: skip
            if key in gen and not (isinstance(gen[key], (int, float)) and lo <= gen[key] <= hi):
                raise Invalid(f"generation_config.{key}: {gen[key]} is out of range [{lo}, {hi}]")
        if "maxOutputTokens" in gen and not (isinstance(gen["maxOutputTokens"], int) and gen["maxOutputTokens"] > 0):
            raise Invalid("generation_config.max_output_tokens must be a positive integer")
        stops = gen.get("stopSequences", [])
        if not isinstance(stops, list) or len(stops) > 5 or not all(isinstance(s, str) for s in stops):
            raise Invalid("generation_config.stop_sequences: at most 5 strings")
        if "responseSchema" in gen:
            if gen.get("responseMimeType") != "application/json":
                raise Invalid("response_schema requires response_mime_type application/json")
            schema(gen["responseSchema"], "generation_config.response_schema")
        unknown(
            gen.get("thinkingConfig") or {}, {"thinkingBudget", "includeThoughts", "thinkingLevel"}, "thinking_config"
        )

    # -- answers ------------------------------------------------------------------------------
    def answer(self, model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The stream of GenerateContentResponses (a JSON answer is them merged)."""
        head = {
            "modelVersion": f"{model}-001",
            "responseId": "resp-" + hashlib.sha1(json.dumps(body).encode()).hexdigest()[:10],
        }
        partial = {**head, "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}}
        if model == "gemini-blocked":
            return [{**partial, "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]}}]  # fmt: skip
        if model == "gemini-safety":
            ratings = [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}]
            return [{**partial, "candidates": [{"content": {"role": "model", "parts": [{"text": "Partial"}]}}]},
                    {**head, "usageMetadata": USAGE, "candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": ratings}]}]  # fmt: skip
        call = self.function_call(model, body)
        if call is not None:
            part = {"functionCall": call}
            if model.startswith("gemini-3"):
                part["thoughtSignature"] = SIGNATURE
            return [{**head, "usageMetadata": USAGE,
                     "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}]}]  # fmt: skip
        texts = self.texts(model, body)
        finish = "MAX_TOKENS" if model == "gemini-max" else "STOP"
        chunks = []
        words = [t.split(" ") for t in texts]
        for k in range(max(len(w) for w in words)):
            candidates = []
            for i, ws in enumerate(words):
                if k < len(ws):
                    parts = [{"text": ws[k] + (" " if k < len(ws) - 1 else "")}]
                    if k == 0 and model == "gemini-thinking":
                        parts.insert(0, {"text": "Let me think.", "thought": True})
                    candidates.append({"content": {"role": "model", "parts": parts}, **({"index": i} if i else {})})
            chunks.append({**partial, "candidates": candidates})
        last = [
            {"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": finish, "index": i}
            for i in range(len(texts))
        ]
        chunks.append({**head, "usageMetadata": USAGE, "candidates": last})
        return chunks

    def function_call(self, model: str, body: dict[str, Any]) -> dict[str, Any] | None:
        decls = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
        last = body["contents"][-1]["parts"]
        config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        if not decls or config.get("mode") == "NONE" or any("functionResponse" in p for p in last):
            return None
        if config.get("mode") == "ANY" or "tool" in model:
            name = (config.get("allowedFunctionNames") or [decls[0]["name"]])[0]
            return {"name": name, "args": {"city": "Paris"}}
        return None

    def texts(self, model: str, body: dict[str, Any]) -> list[str]:
        last = body["contents"][-1]["parts"]
        results = [p["functionResponse"]["response"] for p in last if "functionResponse" in p]
        if results:
            return [f"The tool said: {results[0].get('output', json.dumps(results[0]))}"]
        gen = body.get("generationConfig") or {}
        if gen.get("responseMimeType") == "application/json":
            return ['{"city": "Paris"}']
        text = " ".join(p["text"] for p in last if "text" in p)
        prefix = "(with system) " if body.get("systemInstruction") else ""
        n = gen.get("candidateCount", 1)
        return [f"{prefix}Gemini heard: {text}" + (f" #{i}" if i else "") for i in range(n)]

    def embed(self, model: str, body: dict[str, Any]) -> web.Response:
        unknown(body, {"requests"}, "")
        vectors = []
        for i, req in enumerate(body.get("requests") or []):
            unknown(req, {"model", "content", "taskType", "title", "outputDimensionality"}, f"requests[{i}]")
            if req.get("model") != f"models/{model}":
                raise Invalid(f"Model names in requests[{i}] must match the parent model models/{model}")
            self.parts((req.get("content") or {}).get("parts"), f"requests[{i}].content", "user")
            seed = hashlib.sha256(req["content"]["parts"][0]["text"].encode()).digest()
            vectors.append({"values": [round(b / 255, 4) for b in seed[: req.get("outputDimensionality", 8)]]})
        if not vectors:
            raise Invalid("* BatchEmbedContentsRequest.requests: requests must not be empty")
        return web.json_response({"embeddings": vectors})


def schema(node: Any, where: str) -> None:
    if not isinstance(node, dict):
        raise Invalid(f"{where}: a schema must be an object")
    unknown(node, SCHEMA_KEYS, where)
    kind = node.get("type")
    if kind is not None and (not isinstance(kind, str) or kind.lower() not in TYPES):
        raise Invalid(f"Invalid value at '{where}.type': {kind}")
    if "format" in node and node["format"] not in FORMATS.get(str(kind).lower(), ()):
        raise Invalid(f"{where}.format: only 'enum' and 'date-time' are supported for STRING type")
    if "enum" in node and not all(isinstance(v, str) for v in node["enum"]):
        raise Invalid(f"Invalid value at '{where}.enum': enum values must be strings")
    if str(kind).lower() == "object" and "properties" in node and not node["properties"]:
        raise Invalid(f"{where}.properties: should be non-empty for OBJECT type")
    for name, sub in (node.get("properties") or {}).items():
        schema(sub, f"{where}.properties[{name}]")
    if "items" in node:
        schema(node["items"], f"{where}.items")
    for k, sub in enumerate(node.get("anyOf") or []):
        schema(sub, f"{where}.any_of[{k}]")


def merge(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """A streamed answer as one GenerateContentResponse (parts concatenated per candidate)."""
    out: dict[str, Any] = {k: v for k, v in chunks[-1].items() if k != "candidates"}
    candidates: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for c in chunk.get("candidates") or []:
            merged = candidates.setdefault(
                c.get("index", 0), {"content": {"role": "model", "parts": []}, "index": c.get("index", 0)}
            )
            for part in (c.get("content") or {}).get("parts") or []:
                prev = merged["content"]["parts"][-1] if merged["content"]["parts"] else None
                if "text" in part and prev and "text" in prev and prev.get("thought") == part.get("thought"):
                    prev["text"] += part["text"]
                else:
                    merged["content"]["parts"].append(dict(part))
            merged.update({k: v for k, v in c.items() if k not in ("content", "index")})
    if candidates:
        out["candidates"] = [candidates[i] for i in sorted(candidates)]
        for c in out["candidates"]:
            parts = [p for p in c["content"]["parts"] if p.get("text") != ""]
            if parts:
                c["content"]["parts"] = parts
            else:
                del c["content"]
    return out
