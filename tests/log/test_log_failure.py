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
        deadline = time.monotonic() + 5
        health = httpx.get(gw.url + "/health")
        while health.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            health = httpx.get(gw.url + "/health")
        assert health.status_code == 503
        assert any("request log cannot be written" in r for r in health.json()["reasons"])
    finally:
        directory.unlink()
        shutil.move(moved, directory)
    rows = wait_for_rows(gw, "client_request_id LIKE 'kept-%'", n=3)
    assert len(rows) == 3
    deadline = time.monotonic() + 5
    while httpx.get(gw.url + "/health").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(gw.url + "/health").status_code == 200
