"""A fake OpenAI-compatible upstream speaking the documented wire format over real HTTP.

Behaviour is chosen by the ``model`` the gateway sends (the target's model name):

- anything else: a normal ``chat.completion`` (or a stream of ``chat.completion.chunk``
  events, with a final usage chunk only when ``stream_options.include_usage`` is true); with
  ``n`` > 1, one choice per index (choice ``i`` > 0 starts ``[i] ``), streamed interleaved: one
  chunk per choice and step, as OpenAI sends them;
- ``status-NNN`` (optionally ``status-NNN-<tag>``): an OpenAI error body with HTTP status NNN;
  ``status-NNN-retry-after-S``: the same with a ``Retry-After: S`` header;
- ``flaky-K-NNN-<tag>``: fails the first K calls to that model name with status NNN (``reset``
  instead of NNN: drops the connection), then answers normally;
- ``chaos-P-<tag>``: fails P% of calls, answers the others. The faults come before the
  gateway could send its client a byte: a 500, 503, 429, a reset, a 2 s hang, a stream that
  dies before its first event, a JSON body cut in the middle (``json-cut``). The draw is a hash
  of (``seed``, model, the last message's text, how many times that text reached that model),
  so the same traffic meets the same faults in every run, whatever the concurrency;
- ``chaosmid-P-<tag>``: the same, plus streams that die after two events (``stream-cut-2``):
  after the gateway has sent its client the first byte, when no fallback is possible;
- ``context-small``: a 400 ``context_length_exceeded``, ``param: messages`` (the prompt does not fit);
- ``echo-key``: a 400 whose message, ``code`` and ``param`` quote the key it received (a
  careless upstream: the gateway must scrub it);
- ``hang``: never answers (until the client gives up);
- ``slow-json``: answers normally after 1 s;
- ``reset``: closes the connection without answering;
- ``slow-stream``: one chunk every 100 ms for 10 s (to test client disconnects);
- ``stream-cut-0`` / ``stream-cut-2``: the connection dies before the first event / after two;
- ``json-cut``: headers and half of a ``chat.completion`` body (of the announced length), then
  the connection dies;
- ``/v1/responses`` and ``/v1/completions`` speak the Responses API and legacy completions
  (``fake_responses.py`` says how each model name answers);
- ``tool-call``: with ``tools`` and no ``tool`` message yet, calls the first tool with
  ``{"city": "Paris"}`` (``finish_reason: tool_calls``; streamed as argument fragments);
  after a tool message, answers ``The tool said: <its content>``.

It checks ``Authorization: Bearer <key>`` when started with a key, and rejects (400, as OpenAI
does) a request without ``model``, without a non-empty ``messages`` list, with an unknown role,
a ``tool`` message that answers no preceding ``tool_calls``, a function tool without a name,
or ``stream_options`` without ``stream``; unknown fields pass (OpenAI-compatible servers vary).
It records every request (``.requests``, each with its arrival ``t`` on the monotonic clock;
``.counts`` per model name), every malformed one (``.invalid``: a missing or
non-Bearer ``Authorization`` header, an unknown path and the above; a wrong key is not
malformed) and every stream the client cancelled (``.cancelled``).
Run standalone: ``python tests/fake_openai.py --port 9000``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import re
import threading
import time
from typing import Any

import fake_responses
from aiohttp import web
from fake_http import FakeServer

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class FakeOpenAI(FakeServer):
    name = "fake-openai"

    def __init__(self, api_key: str | None = None, seed: int = 0) -> None:
        super().__init__()
        self.api_key = api_key
        self.seed = seed  # chaos draws are hashes of it and of the request (never random.random)
        self._draws: collections.Counter[tuple[str, str]] = collections.Counter()
        self.cancelled = 0
        self.counts: collections.Counter[str] = collections.Counter()  # requests per model name

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/v1/responses", self.responses)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/{path:.*}", self.elsewhere)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- handlers ---------------------------------------------------------------------------
    def _auth(self, request: web.Request) -> web.Response | None:
        if not self.api_key:
            return None
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            self.invalid.append(f"{request.path}: the key must travel as Authorization: Bearer")
            return _error(401, "You didn't provide an API key.", "invalid_request_error", None)
        if request.headers["Authorization"] != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key")
        return None

    def _invalid(self, problem: str | None) -> web.Response | None:
        if problem is None:
            return None
        self.invalid.append(problem)
        return _error(400, problem, "invalid_request_error", None)

    async def elsewhere(self, request: web.Request) -> web.Response:
        self.invalid.append(f"Unknown path: {request.path}")
        return _error(404, f"Invalid URL (POST {request.path})", "invalid_request_error", None)

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body = await request.json()
        if self.api_key and self.api_key in request.path_qs:
            self.invalid.append(f"{request.path}: the API key travelled in the URL")
        self.requests.append(
            {"path": request.path, "headers": dict(request.headers), "body": body, "t": time.monotonic()}
        )
        if isinstance(body, dict):
            self.counts[str(body.get("model"))] += 1
        return body

    async def chat(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._auth(request)) is not None:
            return denied
        body = await self._record(request)
        if (invalid := self._invalid(chat_problem(body))) is not None:
            return invalid
        model = body.get("model", "")
        fault = self._fault(model, bool(body.get("stream")), str(body["messages"][-1].get("content")))
        if fault is not None:
            model = fault
        if model.startswith("status-"):
            status = int(model.split("-")[1])
            after = re.search(r"retry-after-(\d+)", model)
            resp = _error(
                status,
                f"fake upstream failure {status}",
                "server_error" if status >= 500 else "invalid_request_error",
                None,
            )
            if after:
                resp.headers["Retry-After"] = after.group(1)
            return resp
        if model == "context-small":
            message = "This model's maximum context length is 8 tokens."
            return _error(400, message, "invalid_request_error", "context_length_exceeded", param="messages")
        if model == "hang-2":
            await asyncio.sleep(2)
        if model == "echo-key":
            received = request.headers.get("Authorization", "")
            message, key = f"the fake upstream quotes what it received: {received}", received.removeprefix("Bearer ")
            return _error(400, message, "invalid_request_error", key, param=key)  # in code and param too
        if model == "hang":
            await asyncio.sleep(30)
        if model == "slow-json":
            await asyncio.sleep(1.0)
        if model == "reset":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        text = "Hello from the fake upstream: " + str(body["messages"][-1].get("content"))[:200]
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        created = int(time.time())
        if model == "tool-call":
            return await _tool_call(request, body, usage, created)
        if not body.get("stream"):
            n = int(body.get("n") or 1)
            answer = {
                "id": "chatcmpl-fake", "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": i, "message": {"role": "assistant", "content": (f"[{i}] " if i else "") + text}, "finish_reason": "stop", "logprobs": None} for i in range(n)],
                "usage": usage, "system_fingerprint": "fp_fake",
            }  # fmt: skip
            if model == "json-cut":  # the body of the announced length stops halfway
                payload = json.dumps(answer).encode()
                cut = web.StreamResponse(
                    headers={"Content-Type": "application/json", "Content-Length": str(len(payload))}
                )
                await cut.prepare(request)
                await cut.write(payload[: len(payload) // 2])
                assert request.transport is not None
                request.transport.close()
                return cut
            return web.json_response(answer)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        head = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": model}
        words = text.split(" ")
        if model == "stream-cut-0":  # headers sent, then the connection dies before any event
            assert request.transport is not None
            request.transport.close()
            return resp
        delay = 0.1 if model == "slow-stream" else 0.0
        if model == "slow-stream":
            words = [f"w{i} " for i in range(100)]
        n = range(int(body.get("n") or 1))  # one chunk per choice and step, as OpenAI interleaves them
        try:
            for c in n:
                role = {"role": "assistant", "content": ""}
                await _send(resp, {**head, "choices": [{"index": c, "delta": role, "finish_reason": None}]})
            for i, word in enumerate(words):
                if model == "stream-cut-2" and i == 2:  # dies mid-stream
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                if delay:
                    await asyncio.sleep(delay)
                piece = word + (" " if i < len(words) - 1 else "")
                for c in n:
                    delta = {"content": (f"[{c}] " if c and i == 0 else "") + piece}
                    await _send(resp, {**head, "choices": [{"index": c, "delta": delta, "finish_reason": None}]})
            for c in n:
                await _send(resp, {**head, "choices": [{"index": c, "delta": {}, "finish_reason": "stop"}]})
            opts = body.get("stream_options") or {}
            if opts.get("include_usage"):
                await _send(resp, {**head, "choices": [], "usage": usage})
            await resp.write(b"data: [DONE]\n\n")
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled += 1
            raise
        return resp

    async def responses(self, request: web.Request) -> web.StreamResponse:
        """The Responses API (``fake_responses``)."""
        if (denied := self._auth(request)) is not None:
            return denied
        body = await self._record(request)
        if (invalid := self._invalid(fake_responses.problem(body, "input"))) is not None:
            return invalid
        return await fake_responses.answer_responses(request, body)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """Legacy completions (``fake_responses``)."""
        if (denied := self._auth(request)) is not None:
            return denied
        body = await self._record(request)
        if (invalid := self._invalid(fake_responses.problem(body, "prompt"))) is not None:
            return invalid
        return await fake_responses.answer_completions(request, body)

    def _fault(self, model: str, stream: bool, text: str = "") -> str | None:
        """The behaviour a ``flaky-`` or ``chaos-`` model shows on this call (None: answer normally)."""
        if model.startswith("flaky-"):
            _, k, how = model.split("-")[:3]
            if self.counts[model] <= int(k):
                return "reset" if how == "reset" else f"status-{how}"
            return None
        if model.startswith(("chaos-", "chaosmid-")):
            self._draws[(model, text)] += 1
            key = f"{self.seed}|{model}|{text}|{self._draws[(model, text)]}".encode()
            draw = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")
            if (draw % 10_000) / 100 >= float(model.split("-")[1]):
                return None
            faults = ["status-500", "status-503", "status-429", "reset", "hang-2"]
            faults += ["stream-cut-0"] if stream else ["json-cut"]
            if stream and model.startswith("chaosmid-"):
                faults += ["stream-cut-2"] * 3
            return faults[(draw >> 20) % len(faults)]
        return None

    async def embeddings(self, request: web.Request) -> web.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        body = await self._record(request)
        if (
            invalid := self._invalid(
                None if "input" in body and body.get("model") else "'input' and 'model' are required"
            )
        ) is not None:
            return invalid
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i, _ in enumerate(inputs)]
        return web.json_response(
            {"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 3, "total_tokens": 3}}
        )


def chat_problem(body: dict[str, Any]) -> str | None:
    """Why OpenAI would reject this chat request's shape, or None."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' is a required property and must be a non-empty array"
    answerable: set[Any] = set()  # ids of the tool calls the next tool messages may answer
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ROLES:
            return f"{role!r} is not one of {list(ROLES)} - 'messages.{i}.role'"
        if role == "tool":
            if msg.get("tool_call_id") not in answerable:
                return "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
            continue
        answerable = {c.get("id") for c in msg.get("tool_calls") or []} if role == "assistant" else set()
        if msg.get("content") is None and not answerable and not msg.get("function_call"):
            return f"Missing required parameter: 'messages.[{i}].content'."
    for i, tool in enumerate(body.get("tools") or []):
        if tool.get("type") == "function" and not (tool.get("function") or {}).get("name"):
            return f"Missing required parameter: 'tools[{i}].function.name'."
    if "stream_options" in body and not body.get("stream"):
        return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    return None


async def _tool_call(
    request: web.Request, body: dict[str, Any], usage: dict[str, int], created: int
) -> web.StreamResponse:
    last = body["messages"][-1]
    head = {"id": "chatcmpl-tool", "created": created, "model": "tool-call"}
    if body.get("tools") and last.get("role") != "tool":
        name, args = body["tools"][0]["function"]["name"], json.dumps({"city": "Paris"})
        call = {"index": 0, "id": "call_01", "type": "function", "function": {"name": name, "arguments": args}}
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
        finish = "tool_calls"
    else:
        message, finish = {"role": "assistant", "content": f"The tool said: {last.get('content')}"}, "stop"
    if not body.get("stream"):
        choice = {"index": 0, "message": message, "finish_reason": finish}
        return web.json_response({**head, "object": "chat.completion", "choices": [choice], "usage": usage})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    chunk = {**head, "object": "chat.completion.chunk"}
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": None if message.get("tool_calls") else ""}]
    if message.get("tool_calls"):
        first = message["tool_calls"][0]
        deltas.append({"tool_calls": [{**first, "function": {"name": first["function"]["name"], "arguments": ""}}]})
        raw = first["function"]["arguments"]
        deltas += [
            {"tool_calls": [{"index": 0, "function": {"arguments": raw[k : k + 5]}}]} for k in range(0, len(raw), 5)
        ]
    else:
        deltas.append({"content": message["content"]})
    for delta in deltas:
        await _send(resp, {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    await _send(resp, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        await _send(resp, {**chunk, "choices": [], "usage": usage})
    await resp.write(b"data: [DONE]\n\n")
    return resp


async def _send(resp: web.StreamResponse, chunk: dict[str, Any]) -> None:
    await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")


def _error(status: int, message: str, type_: str, code: str | None, param: str | None = None) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}, status=status
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--api-key", default=None)
    args = ap.parse_args()
    fake = FakeOpenAI(args.api_key).start(args.port)
    print(f"fake OpenAI upstream on {fake.base_url}", flush=True)
    threading.Event().wait()
