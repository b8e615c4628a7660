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
"""

from __future__ import annotations

import html
import logging
from typing import Any

from panel.io.server import DocHandler

from .frame import BOOT_PREFIX

log = logging.getLogger("llmgw.dashboard")


class EarlyPageHandler(DocHandler):  # type: ignore[misc]
    """Panel's page handler, with the page's constant first bytes sent before the session."""

    _llmgw_early = False

    async def get(self, *args: Any, **kwargs: Any) -> None:
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


def install() -> None:
    """Serve every Panel page of this process through :class:`EarlyPageHandler` (before
    ``pn.serve``: Bokeh builds each app's routes from this list)."""
    from bokeh.server.urls import per_app_patterns

    per_app_patterns[:] = [(p[0], EarlyPageHandler, *p[2:]) if p[1] is DocHandler else p for p in per_app_patterns]


__all__ = ["EarlyPageHandler", "install"]
