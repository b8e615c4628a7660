"""When and where a dashboard page's queries run, and how their answer reaches the page.

A page's queries start when its session is created, on a worker thread, while Panel builds
the session's document and the browser fetches it — not at the browser's ``onload``, which
comes only after the frame was sent, parsed and laid out. The answer is shown on the
session's own loop (Bokeh's ``add_next_tick_callback``, the one thread-safe way into a
document): if it is ready before the browser pulls the document, the page arrives filled in
one message; otherwise it is sent as a patch when it is ready.

A page over a live window refreshes on a timer, but never more often than every
:data:`REFRESH_COST_RATIO` times its last fill took (a page whose queries take 1 s over a
1M-row log refreshes at most every 30 s; a page over a small log every ``refresh_ms``), never
while a fill is running, and never for a range that ended (the log only appends). So open
tabs cost the dashboard process at most ~1/30 of a core each, however large the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from .context import Context
from .filters import Filters

log = logging.getLogger("llmgw.dashboard")

#: a refresh waits at least this many times the last fill's duration
REFRESH_COST_RATIO = 30.0
#: worker threads for every session's queries (DuckDB itself is one connection behind a lock;
#: the second thread overlaps one page's pandas work with another's DuckDB query)
QUERY_THREADS = 2
_POOL = ThreadPoolExecutor(max_workers=QUERY_THREADS, thread_name_prefix="llmgw-dashboard-query")


class Body(Protocol):
    """A page's content. ``query`` runs on a worker thread: it may read widget values but
    never changes a model; ``show`` runs on the session's loop and fills the panes."""

    def panes(self) -> list[Any]: ...

    def query(self, ctx: Context, filters: Filters) -> Any: ...

    def show(self, data: Any) -> None: ...


class Options(Protocol):
    """The filter bar's side of a fill: its choices, queried with the body's data."""

    def query_options(self, filters: Filters) -> dict[str, list[str]]: ...


@dataclass(frozen=True)
class Answer:
    """One fill's result: the filter options and the body's data, or the error."""

    filters: Filters
    options: dict[str, list[str]]
    data: Any
    took_s: float
    error: BaseException | None = None


class PageFill:
    """Queries a page off the session's loop and shows the newest answer on it."""

    def __init__(
        self,
        ctx: Context,
        bar: Options,
        body: Body,
        on_answer: Callable[[Answer], None],
        doc: Any | None,
        loop: Any | None = None,
    ) -> None:
        self.ctx = ctx
        self.bar = bar
        self.body = body
        self.on_answer = on_answer
        self.doc: Any = doc  # None outside a server: fills run in place
        self._loop: Any = loop  # the session's Tornado IOLoop: the current one unless given
        if doc is not None and loop is None:  # built on the session's loop (Panel runs a page there)
            from tornado.ioloop import IOLoop

            self._loop = IOLoop.current()
        self._generation = 0
        self._busy = False
        self._done_at = float("-inf")
        self._took_s = 0.0

    @property
    def busy(self) -> bool:
        return self._busy

    def start(self, filters: Filters) -> None:
        """Query for ``filters`` now; an answer to an older start is dropped when it arrives."""
        self._generation += 1
        generation = self._generation
        self._busy = True
        if self.doc is None:
            self._deliver(generation, self._query(filters))
            return
        future = _POOL.submit(self._query, filters)
        future.add_done_callback(lambda f: self._schedule(generation, f))

    def due(self, filters: Filters, now: float, refresh_s: float) -> bool:
        """Whether a timed refresh should run now (see the module's docstring)."""
        if self._busy or not may_change(filters, now):
            return False
        wait_s = max(refresh_s, REFRESH_COST_RATIO * self._took_s)
        return time.monotonic() - self._done_at >= wait_s

    def _query(self, filters: Filters) -> Answer:
        t0 = time.perf_counter()
        try:
            options = self.bar.query_options(filters)
            data = self.body.query(self.ctx, filters)
        except Exception as exc:  # shown on the page; the session lives on
            return Answer(filters, {}, None, time.perf_counter() - t0, exc)
        return Answer(filters, options, data, time.perf_counter() - t0)

    def _schedule(self, generation: int, future: Future[Answer]) -> None:
        """On the worker thread: hand the answer to the session's loop. Never through the
        document from here: an answer ready while Bokeh is still making the session (a fast
        query) raced its ``ServerSession`` taking over the document's callbacks, and was lost
        (the page kept "Loading…" for good). ``IOLoop.add_callback`` is Tornado's one
        thread-safe entry; on the loop, the session is either not begun or complete."""
        answer = future.result()
        self._loop.add_callback(self._on_loop, generation, answer)

    def _on_loop(self, generation: int, answer: Answer) -> None:
        try:
            self.doc.add_next_tick_callback(lambda: self._deliver(generation, answer))
        except Exception:  # the session was destroyed while its query ran
            log.debug("dashboards: a page closed before its answer arrived")

    def _deliver(self, generation: int, answer: Answer) -> None:
        if generation != self._generation:
            return  # a newer start is running; its answer follows
        self._busy = False
        self._done_at = time.monotonic()
        self._took_s = answer.took_s
        self.on_answer(answer)


def may_change(filters: Filters, now: float) -> bool:
    """Whether a refresh can show anything new: not for a range that ended more than
    :data:`~.filters.SETTLE_S` ago (:meth:`~.filters.Filters.settled`)."""
    return not filters.settled(now)


__all__ = ["QUERY_THREADS", "REFRESH_COST_RATIO", "Answer", "Body", "Options", "PageFill", "may_change"]
