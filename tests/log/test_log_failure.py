"""When the log cannot be written the server says so (/health 503) and keeps the rows."""

from __future__ import annotations

import shutil
import time

import httpx
from conftest import wait_for_rows

MSG = [{"role": "user", "content": "x"}]


def test_unwritable_log_turns_health_red_and_loses_nothing(make_gateway):
    gw = make_gateway()
    directory = gw.data_dir / "log" / "requests"
    moved = directory.with_name("requests.moved")
    shutil.move(directory, moved)
    directory.write_text("not a directory")  # every segment write now fails
    try:
        for i in range(3):
            r = httpx.post(
                f"{gw.base_url}/chat/completions",
                headers={"x-request-id": f"kept-{i}"},
                json={"model": "gpt-4o-mini", "messages": MSG},
            )
            assert r.status_code == 200  # serving goes on
        deadline = time.monotonic() + 60  # the flushes fail until the directory is back: a state, not a window
        health = httpx.get(gw.url + "/health")
        while health.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            health = httpx.get(gw.url + "/health")
        assert health.status_code == 503
        assert any("request log cannot be written" in r for r in health.json()["reasons"])
        time.sleep(1.0)  # several more flushes fail (every flush_ms): logged once, not each time
        failed = [line for line in gw.server_log().splitlines() if "rows not written" in line or "log flush" in line]
        assert len(failed) == 1 and "log flush failed" in failed[0], failed
    finally:
        directory.unlink()
        shutil.move(moved, directory)
    rows = wait_for_rows(gw, "client_request_id LIKE 'kept-%'", n=3)
    assert len(rows) == 3
    deadline = time.monotonic() + 60
    while httpx.get(gw.url + "/health").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(gw.url + "/health").status_code == 200
    assert "log flush works again after" in gw.server_log()


def test_a_flush_that_keeps_failing_is_logged_once_a_minute_and_counted_each_time(tmp_path, caplog, monkeypatch):
    """A full disk fails every flush (every 100 ms): the first failure is logged, then at most one
    line per FAILURE_LOG_S with the count since, and one line once a flush works again;
    ``flush_errors`` (``llmgw_log_flush_errors``) counts each failure."""
    import llmgw_kernel.log.writer as writer
    from llmgw_kernel.log import LogWriter, RequestRecord, open_log

    w = LogWriter(tmp_path, flush_ms=600_000)  # only the flushes this test makes
    directory = w.directory
    moved = directory.with_name("requests.moved")
    shutil.move(directory, moved)
    directory.write_text("not a directory")  # every segment write now fails
    try:
        with caplog.at_level("INFO", logger="llmgw.log"):
            w.append(RequestRecord("kept-0", time.time(), "chat.completions"))
            for _ in range(10):
                w.flush()
            lines = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
            assert len(lines) == 1 and lines[0].startswith("log flush failed (1 rows kept in memory)"), lines
            monkeypatch.setattr(writer, "FAILURE_LOG_S", 0.2)
            time.sleep(0.3)
            for _ in range(4):
                w.flush()  # the first of these logs the 10 since the first line; the others are quiet
            lines = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
            assert len(lines) == 2, lines
            assert lines[1].startswith("log flush still failing (10 failures, 1 rows kept in memory): "), lines
            assert w.flush_errors == 14 and not w.healthy
    finally:
        directory.unlink()
        shutil.move(moved, directory)
    caplog.clear()
    with caplog.at_level("INFO", logger="llmgw.log"):
        w.flush()
        w.flush()
    assert [r.getMessage() for r in caplog.records] == ["log flush works again after 14 failed flushes"]
    assert w.healthy and w.flush_errors == 14
    w.close()
    assert open_log(tmp_path).execute("SELECT count(*) FROM requests").fetchone() == (1,)
