"""One server per data directory (llmgw_kernel/datadir.py): a second `llmgw serve` on the same
data directory exits non-zero before binding its port, naming the first one's pid; commands
that only read keep working, a command that would write behind the server's back is refused;
after `kill -9` the kernel has released the lock and the next start succeeds. Real servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from conftest import UPSTREAM_KEY, Gateway, free_port, policy_for

from llmgw_kernel import open_log
from llmgw_kernel.datadir import DataDirLock, holder_of


def _serve(gw: Gateway, port: int) -> subprocess.CompletedProcess:
    """Another `llmgw serve` on ``gw``'s data directory (it must exit by itself)."""
    return subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--policy", str(gw.policy_path), "--data-dir", str(gw.data_dir), "--no-dashboards"],
        env={**os.environ, "LOCAL_API_KEY": UPSTREAM_KEY}, cwd=gw.tmp, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def _cli(gw: Gateway, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", *args], env={**os.environ, "LOCAL_API_KEY": UPSTREAM_KEY, **(env or {})},
        cwd=gw.tmp, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _chat(gw: Gateway, text: str) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    return httpx.post(f"{gw.base_url}/chat/completions", json=body, timeout=10)


def _rows(gw: Gateway) -> int:
    con = open_log(gw.data_dir)
    try:
        return con.execute("SELECT count(*) FROM requests").fetchall()[0][0]
    finally:
        con.close()


def _bound(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_second_server_on_the_same_data_directory_exits_naming_the_first(upstream, tmp_path):
    first = Gateway(tmp_path, policy_for(upstream.base_url))
    try:
        assert _chat(first, "before").status_code == 200
        port = free_port()
        second = _serve(first, port)
        assert second.returncode != 0
        assert f"pid {first.proc.pid}" in second.stderr, second.stderr
        assert "in use by llmgw serve" in second.stderr and str(first.data_dir) in second.stderr
        assert "Uvicorn running" not in second.stderr and not _bound(port)  # refused before binding
        # the first server is unharmed and still the only writer
        assert first.proc.poll() is None and _chat(first, "after").status_code == 200
    finally:
        first.terminate()


def test_reading_commands_work_while_a_server_holds_the_directory_and_writers_are_refused(upstream, tmp_path):
    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    gw = Gateway(tmp_path, policy_for(upstream.base_url), env={"LLMGW_MASTER_KEY": old})
    try:
        for i in range(3):
            assert _chat(gw, f"read {i}").status_code == 200
        deadline = time.monotonic() + 60
        while _rows(gw) < 3 and time.monotonic() < deadline:  # open_log reads beside the server
            time.sleep(0.1)
        assert _rows(gw) >= 3
        replay = _cli(gw, "replay", "--policy", str(gw.policy_path), "--data-dir", str(gw.data_dir), "--json")
        assert replay.returncode == 0, replay.stderr
        assert '"requests": ' in replay.stdout

        # re-encrypting the secrets under the server (which keeps them under the old master key)
        secrets = gw.data_dir / "keys" / "secrets.json"
        before = secrets.read_bytes()
        rotate = _cli(
            gw, "keys", "rotate-master", "--data-dir", str(gw.data_dir), env={"LLMGW_MASTER_KEY": f"{new},{old}"}
        )
        assert rotate.returncode == 2 and f"pid {gw.proc.pid}" in rotate.stderr, rotate.stderr
        assert "stop the server first" in rotate.stderr
        assert secrets.read_bytes() == before

        traffic = _cli(gw, "traffic", "--policy", str(gw.policy_path), "--data-dir", str(gw.data_dir), "-n", "1")
        assert traffic.returncode == 2 and f"pid {gw.proc.pid}" in traffic.stderr, traffic.stderr
        assert "--url" in traffic.stderr
        assert gw.proc.poll() is None
    finally:
        gw.terminate()


def test_a_server_killed_with_sigkill_does_not_block_the_next_start(upstream, tmp_path):
    gw = Gateway(tmp_path, policy_for(upstream.base_url))
    dead_pid = gw.proc.pid
    assert _chat(gw, "before the crash").status_code == 200
    gw.proc.kill()  # SIGKILL: no clean-up runs; the lock file still names the dead pid
    gw.proc.wait(10)
    gw._log.close()
    assert f'"pid": {dead_pid}' in (gw.data_dir / "llmgw.lock").read_text()
    assert holder_of(gw.data_dir) is None  # the kernel's answer, not the file's

    again = Gateway(tmp_path, policy_for(upstream.base_url))  # the kernel released the lock
    try:
        assert _chat(again, "after the crash").status_code == 200
        assert f'"pid": {again.proc.pid}' in (again.data_dir / "llmgw.lock").read_text()
        assert holder_of(again.data_dir)["pid"] == again.proc.pid
        third = _serve(again, free_port())
        assert third.returncode != 0 and f"pid {again.proc.pid}" in third.stderr, third.stderr
    finally:
        assert again.terminate() == 0
    assert (tmp_path / "data" / "llmgw.lock").read_text() == ""  # a clean exit leaves it empty


def test_the_lock_is_not_inherited_by_child_processes(tmp_path):
    lock = DataDirLock(tmp_path, "llmgw serve").acquire()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], close_fds=False)
    try:
        assert holder_of(tmp_path)["pid"] == os.getpid()
        lock.release()
        assert holder_of(tmp_path) is None  # the child (like the dashboards' process) holds nothing
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("content", ["", "not json", '{"pid": 999999999}'])
def test_a_stale_or_garbled_lock_file_never_blocks(tmp_path, content):
    (tmp_path / "llmgw.lock").write_text(content)
    with DataDirLock(tmp_path, "llmgw serve") as lock:
        assert lock.held


def test_asking_who_holds_the_directory_never_makes_a_start_fail(tmp_path):
    import threading

    stop = threading.Event()
    seen: list[object] = []

    def probe() -> None:
        while not stop.is_set():
            seen.append(holder_of(tmp_path))

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        for _ in range(200):
            with DataDirLock(tmp_path, "llmgw serve") as lock:
                assert lock.held
    finally:
        stop.set()
        thread.join()
    assert len(seen) > 0


def test_a_data_directory_that_cannot_be_written_refuses_the_start_in_one_line(tmp_path):
    """A lock file that cannot be made (here: the directory's parent is a file; on a full disk
    its write fails the same way) is a one-line refusal naming the directory, not a traceback,
    and the port is never bound; a command that writes the directory is refused the same way."""
    (tmp_path / "live.yaml").write_text(
        "providers: {demo: {kind: demo}}\nroutes: {demo: {targets: [{provider: demo, model: demo-echo}]}}\n"
    )
    (tmp_path / "blocked").write_text("a file, not a directory")
    data = tmp_path / "blocked" / "data"
    port = free_port()
    served = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "serve", "--port", str(port), "--policy", str(tmp_path / "live.yaml"),
         "--data-dir", str(data), "--no-dashboards"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert served.returncode == 2, served.stderr
    assert "Traceback" not in served.stderr, served.stderr
    assert f"llmgw: cannot write the data directory {data}: [Errno 20] Not a directory" in served.stderr
    assert not _bound(port)
    rotated = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "keys", "rotate-master", "--data-dir", str(data)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert rotated.returncode == 2 and "Traceback" not in rotated.stderr, rotated.stderr
    assert f"cannot write the data directory {data}" in rotated.stderr
