"""One writer per data directory (an OS advisory lock on ``<data-dir>/llmgw.lock``), or
several replicas that share state through Redis, each under a replica id it has claimed.

``llmgw serve`` holds it for its whole life; so does a command that writes the data directory
behind a server's back (``llmgw keys rotate-master``). The lock is ``flock(LOCK_EX)`` on the
file, so the kernel releases it when the holder's process ends, however it ends: a server
killed with ``kill -9`` never blocks the next start, and the pid written in the file is only
there to name the holder in the refusal. Commands that only read (replay, ``open_log``,
policy diff) take no lock. The descriptor is opened close-on-exec, so child processes (the
dashboards) never hold the lock after their parent dies.

Servers configured with shared state (docs/deploy.md) take the same lock *shared*
(``LOCK_SH``): any number of them may serve one directory together, while a server without
shared state (or a command that needs the directory alone) is refused as long as one of them
runs, and the other way round. Each of them then claims a replica id
(:func:`claim_replica`): ``<host>-<slot>``, the lowest slot whose lock file
``<data-dir>/replicas/<host>-<slot>.lock`` is free, so a restart on the same host (or pod
name) gets the same id back and folds in its own journal.

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
SHARED_ADVICE = (
    "servers share a data directory only when every one of them uses shared state (LLMGW_REDIS_URL or the "
    "policy's state: section): stop that process, configure shared state on both, or use another --data-dir"
)
REPLICAS_DIR = "replicas"
REPLICA_ENV = "LLMGW_REPLICA_ID"
MAX_SLOTS = 256


class DataDirUnavailable(Exception):
    """The data directory cannot be taken: a refusal to print as one line (no traceback)."""


class DataDirUnwritable(DataDirUnavailable):
    """The lock file cannot be created or written (disk full, read-only, permissions): the
    process refuses to start with one line naming the directory and the OS error, since a
    server that cannot write its data directory would lose every row it answers."""

    def __init__(self, data_dir: Path, error: OSError) -> None:
        self.data_dir = data_dir
        self.error = error
        reason = error.strerror or str(error)
        super().__init__(f"cannot write the data directory {data_dir}: [Errno {error.errno}] {reason}")


class DataDirLocked(DataDirUnavailable):
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

    def __init__(
        self, data_dir: str | os.PathLike[str], command: str, advice: str = SERVE_ADVICE, shared: bool = False
    ) -> None:
        self.data_dir = Path(data_dir)
        self.advice = advice
        self.path = self.data_dir / LOCK_FILE
        self.command = command
        self.shared = shared  # LOCK_SH: replicas with shared state serve the directory together
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> DataDirLock:
        """Take the lock, or raise :class:`DataDirLocked` naming the holder, or
        :class:`DataDirUnwritable` when the lock file cannot be made or written."""
        try:
            return self._acquire()
        except DataDirLocked:
            raise
        except OSError as exc:
            raise DataDirUnwritable(self.data_dir, exc) from None

    def _acquire(self) -> DataDirLock:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            _flock_patiently(fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
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
        if self.shared:
            about["shared"] = True  # one of several holders: the last one to start is named
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(about) + "\n").encode(), 0)
        except BaseException:
            os.close(fd)  # releases the flock: nothing is held when acquiring fails
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the lock go (the process ending does the same)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if not self.shared:  # other holders of a shared lock may still be named there
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _flock_patiently(fd: int, mode: int = fcntl.LOCK_EX, tries: int = 20) -> None:
    """``mode`` without blocking, tried for ~0.2 s: a :func:`holder_of` probe holds a lock for
    microseconds, a server holds its lock for good."""
    for attempt in range(tries):
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
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
    kernel's answer, not the file's: a shared lock, then an exclusive one, is tried (and let go
    at once), so a pid left in the file by a killed server never counts, replicas holding it
    shared do, and nothing is written."""
    path = Path(data_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while replicas hold it shared
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class ReplicaBusy(Exception):
    """The replica id asked for (``LLMGW_REPLICA_ID``) is held by another running process."""


class ReplicaClaim:
    """A replica id held for the life of a process: ``flock`` on ``<data-dir>/replicas/<id>.lock``
    (released by the kernel however the process ends, so a restart can claim it again)."""

    def __init__(self, replica: str, fd: int) -> None:
        self.id = replica
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def replica_home(data_dir: str | os.PathLike[str], replica: str | None) -> Path:
    """Where a replica keeps what is its own alone (its cache snapshot): the data directory
    itself for a single server, ``<data-dir>/replicas/<id>/`` for a replica."""
    return Path(data_dir) / REPLICAS_DIR / replica if replica else Path(data_dir)


def host_label(hostname: str | None = None) -> str:
    """The host name as the start of a replica id (lower case, ``a-z0-9-``, a letter first).

    >>> host_label("GW_1.example.com"), host_label("10.0.0.7")
    ('gw-1', 'h10')
    """
    name = (hostname or socket.gethostname()).split(".")[0].lower()
    name = "".join(c if c.isascii() and (c.isalnum() or c == "-") else "-" for c in name).strip("-")
    if not name or not name[0].isalpha():
        name = "h" + name
    return name[:56].rstrip("-")


def try_claim(data_dir: str | os.PathLike[str], replica: str) -> ReplicaClaim | None:
    """Claim ``replica`` if no running process holds it (None otherwise)."""
    from .log.segments import segment_name

    segment_name(0, 0, replica)  # validates the id
    directory = Path(data_dir) / REPLICAS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"{replica}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode(), 0)
    return ReplicaClaim(replica, fd)


def claim_replica(data_dir: str | os.PathLike[str], requested: str | None = None) -> ReplicaClaim:
    """This process's replica id: ``requested`` (or ``$LLMGW_REPLICA_ID``) exactly, else
    ``<host>-<slot>`` with the lowest free slot — stable across restarts on one host or pod.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> a, b = claim_replica(d), claim_replica(d)
    >>> a.id == host_label() + "-0", b.id == host_label() + "-1"
    (True, True)
    >>> a.release(); claim_replica(d).id == a.id
    True
    """
    requested = requested or os.environ.get(REPLICA_ENV) or None
    if requested:
        claim = try_claim(data_dir, requested)
        if claim is None:
            raise ReplicaBusy(f"replica id {requested!r} is in use by another process on {data_dir}")
        return claim
    base = host_label()
    for slot in range(MAX_SLOTS):
        claim = try_claim(data_dir, f"{base}-{slot}")
        if claim is not None:
            return claim
    raise ReplicaBusy(f"all {MAX_SLOTS} replica slots of host {base} are in use on {data_dir}")


def orphan_replicas(data_dir: str | os.PathLike[str], known: list[str]) -> list[ReplicaClaim]:
    """Claims on the replicas among ``known`` that no running process holds (their owner
    died and has not come back, e.g. a pod replaced under another name): the caller folds
    their journals into the log, then releases them."""
    out = []
    for replica in known:
        claim = try_claim(data_dir, replica)
        if claim is not None:
            out.append(claim)
    return out
