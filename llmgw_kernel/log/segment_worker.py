"""The request log's segment writer and compactor, in a child process of the server.

In the proxy's process, every thread that runs Python competes with the event loop for the
GIL. The log writer's rows (decoding bodies, hashing, JSON) and the compactor's bookkeeping
are such Python, and on a machine whose cores are busy the OS pre-empts them while they hold
the GIL: the event loop then waits, asleep, until they run again (docs/benchmarks.md "Log
writer and the event loop"). With ``LogWriter(worker_process=True)`` (the server's writer)
that work runs here instead. The server's writer thread sends each flush's journal frames
(the bytes the proxy already wrote to the journal on the event loop, no Python per row) down
a pipe; this process decodes them, builds and writes the segment exactly as an in-process
writer does (:class:`.writer.LogWriter`, whose code it runs) and merges segments in its own
compactor thread.

Protocol (the child's stdin / stdout): a request is ``op (1 byte) | length (u32) | payload``:
``W`` with the server's layout frame and a run of journal frames to write as the next
segment(s), ``C`` to close. Each ``W`` is answered by one JSON line ``{"seq", "written",
"stripped", "error"}``: the next segment number, how many of the journal frames (a prefix; the
layout frame not counted) are now in segments, how many of those were written
with their scalar columns only, and why the rest were not (None: all written). The server keeps
the frames not written (and their journal) and sends them again with the next flush. The worker
answers once the rows are in segments (merges run beside, in its compactor thread), so the server
waits for an answer at most :func:`answer_deadline_s`: a worker that is alive but does not answer
(stopped, swapped out, a hung disk) is then killed like a dead one, and the flush fails.
A worker killed between renaming a flush's segment into place and answering leaves those rows
both in a segment and in the server's buffer: so a worker, until it has written something, skips
the records a segment of its series already holds (:func:`logged_ids`). A ``W`` is written as
segments of at most :data:`PIECE_BYTES` of rows, so a backlog kept while the disk was full is
written as space allows (as one piece it needed free space for all of its uncompressed rows).

Only one process writes a series of segments: this process holds ``flock`` on
:func:`worker_lock` while it runs, and a writer of the same series waits for it
(:func:`wait_for_worker`) before it recovers a journal, so a worker that is still finishing a
merge after its server was killed never races its successor. The worker exits when its stdin
closes (the server exited, however it died), after the merge it is running.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import orjson

log = logging.getLogger("llmgw.log")

_REQUEST = struct.Struct("<cI")  # op, payload length
_FRAME = struct.Struct("<III")  # a journal frame's head: magic, body length, crc (journal._FRAME)
# not ``-m``: the package imports this module before runpy would run it as __main__
_ENTRY = f"import sys; from {__name__} import main; sys.exit(main(sys.argv[1:]))"
WAIT_FOR_WORKER_S = 120.0  # a stale worker finishes its merge (seconds at 1M rows) and exits
ANSWER_S = 20.0  # a W request's answer deadline: this, plus (answer_deadline_s) ...
ANSWER_S_PER_MB = 1.0  # ... this per MB of frames (docs/log.md "the log worker")
EXIT_WAIT_S = 120.0  # a closed worker finishes the merge it is running, or is killed after this
KILL_WAIT_S = 5.0  # a killed worker is reaped within this, or left for later (stuck in the kernel)


def worker_lock(directory: Path, replica: str) -> Path:
    """The lock file a series' worker holds while it runs (``directory``: ``log/requests``)."""
    return directory / f".worker-{replica or '-'}.lock"


def wait_for_worker(directory: Path, replica: str, timeout_s: float = WAIT_FOR_WORKER_S) -> None:
    """Return once no worker process holds the series' lock (one left by a server that was
    killed is finishing a merge); raise TimeoutError after ``timeout_s``."""
    path = worker_lock(directory, replica)
    if not path.exists():
        return
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    msg = f"the log worker of {path.name} is still running after {timeout_s:.0f} s"
                    raise TimeoutError(msg) from None
                time.sleep(0.1)
    finally:
        os.close(fd)


class WorkerTimeout(OSError):
    """The worker did not take a request or answer it before its deadline (stopped, swapped out,
    a stuck disk): the caller kills it and starts another, as for a dead one."""


def answer_deadline_s(payload_bytes: int) -> float:
    """How long a ``W`` request of ``payload_bytes`` may take to be answered: ``ANSWER_S`` (a new
    worker's start: imports, the anchor, the lock) plus ``ANSWER_S_PER_MB`` per MB of frames. The
    worker answers once the rows are in segments and merges run beside it, so a merge never counts."""
    return ANSWER_S + ANSWER_S_PER_MB * payload_bytes / 1e6


class WorkerProcess:
    """The server side of one worker process: spawn, send a flush's frames, close."""

    def __init__(self, data_dir: Path, replica: str, flush_ms: int) -> None:
        from ..logs import format_in_force

        level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
        cmd = [sys.executable, "-c", _ENTRY, str(data_dir), replica or "-", str(flush_ms), format_in_force(), level]
        # its own session: a Ctrl-C meant for the server does not stop it mid-write; it exits
        # when the server closes its stdin (or dies)
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True, bufsize=0
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin: IO[bytes] = self._proc.stdin
        self._stdout: IO[bytes] = self._proc.stdout
        # non-blocking pipes: every wait on the worker is a poll with a deadline (a stopped worker
        # fills the pipe, then never answers)
        os.set_blocking(self._stdin.fileno(), False)
        os.set_blocking(self._stdout.fileno(), False)
        self._received = b""  # bytes of an answer read so far

    @property
    def pid(self) -> int:
        return self._proc.pid

    def write(self, frames: list[bytes]) -> dict[str, Any]:
        """Have the worker write ``frames`` as segments; its answer (see the module's doc).
        Raises OSError if the worker is gone, and :class:`WorkerTimeout` if it has not answered
        within :func:`answer_deadline_s` (the caller kills it, keeps the frames and starts another)."""
        from .journal import layout_frame

        payload = b"".join((layout_frame(), *frames))  # this process's record layout first
        request = _REQUEST.pack(b"W", len(payload)) + payload
        timeout_s = answer_deadline_s(len(request))
        deadline = time.monotonic() + timeout_s
        try:
            self._send(request, deadline)
            line = self._answer(deadline)
        except WorkerTimeout:
            raise WorkerTimeout(
                f"log worker {self._proc.pid} did not answer a write of {len(frames)} rows in {timeout_s:.0f} s"
            ) from None
        except (OSError, ValueError) as exc:
            raise OSError(f"log worker {self._proc.pid} is gone: {exc}") from exc
        if not line:
            raise OSError(f"log worker {self._proc.pid} exited ({self._proc.poll()})")
        try:
            reply: dict[str, Any] = orjson.loads(line)
        except orjson.JSONDecodeError as exc:  # out of step with us: replaced like a dead one
            raise OSError(f"log worker {self._proc.pid} answered {line[:80]!r}") from exc
        return reply

    def _send(self, data: bytes, deadline: float) -> None:
        view, fd = memoryview(data), self._stdin.fileno()
        while view:
            _wait_for(fd, select.POLLOUT, deadline)
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                continue

    def _answer(self, deadline: float) -> bytes:
        """The worker's answer line (b"" if it closed its stdout first)."""
        fd = self._stdout.fileno()
        while b"\n" not in self._received:
            _wait_for(fd, select.POLLIN, deadline)
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                return b""
            self._received += chunk
        line, _, self._received = self._received.partition(b"\n")
        return line + b"\n"

    def close(self, timeout_s: float | None = None) -> None:
        """Ask the worker to finish (its running merge) and exit; kill it after ``timeout_s``
        (``EXIT_WAIT_S``: a worker stopped while idle never reads the request)."""
        timeout_s = EXIT_WAIT_S if timeout_s is None else timeout_s
        # 5 bytes: never a partial write. It fails if the worker is gone or its pipe is full (it is
        # stopped): then it sees the end of stdin, or is killed after timeout_s
        with contextlib.suppress(OSError, ValueError):
            os.write(self._stdin.fileno(), _REQUEST.pack(b"C", 0))
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.error("log worker %d did not exit in %.0f s: killed", self._proc.pid, timeout_s)
            self.kill()
        self._stdout.close()

    def kill(self) -> None:
        """SIGKILL the worker and reap it. A process stuck in the kernel (a hung disk) dies only
        once its I/O returns: after ``KILL_WAIT_S`` it is left to be reaped later, not waited on."""
        with contextlib.suppress(OSError):
            self._proc.kill()
        for stream in (self._stdin, self._stdout):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            self._proc.wait(KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            log.error("log worker %d killed but not yet exited after %.0f s", self._proc.pid, KILL_WAIT_S)


def _wait_for(fd: int, event: int, deadline: float) -> None:
    """Return once ``fd`` is ready for ``event`` (or hung up); raise WorkerTimeout at ``deadline``."""
    poller = select.poll()
    poller.register(fd, event)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WorkerTimeout
        if poller.poll(min(left, 1.0) * 1000):
            return


def split_frames(payload: bytes) -> list[bytes]:
    """The journal frames a ``W`` payload holds, in order (a truncated tail is one frame too:
    it fails to decode, and counts as sent)."""
    out = []
    pos = 0
    while pos < len(payload):
        size = _FRAME.unpack_from(payload, pos)[1] if pos + _FRAME.size <= len(payload) else 0
        end = min(len(payload), pos + _FRAME.size + size)
        out.append(payload[pos:end])
        pos = end
    return out


def write_frames(writer: Any, payload: bytes, skip_logged: bool = False) -> dict[str, Any]:
    """Write the frames of ``payload`` through ``writer`` (an in-process, journal-less
    :class:`.writer.LogWriter`); the answer for the server. A frame that does not decode is
    logged and counted as written (it never will be).

    ``skip_logged`` (a new worker's first writes): records a segment of the series already holds
    are not written again — a worker killed after it renamed a flush's segment into place, before
    its answer reached the server, left them both there and in the server's buffer."""
    from . import journal as wal
    from .writer import encode_records

    frames = split_frames(payload)
    # the server's record layout: a server started before an upgrade of the installed code
    # outlives its first worker, and a worker started after it must read the server's frames
    names = wal.layout_of(frames[0]) if frames else None
    if names is not None:
        frames = frames[1:]
    records, first_frame = [], []  # first_frame[k]: the frame record k came from
    for i, frame in enumerate(frames):
        for rec in wal.decode(frame, names)[0]:
            records.append(rec)
            first_frame.append(i)
    if skip_logged and records:
        try:
            logged = logged_ids(writer, records)
        except Exception as exc:  # nothing written: the server sends the frames again, checked again
            return {"seq": writer._seq, "written": 0, "stripped": 0, "error": f"checking the log: {exc}"}
        if logged:
            log.warning(
                "log worker: %d rows the previous worker wrote but never confirmed are not written again", len(logged)
            )
            keep = [k for k, rec in enumerate(records) if rec.request_id not in logged]
            records, first_frame = [records[k] for k in keep], [first_frame[k] for k in keep]
    with writer._lock:
        before, stripped = writer.rows_written, writer.rows_stripped
        lines = encode_records(records)
        error = None
        try:
            for piece in pieces(lines, PIECE_BYTES):  # (none for no rows: no empty segment)
                writer._pending = piece
                writer._write_pending()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            # the server logs this error (throttled while it lasts: writer._FailureLog), not each retry here
            left = len(records) - (writer.rows_written - before)
            log.debug("log worker: %d of %d rows not written: %s", left, len(records), error)
        done = writer.rows_written - before
        writer._pending = []  # the server keeps what was not written and sends it again
        if done:
            writer._flushed.set()  # wake the compactor
    written = len(frames) if done >= len(records) else first_frame[done]
    return {"seq": writer._seq, "written": written, "stripped": writer.rows_stripped - stripped, "error": error}


# a segment's rows at most (but one row): a backlog kept while the disk was full is written as
# it fits, not as one JSON file of all of it, which no space smaller than it let through
PIECE_BYTES = 8 << 20


def pieces(lines: list[bytes], limit: int) -> list[list[bytes]]:
    """``lines`` in order, cut into runs of at most ``limit`` bytes (a longer line alone)."""
    out: list[list[bytes]] = []
    size = limit
    for line in lines:
        if size + len(line) > limit:
            out.append([])
            size = 0
        out[-1].append(line)
        size += len(line) + 1
    return out


LOGGED_SKEW_S = 60.0  # a segment's mtime vs. the server's clock (a shared volume's own clock)


def logged_ids(writer: Any, records: list[Any]) -> set[str]:
    """The ids of ``records`` that a segment of ``writer``'s series already holds. Only segments
    that appeared after the earliest record arrived can (a segment's mtime is when it appeared),
    and of those the ones a query reads now (:func:`.segments.visible`: none is deleted for 30 s)."""
    from .segments import listing, visible

    arrived = [r.ts for r in records if isinstance(r.ts, (int, float)) and r.ts == r.ts]
    since = min(arrived, default=0.0) - LOGGED_SKEW_S
    now = time.time()
    own = [(s, mtime) for s, mtime in listing(writer.directory) if s.lo > 0 and s.replica == writer.replica]
    shown = visible(own, now)
    files = [str(s.path) for s, mtime in own if s.path.name in shown and mtime >= since]
    if not files:
        return set()
    ids = [r.request_id for r in records]
    rows = writer._con.execute(
        "SELECT DISTINCT request_id FROM read_parquet(?) WHERE request_id IN (SELECT unnest(?::VARCHAR[]))",
        [files, ids],
    ).fetchall()
    return {r[0] for r in rows}


def _read_exact(stream: IO[bytes], n: int) -> bytes | None:
    data = stream.read(n) if n else b""
    return data if len(data) == n else None


def serve(data_dir: str, replica: str, flush_ms: int, stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The worker's loop: answer ``W`` requests until ``C`` or the end of ``stdin``."""
    from .segments import log_dir
    from .writer import LogWriter

    directory = log_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(worker_lock(directory, replica), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)  # held until this process exits
    writer = LogWriter(data_dir, flush_ms=flush_ms, journal=False, replica=replica or None)
    # until this worker has written something, what the server sends may already be in a segment
    # (a killed predecessor's last write): write_frames skips those records
    unchecked = True
    try:
        while (head := _read_exact(stdin, _REQUEST.size)) is not None:
            op, size = _REQUEST.unpack(head)
            payload = _read_exact(stdin, size)
            if op != b"W" or payload is None:
                break  # C, or the server died mid-request (its frames are in its journal)
            reply = write_frames(writer, payload, skip_logged=unchecked)
            unchecked = unchecked and reply["written"] == 0
            try:
                stdout.write(orjson.dumps(reply) + b"\n")
                stdout.flush()
            except BrokenPipeError:  # the server died while this wrote its flush: not an error of ours
                log.info("log worker: the server is gone (its answer pipe is closed); exiting")
                break
    finally:
        writer.close()
        os.close(lock_fd)


def main(argv: list[str]) -> int:
    """``<data dir> <replica or -> <flush ms> <log format> <log level>`` (the server's)."""
    from ..logs import configure

    data_dir, replica, flush_ms, log_format, log_level = argv[0], argv[1], int(argv[2]), argv[3], argv[4]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when this process ends
    configure(log_level, log_format, process="log-worker")  # the server's format: JSON lines stay JSON
    # the protocol's own descriptor (anything printed goes to stderr), unbuffered: an answer is one
    # write of a short line, and nothing is left to flush at exit once the server is gone
    answers = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    serve(data_dir, "" if replica == "-" else replica, flush_ms, sys.stdin.buffer, answers)
    return 0
