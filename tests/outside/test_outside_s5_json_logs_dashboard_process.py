"""Outside-style: with JSON logs on, the dashboards' process logs JSON lines too.

docs/monitoring.md, "Logs": "`llmgw serve --log-format json` (or `LLMGW_LOG_FORMAT=json`) writes the
server's own logs to stderr as JSON lines ... Every line is one event" with `ts`, `level`, `logger`,
`event`. The dashboards run in a child process of `llmgw serve` (docs/architecture.md, "One process, one
port") that writes to the same stderr — in text: "2026-12-05 13:33:19,592 INFO bokeh.server.server[panel]:
Starting Bokeh server ...", "... llmgw.dashboard[panel]: dashboards: Panel server on ...", and a page's
error as a bare multi-line traceback. A log shipper parsing the gateway's stderr as JSON lines breaks on
the first dashboard visit.
"""

from __future__ import annotations

import json
import time

import httpx


def test_every_line_is_json_after_a_dashboard_page_is_served(make_gateway) -> None:
    gw = make_gateway(env={"LLMGW_LOG_FORMAT": "json"})
    deadline = time.monotonic() + 120
    while True:  # the first request starts the dashboards' process; a placeholder answers meanwhile
        r = httpx.get(f"{gw.url}/cost", timeout=60)
        if r.status_code == 200 and r.headers.get("x-llmgw-dashboard") != "starting":
            break
        assert time.monotonic() < deadline, "the dashboards did not start"
        time.sleep(0.5)
    assert gw.terminate() == 0
    text = gw.server_log()
    assert "[panel]" in text or "Panel server" in text  # the child's start-up was logged
    not_json = []
    for line in text.splitlines():
        if line.strip():
            try:
                event = json.loads(line)
            except ValueError:
                not_json.append(line)
                continue
            assert {"ts", "level", "logger", "event"} <= set(event), event
    assert not not_json, not_json[:5]
