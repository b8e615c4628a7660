"""A fake Azure OpenAI resource (``/openai/deployments/{deployment}/chat/completions|embeddings
?api-version=...``) over real HTTP, strict like the real one, written from Azure's REST reference.

It rejects what Azure rejects: a missing or wrong ``api-key`` header (401, Azure's "Access
denied" body), a missing or malformed ``api-version`` and any other path (404 "Resource not
found"), an unknown deployment (404 DeploymentNotFound), unknown request fields
("Unrecognized request argument supplied"), ``stream_options`` on api versions before
2024-09-01-preview, a ``tool`` message that answers no preceding ``tool_calls``. Stricter than
Azure, it refuses an ``Authorization`` header (the gateway must send ``api-key``). Every
malformed request (all of the above but a wrong key and an unknown deployment) is recorded in
``.invalid``.

Answers look like Azure's: ``prompt_filter_results`` and per-choice ``content_filter_results``;
streams start with a choices-less ``prompt_filter_results`` chunk and carry one
annotation-only chunk (a choice with ``content_filter_results`` and no ``delta``), as Azure's
asynchronous filter does. The Responses API (``/openai/responses?api-version=...``, the deployment as
the body's ``model``) and a deployment's legacy ``/completions`` answer as ``fake_responses.py``
says (``tool-dep`` calls a tool there too; ``busy-dep`` 429, ``down-dep`` 503). Deployments: ``gpt-4o-prod`` echoes the last user text; ``tool-dep``
calls the first tool (``{"city": "Paris"}``) until a tool result arrives; ``filtered-prompt``
answers 400 ``content_filter``; ``filtered-output`` stops with ``finish_reason:
content_filter``; ``busy-dep`` 429; ``down-dep`` 503; ``echo-key-dep`` 400 quoting the key it
received in its message and ``param`` (a careless upstream: the gateway must scrub it); ``embed-dep`` serves embeddings.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from typing import Any

import fake_responses
from aiohttp import web
from fake_http import FakeServer

DEPLOYMENTS = {
    "gpt-4o-prod",
    "tool-dep",
    "filtered-prompt",
    "filtered-output",
    "busy-dep",
    "down-dep",
    "echo-key-dep",
    "embed-dep",
}
CHAT_FIELDS = {"messages", "model", "temperature", "top_p", "n", "stream", "stream_options", "stop", "max_tokens",
               "max_completion_tokens", "presence_penalty", "frequency_penalty", "logit_bias", "user", "tools",
               "tool_choice", "parallel_tool_calls", "response_format", "seed", "logprobs", "top_logprobs",
               "data_sources", "reasoning_effort", "store", "metadata", "prediction", "audio", "modalities"}  # fmt: skip
EMBED_FIELDS = {"input", "model", "user", "encoding_format", "dimensions", "input_type"}
API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
SAFE = {"filtered": False, "severity": "safe"}
FILTERS = {"hate": SAFE, "self_harm": SAFE, "sexual": SAFE, "violence": SAFE}
USAGE = {"prompt_tokens": 15, "completion_tokens": 6, "total_tokens": 21}
ACCESS_DENIED = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
                 "key for an active subscription and use a correct regional API endpoint for your resource.")  # fmt: skip


#: how the Responses API answers here: as this resource's chat does
AZURE_STYLE = fake_responses.Style(
    prefix="Azure heard: ",
    usage={"input_tokens": 15, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 6,
           "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 21},
    call_id="call_azure_1",
)  # fmt: skip


class Invalid(Exception):
    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.status, self.error = status, error


def bad(message: str, param: str | None = None) -> Invalid:
    return Invalid(400, {"message": message, "type": "invalid_request_error", "param": param, "code": None})


class FakeAzure(FakeServer):
    name = "fake-azure"

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{path:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        match = re.fullmatch(r"/openai/deployments/([^/]+)/(chat/completions|embeddings|completions)", request.path)
        if request.path == "/openai/responses" and isinstance(body.get("model"), str):  # the deployment in the body
            match = re.fullmatch(r"(.+)/(responses)", f"{body['model']}/responses")
        if "api-key" not in request.headers or "authorization" in {k.lower() for k in request.headers}:
            self.invalid.append(f"{request.path}: the key must travel in api-key (and nothing in Authorization)")
            return web.json_response({"error": {"code": "401", "message": ACCESS_DENIED}}, status=401)
        if request.headers["api-key"] != self.api_key:  # a wrong key: a credentials problem, not a malformed request
            return web.json_response({"error": {"code": "401", "message": ACCESS_DENIED}}, status=401)
        version = request.query.get("api-version", "")
        if match is None or not API_VERSION.match(version):
            self.invalid.append(f"{request.path_qs}: resource not found")
            return web.json_response({"error": {"code": "404", "message": "Resource not found"}}, status=404)
        deployment, operation = match.groups()
        if deployment not in DEPLOYMENTS:
            message = "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."
            return web.json_response({"error": {"code": "DeploymentNotFound", "message": message}}, status=404)
        if operation in ("responses", "completions"):
            return await self.native(request, deployment, body, operation)
        try:
            if operation == "embeddings":
                return self.embeddings(body)
            self.validate(body, version)
        except Invalid as exc:
            self.invalid.append(str(exc))
            return web.json_response({"error": exc.error}, status=exc.status)
        if deployment == "filtered-prompt":
            return web.json_response({"error": {
                "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
                "type": None, "param": "prompt", "code": "content_filter", "status": 400,
                "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
                    **FILTERS, "violence": {"filtered": True, "severity": "high"},
                    "jailbreak": {"filtered": True, "detected": True}}}}}, status=400)  # fmt: skip
        if deployment == "echo-key-dep":
            message = f"The fake resource quotes what it received: {request.headers['api-key']}"
            key = request.headers["api-key"]  # in param too (a careless upstream: the gateway must scrub it)
            return web.json_response(
                {"error": {"code": "InvalidRequest", "message": message, "param": key}}, status=400
            )
        if deployment == "busy-dep":
            message = f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {version} have exceeded token rate limit of your current tier. Please retry after 2 seconds."
            return web.json_response(
                {"error": {"code": "429", "message": message}}, status=429, headers={"Retry-After": "2"}
            )
        if deployment == "down-dep":
            return web.json_response(
                {
                    "error": {
                        "code": "ServiceUnavailable",
                        "message": "The service is temporarily unable to process your request.",
                    }
                },
                status=503,
            )
        return await self.chat(request, deployment, body)

    async def native(
        self, request: web.Request, deployment: str, body: dict[str, Any], operation: str | None
    ) -> web.StreamResponse:
        """``/openai/responses`` or a deployment's legacy ``/completions``."""
        if operation == "completions":
            if "model" in body:
                self.invalid.append("completions: model in the body (the deployment is in the URL)")
            body = {**body, "model": deployment}
        status = {"busy-dep": 429, "down-dep": 503}.get(deployment)
        if status is not None:
            return fake_responses.error(status, "fake Azure failure")
        field = "prompt" if operation == "completions" else "input"
        if (problem := fake_responses.problem(body, field)) is not None:
            self.invalid.append(problem)
            return fake_responses.error(400, problem)
        behaviour = {**body, "model": "tool-call" if deployment == "tool-dep" else deployment}
        if operation == "completions":
            return await fake_responses.answer_completions(request, behaviour)
        return await fake_responses.answer_responses(request, behaviour, AZURE_STYLE)

    def validate(self, body: dict[str, Any], version: str) -> None:
        for key in body:
            if key not in CHAT_FIELDS:
                raise bad(f"Unrecognized request argument supplied: {key}")
        if "stream_options" in body and version[:10] < "2024-09-01":
            raise bad("Unrecognized request argument supplied: stream_options")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise bad("'messages' is a required property", "messages")
        open_calls: set[str] = set()
        for i, msg in enumerate(messages):
            role = msg.get("role")
            if role not in ("system", "developer", "user", "assistant", "tool"):
                raise bad(
                    f"'{role}' is not one of ['system', 'assistant', 'user', 'tool', 'developer'] - 'messages.{i}.role'"
                )
            if role == "assistant":
                open_calls = {c["id"] for c in msg.get("tool_calls") or []}
            elif role == "tool":
                if msg.get("tool_call_id") not in open_calls:
                    raise bad(
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                        f"messages.[{i}].role",
                    )
            else:
                open_calls = set()
        for i, tool in enumerate(body.get("tools") or []):
            if tool.get("type") != "function" or not (tool.get("function") or {}).get("name"):
                raise bad(f"Missing required parameter: 'tools[{i}].function'.", f"tools[{i}].function")

    async def chat(self, request: web.Request, deployment: str, body: dict[str, Any]) -> web.StreamResponse:
        last = body["messages"][-1]
        message: dict[str, Any] = {"role": "assistant", "content": f"Azure heard: {last.get('content')}"}
        finish = "stop"
        if deployment == "tool-dep" and body.get("tools") and last["role"] != "tool":
            name = body["tools"][0]["function"]["name"]
            call = {
                "id": "call_azure_1",
                "type": "function",
                "function": {"name": name, "arguments": '{"city": "Paris"}'},
            }
            message, finish = {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
        elif last["role"] == "tool":
            message["content"] = f"The tool said: {last['content']}"
        elif deployment == "filtered-output":
            message["content"], finish = "Here is how", "content_filter"
        head = {
            "id": "chatcmpl-azure",
            "created": 1700000000,
            "model": "gpt-4o-2024-08-06",
            "system_fingerprint": "fp_az",
        }
        prompt_filter = [{"prompt_index": 0, "content_filter_results": FILTERS}]
        output_filter = (
            {**FILTERS, "violence": {"filtered": True, "severity": "medium"}} if finish == "content_filter" else FILTERS
        )
        if not body.get("stream"):
            return web.json_response({**head, "object": "chat.completion", "prompt_filter_results": prompt_filter, "usage": USAGE,
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None, "content_filter_results": output_filter}]})  # fmt: skip
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(chunk: dict[str, Any]) -> None:
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

        chunk_head = {**head, "object": "chat.completion.chunk"}
        await send(
            {"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": prompt_filter}
        )
        await send(
            {
                **chunk_head,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                        "content_filter_results": {},
                    }
                ],
            }
        )
        if message.get("tool_calls"):
            tc = message["tool_calls"][0]
            await send(
                {
                    **chunk_head,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {
                                "tool_calls": [
                                    {"index": 0, **tc, "function": {"name": tc["function"]["name"], "arguments": ""}}
                                ]
                            },
                            "finish_reason": None,
                        }
                    ],
                }
            )
            await send(
                {
                    **chunk_head,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {
                                "tool_calls": [{"index": 0, "function": {"arguments": tc["function"]["arguments"]}}]
                            },
                            "finish_reason": None,
                        }
                    ],
                }
            )
        else:
            words = message["content"].split(" ")
            for k, word in enumerate(words):
                piece = word + (" " if k < len(words) - 1 else "")
                await send(
                    {
                        **chunk_head,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"content": piece},
                                "finish_reason": None,
                                "content_filter_results": FILTERS,
                            }
                        ],
                    }
                )
        await send({**chunk_head, "choices": [{"index": 0, "finish_reason": None, "content_filter_results": output_filter,
                                               "content_filter_offsets": {"check_offset": 0, "start_offset": 0, "end_offset": 20}}]})  # fmt: skip
        await send(
            {
                **chunk_head,
                "choices": [{"index": 0, "delta": {}, "finish_reason": finish, "content_filter_results": {}}],
            }
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            await send({**chunk_head, "choices": [], "usage": USAGE})
        await resp.write(b"data: [DONE]\n\n")
        return resp

    def embeddings(self, body: dict[str, Any]) -> web.Response:
        for key in body:
            if key not in EMBED_FIELDS:
                raise bad(f"Unrecognized request argument supplied: {key}")
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not inputs:
            raise bad("'input' is a required property", "input")
        vectors = [[float(i + 1), 0.5, -0.25] for i in range(len(inputs))]
        encode = body.get("encoding_format") == "base64"
        data = [{"object": "embedding", "index": i, "embedding": base64.b64encode(struct.pack("<3f", *v)).decode() if encode else v}
                for i, v in enumerate(vectors)]  # fmt: skip
        return web.json_response({"object": "list", "data": data, "model": "text-embedding-3-small",
                                  "usage": {"prompt_tokens": 4, "total_tokens": 4}})  # fmt: skip
