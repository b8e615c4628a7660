"""Outside-style: a client's text in the server's own (text) log lines.

By hand: `POST /v1/chat/completions` with `"model": "zz\\n2026-12-06 04:00:00,000 WARNING llmgw.proxy:
FORGED line"` — an unknown model, no key needed in open mode — wrote the gateway's 404 line as two
lines, the second a well-formed WARNING entry of the client's making (CWE-117); an upstream's error
message quoting the prompt did the same, and an ESC in either reached the operator's terminal
as it was (`\\x1b]0;...` retitles it, `\\x1b[2J` clears it). Expected: one entry per event — every
line that starts at column 0 is an entry the server wrote; a message's own line breaks continue
it indented, control characters shown escaped (`\\x1b`), the text still readable.
"""

from __future__ import annotations

import re

import httpx
from conftest import wait_for_rows

FORGED = "2026-12-06 04:00:00,000 WARNING llmgw.proxy: FORGED"
ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


def test_a_client_cannot_write_a_log_entry_of_its_own(gateway) -> None:
    ids = []
    for model, text in (
        (f"zz\n{FORGED} model\r\n{FORGED} cr\u2028{FORGED} ls", "hi"),  # unknown model: the 404's line
        ("broken-400", f"q\n{FORGED} prompt"),  # not quoted by the fake upstream: the route name only
        ("zz\x1b]0;owned\x07\x1b[2J\x00", "hi"),
    ):
        r = httpx.post(
            f"{gateway.base_url}/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": text}]},
            timeout=30,
        )
        assert r.status_code in (400, 404), r.text
        ids.append(r.headers["x-request-id"])
    for rid in ids:
        wait_for_rows(gateway, f"request_id = '{rid}'")
    log = gateway.server_log()
    for rid in ids[0], ids[2]:
        assert sum(rid in line for line in log.splitlines()) == 1, rid
    forged = [line for line in log.splitlines() if "FORGED" in line and ENTRY.match(line)]
    assert forged == [], forged
    assert "\x1b" not in log and "\x07" not in log and "\x00" not in log and "\u2028" not in log
    assert "\\x1b]0;owned\\x07\\x1b[2J\\x00" in log, log[-2000:]
    first = log.index(ids[0])
    assert f"zz\n  {FORGED} model" in log[first:], log[first : first + 500]  # continued, indented
