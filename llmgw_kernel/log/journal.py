"""The write-ahead journal: every answered request's record, on disk before its last byte.

The proxy appends one framed record per request to ``<data_dir>/log/journal/journal-<seq>-<n>.wal``
(``O_APPEND``, one ``os.write``; no fsync: written data survives a process crash, not a
power loss). The writer thread turns records into Parquet rows as before; when a flush has
put a journal file's records into a segment it deletes that file, so the journal holds at
most the rows of the last ``flush_ms``. At the next start the writer folds what a crash left
in the journal into a segment (skipping records already in a segment) and deletes it.

A frame is ``magic | body length | crc32(body) | body`` (little-endian u32s); ``body`` is a
u32 header length, an orjson header (the record's plain attributes and the lengths of its
byte fields) and the byte fields. A torn last frame (the process died mid-write) fails its
length or CRC check and is skipped (as is a frame a failed write left partial: decoding
resumes at the next valid frame).

Each file starts with a *layout* frame (its own magic; body: the names of the plain
attributes, in the order the records list them), so a journal left by a crash decodes after an
upgrade that added, removed or reordered record fields (fields it lacks are None). Files from
before layout frames are decoded by the layouts those releases wrote.

>>> rec = RequestRecord("req_1", 1.5, "chat.completions")
>>> rec.request_raw, rec.metadata = b'{"model": "m"}', {"team": "a"}
>>> frame = encode(rec)
>>> [(r.request_id, r.request_raw, r.metadata) for r in decode(frame + frame[:-3])[0]]
[('req_1', b'{"model": "m"}', {'team': 'a'})]
"""

from __future__ import annotations

import logging
import operator
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import orjson

from .record import RequestRecord, unserializable
from .schema import ROUTE_DRAW_V1

log = logging.getLogger("llmgw.log")

MAGIC = 0x4C4A524E
LAYOUT_MAGIC = 0x4C4A4C59
_FRAME = struct.Struct("<III")  # magic, body length, crc32 of the body
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_U32 = struct.Struct("<I")
_BYTES_FIELDS = ("request_raw", "response_raw", "stream_events", "embedding")
_PLAIN = tuple(s for s in RequestRecord.__slots__ if s not in _BYTES_FIELDS)
_PLAIN_SET = frozenset(_PLAIN)
_plain_values = operator.attrgetter(*_PLAIN)  # one C call for all of them
#: the plain attributes of the releases that wrote no layout frame, by their count
_V1_LAYOUT = (
        "request_id", "client_request_id", "ts", "ts_end", "endpoint", "route", "policy_version", "stream", "status",
        "outcome", "error_type", "error_message", "plan", "route_reason", "target", "provider", "upstream_model",
        "attempts", "latency_ms", "ttft_ms", "upstream_ms", "usage", "metadata", "user_agent", "body_mode", "api",
        "retries", "backoff_ms", "key_id", "temperature", "cost_usd", "cache", "cache_reason", "cache_similarity",
        "cache_source", "saved_usd", "cache_control", "cache_ns_header", "cache_namespace", "cache_key",
        "cache_context", "cache_stored_ts", "cache_features", "embedding_model", "team", "end_user", "key_version",
        "admission", "admission_reason", "budget_flags", "admitted_ts", "settled_ts", "reserved_usd",
        "reserved_tokens", "usage_estimated",
)  # fmt: skip
_UNLABELLED_LAYOUTS: dict[int, tuple[str, ...]] = {len(_V1_LAYOUT): _V1_LAYOUT}
_OPTS = orjson.OPT_SERIALIZE_NUMPY
JOURNAL_RE = re.compile(r"^journal-(\d{16})-(\d{6})\.wal$")


def journal_dir(data_dir: str | os.PathLike[str], replica: str = "") -> Path:
    """``<data_dir>/log/journal``; a replica's journal is ``<data_dir>/log/journal/<replica>``."""
    root = Path(data_dir) / "log" / "journal"
    return root / replica if replica else root


def journal_name(seq: int, n: int) -> str:
    """A journal file opened when the writer's next segment was ``seq``: its records can only
    be in segments ``seq`` and later."""
    return f"journal-{seq:016d}-{n % 1_000_000:06d}.wal"


def encode(rec: RequestRecord) -> bytes:
    """One record as a frame (runs on the event loop: no hashing, parsing or decoding)."""
    values = _plain_values(rec)
    blobs = [rec.request_raw or b""]
    lens: list[Any] = [len(blobs[0]), -1, None, -1]
    if rec.response_raw is not None:
        blobs.append(rec.response_raw)
        lens[1] = len(rec.response_raw)
    if rec.stream_events is not None:
        blobs.extend(rec.stream_events)
        lens[2] = [len(e) for e in rec.stream_events]
    if rec.embedding is not None:
        emb = _embedding_bytes(rec.embedding)
        blobs.append(emb)
        lens[3] = len(emb)
    try:
        header = orjson.dumps((values, lens), option=_OPTS)
    except (orjson.JSONEncodeError, TypeError, ValueError, RecursionError):
        header = orjson.dumps(([_jsonable(v) for v in values], lens), option=_OPTS)
    body = b"".join((_U32.pack(len(header)), header, *blobs))
    return _FRAME.pack(MAGIC, len(body), zlib.crc32(body)) + body


def layout_of(frame: bytes) -> tuple[str, ...] | None:
    """The field names a layout frame lists (None: ``frame`` is not an intact layout frame)."""
    if len(frame) < _FRAME.size:
        return None
    magic, size, crc = _FRAME.unpack_from(frame, 0)
    body = frame[_FRAME.size : _FRAME.size + size]
    if magic != LAYOUT_MAGIC or len(body) != size or zlib.crc32(body) != crc:
        return None
    return tuple(orjson.loads(body))


def layout_frame() -> bytes:
    """The frame that starts every journal file: the names of the record's plain attributes."""
    body = orjson.dumps(_PLAIN)
    return _FRAME.pack(LAYOUT_MAGIC, len(body), zlib.crc32(body)) + body


def decode(data: bytes, names: tuple[str, ...] | None = None) -> tuple[list[RequestRecord], int]:
    """The records of a journal file's bytes, and how many bytes were skipped: a torn last
    frame (the process died mid-write), or a frame a failed write left partial, after which
    decoding resumes at the next frame whose magic, length and CRC check out. ``names``: the
    layout of records before the first layout frame (:func:`layout_of`)."""
    out: list[RequestRecord] = []
    pos, end, skipped = 0, len(data), 0
    while pos + _FRAME.size <= end:
        magic, size, crc = _FRAME.unpack_from(data, pos)
        body = data[pos + _FRAME.size : pos + _FRAME.size + size]
        if magic == LAYOUT_MAGIC and len(body) == size and zlib.crc32(body) == crc:
            names = tuple(orjson.loads(body))
            pos += _FRAME.size + size
            continue
        if magic != MAGIC or len(body) != size or zlib.crc32(body) != crc:
            resume = data.find(_MAGIC_BYTES, pos + 1)
            resume = end if resume < 0 else resume
            skipped += resume - pos
            pos = resume
            continue
        pos += _FRAME.size + size
        try:
            out.append(_record(body, names))
        except Exception:  # a well-framed record we cannot rebuild: skip it, keep the others
            log.exception("journal: skipped a record that could not be decoded")
    return out, skipped + (end - pos)


def _record(body: bytes, names: tuple[str, ...] | None = None) -> RequestRecord:
    (hlen,) = _U32.unpack_from(body, 0)
    values, (req_len, resp_len, event_lens, emb_len) = orjson.loads(body[4 : 4 + hlen])
    if names is None:
        names = _PLAIN if len(values) == len(_PLAIN) else _UNLABELLED_LAYOUTS.get(len(values))
        if names is None:
            raise ValueError(f"a record of {len(values)} fields and no layout")
    if names == _PLAIN:
        rec = RequestRecord.__new__(RequestRecord)
        for name, value in zip(_PLAIN, values, strict=True):
            setattr(rec, name, value)
    else:  # another release's layout: the fields this one knows, the others at their defaults
        rec = RequestRecord("", 0.0, "")
        for name, value in zip(names, values, strict=True):
            if name in _PLAIN_SET:
                setattr(rec, name, value)
        if "route_draw" not in names:  # written before the draw was logged: served by the first draw
            rec.route_draw = ROUTE_DRAW_V1
    if rec.plan is not None:
        rec.plan = tuple(rec.plan)
    pos = 4 + hlen
    rec.request_raw, pos = body[pos : pos + req_len], pos + req_len
    rec.response_raw = None
    if resp_len >= 0:
        rec.response_raw, pos = body[pos : pos + resp_len], pos + resp_len
    rec.stream_events = None
    if event_lens is not None:
        rec.stream_events = []
        for n in event_lens:
            rec.stream_events.append(body[pos : pos + n])
            pos += n
    rec.embedding = None
    if emb_len >= 0:
        import numpy as np

        rec.embedding = np.frombuffer(body[pos : pos + emb_len], dtype=np.float32).copy()
    return rec


def _embedding_bytes(embedding: Any) -> bytes:
    import numpy as np

    return np.asarray(embedding, dtype=np.float32).tobytes()


def _jsonable(value: Any) -> Any:
    try:
        orjson.dumps(value, option=_OPTS)
    except (orjson.JSONEncodeError, TypeError, ValueError, RecursionError) as exc:
        return unserializable(exc)
    return value


class Journal:
    """The open journal file of one writer. ``append`` is called under the writer's append
    lock; ``rotate`` starts a new file and returns the finished one's path."""

    def __init__(self, directory: Path, seq: int) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._n = 0
        self.errors = 0
        self._write_error: str | None = None
        self._open_error: str | None = None  # the last rotation could not create its file
        self.path = directory / journal_name(seq, self._n)
        self._fd = self._open(self.path)

    def _open(self, path: Path) -> int:
        """Open a new journal file and write its layout frame first. A failed write (disk full)
        is reported like a failed append, so a server started on a full disk says so at once."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        # records still decode positionally while the layout is this one's
        self._write(fd, layout_frame(), f"could not write the layout frame of {path}")
        return fd

    @property
    def last_error(self) -> str | None:
        """Why the journal does not keep records crash-safe right now (None: it does)."""
        return self._open_error or self._write_error

    @property
    def stuck(self) -> bool:
        """A write failed or the last rotation could not create its file: the writer rotates at
        every flush, records or not, until a new file's layout frame is written. Waiting for the
        next record instead left ``last_error`` (``/health`` 503) standing after the disk had room
        again, for as long as no request came."""
        return self.last_error is not None

    def append(self, frame: bytes) -> None:
        # the row still reaches the segment; only crash safety is lost
        self._write(self._fd, frame, "write failed (rows are not crash-safe until it works again)")

    def _write(self, fd: int, data: bytes, what: str) -> None:
        """Write ``data`` whole; a failure is counted and kept in ``last_error`` (logged the first
        time only) until a later write succeeds."""
        try:
            written = os.write(fd, data)
            while written < len(data):  # short writes happen only when the disk fills up
                written += os.write(fd, data[written:])
            if self._write_error is not None:  # writable again
                self._write_error = None
        except OSError as exc:
            if not self.errors:
                log.error("journal %s: %s", what, exc)
            self.errors += 1
            self._write_error = f"{type(exc).__name__}: {exc}"

    def rotate(self, seq: int) -> Path:
        """Continue in a new file (its records go to segments ``seq`` and later) and return the
        finished one's path. Never raises: when the new file cannot be created (a read-only or
        full directory) or its layout frame cannot be written (a full disk) the records go on
        into the current file's descriptor, ``last_error`` says why (``/health`` 503) until a
        rotation succeeds, and the current path is returned as finished — deleted once its rows
        are in segments, so crash safety is lost meanwhile, not the rows (a raise here lost the
        flush's rows, already taken from the writer's buffer)."""
        self._n += 1
        old = self.path
        path = self.directory / journal_name(seq, self._n)
        try:
            fd = self._open(path)
        except OSError as exc:
            self._open_error = f"cannot start a new journal file: {type(exc).__name__}: {exc}"
            if not self.errors:
                log.error("journal %s (rows are not crash-safe until it works again)", self._open_error)
            self.errors += 1
            return old
        self._open_error = None
        if self._write_error is not None:  # its layout frame did not fit: the disk is still full
            os.close(fd)  # go on in the current file, not one more empty file per flush
            path.unlink(missing_ok=True)
            return old
        os.close(self._fd)
        self.path, self._fd = path, fd
        return old

    def close(self) -> Path:
        os.close(self._fd)
        return self.path


def journal_files(directory: Path) -> list[tuple[int, Path]]:
    """``(first segment seq, path)`` of every journal file, oldest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), int(m.group(2)), directory / n) for n in names if (m := JOURNAL_RE.match(n))]
    return [(seq, path) for seq, _, path in sorted(found)]
