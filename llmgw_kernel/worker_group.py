"""What the workers of one ``llmgw serve --workers N`` share: one dashboard server and one
``/metrics``.

Connections reach whichever worker ``accept`` first, so each worker must answer as the group:

- **Dashboards.** A Bokeh session lives in the Panel server that created it, and a page's
  websocket may arrive at another worker than the page did: with a Panel server per worker
  the session would be unknown there. So the group has one Panel server
  (:class:`SharedPanel`): the first worker that needs it starts it, as a child of its own,
  and writes its port and pid to ``<group dir>/dashboard.json`` under a file lock; the other
  workers' bridges forward to that port. If the worker that started it exits, Panel exits too
  (its stdin closes) and the next dashboard request, at any worker, starts it again.
- **Metrics.** Each worker also listens on a private loopback port (written to
  ``<group dir>/worker-<i>.port``). ``GET /metrics`` at any worker answers its own series and
  its siblings' (fetched from their private ports, with the caller's credentials), every
  sample labelled ``worker="<i>"``: Prometheus sums them with ``sum without (worker)``. A
  sibling that does not answer within ``SCRAPE_TIMEOUT_S`` is left out and named in a comment.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from .durable import write_atomic
from .proxy.asgi import Receive, Scope, Send

log = logging.getLogger("llmgw.workers")

SIBLING_HEADER = b"x-llmgw-worker-scrape"  # a sibling asks for this worker's own series only
SCRAPE_TIMEOUT_S = 2.0
_NAME = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{?)")


class SharedPanel:
    """A dashboard backend (``dashboard_bridge.Backend``) shared by the workers of a group."""

    def __init__(self, group_dir: Path, data_dir: Path, origins: list[str], **page_sources: Any) -> None:
        self.group_dir = group_dir
        self.data_dir = data_dir
        self.origins = origins
        self.page_sources = page_sources  # what DashboardBridge gives its own PanelProcess (policy, gateway URL)
        self._own: Any = None  # the PanelProcess this worker started, if it did
        self._pid: int | None = None

    @property
    def alive(self) -> bool:
        if self._own is not None:
            return bool(self._own.alive)
        return self._pid is not None and _pid_alive(self._pid)

    async def start(self) -> int:
        fd = await asyncio.to_thread(_lock, self.group_dir / "dashboard.lock")
        try:
            found = _read_json(self.group_dir / "dashboard.json")
            if found and _pid_alive(found["pid"]) and found["pid"] != getattr(self._own, "pid", None):
                self._pid = found["pid"]
                return int(found["port"])
            from .dashboard.panel_process import PanelProcess

            self._own = PanelProcess(self.data_dir, self.origins, **self.page_sources)
            port = await self._own.start()
            self._pid = self._own.pid
            _write_json(self.group_dir / "dashboard.json", {"pid": self._pid, "port": port})
            return port
        finally:
            os.close(fd)

    async def stop(self) -> None:
        own, self._own = self._own, None
        if own is not None:
            await own.stop()


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # released with the descriptor
    return fd


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _write_json(path: Path, value: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(value).encode(), durable=False)  # the group's own, while it runs


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish_port(group_dir: Path, index: int, port: int) -> None:
    """Tell the siblings where this worker's private port is."""
    _write_json(group_dir / f"worker-{index}.port", {"port": port, "pid": os.getpid()})


def sibling_ports(group_dir: Path, index: int) -> dict[int, int]:
    """``worker index -> private port`` of the other workers that are running."""
    out = {}
    for path in group_dir.glob("worker-*.port"):
        i = int(path.name.split("-")[1].split(".")[0])
        found = _read_json(path)
        if i != index and found and _pid_alive(found["pid"]):
            out[i] = int(found["port"])
    return out


class GroupMetrics:
    """ASGI wrapper: ``GET /metrics`` answers for every worker of the group, labelled."""

    def __init__(self, app: Any, index: int, group_dir: Path) -> None:
        self.app = app
        self.gateway = app.gateway
        self.index = index
        self.group_dir = group_dir
        self._session: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != "/metrics"
            or scope["method"] != "GET"
            or any(name == SIBLING_HEADER for name, _ in scope["headers"])
        ):
            await self.app(scope, receive, send)
            if scope["type"] == "lifespan" and self._session is not None:
                await self._session.close()
            return
        status, headers, body = await _capture(self.app, scope, receive)
        if status == 200:
            texts = {self.index: body.decode()}
            missing: list[int] = []
            texts.update(await self._siblings(scope, missing))
            body = merge_expositions(texts).encode()
            if missing:
                body += f"# llmgw: workers {sorted(missing)} did not answer\n".encode()
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _siblings(self, scope: Scope, missing: list[int]) -> dict[int, str]:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S))
        passed = {k.decode(): v.decode() for k, v in scope["headers"] if k.lower() == b"authorization"}
        passed[SIBLING_HEADER.decode()] = "1"

        async def one(i: int, port: int) -> tuple[int, str | None]:
            try:
                async with self._session.get(f"http://127.0.0.1:{port}/metrics", headers=passed) as resp:
                    return i, (await resp.text()) if resp.status == 200 else None
            except (TimeoutError, aiohttp.ClientError, OSError):
                return i, None

        found = await asyncio.gather(*(one(i, p) for i, p in sibling_ports(self.group_dir, self.index).items()))
        missing.extend(i for i, text in found if text is None)
        return {i: text for i, text in found if text is not None}


async def _capture(app: Any, scope: Scope, receive: Receive) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status, headers, chunks = 500, [], []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, headers, b"".join(chunks)


def merge_expositions(texts: dict[int, str]) -> str:
    """Prometheus text expositions of several workers as one: each family once (its HELP and
    TYPE), then every worker's samples of it with a ``worker`` label.

    >>> one, two = "# TYPE x counter\\nx_total 1.0\\n", '# TYPE x counter\\nx_total{a="b"} 2.0\\n'
    >>> print(merge_expositions({0: one, 1: two}))
    # TYPE x counter
    x_total{worker="0"} 1.0
    x_total{worker="1",a="b"} 2.0
    <BLANKLINE>
    """
    families: dict[str, tuple[list[str], list[str]]] = {}
    for worker, text in sorted(texts.items()):
        current = ""
        for line in text.splitlines():
            if line.startswith(("# HELP ", "# TYPE ")):
                current = line.split(" ", 3)[2]
                head = families.setdefault(current, ([], []))[0]
                if line not in head:
                    head.append(line)
            elif line and not line.startswith("#"):
                families.setdefault(current, ([], []))[1].append(_labelled(line, worker))
    return "".join(line + "\n" for head, samples in families.values() for line in head + samples)


def _labelled(line: str, worker: int) -> str:
    m = _NAME.match(line)
    if m is None:
        return line
    name, brace = m.group(1), m.group(2)
    rest = line[m.end() :]
    if brace:
        return f'{name}{{worker="{worker}"' + ("," + rest if not rest.startswith("}") else rest)
    return f'{name}{{worker="{worker}"}}{rest}'
