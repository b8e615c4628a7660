"""The fixture of the shared-state tests: a real Redis (Debian's redis-server, on a free port in a
temporary directory, killed by pid at teardown) and `llmgw serve` processes pointed at it."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port  # tests/conftest.py

REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer:
    """One redis-server process without persistence (a restart comes back empty, as the
    shared state's docs recommend); :meth:`kill` and :meth:`start` simulate an outage."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = tmp / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.tmp),
             "--save", "", "--appendonly", "no", "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return self
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start:\n{self.log.read_text(errors='replace')}")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def client(self):
        import redis

        return redis.Redis(port=self.port, socket_timeout=2)

    def fill(self) -> None:
        """Full: ``maxmemory`` (``noeviction``) reached by writing, then set below what Redis holds,
        so every command that needs memory is refused with an OOM error (:meth:`make_room` undoes it)."""
        client = self.client()
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", client.info("memory")["used_memory"] + 256 * 1024)
        try:
            for i in range(10_000):
                client.set(f"filler:{i}", b"x" * 16384)
        except Exception as exc:  # noqa: BLE001  (redis-py's OutOfMemoryError ends the loop)
            assert "maxmemory" in str(exc), exc
        else:
            raise AssertionError("Redis never filled")
        # then well below what it holds: the memory a closed connection or a deleted key frees
        # (tens of kilobytes) must not make room for the next write
        client.config_set("maxmemory", client.info("memory")["used_memory"] // 2)

    def make_room(self) -> None:
        """No ``maxmemory`` any more: writes are taken again (the fillers stay)."""
        self.client().config_set("maxmemory", 0)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(name="redis_server")
def redis_server_fixture(tmp_path: Path) -> Iterator[RedisServer]:
    if not Path(REDIS_SERVER).exists():
        pytest.fail(f"{REDIS_SERVER} is missing: .ci/run installs redis-server (apt)")
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


def share_pepper(source_data_dir: Path, target_tmp: Path) -> None:
    """Give a second gateway the first one's key pepper (replicas must share secrets.json,
    as a Kubernetes Secret or a shared data directory gives them)."""
    target = target_tmp / "data" / "keys"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source_data_dir / "keys" / "secrets.json", target / "secrets.json")
