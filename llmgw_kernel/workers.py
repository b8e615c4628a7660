"""``llmgw serve --workers N``: N serving processes on one port, under one supervisor.

The supervisor binds the port once (so a port in use is one clear error, and no other
program can join the port as ``SO_REUSEPORT`` would let it), takes the data-directory lock
for the group, and starts N workers, each ``python -m llmgw_kernel.workers`` with the listening
socket inherited: the kernel hands each new connection to one of the processes waiting in
``accept``. Each worker is a full ``llmgw serve`` (:func:`.server.serve_process`) that claims
a replica id and so writes its own series of log segments (docs/log.md). The supervisor

- refuses N > 1 without shared state (Redis) when keys, budgets or rate limits are on: each
  worker would enforce them alone (exit status 2, before binding anything); each worker applies
  the same rule (:func:`policy_limit_reasons`) to a hot reload, refusing one that adds budgets or
  rate limits to a group without shared state (``Gateway.reload_if_changed``);
- on SIGTERM/SIGINT forwards SIGTERM to every worker, which drains its in-flight requests for
  ``--drain-timeout`` seconds and flushes its log, then exits 0 once all have;
- starts a worker again when it dies (kill -9, out of memory), at most once a second;
- puts each worker in a process group of its own (a terminal's Ctrl+C reaches the supervisor
  only, so each worker gets exactly one SIGTERM), and each worker watches a pipe from it: if
  the supervisor dies however it dies, the workers drain and exit. Not a session of its own:
  with the scheduler's autogroups (Linux's default for desktops and many servers) a new
  session is a new CPU group, and a worker in one served 2–3× fewer requests on a busy machine
  than the same worker in the supervisor's session (docs/deploy.md).

The dashboards are one Panel process for the group (:class:`SharedPanel`), and ``/metrics`` on
any worker answers for all of them, each series labelled ``worker`` (:mod:`.worker_metrics`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .server import ServeOptions, ServeRefused, load_for_serving

log = logging.getLogger("llmgw.workers")

RESTART_EVERY_S = 1.0  # a worker that keeps dying is started again at most this often
FLUSH_GRACE_S = 30.0  # after the drain, time for a worker's last log flush before it is killed
RUN_DIR_ENV = "LLMGW_WORKERS_DIR"  # set in each worker: the group's private directory (dashboard, metrics)
WORKER_ENV = "LLMGW_WORKER"  # set in each worker: its index


def shared_state_reasons(policy: Any, data_dir: Path) -> list[str]:
    """What this policy and data directory enforce that N processes would each enforce alone."""
    from .keys.store import EVENTS, keys_dir

    reasons = []
    events = keys_dir(data_dir) / EVENTS
    if events.exists() and events.stat().st_size > 0:
        reasons.append(f"virtual keys exist ({events})")
    elif os.environ.get("LLMGW_ADMIN_TOKEN"):
        reasons.append("the admin API is on (LLMGW_ADMIN_TOKEN), so keys can be created")
    return reasons + policy_limit_reasons(policy)


def policy_limit_reasons(policy: Any) -> list[str]:
    """The limits in ``policy`` that N processes without shared state would each enforce alone.

    One rule for the supervisor's start-up refusal (:func:`shared_state_reasons`) and for a
    worker's hot reload (``Gateway.reload_if_changed``): a reload that adds limits to a group
    started without shared state is refused like an invalid policy.
    """
    reasons = []
    budgets = getattr(policy, "budgets", None)
    if budgets is not None and getattr(budgets, "limits", None):
        reasons.append("the policy has budgets")
    if getattr(policy, "rate_limits", None):
        reasons.append("the policy has rate limits")
    return reasons


def supervise(options: ServeOptions, workers: int) -> int:
    """Run ``workers`` processes on one port until SIGTERM/SIGINT; the exit status."""
    from .datadir import SERVE_ADVICE, SHARED_ADVICE, DataDirLock, DataDirUnavailable

    try:
        policy, shared = load_for_serving(options.policy)
    except ServeRefused as exc:
        print(exc, file=sys.stderr)
        return 2
    reasons = shared_state_reasons(policy, options.data_dir)
    if reasons and not shared:
        print(
            f"llmgw: --workers {workers} needs shared state: {'; '.join(reasons)}, and each worker would enforce "
            "them alone. Set LLMGW_REDIS_URL (or the policy's state: {redis: {url_env: NAME}}), or run one worker "
            "(docs/deploy.md)",
            file=sys.stderr,
        )
        return 2
    where = f"{options.host}:{options.port}"
    advice = SHARED_ADVICE if shared else SERVE_ADVICE
    lock = DataDirLock(options.data_dir, f"llmgw serve --workers {workers} on {where}", advice, shared=shared)
    try:
        lock.acquire()
    except DataDirUnavailable as exc:  # held by another process, or not writable (disk full)
        print(f"llmgw: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            sock = bind(options.host, options.port)
        except OSError as exc:
            print(f"llmgw: cannot listen on {where}: {exc}", file=sys.stderr)
            return 1
        with sock:
            return Supervisor(options, workers, sock).run()
    finally:
        lock.release()


def bind(host: str, port: int) -> socket.socket:
    """The listening socket every worker accepts on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Starts the workers, starts them again when they die, and stops them on a signal."""

    def __init__(self, options: ServeOptions, workers: int, sock: socket.socket) -> None:
        self.options = options
        self.n = workers
        self.sock = sock
        self.procs: dict[int, subprocess.Popen] = {}
        self._alive_pipes: dict[int, int] = {}  # worker -> write end of its "supervisor alive" pipe
        self._started_at: dict[int, float] = {}
        self._spawns: dict[int, int] = {}
        self._refused = False  # a worker refused to start (status 2) on its first try: the group stops
        self._stop = threading.Event()
        self.run_dir = Path(tempfile.mkdtemp(prefix="llmgw-workers-"))

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            log.info("llmgw serving on http://%s:%d with %d workers", self.options.host, self.options.port, self.n)
            for i in range(self.n):
                self._spawn(i)
            while not self._stop.wait(0.2):
                self._restart_dead()
            code = self._shutdown()
            return 2 if self._refused else code
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for fd in self._alive_pipes.values():
                os.close(fd)
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stop.set()

    def _spawn(self, i: int) -> None:
        read_end, write_end = os.pipe()  # the worker sees EOF when the supervisor is gone
        old = self._alive_pipes.pop(i, None)
        if old is not None:
            os.close(old)
        payload = dataclasses.asdict(self.options)
        payload.update(policy=str(self.options.policy), data_dir=str(self.options.data_dir))
        args = [sys.executable, "-m", "llmgw_kernel.workers", json.dumps(payload)]
        args += [str(self.sock.fileno()), str(read_end)]
        root = str(Path(__file__).resolve().parents[1])  # so the worker imports this same code
        path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, PYTHONPATH=path, **{RUN_DIR_ENV: str(self.run_dir), WORKER_ENV: str(i)})
        try:
            self.procs[i] = subprocess.Popen(args, pass_fds=(self.sock.fileno(), read_end), env=env, process_group=0)
        finally:
            os.close(read_end)
        self._alive_pipes[i] = write_end
        self._started_at[i] = time.monotonic()
        self._spawns[i] = self._spawns.get(i, 0) + 1

    def _restart_dead(self) -> None:
        for i, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None or self._stop.is_set():
                continue
            if code == 2 and self._spawns[i] == 1:  # refused at its first start: a setting, not a crash
                log.error("worker %d refused to start (status 2, its message above); stopping", i)
                self._refused = True
                self._stop.set()
                return
            if time.monotonic() - self._started_at[i] < RESTART_EVERY_S:
                continue  # it died at once: try again a little later
            log.error("worker %d (pid %d) exited with status %s; starting it again", i, proc.pid, code)
            self._spawn(i)

    def _shutdown(self) -> int:
        log.info("stopping %d workers (drain %d s)", self.n, self.options.drain_s)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.options.drain_s + FLUSH_GRACE_S
        codes = []
        for i, proc in self.procs.items():
            try:
                codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                log.error("worker %d (pid %d) did not stop in time; killing it", i, proc.pid)
                proc.kill()
                codes.append(proc.wait())
        return 0 if all(code == 0 for code in codes) else 1


def _watch_supervisor(fd: int) -> None:
    """In a worker: SIGTERM ourselves (drain, flush, exit) when the supervisor's pipe closes."""

    def watch() -> None:
        while True:
            try:
                if not os.read(fd, 1):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="llmgw-supervisor-watch", daemon=True).start()


def worker_main(argv: list[str]) -> int:
    """A worker: ``python -m llmgw_kernel.workers <options json> <socket fd> <pipe fd>``."""
    from .logs import configure
    from .server import serve_process

    payload = json.loads(argv[0])
    payload.update(policy=Path(payload["policy"]), data_dir=Path(payload["data_dir"]))
    payload["read_deadlines"] = tuple(payload["read_deadlines"])
    options = ServeOptions(**payload)
    configure(options.log_level, options.log_format)
    sock = socket.socket(fileno=int(argv[1]))
    _watch_supervisor(int(argv[2]))
    return serve_process(options, sockets=[sock], supervised=True)


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
