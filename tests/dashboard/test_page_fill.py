"""PageFill: a page's queries run off the session's loop, start at once, and only the newest
answer is shown; a live window's refresh waits in proportion to what the last fill cost."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.page_fill import REFRESH_COST_RATIO, Answer, PageFill


class _Doc:
    """Stands in for a Bokeh document: the callbacks are run when the test says so, as the
    session's loop would on its next tick; records which thread added each."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []
        self.threads: list[str] = []
        self.added = threading.Event()

    def add_next_tick_callback(self, callback: Any) -> None:
        self.threads.append(threading.current_thread().name)
        self.callbacks.append(callback)
        self.added.set()


@pytest.fixture(scope="module")
def loop():
    """A real Tornado IOLoop on its own thread, named as a session's loop would run."""
    from tornado.ioloop import IOLoop

    ready: list[IOLoop] = []
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        ready.append(IOLoop.current())
        started.set()
        ready[0].start()

    thread = threading.Thread(target=run, name="session-loop", daemon=True)
    thread.start()
    assert started.wait(5)
    yield ready[0]
    ready[0].add_callback(ready[0].stop)
    thread.join(5)


class _Bar:
    def query_options(self, filters: Filters) -> dict[str, list[str]]:
        return {"team": ["a"]}


class _Body:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.threads: list[str] = []
        self.release = threading.Event()

    def panes(self) -> list[Any]:
        return []

    def query(self, ctx: Any, filters: Filters) -> str:
        self.threads.append(threading.current_thread().name)
        self.release.wait(5)
        time.sleep(self.delay_s)
        return filters.window

    def show(self, data: Any) -> None:  # pragma: no cover - the frame calls it, not PageFill
        raise AssertionError


def _fill(body: _Body, doc: _Doc | None, loop: Any = None) -> tuple[PageFill, list[Answer]]:
    shown: list[Answer] = []
    return PageFill(None, _Bar(), body, shown.append, doc, loop), shown  # type: ignore[arg-type]


def _run_all(doc: _Doc) -> None:
    while doc.callbacks:
        doc.callbacks.pop(0)()


def test_a_served_page_queries_on_a_worker_thread_and_shows_on_the_loop(loop):
    doc, body = _Doc(), _Body()
    fill, shown = _fill(body, doc, loop)
    fill.start(Filters(window="1 h"))
    assert fill.busy and not shown  # start returns before the query answered
    body.release.set()
    assert doc.added.wait(5)
    assert body.threads and body.threads[0].startswith("llmgw-dashboard-query")
    assert not shown  # nothing touches the page until the loop runs the callback
    # the document is entered on the session's loop only, never from the worker: an answer
    # ready while Bokeh was still making the session was lost there (the page kept "Loading…")
    assert doc.threads == ["session-loop"]
    _run_all(doc)
    assert [a.data for a in shown] == ["1 h"] and shown[0].options == {"team": ["a"]}
    assert not fill.busy


def test_only_the_newest_start_is_shown(loop):
    doc, body = _Doc(), _Body()
    fill, shown = _fill(body, doc, loop)
    fill.start(Filters(window="1 h"))
    fill.start(Filters(window="24 h"))
    body.release.set()
    deadline = time.monotonic() + 5
    while len(doc.callbacks) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    _run_all(doc)
    assert [a.data for a in shown] == ["24 h"]


def test_a_query_error_is_an_answer_not_an_exception():
    class Failing(_Body):
        def query(self, ctx: Any, filters: Filters) -> str:
            raise RuntimeError("no log")

    fill, shown = _fill(Failing(), None)
    fill.start(Filters())
    assert isinstance(shown[0].error, RuntimeError) and not fill.busy


def test_a_refresh_waits_in_proportion_to_the_last_fill():
    body = _Body(delay_s=0.05)
    body.release.set()
    fill, shown = _fill(body, None)  # outside a server: runs in place
    live = Filters(window="1 h")
    fill.start(live)
    took = shown[0].took_s
    assert took >= 0.05
    now = time.time()
    assert not fill.due(live, now, refresh_s=0.0)  # 30 × 50 ms have not passed
    time.sleep(REFRESH_COST_RATIO * took - (time.monotonic() - fill._done_at) + 0.05)
    assert fill.due(live, now, refresh_s=0.0)
    assert not fill.due(live, now, refresh_s=60.0)  # and never before refresh_s
    ended = Filters(since=now - 7200, until=now - 3600)
    assert not fill.due(ended, now, refresh_s=0.0)  # a range that ended never refreshes
