"""The log as other processes see it: readable while serving, complete after SIGTERM."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import httpx
from conftest import policy_for

from llmgw_kernel import open_log

MSG = [{"role": "user", "content": "x"}]


def test_second_process_sees_each_request_within_a_second(make_gateway, upstream):
    gw = make_gateway(policy_for(upstream.base_url, log={"flush_ms": 500}))
    # a reader process that opens the log once, then polls while the server writes
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from llmgw_kernel import open_log
            con = open_log({str(gw.data_dir)!r})
            for line in sys.stdin:
                rid = line.strip()
                t0 = time.monotonic()
                while not con.execute("SELECT count(*) FROM requests WHERE request_id = ?", [rid]).fetchone()[0]:
                    if time.monotonic() - t0 > 5:
                        break
                    time.sleep(0.02)
                print(f"{{rid}} {{time.monotonic() - t0:.3f}}", flush=True)
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    delays = []
    for i in range(5):
        r = httpx.post(f"{gw.base_url}/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG})
        assert reader.stdin is not None and reader.stdout is not None
        reader.stdin.write(r.headers["x-request-id"] + "\n")
        reader.stdin.flush()
        rid, delay = reader.stdout.readline().split()
        assert rid == r.headers["x-request-id"]
        delays.append(float(delay))
        time.sleep(0.1 * i)
    reader.stdin.close()
    reader.wait(10)
    assert max(delays) < 1.0, delays


def test_sigterm_drains_in_flight_and_flushes_everything(make_gateway, upstream):
    # a flush interval far longer than the test: only the shutdown flush can write the rows
    gw = make_gateway(policy_for(upstream.base_url, log={"flush_ms": 60000}))
    for i in range(10):
        httpx.post(
            f"{gw.base_url}/chat/completions",
            headers={"x-request-id": f"pre-{i}"},
            json={"model": "gpt-4o-mini", "messages": MSG},
        )
    results: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: results.append(
            httpx.post(
                f"{gw.base_url}/chat/completions",
                headers={"x-request-id": "in-flight"},
                json={"model": "slow-json", "messages": MSG},
                timeout=10,
            )
        )  # fmt: skip
    )
    before = upstream.counts["slow-json"]
    slow.start()
    deadline = time.monotonic() + 60
    while upstream.counts["slow-json"] == before:  # in flight: the upstream has it (and answers 1 s later)
        assert time.monotonic() < deadline, "the slow request never reached the upstream"
        time.sleep(0.01)
    assert gw.terminate() == 0
    slow.join(10)
    assert results and results[0].status_code == 200  # drained, not dropped
    con = open_log(gw.data_dir)
    ids = {r[0] for r in con.sql("SELECT client_request_id FROM requests").fetchall()}
    assert ids == {f"pre-{i}" for i in range(10)} | {"in-flight"}
    assert "Application shutdown complete" in gw.server_log()
