"""What the shared-state benchmarks start and read, in one place: a pinned redis-server, a
`llmgw serve` process or worker group waited for until it answers and measured as a whole, and
the spread of a figure over rounds, a free port, uvloop. Imported by ``redis_admission.py``,
``redis_exact_cache.py``, ``workers_peer.py``, ``workers.py``, ``shared_breakers_poll.py``,
``proxy_overhead.py`` and ``stream_parse.py`` (they put this folder on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from procstat import _descendants, cpu_seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(workdir: Path, cpu: str | None = None) -> tuple[subprocess.Popen, str]:
    """A redis-server without persistence on a free port, pinned to ``cpu`` (``taskset``; None: not
    pinned), once it answers PING; (process, URL). Stop it with :func:`stop`."""
    import redis

    port = free_port()
    pinned = ["taskset", "-c", cpu] if cpu is not None else []
    proc = subprocess.Popen(
        [*pinned, "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError):
            if redis.Redis.from_url(url, socket_timeout=1).ping():
                return proc, url
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    stop(proc, signal.SIGKILL)
    raise RuntimeError(f"redis-server did not start on port {port}")


def flush_redis(url: str) -> None:
    """Empty the Redis at ``url`` (a fresh shared state for the next configuration)."""
    import redis

    redis.Redis.from_url(url, socket_timeout=10).flushall()


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 120) -> None:
    """Signal ``proc`` and wait for it; killed if it has not exited after ``timeout`` s."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def health_ok(port: int) -> bool:
    """Whether the gateway on ``port`` answers ``GET /health`` with 200 (a :meth:`ServeGroup.wait_ready` probe)."""
    import http.client

    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):  # not listening yet, or closed mid-answer while starting
        return False


class ServeGroup:
    """One `llmgw serve` (``workers`` > 1: the supervisor and its workers) started from ``argv``
    with ``env``, its output in ``log``; ready once ``probe()`` answers and every worker exists."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, workers: int = 1, cwd: Path | None = None):
        self.workers = workers
        self.log = open(log, "wb")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, probe: Callable[[], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llmgw serve exited {self.proc.returncode}: see {self.log.name}")
            if (self.workers == 1 or len(_descendants(self.proc.pid)) >= self.workers) and probe():
                time.sleep(3 if self.workers > 1 else 0.5)  # the probe reached one worker: let the others finish
                return
            time.sleep(0.05)
        raise RuntimeError(f"llmgw serve not ready after {timeout} s: see {self.log.name}")

    def pids(self) -> list[int]:
        return [self.proc.pid, *_descendants(self.proc.pid)]

    def cpu(self, pids: list[int] | None = None) -> float:
        """CPU seconds (utime + stime) of ``pids`` (default: the group now), those gone since left out."""
        total = 0.0
        for pid in self.pids() if pids is None else pids:
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
        return total

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


def use_uvloop() -> None:
    """This process's event loops on uvloop when installed (as the gateway's)."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass


def pin(cpu: int) -> None:
    """Run this process on ``cpu``, its event loops on uvloop (:func:`use_uvloop`)."""
    use_uvloop()
    os.sched_setaffinity(0, {cpu})


def spread(values: list[float]) -> str:
    """``median M (min A, max B)`` of one figure over the rounds."""
    return f"median {statistics.median(values):.1f} (min {min(values):.1f}, max {max(values):.1f})"
