"""What every HTTP provider adapter shares: the key, headers, timeouts, the POST, reading
the answer, SSE payloads, and turning upstream trouble into :class:`UpstreamError` with every
secret scrubbed. Adapters subclass :class:`HttpProvider` and add their wire format.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ..policy.model import Provider, Target
from .base import AdapterContext, UpstreamError, scrub
from .sse import Event, Splitter


class HttpProvider:
    """Base of adapters that talk HTTP to their provider through the shared session."""

    #: upstream statuses that mean something else at the gateway (e.g. Anthropic's 529 → 503)
    status_map: dict[int, int] = {}

    def __init__(self, name: str, provider: Provider, ctx: AdapterContext) -> None:
        self.name = name
        self.provider = provider
        self._session = ctx.session
        self._credential = ctx.credential
        self._static_headers = {"Content-Type": "application/json", **self.default_headers(), **provider.headers}
        self._keyed_headers: tuple[str, dict[str, str]] = ("", self._static_headers)
        self._timeouts: dict[int, tuple[aiohttp.ClientTimeout, aiohttp.ClientTimeout]] = {}

    # -- what subclasses override ------------------------------------------------------------
    def default_headers(self) -> dict[str, str]:
        return {}

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def error_message(self, raw: bytes, status: int) -> str:
        return error_message(raw, status)

    def error_code(self, raw: bytes, status: int) -> str | None:
        """A provider error code the client should see instead of ``upstream_<status>``."""
        return None

    def error_param(self, raw: bytes, status: int) -> str | None:
        """The request field a provider's error names (OpenAI's ``error.param``), for the client."""
        return None

    def error_status(self, raw: bytes, status: int) -> int:
        """The status the gateway acts on for an upstream error (``status_map``; the body may refine it)."""
        return self.status_map.get(status, status)

    # -- shared machinery ---------------------------------------------------------------------
    def unavailable_reason(self) -> str | None:
        name = self.provider.api_key_credential
        if name:
            if not self._credential(name):
                return f"credential {name!r} is not stored (POST /admin/credentials)"
            return None
        env = self.provider.api_key_env
        if env and not os.environ.get(env):
            return f"environment variable {env} is not set"
        return None

    def _key(self) -> str | None:
        name = self.provider.api_key_credential
        if name:
            return self._credential(name)
        env = self.provider.api_key_env
        return os.environ.get(env) if env else None

    def _headers(self) -> dict[str, str]:
        key = self._key()
        if not key:
            return self._static_headers
        last_key, headers = self._keyed_headers
        if key != last_key:  # built once per key value, not per request
            headers = {**self._static_headers, **self.auth_headers(key)}
            self._keyed_headers = (key, headers)
        return headers

    def _timeout(self, target: Target) -> tuple[aiohttp.ClientTimeout, aiohttp.ClientTimeout]:
        """(whole response, stream: connect + first byte + every gap) for this target."""
        ms = target.timeout_ms or self.provider.timeout_ms
        t = self._timeouts.get(ms)
        if t is None:
            s = ms / 1000
            t = (aiohttp.ClientTimeout(total=s), aiohttp.ClientTimeout(total=None, sock_connect=s, sock_read=s))
            self._timeouts[ms] = t
        return t

    def _scrub(self, text: str) -> str:
        key = self._key()
        return scrub(text, (key,)) if key else text

    async def _post(
        self, url: str, data: bytes, timeout: aiohttp.ClientTimeout, params: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        try:
            resp = await self._session.post(url, data=data, headers=self._headers(), timeout=timeout, params=params)
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
            status = self.error_status(raw, resp.status)
            message = self._scrub(self.error_message(raw, resp.status))
            raise UpstreamError(
                "http", message, status, raw, code=self.error_code(raw, resp.status),
                param=self.error_param(raw, resp.status), retry_after=resp.headers.get("Retry-After"),
            )  # fmt: skip
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

    async def _sse(self, resp: aiohttp.ClientResponse) -> AsyncIterator[Event]:
        """The SSE events of ``resp``, each payload parsed once (:mod:`.sse`); the connection is
        dropped if the reader stops early."""
        finished = False
        split = Splitter()
        try:
            async for chunk in resp.content.iter_any():
                for event in split.feed(chunk):
                    yield event
            for event in split.close():
                yield event
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


def loads_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


_FIELD = re.compile(r"[A-Za-z0-9_.\[\]:-]{1,100}")


def openai_error_field(raw: bytes, name: str) -> str | None:
    """``error.<name>`` of an OpenAI-format error body (``code``, ``param``) when it is a short
    identifier (letters, digits, ``_.-:[]``), else None: the client gets the provider's own
    field, never free text from it."""
    body = loads_object(raw) if raw else None
    err = body.get("error") if body else None
    value = err.get(name) if isinstance(err, dict) else None
    return value if isinstance(value, str) and _FIELD.fullmatch(value) else None


def error_message(raw: bytes, status: int) -> str:
    """The human message of an error body (OpenAI, Anthropic and Google all use ``error.message``)."""
    body = loads_object(raw) if raw else None
    err = body.get("error") if body else None
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])
    if isinstance(err, str):
        return err
    text = raw[:300].decode("utf-8", "replace").strip() if raw else ""
    return f"upstream answered HTTP {status}" + (f": {text}" if text else "")
