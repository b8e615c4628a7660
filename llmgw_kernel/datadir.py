"""One writer per data directory: an OS advisory lock on ``<data-dir>/llmgw.lock``.

``llmgw serve`` holds it for its whole life; so does a command that writes the data directory
behind a server's back (``llmgw keys rotate-master``). The lock is ``flock(LOCK_EX)`` on the
file, so the kernel releases it when the holder's process ends, however it ends: a server
killed with ``kill -9`` never blocks the next start, and the pid written in the file is only
there to name the holder in the refusal. Commands that only read (replay, ``open_log``,
policy diff) take no lock. The descriptor is opened close-on-exec, so child processes (the
dashboards) never hold the lock after their parent dies.

>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> with DataDirLock(d, "llmgw serve"):
...     try:
...         DataDirLock(d, "llmgw serve").acquire()
...     except DataDirLocked as exc:
...         print(exc.holder["pid"] == os.getpid(), exc.holder["command"])
True llmgw serve
>>> with DataDirLock(d, "again") as lock:  # released on exit, free again
...     lock.held
True
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOCK_FILE = "llmgw.lock"
SERVE_ADVICE = "one server per data directory: stop that process, or give this one another --data-dir"


class DataDirLocked(Exception):
    """The data directory is held by another process; ``holder`` is what it wrote there."""

    def __init__(self, data_dir: Path, holder: dict[str, Any], advice: str = SERVE_ADVICE) -> None:
        self.data_dir = data_dir
        self.holder = holder
        pid = holder.get("pid", "unknown")
        who = holder.get("command") or "another llmgw process"
        where = f" on {holder['host']}" if holder.get("host") else ""
        since = f", started {holder['started']}" if holder.get("started") else ""
        super().__init__(f"the data directory {data_dir} is in use by {who} (pid {pid}{where}{since}); {advice}")


class DataDirLock:
    """An exclusive, non-blocking lock on a data directory (a context manager)."""

    def __init__(self, data_dir: str | os.PathLike[str], command: str, advice: str = SERVE_ADVICE) -> None:
        self.data_dir = Path(data_dir)
        self.advice = advice
        self.path = self.data_dir / LOCK_FILE
        self.command = command
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> DataDirLock:
        """Take the lock, or raise :class:`DataDirLocked` naming the holder."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            _flock_patiently(fd)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DataDirLocked(self.data_dir, holder, self.advice) from None
        except BaseException:
            os.close(fd)
            raise
        about = {
            "pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
            "started": datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="seconds"),
        }  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(about) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the lock go (the process ending does the same)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _flock_patiently(fd: int, tries: int = 20) -> None:
    """``LOCK_EX`` without blocking, tried for ~0.2 s: a :func:`holder_of` probe holds a shared
    lock for microseconds, a server holds its lock for good."""
    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == tries - 1:
                raise
            time.sleep(0.01)


def _read_holder(fd: int) -> dict[str, Any]:
    """What the holder wrote (it may be mid-write: then only what can be read)."""
    for _ in range(20):
        raw = os.pread(fd, 4096, 0)
        try:
            found = json.loads(raw)
            if isinstance(found, dict):
                return found
        except ValueError:
            pass
        time.sleep(0.01)
    return {}


def holder_of(data_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Who holds ``data_dir`` now (None: nobody; ``{}`` when the holder has not said yet). The
    kernel's answer, not the file's: a shared lock is tried (and let go at once), so a pid left
    in the file by a killed server never counts, and nothing is written."""
    path = Path(data_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
