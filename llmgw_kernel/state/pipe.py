"""The admission path's connection to Redis: one pipelined connection for script calls.

Every request runs two scripts (admit, settle). Through redis-py's asyncio client each is a
``send`` and a wait on its own pooled connection — about 180 µs of gateway CPU each on this
machine, mostly system calls. Here every script call issued in one turn of the event loop is
written with one ``write``, and the answers, which Redis returns in order, are read back
together and matched to their callers first in, first out. So the syscalls are shared by the
requests in flight, and the per-call work is encoding the command and parsing a small
reply (RESP2: simple strings, errors, integers, bulk strings, arrays).

A call that takes longer than the command timeout (or a connection that fails) closes the
connection and fails every call waiting on it (their answers could no longer be matched);
the next call connects again. A script Redis does not know (restarted) is sent once in full
(``EVAL``, which also caches it) and by its SHA-1 after that.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit


class RespError(Exception):
    """An error reply from Redis (``-ERR ...``)."""


class PipeClosed(ConnectionError):
    """The connection failed or timed out while the call waited."""


class Script:
    """A Lua script known by its SHA-1."""

    __slots__ = ("source", "sha")

    def __init__(self, source: str) -> None:
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest().encode()


def encode(*args: Any) -> bytes:
    """A command in RESP: an array of bulk strings.

    >>> encode("GET", "k", 12)
    b'*3\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n$2\\r\\n12\\r\\n'
    """
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


_INCOMPLETE = object()


def parse(buf: bytes | bytearray, pos: int) -> tuple[Any, int]:
    """(reply, next position) of the reply at ``pos``, or (``_INCOMPLETE``, pos).

    >>> parse(b"*2\\r\\n:1\\r\\n$2\\r\\nok\\r\\n", 0)
    ([1, b'ok'], 16)
    """
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return _INCOMPLETE, pos
    kind, line = buf[pos], bytes(buf[pos + 1 : end])
    nxt = end + 2
    if kind == 58:  # ':'
        return int(line), nxt
    if kind == 36:  # '$'
        n = int(line)
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            return _INCOMPLETE, pos
        return bytes(buf[nxt : nxt + n]), nxt + n + 2
    if kind == 42:  # '*'
        n = int(line)
        if n < 0:
            return None, nxt
        items = []
        for _ in range(n):
            item, nxt = parse(buf, nxt)
            if item is _INCOMPLETE:
                return _INCOMPLETE, pos
            items.append(item)
        return items, nxt
    if kind == 43:  # '+'
        return line, nxt
    if kind == 45:  # '-'
        return RespError(line.decode(errors="replace")), nxt
    raise PipeClosed(f"unexpected reply byte {kind!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.waiters: deque[asyncio.Future] = deque()
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.out: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        waiters = self.waiters
        try:
            while pos < len(buf):
                reply, nxt = parse(buf, pos)
                if reply is _INCOMPLETE:
                    break
                pos = nxt
                fut = waiters.popleft()
                if not fut.done():
                    fut.set_result(reply)
        except (PipeClosed, IndexError, ValueError) as exc:
            self.fail(PipeClosed(f"unreadable reply from Redis: {exc}"))
            return
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(PipeClosed(f"connection to Redis lost ({exc})" if exc else "connection to Redis closed"))

    def fail(self, exc: Exception) -> None:
        self.closed = True
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def flush(self) -> None:
        if self.out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.out))
        self.out.clear()


class Pipe:
    """Script calls over one pipelined connection to the Redis of ``url``."""

    def __init__(self, url: str, connect_timeout_s: float, command_timeout_s: float, ca_file: str | None) -> None:
        self.url = urlsplit(url)
        self.connect_timeout_s = connect_timeout_s
        self.command_timeout_s = command_timeout_s
        self.ca_file = ca_file
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future | None = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        u = self.url
        tls = None
        if u.scheme == "rediss":
            tls = ssl.create_default_context(cafile=self.ca_file)
        _, proto = await asyncio.wait_for(
            loop.create_connection(_Protocol, u.hostname or "127.0.0.1", u.port or 6379, ssl=tls),
            self.connect_timeout_s,
        )
        hello = []
        if u.password:
            user = [unquote(u.username)] if u.username else []
            hello.append(encode("AUTH", *user, unquote(u.password)))
        db = (u.path or "/").strip("/")
        if db and db != "0":
            hello.append(encode("SELECT", db))
        for command in hello:
            reply = await self._send(proto, command)
            if isinstance(reply, RespError):
                proto.fail(PipeClosed(str(reply)))
                raise PipeClosed(f"Redis refused the connection: {reply}")
        return proto

    async def _ready(self) -> _Protocol:
        proto = self._proto
        if proto is not None and not proto.closed:
            return proto
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            fresh: _Protocol = await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None
        self._proto = fresh
        return fresh

    async def _send(self, proto: _Protocol, command: bytes) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        proto.waiters.append(fut)
        if not proto.out:
            loop.call_soon(proto.flush)  # every call of this loop turn goes in one write
        proto.out.append(command)
        timer = loop.call_later(self.command_timeout_s, _time_out, proto, fut)
        try:
            return await fut
        finally:
            timer.cancel()

    async def evalsha(self, script: Script, keys: list[Any], args: list[Any]) -> Any:
        """The script's reply (:class:`RespError` raised for an error reply)."""
        proto = await self._ready()
        reply = await self._send(proto, encode(b"EVALSHA", script.sha, len(keys), *keys, *args))
        if isinstance(reply, RespError) and str(reply).startswith("NOSCRIPT"):
            reply = await self._send(proto, encode(b"EVAL", script.source, len(keys), *keys, *args))
        if isinstance(reply, RespError):
            raise reply
        return reply

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()


def _time_out(proto: _Protocol, fut: asyncio.Future) -> None:
    if not fut.done():
        proto.fail(TimeoutError("Redis did not answer within the command timeout"))
