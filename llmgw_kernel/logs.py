"""The server's own logs: human-readable lines (the default), or JSON lines for a log pipeline
(``llmgw serve --log-format json``, or ``LLMGW_LOG_FORMAT=json``).

In JSON, every event is one object on one line: ``ts`` (UTC ISO 8601), ``level``, ``logger``,
``event`` (the message), plus the event's own fields. Besides the server's events (start,
reloads, errors, uvicorn's), each finished request is one ``event: "request"`` line from the
``llmgw.access`` logger with the fields of :data:`ACCESS_FIELDS` — ids, route, target, status,
latency, policy version, cache and admission outcome, tokens and cost; **never bodies,
credentials or keys** (``key_id`` is the key's fingerprint). Request lines are written by the
request log's writer thread when the row is flushed (within ``log.flush_ms``), so they cost the
event loop nothing; their ``ts`` is when the line was written, ``arrived`` the request's arrival.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from .log.record import RequestRecord

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
access = logging.getLogger("llmgw.access")

#: request fields of an access event, in order (attribute names of the log record)
ACCESS_FIELDS = (
    "request_id", "client_request_id", "api", "endpoint", "route", "target", "provider", "status", "outcome",
    "error_type", "error_message", "stream", "latency_ms", "ttft_ms", "upstream_ms", "retries", "policy_version",
    "cache", "admission", "admission_reason", "team", "end_user", "key_id", "cost_usd",
)  # fmt: skip
#: attributes every logging.LogRecord has: anything else passed in ``extra`` is an event field
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line; ``extra={...}`` fields become top-level keys; ``process`` (the
    dashboards' child: ``panel``) is a ``process`` field on every line."""

    def __init__(self, process: str | None = None) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        if self.process:
            out["process"] = self.process
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


#: what a text line shows escaped: C0 controls but tab and newline, DEL, C1 controls, and the
#: characters other readers take for a line break (str.splitlines: \v \f \x1c-\x1e \x85 U+2028 U+2029)
_ESCAPED = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0)) if c not in (0x09, 0x0A)}
_ESCAPED |= {0x2028: "\\u2028", 0x2029: "\\u2029"}


class TextFormatter(logging.Formatter):
    """The human-readable lines, one entry per event whatever text it carries: a client's text
    in a message (a model name, an upstream's error quoting the prompt) cannot start a line of
    its own (CWE-117) — a line break continues the entry indented by two spaces — nor reach a
    terminal as a control sequence (ESC, CR, NUL are shown as ``\\x1b``, ``\\x0d``, ``\\x00``).
    Every line that starts at column 0 is an entry the server wrote."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).translate(_ESCAPED).replace("\n", "\n  ")


def configure(level: str = "info", fmt: str | None = None, process: str | None = None) -> str:
    """Set up the root logger on stderr in ``fmt`` (``text`` | ``json``; default
    ``$LLMGW_LOG_FORMAT``, else text). ``process`` names a child process of the server on
    every line (``name[panel]:`` in text, ``"process": "panel"`` in JSON). Returns the format
    in force."""
    fmt = (fmt or os.environ.get("LLMGW_LOG_FORMAT") or "text").lower()
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    text = TEXT_FORMAT.replace("%(name)s:", f"%(name)s[{process}]:") if process else TEXT_FORMAT
    handler.setFormatter(JsonFormatter(process) if fmt == "json" else TextFormatter(text))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    access.disabled = fmt != "json"  # one line per request only where a pipeline reads them
    return fmt


def format_in_force() -> str:
    """``json`` when :func:`configure` set JSON lines up, else ``text`` (what a child process
    of the server is told to use, whether the format came from the flag or the environment)."""
    handlers = logging.getLogger().handlers
    return "json" if any(isinstance(h.formatter, JsonFormatter) for h in handlers) else "text"


class _LinesToLog(io.TextIOBase):
    """A text stream whose every line becomes one log event (what a library prints)."""

    def __init__(self, logger: logging.Logger, level: int, fd: int) -> None:
        self._logger, self._level, self._partial, self._fd = logger, level, "", fd
        self._busy = threading.local()  # logging's own error report must not loop back here

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        """The descriptor it stands for (faulthandler, subprocess): what is written there is not JSON."""
        return self._fd

    def write(self, text: str) -> int:
        if getattr(self._busy, "on", False):
            return sys.__stderr__.write(text) if sys.__stderr__ else len(text)
        self._busy.on = True
        try:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
            for line in lines:
                if line.strip():
                    self._logger.log(self._level, line.rstrip())
        finally:
            self._busy.on = False
        return len(text)

    def flush(self) -> None:
        if self._partial.strip():
            self._logger.log(self._level, self._partial.rstrip())
        self._partial = ""


def stdio_as_events() -> None:
    """Make everything else a process writes a log event, for JSON lines that stay JSON: an
    uncaught exception (any thread) is one ``error`` event with its ``exception``, warnings go
    through ``py.warnings``, and ``print`` to stdout or stderr is one event a line (logger
    ``stdout`` / ``stderr``). Call after :func:`configure` (its handler keeps the real stderr)."""
    crash = logging.getLogger("llmgw.uncaught")

    def uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        crash.error("uncaught %s: %s", kind.__name__, exc, exc_info=(kind, exc, tb))

    def uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None and not isinstance(args.exc_value, SystemExit):
            name = args.thread.name if args.thread else "?"
            crash.error("uncaught in thread %s: %s", name, args.exc_value,
                        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # fmt: skip

    sys.excepthook = uncaught
    threading.excepthook = uncaught_in_thread
    logging.captureWarnings(True)
    sys.stdout = _LinesToLog(logging.getLogger("stdout"), logging.INFO, 1)
    sys.stderr = _LinesToLog(logging.getLogger("stderr"), logging.WARNING, 2)


def access_events(records: Iterable[RequestRecord]) -> None:
    """Log one ``request`` event per finished request (called by the log writer's thread)."""
    if access.disabled or not access.isEnabledFor(logging.INFO):
        return
    for rec in records:
        fields = {name: getattr(rec, name, None) for name in ACCESS_FIELDS}
        usage = rec.usage if isinstance(rec.usage, dict) else {}
        fields["prompt_tokens"] = usage.get("prompt_tokens")
        fields["completion_tokens"] = usage.get("completion_tokens")
        fields["attempts"] = len(rec.attempts or ())
        fields["arrived"] = _iso(rec.ts)
        access.info("request", extra=fields)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
