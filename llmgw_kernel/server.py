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
import sys
from pathlib import Path

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
    protect_views: bool = False, secrets=None,
):  # fmt: skip
    from .proxy.app import GatewayApp
    from .proxy.runtime import Gateway

    gateway = Gateway(policy_path=policy, data_dir=data_dir, secrets=secrets)
    mount = None
    if dashboards:
        from .dashboard_bridge import DashboardBridge

        mount = DashboardBridge(data_dir=data_dir, public_host=host, public_port=port, gateway=gateway)
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
) -> int:
    from .logs import configure

    configure(log_level, log_format)
    from .datadir import DataDirLock, DataDirLocked

    lock = DataDirLock(data_dir, f"llmgw serve on {host}:{port}")
    try:  # one server per data directory, checked before anything is read, written or bound
        lock.acquire()
    except DataDirLocked as exc:
        print(f"llmgw: {exc}", file=sys.stderr)
        return 2
    try:
        return _serve_locked(
            host, port, policy, data_dir, drain_s, dashboards, open_views, protect_views,
            (header_timeout_s, body_timeout_s),
        )  # fmt: skip
    finally:
        lock.release()


def _serve_locked(
    host: str, port: int, policy: Path, data_dir: Path, drain_s: int, dashboards: bool, open_views: bool,
    protect_views: bool, read_deadlines: tuple[float, float] = (HEADER_TIMEOUT_S, BODY_TIMEOUT_S),
) -> int:  # fmt: skip
    import uvicorn

    from .policy.extras import load_servable
    from .policy.lifecycle import ensure_live_policy
    from .policy.load import PolicyError
    from .proxy.read_deadlines import read_deadline_protocol

    _Server = _server_class()
    log = logging.getLogger("llmgw")
    if ensure_live_policy(policy):
        log.info("created %s from the bundled default policy", policy)
    try:
        load_servable(policy)  # fail fast with a readable message (extras too), before binding the port
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 2
    data_dir.mkdir(parents=True, exist_ok=True)
    from .keys.secrets import Secrets, SecretsError

    try:
        secrets = Secrets(data_dir)  # a wrong or missing master key: a clear error before binding the port
    except SecretsError as exc:
        print(f"llmgw: {exc}", file=sys.stderr)
        return 2
    sys.setswitchinterval(0.001)  # other threads (the log writer) yield the GIL to the proxy within 1 ms
    app = build_app(policy, data_dir, host, port, dashboards, open_views, protect_views, secrets)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=read_deadline_protocol(*read_deadlines, app.gateway.metrics.read_deadline_passed),  # httptools + timers
        ws="websockets-sansio",
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=drain_s,
        timeout_keep_alive=75,
        server_header=False,
        date_header=False,
    )
    server = _Server(config)
    log.info("llmgw serving on http://%s:%d (policy %s, data %s)", host, port, policy, data_dir)
    server.run()
    return 0 if server.started else 1
