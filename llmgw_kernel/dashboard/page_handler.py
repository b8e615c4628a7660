"""A page's first bytes before Panel makes its session.

Panel sends a page's HTML only once it has made the session: run the page's Python (the
frame, the filter bar, the body's panes), so the "Loading…" line at the top of the HTML
(:data:`.frame.BOOT_PREFIX`) waited for all of it — 0.4–3 s on a loaded machine, more on the
overview. Every page's HTML starts with the same bytes (:data:`.frame.BOOT_TEMPLATE` renders a
head that does not depend on the session, then that line), so this handler sends them and
flushes before it asks Panel for the session, then sends the rest of the page Panel renders.

Should a rendered page not start with those bytes (a template that is not the frame's), it is
sent whole after them, which a browser reads as one document (the second ``<!DOCTYPE>``,
``<html>``, ``<head>`` and ``<body>`` tags are ignored, their contents kept), and a warning is
logged. Should making the session fail after the bytes went out, the page says so instead of
Tornado's error page (the status line is sent already).

A page loads only the scripts its models need (:data:`SCRIPTS`): Bokeh's core, widgets and
tables bundles (Panel's own bundle requires the last two) — not Bokeh's WebGL bundle, which
only a WebGL figure needs (no page draws a Bokeh figure), nor Tabulator's and luxon's (no page
has a Tabulator): 0.7 of the 3.4 MB of JavaScript a browser parsed and ran on every page load.

Sessions are bounded (:class:`SessionLimits`, read from the environment): a page asked for
while ``LLMGW_DASHBOARD_MAX_SESSIONS`` sessions exist or are being made, or while
``LLMGW_DASHBOARD_MAX_PENDING_SESSIONS`` are being made, is answered a 503 with ``Retry-After``
before any byte of the page (and a warning logged, at most one line per 10 s): a client that
hangs up after the first bytes leaves a session behind (~1 MB), which Bokeh discards once it
has had no websocket for ``LLMGW_DASHBOARD_SESSION_IDLE_S`` seconds (panel_thread.py).
"""

from __future__ import annotations

import html
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from bokeh.resources import Component
from panel.io.server import DocHandler

from .frame import BOOT_PREFIX

log = logging.getLogger("llmgw.dashboard")

_REFUSAL_LOG_EVERY_S = 10.0

#: Bokeh's bundles a page loads (Bokeh's default adds "bokeh-gl"; "bokeh-mathjax" Panel drops
#: when no model asks for it). panel.min.js requires the widgets and tables bundles at load.
SCRIPTS: list[Component] = ["bokeh", "bokeh-widgets", "bokeh-tables", "bokeh-mathjax"]
RETRY_AFTER_S = 5


@dataclass(frozen=True)
class SessionLimits:
    """How many dashboard sessions may exist (or be in the making) and how long one without a
    websocket lives. Defaults a team of operators never reaches: each open tab holds one
    session; Bokeh's own idle time, 15 s, is kept (a page whose browser still runs its scripts has
    no websocket yet: 3-4 s at load 14), but looked for every 3 s (it was every 17 s)."""

    max_sessions: int = 200
    max_pending: int = 16
    idle_s: float = 15.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SessionLimits:
        """``LLMGW_DASHBOARD_MAX_SESSIONS``, ``LLMGW_DASHBOARD_MAX_PENDING_SESSIONS`` (positive
        integers), ``LLMGW_DASHBOARD_SESSION_IDLE_S`` (seconds, > 0); a ValueError names a bad one."""
        env = dict(os.environ) if env is None else env
        default = cls()
        values: dict[str, Any] = {}
        for field, name, kind in (
            ("max_sessions", "LLMGW_DASHBOARD_MAX_SESSIONS", int),
            ("max_pending", "LLMGW_DASHBOARD_MAX_PENDING_SESSIONS", int),
            ("idle_s", "LLMGW_DASHBOARD_SESSION_IDLE_S", float),
        ):
            raw = env.get(name, "").strip()
            if not raw:
                values[field] = getattr(default, field)
                continue
            try:
                value = kind(raw)
            except ValueError:
                value = 0
            if not value > 0 or value != value or value == float("inf"):
                raise ValueError(f"{name} must be a positive {'integer' if kind is int else 'number'}, not {raw!r}")
            values[field] = value
        return cls(**values)


_state = {"making": 0, "refused": 0, "logged_at": float("-inf")}


class EarlyPageHandler(DocHandler):  # type: ignore[misc]
    """Panel's page handler, with the page's constant first bytes sent before the session."""

    _llmgw_early = False
    limits = SessionLimits()  # install() sets the environment's

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self._refused():
            return
        _state["making"] += 1
        try:
            await self._get(*args, **kwargs)
        finally:
            _state["making"] -= 1

    def _refused(self) -> bool:
        """Answer 503 when a new session would pass a limit (before any byte of the page)."""
        making = _state["making"]
        existing = sum(len(list(ctx.sessions)) for ctx in self.application._applications.values())
        limits = self.limits
        if making < limits.max_pending and existing + making < limits.max_sessions:
            return False
        _state["refused"] += 1
        now = time.monotonic()
        if now - _state["logged_at"] >= _REFUSAL_LOG_EVERY_S:
            log.warning(
                "dashboard page %s refused (503): %d sessions, %d being made (limits %d, %d: "
                "LLMGW_DASHBOARD_MAX_SESSIONS, LLMGW_DASHBOARD_MAX_PENDING_SESSIONS); %d refused so far",
                self.request.path, existing, making, limits.max_sessions, limits.max_pending, _state["refused"],
            )  # fmt: skip
            _state["logged_at"] = now
        self._llmgw_refused = True
        self.set_status(503)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Retry-After", str(RETRY_AFTER_S))
        self.finish(
            f"the dashboards are at their session limit ({existing} open, {making} being made; "
            f"LLMGW_DASHBOARD_MAX_SESSIONS={limits.max_sessions}, "
            f"LLMGW_DASHBOARD_MAX_PENDING_SESSIONS={limits.max_pending}); "
            f"try again in {RETRY_AFTER_S} s\n"
        )
        return True

    def _log(self) -> None:
        """Tornado's access line for each request (an error line per 503), except a refusal:
        those are counted in one warning per 10 s, not a line each, whatever their rate."""
        if not getattr(self, "_llmgw_refused", False):
            super()._log()

    async def _get(self, *args: Any, **kwargs: Any) -> None:
        if not _plain_request(self):
            await self._panel_get(*args, **kwargs)
            return
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")  # as Panel's: the page embeds a session token
        super().write(BOOT_PREFIX)
        self._llmgw_early = True
        await self.flush()
        try:
            await self._panel_get(*args, **kwargs)
        except Exception as exc:  # the status line is out: say it in the page
            log.exception("dashboard page %s failed", self.request.path)
            self._llmgw_early = False
            super().write(f'<div data-error="1">the page could not be built: {html.escape(str(exc))}</div>')

    async def head(self, *args: Any, **kwargs: Any) -> None:
        """What a ``GET`` would start with, no body and no session (uptime monitors, link
        checkers: Tornado answered them 405 while every API route answers ``HEAD`` as ``GET``)."""
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")

    async def _panel_get(self, *args: Any, **kwargs: Any) -> None:
        pending = super().get(*args, **kwargs)
        if pending is not None:
            await pending

    def write(self, chunk: Any) -> None:
        if self._llmgw_early and isinstance(chunk, str | bytes):
            self._llmgw_early = False
            text = chunk.decode("utf-8") if isinstance(chunk, bytes) else chunk
            if text.startswith(BOOT_PREFIX):
                chunk = text[len(BOOT_PREFIX) :]
            else:
                log.warning("dashboard page %s: its HTML does not start with the frame's", self.request.path)
        super().write(chunk)


def _plain_request(handler: Any) -> bool:
    """A page request Panel answers with the page itself: no app prefix redirect, no login or
    authorization step (llmgw configures none: the proxy checks the dashboard token)."""
    from panel.config import config

    if getattr(config, "authorize_callback", None) or getattr(config, "oauth_provider", None):
        return False
    if getattr(config, "basic_auth", None):
        return False
    prefix = handler.application.prefix
    return not (prefix and handler.request.path == prefix and not prefix.endswith("/"))


def install(limits: SessionLimits | None = None) -> None:
    """Serve every Panel page of this process through :class:`EarlyPageHandler` (before
    ``pn.serve``: Bokeh builds each app's routes from this list), with ``limits``, loading only
    :data:`SCRIPTS` of Bokeh's bundles."""
    from bokeh.resources import Resources
    from bokeh.server.urls import per_app_patterns

    # the server's page resources are Resources(mode="server") with the default components (the
    # page handler gets them from Bokeh's application: no argument to pass them through)
    Resources._default_components = list(SCRIPTS)
    EarlyPageHandler.limits = limits or SessionLimits.from_env()

    per_app_patterns[:] = [(p[0], EarlyPageHandler, *p[2:]) if p[1] is DocHandler else p for p in per_app_patterns]


__all__ = ["SCRIPTS", "EarlyPageHandler", "SessionLimits", "install"]
