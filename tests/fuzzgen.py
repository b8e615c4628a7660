"""The fuzz generator shared by ``tests/proxy/test_fuzz.py`` (bounded, in CI) and
``benchmarks/fuzz.py`` (long runs): hypothesis strategies for requests to every client route
(chat, embeddings, Anthropic messages, Responses, legacy completions, models), and the stack they run against — a real
`llmgw serve` in front of one fake upstream of each provider kind (openai, azure, anthropic,
gemini), a route per kind.

A request is a valid one for its route with a few mutations: a field (known or not) set to
any JSON value, a value nested up to 400 levels deep, long strings and arrays, huge or
non-finite numbers, lone surrogates, bytes that are not UTF-8, truncated or non-JSON bodies,
wrong content types, and random ``x-llmgw-*`` / ``x-request-id`` headers.

:func:`gateway_fault` is the verdict: a 5xx the gateway made itself (as opposed to an
upstream's own 5xx passed through, which the log row tells apart: outcome ``upstream_error``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

UPSTREAM_KEY = "fuzz-upstream-key-0123456789abcdef"
#: chat routes, one per provider kind (the fakes echo these models)
CHAT_ROUTES = {"openai": "gpt-4o-mini", "azure": "gpt-4o-prod", "anthropic": "claude-sonnet", "gemini": "gemini-flash"}
#: embeddings routes (anthropic has none: its route answers 400)
EMBEDDING_ROUTES = {"openai": "text-embedding-3-small", "azure": "embed-dep", "gemini": "text-embedding-004"}
CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
EMBEDDING_PATHS = ("/v1/embeddings", "/embeddings")
RESPONSES_PATHS = ("/v1/responses", "/v1/completions")  # translated to chat (issue 16)
PIPELINE_PATHS = (*CHAT_PATHS, *EMBEDDING_PATHS, "/v1/messages", *RESPONSES_PATHS)


def policy(urls: dict[str, str]) -> dict[str, Any]:
    """A policy with a chat route (``chat-<kind>``) and an embeddings route (``emb-<kind>``) per
    kind; ``urls``: kind -> its fake's base URL."""
    blocks = {
        "openai": {"kind": "openai", "base_url": urls["openai"]},
        "azure": {"kind": "azure", "base_url": urls["azure"], "api_version": "2024-10-21"},
        "anthropic": {"kind": "anthropic", "base_url": urls["anthropic"]},
        "gemini": {"kind": "gemini", "base_url": urls["gemini"]},
    }
    routes = {f"chat-{k}": {"targets": [{"provider": k, "model": m}]} for k, m in CHAT_ROUTES.items()}
    routes.update({f"emb-{k}": {"targets": [{"provider": k, "model": m}]} for k, m in EMBEDDING_ROUTES.items()})
    routes["emb-anthropic"] = {"targets": [{"provider": "anthropic", "model": CHAT_ROUTES["anthropic"]}]}
    return {
        "providers": {k: {**b, "api_key_env": "FUZZ_UPSTREAM_KEY"} for k, b in blocks.items()},
        "routes": routes,
        # the paths that read a request's content besides the adapters: the exact cache's key,
        # the budget reservation and the rate windows (limits high enough never to refuse)
        "cache": {"exact": {"ttl_s": 600}},
        "budgets": {"limits": [{"scope": "global", "usd": 1_000_000, "window": "month"},
                               {"scope": "user", "usd": 1_000_000, "window": "day"}]},
        "rate_limits": [{"scope": "global", "rpm": 10_000_000, "tpm": 10_000_000_000}],
        "pricing": {m: {"input_per_1m": 1.0, "output_per_1m": 2.0} for m in CHAT_ROUTES.values()},
        "log": {"flush_ms": 100},
        "server": {"max_request_bytes": 262144},
    }  # fmt: skip


def start_fakes() -> dict[str, Any]:
    """One started fake per kind (import from tests/: the caller puts it on ``sys.path``)."""
    from fake_anthropic import FakeAnthropic
    from fake_azure import FakeAzure
    from fake_gemini import FakeGemini
    from fake_openai import FakeOpenAI

    kinds = {"openai": FakeOpenAI, "azure": FakeAzure, "anthropic": FakeAnthropic, "gemini": FakeGemini}
    return {k: cls(UPSTREAM_KEY).start() for k, cls in kinds.items()}


@dataclass
class FuzzRequest:
    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    what: list[str] = field(default_factory=list)  # the mutations, for reports

    def describe(self, limit: int = 600) -> str:
        body = self.body[:limit].decode("utf-8", "backslashreplace")
        more = f"... ({len(self.body)} bytes)" if len(self.body) > limit else ""
        return f"{self.method} {self.path} {self.what} headers={self.headers!r}\n  body: {body}{more}"


# -- values ---------------------------------------------------------------------------------------
_NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, 2**63, 2**64, 10**30, 1e308, -1e308, 5e-324, 0.5]),
)
_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "auto", "none", "required", "user", "assistant", "system", "tool", "text", "function",
                     "image_url", "json_schema", "json_object", "tool_use", "tool_result", "image", "base64",
                     "data:image/png;base64,AAAA", "http://127.0.0.1:1/x.png", "{}", "[1]", "\u2028", "💥" * 3]),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=5000).map(lambda s: s[:5000]),
)  # fmt: skip
_KEYS = ["type", "text", "role", "content", "name", "function", "arguments", "parameters", "id", "url", "image_url",
         "source", "input", "schema", "json_schema", "properties", "items", "$ref", "$defs", "tool_calls",
         "tool_use_id", "user_id", "format", "data", "description", "input_schema", "a"]  # fmt: skip
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def nested(depth: int, leaf: Any = 1, kind: str = "object") -> Any:
    value = leaf
    for i in range(depth):
        value = {"a": value} if kind == "object" or (kind == "mixed" and i % 2) else [value]
    return value


DEEP = st.builds(nested, st.integers(1, 400), JSON_VALUES, st.sampled_from(["object", "array", "mixed"]))
VALUES = st.one_of(JSON_VALUES, JSON_VALUES, DEEP, st.lists(st.just("x"), min_size=100, max_size=3000))

# -- bodies ---------------------------------------------------------------------------------------
_CHAT_FIELDS = ["messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "seed", "stop",
                "user", "tools", "tool_choice", "parallel_tool_calls", "response_format", "stream",
                "stream_options", "metadata", "logprobs", "top_logprobs", "logit_bias", "presence_penalty",
                "frequency_penalty", "reasoning_effort", "model", "service_tier", "store", "audio", "modalities",
                "some_new_param"]  # fmt: skip
_EMBEDDING_FIELDS = ["input", "dimensions", "encoding_format", "user", "metadata", "model", "some_new_param"]
_MESSAGES_FIELDS = ["messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p", "top_k", "metadata",
                    "stream", "tools", "tool_choice", "output_config", "thinking", "cache_control", "model",
                    "service_tier", "container"]  # fmt: skip
#: nested places worth a random value (path of keys and indexes into the base body)
_CHAT_SPOTS = [("messages", 0, "content"), ("messages", 0, "role"), ("messages", 0), ("messages", 0, "content", 0),
               ("messages", 0, "content", 0, "text"), ("messages", 0, "content", 0, "image_url"),
               ("messages", 1, "tool_calls"), ("messages", 1, "tool_calls", 0, "function"),
               ("messages", 1, "tool_calls", 0, "function", "arguments"), ("messages", 2, "content"),
               ("messages", 2, "tool_call_id"), ("tools", 0), ("tools", 0, "function"),
               ("tools", 0, "function", "parameters"), ("tools", 0, "function", "parameters", "properties"),
               ("response_format", "json_schema", "schema"), ("response_format", "json_schema"),
               ("tool_choice", "function"), ("metadata", "team")]  # fmt: skip
_MESSAGES_SPOTS = [("messages", 0, "content"), ("messages", 0, "content", 0), ("messages", 0, "content", 0, "source"),
                   ("messages", 1, "content", 0, "input"), ("messages", 1, "content", 0),
                   ("messages", 2, "content", 0, "content"), ("tools", 0), ("tools", 0, "input_schema"),
                   ("tool_choice",), ("system",), ("metadata",), ("output_config", "format")]  # fmt: skip

_RESPONSES_FIELDS = ["input", "instructions", "max_output_tokens", "temperature", "top_p", "tools", "tool_choice",
                     "text", "reasoning", "store", "previous_response_id", "stream", "metadata", "include", "model",
                     "parallel_tool_calls", "user", "truncation", "some_new_param"]  # fmt: skip
_RESPONSES_SPOTS = [("input", 0), ("input", 0, "content"), ("input", 0, "content", 0), ("input", 0, "type"),
                    ("input", 1, "arguments"), ("input", 1, "call_id"), ("input", 2, "output"), ("input", 2, "type"),
                    ("tools", 0), ("tools", 0, "parameters"), ("text", "format"), ("text", "format", "schema"),
                    ("tool_choice",), ("reasoning",)]  # fmt: skip
_COMPLETIONS_FIELDS = ["prompt", "max_tokens", "temperature", "top_p", "n", "stop", "suffix", "echo", "logprobs",
                       "best_of", "stream", "stream_options", "metadata", "model", "user", "some_new_param"]  # fmt: skip
_COMPLETIONS_SPOTS = [("prompt",), ("stop",), ("metadata",)]


def responses_body(route: str) -> dict[str, Any]:
    return {
        "model": route,
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
        "max_output_tokens": 20,
    }


def chat_body(route: str) -> dict[str, Any]:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]  # fmt: skip
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    return {
        "model": route,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": tools,
        "max_tokens": 20,
    }


def messages_body(route: str) -> dict[str, Any]:
    return {
        "model": route,
        "max_tokens": 20,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {"c": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "text", "text": "sunny"}]}]},
        ],
        "tools": [{"name": "w", "input_schema": {"type": "object"}}],
    }  # fmt: skip


def _set(body: Any, spot: tuple[Any, ...], value: Any) -> bool:
    node = body
    for key in spot[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return False
    try:
        node[spot[-1]] = value
    except (IndexError, TypeError):
        return False
    return True


@st.composite
def bodies(draw: st.DrawFn, path: str) -> tuple[bytes, list[str]]:
    """A body for ``path``: a valid one with 0-3 mutations, serialised, maybe damaged."""
    if path in EMBEDDING_PATHS:
        kind = draw(st.sampled_from([*EMBEDDING_ROUTES, "anthropic"]))
        body: Any = {"model": f"emb-{kind}", "input": draw(st.sampled_from(["hello", ["a", "b"], [1, 2]]))}
        fields, spots = _EMBEDDING_FIELDS, [("input", 0)]
    elif path == "/v1/responses":
        body = responses_body(f"chat-{draw(st.sampled_from(list(CHAT_ROUTES)))}")
        fields, spots = _RESPONSES_FIELDS, _RESPONSES_SPOTS
    elif path == "/v1/completions":
        body = {"model": f"chat-{draw(st.sampled_from(list(CHAT_ROUTES)))}", "prompt": "weather?", "max_tokens": 20}
        fields, spots = _COMPLETIONS_FIELDS, _COMPLETIONS_SPOTS
    else:
        kind = draw(st.sampled_from(list(CHAT_ROUTES)))
        anthropic = path.startswith("/v1/messages")  # /v1/messages and /v1/messages/count_tokens
        body = messages_body(f"chat-{kind}") if anthropic else chat_body(f"chat-{kind}")
        fields = _MESSAGES_FIELDS if anthropic else _CHAT_FIELDS
        spots = _MESSAGES_SPOTS if anthropic else _CHAT_SPOTS
        if draw(st.booleans()):
            body["stream"] = True
    what = [f"route={body['model']}"]
    for _ in range(draw(st.integers(0, 3))):
        value = draw(VALUES)
        if draw(st.booleans()):
            name = draw(st.sampled_from(fields))
            body[name] = value
            what.append(f"{name}={_short(value)}")
        else:
            spot = draw(st.sampled_from(spots))
            if _set(body, spot, value):
                what.append(f"{'.'.join(map(str, spot))}={_short(value)}")
    if draw(st.integers(0, 9)) == 0:
        body = draw(VALUES)  # not an object at all
        what.append(f"body={_short(body)}")
    raw = json.dumps(body, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none"] * 12 + ["truncate", "not-utf8", "surrogate", "empty", "garbage", "nan",
                                                   "oversize"]))  # fmt: skip
    if damage == "truncate":
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    elif damage == "not-utf8":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80"])) + raw[at:]
    elif damage == "surrogate":
        raw = raw.replace(b'"weather?"', b'"\\ud800 lone"', 1).replace(b'"hello"', b'"\\udfff"', 1)
    elif damage == "empty":
        raw = b""
    elif damage == "garbage":
        raw = draw(st.binary(max_size=200))
    elif damage == "nan":
        raw = raw.replace(b"20", b"NaN", 1)
    elif damage == "oversize":  # over the policy's max_request_bytes: a 413
        raw = raw.replace(b"weather?", b"weather?" + b"w" * 300_000, 1) if b"weather?" in raw else raw + b" " * 300_000
    if damage != "none":
        what.append(damage)
    return raw, what


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}...({len(text)} chars)"


_HEADER_VALUES = st.one_of(
    # any bytes HTTP allows in a header value (visible ASCII, space, tab, obs-text): the HTTP
    # server itself refuses control characters before the gateway sees the request
    st.binary(max_size=60).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F).strip()),
    st.sampled_from([b"{}", b'{"team": "a"}', b"[1]", b"null", b'{"a": 1', b"\xff\xfe", b"on", b"off", b"refresh"]),
    st.builds(lambda d: json.dumps(nested(d)).encode(), st.integers(1, 400)),
)


@st.composite
def headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    out = [(b"content-type", draw(st.sampled_from([b"application/json"] * 6 + [b"text/plain", b"", b"\xff"])))]
    for name in draw(st.lists(st.sampled_from([b"x-llmgw-metadata", b"x-llmgw-cache", b"x-llmgw-cache-namespace",
                                                 b"x-request-id", b"authorization", b"x-api-key"]),
                              max_size=3, unique=True)):  # fmt: skip
        out.append((name, draw(_HEADER_VALUES)))
    return out


ALL_PATHS = (*PIPELINE_PATHS, *PIPELINE_PATHS, "/v1/models", "/v1/models/x", "/models/x")


@st.composite
def requests(draw: st.DrawFn, paths: tuple[str, ...] = ALL_PATHS) -> FuzzRequest:
    """A request to one of ``paths`` (default: every client route): mostly POSTs of mutated
    bodies, some odd methods and model lookups (``/models/x``: x is a random name)."""
    path = draw(st.sampled_from(paths))
    if path.startswith(("/v1/models", "/models")):
        name = draw(st.sampled_from([*(f"chat-{k}" for k in CHAT_ROUTES), "nope"]) | st.text(max_size=20))
        path = path.replace("/x", "/" + "".join(c if c.isalnum() or c in "-_." else "%2F" for c in name))
        return FuzzRequest("GET", path, draw(headers()), b"", ["models"])
    method = draw(st.sampled_from(["POST"] * 19 + ["GET"]))
    raw, what = draw(bodies(path))
    return FuzzRequest(method, path, draw(headers()), raw, what)


def gateway_fault(status: int, body: bytes, row: dict[str, Any] | None) -> str | None:
    """Why this answer is the gateway's own failure, or None. A 5xx is the upstream's when its
    log row says so (outcome ``upstream_error`` or ``timeout``)."""
    if status < 500:
        return None
    if row is not None and row.get("outcome") in ("upstream_error", "timeout"):
        return None
    return f"{status} from the gateway itself: {body[:300]!r}"
