"""``kind: openai`` — OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq, ...).

Requests pass through untouched apart from ``model`` (the target's) and, for streams, an
``include_usage`` the gateway adds when the provider's ``stream_usage`` is on so it can cost
the stream; that extra usage chunk is dropped before the client sees it unless it asked.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ..policy.model import Provider, Target
from .base import AdapterContext, Reply, StreamReply, UpstreamError, scrub
from .sse import DONE, iter_data


class OpenAIAdapter:
    def __init__(self, name: str, provider: Provider, ctx: AdapterContext) -> None:
        self.name = name
        self.provider = provider
        self._session = ctx.session
        base = provider.base_url or ""
        self._chat_url = f"{base}/chat/completions"
        self._embeddings_url = f"{base}/embeddings"
        self._static_headers = {"Content-Type": "application/json", **provider.headers}
        self._keyed_headers: tuple[str, dict[str, str]] = ("", self._static_headers)
        self._timeouts: dict[int, tuple[aiohttp.ClientTimeout, aiohttp.ClientTimeout]] = {}

    def unavailable_reason(self) -> str | None:
        env = self.provider.api_key_env
        if env and not os.environ.get(env):
            return f"environment variable {env} is not set"
        return None

    # -- helpers ------------------------------------------------------------------------
    def _key(self) -> str | None:
        env = self.provider.api_key_env
        return os.environ.get(env) if env else None

    def _headers(self) -> dict[str, str]:
        key = self._key()
        if not key:
            return self._static_headers
        last_key, headers = self._keyed_headers
        if key != last_key:  # built once per key value, not per request
            headers = {**self._static_headers, "Authorization": f"Bearer {key}"}
            self._keyed_headers = (key, headers)
        return headers

    def _timeout(self, target: Target) -> tuple[aiohttp.ClientTimeout, aiohttp.ClientTimeout]:
        ms = target.timeout_ms or self.provider.timeout_ms
        t = self._timeouts.get(ms)
        if t is None:
            s = ms / 1000
            # (whole response, stream: connect + first byte + every gap)
            t = (aiohttp.ClientTimeout(total=s), aiohttp.ClientTimeout(total=None, sock_connect=s, sock_read=s))
            self._timeouts[ms] = t
        return t

    def _scrub(self, text: str) -> str:
        key = self._key()
        return scrub(text, (key,)) if key else text

    async def _post(self, url: str, body: dict[str, Any], timeout: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        try:
            resp = await self._session.post(url, data=orjson.dumps(body), headers=self._headers(), timeout=timeout)
        except TimeoutError:
            raise UpstreamError("timeout", f"provider {self.name!r} did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError("connection", self._scrub(f"cannot reach provider {self.name!r}: {exc}")) from None
        if resp.status >= 400:
            try:
                raw = await resp.read()
            except (TimeoutError, aiohttp.ClientError):
                raw = b""
            finally:
                resp.release()
            raise UpstreamError("http", self._scrub(_error_message(raw, resp.status)), resp.status, raw)
        return resp

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        try:
            return await resp.read()
        except TimeoutError:
            raise UpstreamError("timeout", f"provider {self.name!r} did not finish in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                "connection", self._scrub(f"provider {self.name!r} broke the response: {exc}")
            ) from None
        finally:
            resp.release()

    # -- the protocol ---------------------------------------------------------------------
    async def chat(self, body: dict[str, Any], target: Target) -> Reply:
        body["model"] = target.model
        resp = await self._post(self._chat_url, body, self._timeout(target)[0])
        raw = await self._read(resp)
        return Reply(raw, _usage(raw))

    async def embeddings(self, body: dict[str, Any], target: Target) -> Reply:
        body["model"] = target.model
        resp = await self._post(self._embeddings_url, body, self._timeout(target)[0])
        raw = await self._read(resp)
        return Reply(raw, _usage(raw))

    async def chat_stream(self, body: dict[str, Any], target: Target, include_usage: bool) -> StreamReply:
        body["model"] = target.model
        added_usage = False
        if self.provider.stream_usage and not include_usage:
            opts = body.get("stream_options") or {}
            body["stream_options"] = {**opts, "include_usage": True}
            added_usage = True
        resp = await self._post(self._chat_url, body, self._timeout(target)[1])
        reply = StreamReply(_never())
        reply.events = self._events(resp, reply, added_usage)
        return reply

    async def _events(self, resp: aiohttp.ClientResponse, reply: StreamReply, drop_usage: bool) -> AsyncIterator[bytes]:
        finished = False
        try:
            async for payload in iter_data(resp.content.iter_any()):
                if payload == DONE:
                    yield payload
                    continue
                if b'"usage"' in payload:
                    chunk = _loads(payload)
                    usage = chunk.get("usage") if chunk else None
                    if usage:
                        reply.usage = usage
                        if drop_usage and not chunk.get("choices"):
                            continue  # the chunk only the gateway asked for
                yield payload
            finished = True
        except TimeoutError:
            raise UpstreamError("timeout", f"provider {self.name!r} stalled mid-stream") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError("connection", self._scrub(f"provider {self.name!r} broke the stream: {exc}")) from None
        finally:
            if finished:
                resp.release()
            else:
                resp.close()  # abandoned or broken: drop the connection so the upstream stops


async def _never() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover


def _loads(raw: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _usage(raw: bytes) -> dict[str, Any] | None:
    # Usage sits at the end of an OpenAI body: look there before parsing the whole thing.
    if b'"usage"' not in raw:
        return None
    body = _loads(raw)
    usage = body.get("usage") if body else None
    return usage if isinstance(usage, dict) else None


def _error_message(raw: bytes, status: int) -> str:
    body = _loads(raw) if raw else None
    err = body.get("error") if body else None
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])
    if isinstance(err, str):
        return err
    text = raw[:300].decode("utf-8", "replace").strip() if raw else ""
    return f"upstream answered HTTP {status}" + (f": {text}" if text else "")
