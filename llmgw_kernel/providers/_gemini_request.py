"""OpenAI request pieces → Gemini ``generateContent`` pieces: contents, parts, tools, schemas.

Gemini's function ``parameters`` and ``responseSchema`` accept an OpenAPI subset of JSON
Schema, and the API answers 400 to anything outside it. :func:`gemini_schema` reduces a JSON
Schema to that subset: local ``$ref``s (``#/$defs/...``, ``#/definitions/...``) are inlined;
``type: [X, "null"]`` and ``anyOf: [X, {type: null}]`` become ``X`` with ``nullable: true``;
``oneOf`` becomes ``anyOf``; a string ``const`` becomes a one-value ``enum``; ``format`` is
kept only where Gemini knows it (string: enum, date-time; number: float, double; integer:
int32, int64); non-string ``enum``s and every other key (``additionalProperties``,
``$schema``, ``strict``, ``examples``, ``patternProperties``, ...) are dropped.
"""

from __future__ import annotations

import mimetypes
from typing import Any

import orjson

from .base import unsupported
from .engine import append_turn

#: Google's documented placeholder for function calls whose thought signature is unknown (a
#: history written by another provider, or a client that dropped ``extra_content``); Gemini 3
#: answers 400 to a function-call turn without one.
SKIP_SIGNATURE = "skip_thought_signature_validator"

_SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
    "propertyOrdering", "default", "items", "minimum", "maximum",
})  # fmt: skip
_FORMATS = {"string": {"enum", "date-time"}, "number": {"float", "double"}, "integer": {"int32", "int64"}}
_MAX_DEPTH = 32


def convert_messages(messages: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(``systemInstruction`` or None, ``contents``) from OpenAI messages."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name (functionResponse needs the name)

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        append_turn(contents, role, "parts", parts)

    for i, msg in enumerate(messages):
        role = msg.get("role")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            text = _text_of(msg.get("content"))
            if text:
                system.append({"text": text})
        elif role == "user":
            add("user", _parts(msg.get("content"), where))
        elif role == "assistant":
            parts = _parts(msg.get("content"), where)
            for j, call in enumerate(msg.get("tool_calls") or []):
                parts.append(_function_call(call, j, f"{where}.tool_calls[{j}]"))
                names[str(call.get("id"))] = (call.get("function") or {}).get("name") or ""
            add("model", parts)
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            name = names.get(str(call_id)) or msg.get("name")
            if not name:
                raise unsupported(
                    f"{where}.tool_call_id",
                    f"no earlier assistant tool call has id {call_id!r} (gemini needs the function's name)",
                )
            response = {"name": name, "response": _tool_response(_text_of(msg.get("content")))}
            add("user", [{"functionResponse": response}])
        else:
            raise unsupported(f"{where}.role", f"role {role!r} is not supported by gemini targets")
    if not contents:
        raise unsupported("messages", "gemini targets need at least one user or assistant message")
    return ({"parts": system} if system else None), contents


def _function_call(call: dict[str, Any], j: int, where: str) -> dict[str, Any]:
    fn = call.get("function") or {}
    try:
        args = orjson.loads(fn.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise unsupported(f"{where}.function.arguments", "tool call arguments must be a JSON object")
    part: dict[str, Any] = {"functionCall": {"name": fn.get("name"), "args": args}}
    signature = ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
    if signature or j == 0:  # only the first call of a turn carries one
        part["thoughtSignature"] = signature or SKIP_SIGNATURE
    return part


def _tool_response(text: str) -> dict[str, Any]:
    """A tool message's content as the JSON object Gemini wants: itself if it is one, else ``{output}``."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"output": text}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text")


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    return [_part(p, f"{where}.content[{k}]") for k, p in enumerate(content) if isinstance(p, dict)]


def _part(part: dict[str, Any], where: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind in ("text", "refusal"):
        return {"text": part.get(kind, "")}
    if kind == "image_url":
        url = (part.get("image_url") or {}).get("url", "")
        if url.startswith("data:"):
            return {"inlineData": _data_url(url, "image/png")}
        return {"fileData": {"mimeType": mimetypes.guess_type(url.split("?")[0])[0] or "image/jpeg", "fileUri": url}}
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        return {"inlineData": {"mimeType": f"audio/{audio.get('format', 'wav')}", "data": audio.get("data", "")}}
    if kind == "file" and str((part.get("file") or {}).get("file_data", "")).startswith("data:"):
        return {"inlineData": _data_url(part["file"]["file_data"], "application/pdf")}
    raise unsupported(where, f"content part type {kind!r} is not supported by gemini targets")


def _data_url(url: str, default_mime: str) -> dict[str, str]:
    head, _, data = url.partition(",")
    return {"mimeType": head[5:].split(";")[0] or default_mime, "data": data}


def convert_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI function tools → ``[{functionDeclarations: [...]}]`` (empty list if none)."""
    decls = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise unsupported(f"tools[{i}].type", "only function tools are supported by gemini targets")
        fn = tool.get("function") or {}
        decl: dict[str, Any] = {"name": fn.get("name")}
        if fn.get("description"):
            decl["description"] = fn["description"]
        params = fn.get("parameters")
        # Gemini refuses an OBJECT without properties: a function without arguments has none
        if isinstance(params, dict) and (params.get("properties") or params.get("type", "object") != "object"):
            decl["parameters"] = gemini_schema(params, f"tools[{i}].function.parameters")
        decls.append(decl)
    return [{"functionDeclarations": decls}] if decls else []


def convert_tool_choice(choice: Any) -> dict[str, Any] | None:
    """OpenAI ``tool_choice`` → ``toolConfig``."""
    if choice is None:
        return None
    modes = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
    if isinstance(choice, str) and choice in modes:
        return {"functionCallingConfig": {"mode": modes[choice]}}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise unsupported("tool_choice", f"tool_choice {choice!r} is not supported by gemini targets")


def gemini_schema(schema: dict[str, Any], where: str) -> dict[str, Any]:
    """``schema`` reduced to the OpenAPI subset Gemini accepts (see the module docstring)."""
    defs: dict[str, Any] = {}
    for key in ("definitions", "$defs"):  # $defs wins
        if isinstance(found := schema.get(key), dict):
            defs.update(found)
    return _clean(schema, defs, where, 0)


def _clean(node: Any, defs: dict[str, Any], where: str, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise unsupported(where, "schema is nested too deeply for gemini (a recursive $ref?)")
    if not isinstance(node, dict):
        return {}
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if not ref.startswith(("#/$defs/", "#/definitions/")) or not isinstance(defs.get(name), dict):
            raise unsupported(where, f"$ref {ref!r} cannot be resolved for gemini (only local #/$defs refs)")
        return _clean({**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}, defs, where, depth + 1)
    out: dict[str, Any] = {}
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        kind = kinds[0] if len(kinds) == 1 else None
        if len(kinds) > 1:
            out["anyOf"] = [{"type": k} for k in kinds]
    if kind:
        out["type"] = kind
    merged: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _clean(sub, defs, where, depth + 1) for name, sub in value.items()}
        elif key == "items":
            out[key] = _clean(value, defs, where, depth + 1)
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            branches = [_clean(v, defs, where, depth + 1) for v in value]
            rest = [b for b in branches if b.get("type") != "null"]
            if len(rest) < len(branches):
                out["nullable"] = True
            if len(rest) == 1:
                merged = rest[0]
            elif rest:
                out["anyOf"] = rest
        elif key == "allOf" and isinstance(value, list) and len(value) == 1:
            merged = _clean(value[0], defs, where, depth + 1)
        elif key == "const" and isinstance(value, str):
            out["enum"] = [value]
        elif key == "enum":
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                out[key] = value
        elif key == "format":
            if isinstance(value, str) and value in _FORMATS.get(str(kind), ()):
                out[key] = value
        elif key in _SCHEMA_KEYS and key not in out and key != "type":
            out[key] = value
    return {**merged, **out}
