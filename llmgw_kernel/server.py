"""``llmgw serve``: one process, one port — the proxy and the dashboards.

uvicorn (uvloop + httptools) runs the plain-ASGI proxy on the main thread. Panel runs in
a child process (its own GIL, heap and event loop), started on the first dashboard request
(so the proxy is ready in well under a second and stays small), and the proxy's ASGI app
forwards dashboard paths and websockets to it on an internal port. A Panel session build
therefore never runs in the proxy's process (docs/server.md has the measurements).
SIGTERM: stop accepting, drain in-flight requests for ``drain_s`` seconds, flush the log.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_POLICY = Path("policies/live.yaml")
DEFAULT_DATA_DIR = Path("llmgw-data")
HEADER_TIMEOUT_S = 10.0  # slow clients: proxy/read_deadlines.py, docs/server.md "Timeouts"
BODY_TIMEOUT_S = 60.0
# Young-generation threshold once serving (CPython's default is 700). See settle_gc().
GC_GEN0_THRESHOLD = 5000


def settle_gc() -> None:
    """Make the cyclic garbage collector cheap for the rest of the process's life.

    Called once start-up is complete: ``gc.freeze()`` moves the ~55k objects of the
    imported modules out of every future collection (each full collection had been
    scanning them all: ~30 ms with the loop stalled), and a gen-0 threshold of 5000
    collects the few objects a request leaves behind (its log record, until the writer
    flushes it) less often. Measured on the proxy benchmark (JSON, concurrency 16):
    collector time per request ~25 µs with CPython's defaults, ~13 µs frozen, ~6 µs frozen
    with this threshold; a gen-0 pass then takes ~1.4 ms (0.1 ms at 700, 4 ms at 10000).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 10, 10)


def _server_class():
    import contextlib

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that a signal that was handled by a clean drain is not
        re-raised afterwards: SIGTERM → drain → flush → exit status 0."""

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[override]
            with super().capture_signals():
                try:
                    yield
                finally:
                    self._captured_signals.clear()

        async def startup(self, sockets=None):  # type: ignore[no-untyped-def]
            await super().startup(sockets)
            if self.started:
                settle_gc()

    return Server


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def build_app(
    policy: Path, data_dir: Path, host: str, port: int, dashboards: bool = True, open_views: bool = False,
    protect_views: bool = False, secrets=None, replica: str | None = None, dashboard_backend=None,
):  # fmt: skip
    from .proxy.app import GatewayApp
    from .proxy.runtime import Gateway

    gateway = Gateway(policy_path=policy, data_dir=data_dir, secrets=secrets, replica=replica)
    mount = None
    if dashboards:
        from .dashboard_bridge import DashboardBridge

        mount = DashboardBridge(
            data_dir=data_dir, public_host=host, public_port=port, gateway=gateway, backend=dashboard_backend
        )
    guarded = protect_views or (host not in LOOPBACK and not host.startswith("127.") and not open_views)
    return GatewayApp(gateway, mount, guarded=guarded)


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    policy: Path = DEFAULT_POLICY,
    data_dir: Path = DEFAULT_DATA_DIR,
    drain_s: int = 30,
    dashboards: bool = True,
    log_level: str = "info",
    log_format: str | None = None,
    open_views: bool = False,
    protect_views: bool = False,
    header_timeout_s: float = HEADER_TIMEOUT_S,
    body_timeout_s: float = BODY_TIMEOUT_S,
    workers: int = 1,
) -> int:
    """Serve until SIGTERM/SIGINT; the exit status (2: refused before binding the port).

    ``workers > 1`` runs that many processes on one port under a supervisor (:mod:`.workers`).
    """
    from .logs import configure

    configure(log_level, log_format)
    options = ServeOptions(
        host, port, policy, data_dir, drain_s, dashboards, open_views, protect_views,
        (header_timeout_s, body_timeout_s), log_level, log_format,
    )  # fmt: skip
    if workers > 1:
        from .workers import supervise

        return supervise(options, workers)
    return serve_process(options)


@dataclass(frozen=True)
class ServeOptions:
    """What one ``llmgw serve`` was asked for (a supervisor passes it on to its workers)."""

    host: str
    port: int
    policy: Path
    data_dir: Path
    drain_s: int
    dashboards: bool
    open_views: bool
    protect_views: bool
    read_deadlines: tuple[float, float]
    log_level: str = "info"
    log_format: str | None = None


def load_for_serving(policy: Path) -> tuple[Any, bool]:
    """(the servable policy, whether shared state is configured), or :class:`ServeRefused` with
    the message to print (exit status 2, before anything is bound)."""
    from .policy.extras import load_servable
    from .policy.lifecycle import ensure_live_policy
    from .policy.load import PolicyError
    from .state.config import StateConfigError, redis_settings

    if ensure_live_policy(policy):
        logging.getLogger("llmgw").info("created %s from the bundled default policy", policy)
    try:
        loaded = load_servable(policy)  # fail fast with a readable message (extras too), before binding the port
    except PolicyError as exc:
        raise ServeRefused(str(exc)) from None
    try:
        shared = redis_settings(getattr(loaded, "state", None)) is not None
    except StateConfigError as exc:
        raise ServeRefused(f"llmgw: {exc}") from None
    return loaded, shared


class ServeRefused(Exception):
    """``llmgw serve`` cannot start; the message is printed as is and the status is 2."""


def serve_process(options: ServeOptions, sockets: list[Any] | None = None, supervised: bool = False) -> int:
    """One serving process: alone (it takes the data-directory lock), or a supervisor's
    worker (``supervised``: the supervisor holds the lock and bound ``sockets``)."""
    from .datadir import SERVE_ADVICE, SHARED_ADVICE, DataDirLock, DataDirUnavailable, ReplicaBusy, claim_replica
    from .log.replicas import adopt_orphans

    try:
        _, shared = load_for_serving(options.policy)
    except ServeRefused as exc:
        print(exc, file=sys.stderr)
        return 2
    where = f"{options.host}:{options.port}"
    lock = None
    if not supervised:  # one server per data directory, or replicas that all share state
        lock = DataDirLock(
            options.data_dir, f"llmgw serve on {where}", SHARED_ADVICE if shared else SERVE_ADVICE, shared=shared
        )
        try:
            lock.acquire()
        except DataDirUnavailable as exc:  # held by another process, or not writable (disk full)
            print(f"llmgw: {exc}", file=sys.stderr)
            return 2
    claim = None
    try:
        if shared or supervised:  # several processes write this directory: each its own replica
            try:
                claim = claim_replica(options.data_dir)
            except ReplicaBusy as exc:
                print(f"llmgw: {exc}", file=sys.stderr)
                return 2
            logging.getLogger("llmgw").info("replica %s of %s", claim.id, options.data_dir)
            adopt_orphans(options.data_dir, claim.id)
        return _serve_locked(options, claim.id if claim else None, sockets)
    finally:
        if claim is not None:
            claim.release()
        if lock is not None:
            lock.release()


def _worker_group(o: ServeOptions, data_dir: Path) -> tuple[int, Any, Any]:
    """A worker's place in its group: (index, its private loopback socket, the shared dashboard)."""
    import socket

    from .dashboard.live import gateway_url
    from .dashboard.panel_thread import websocket_origins
    from .worker_group import SharedPanel, publish_port

    group_dir = Path(os.environ["LLMGW_WORKERS_DIR"])
    index = int(os.environ["LLMGW_WORKER"])
    private = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    private.bind(("127.0.0.1", 0))
    private.listen(64)
    publish_port(group_dir, index, private.getsockname()[1])
    origins = websocket_origins(o.host, o.port, os.environ.get("LLMGW_DASHBOARD_ORIGINS"))
    sources = {"policy_path": o.policy, "gateway_url": gateway_url(o.host, o.port)}  # as DashboardBridge gives them
    return index, private, SharedPanel(group_dir, data_dir, origins, **sources)


def _serve_locked(options: ServeOptions, replica: str | None, sockets: list[Any] | None) -> int:
    from .keys.secrets import Secrets, SecretsError

    o = options
    o.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        secrets = Secrets(o.data_dir)  # a wrong or missing master key: a clear error before binding the port
    except SecretsError as exc:
        print(f"llmgw: {exc}", file=sys.stderr)
        return 2
    group = _worker_group(o, o.data_dir) if sockets is not None else None
    if sockets is None:  # alone: listen before the application starts, so a bad address is one line
        try:
            sockets = listen(o.host, o.port)
        except OSError as exc:  # a name that does not resolve, a port in use, an address not ours
            print(f"llmgw: cannot listen on {o.host}:{o.port}: {exc}", file=sys.stderr)
            return 1
    try:
        return _run(o, replica, secrets, sockets, group)
    finally:
        for sock in sockets:
            sock.close()


def listen(host: str, port: int, backlog: int = 2048) -> list[Any]:
    """Listening sockets on every address ``host`` resolves to, as asyncio's ``create_server``
    (uvicorn's own bind, which logged after the application had started) makes them:
    ``localhost`` is 127.0.0.1 and ::1."""
    import socket

    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    made: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            made.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
    except OSError:
        for sock in made:
            sock.close()
        raise
    return made


def _run(o: ServeOptions, replica: str | None, secrets: Any, sockets: list[Any], group: Any) -> int:
    """Serve on ``sockets`` (bound) until a signal; ``group``: a worker's place in its group."""
    import uvicorn

    from .proxy.read_deadlines import read_deadline_protocol

    _Server = _server_class()
    log = logging.getLogger("llmgw")
    data_dir = o.data_dir
    sys.setswitchinterval(0.001)  # other threads (the log writer) yield the GIL to the proxy within 1 ms
    app = build_app(
        o.policy, data_dir, o.host, o.port, o.dashboards, o.open_views, o.protect_views, secrets, replica,
        group[2] if group else None,
    )  # fmt: skip
    if group is not None:  # a worker of `--workers N`: /metrics for the group, a private port for its siblings
        from .worker_group import GroupMetrics

        index, private, _ = group
        sockets = [*sockets, private]
        app = GroupMetrics(app, index, Path(os.environ["LLMGW_WORKERS_DIR"]))
    config = uvicorn.Config(
        app,
        host=o.host,
        port=o.port,
        loop="uvloop",
        http=read_deadline_protocol(*o.read_deadlines, app.gateway.metrics.read_deadline_passed),  # httptools, timers
        ws="websockets-sansio",
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=o.drain_s,
        timeout_keep_alive=75,
        server_header=False,
        date_header=False,
    )
    server = _Server(config)
    log.info("llmgw serving on http://%s:%d (policy %s, data %s)", o.host, o.port, o.policy, data_dir)
    server.run(sockets=sockets)
    return 0 if server.started else 1
