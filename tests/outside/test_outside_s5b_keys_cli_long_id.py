"""Outside-style: `llmgw keys` / `llmgw credentials` with a very long key id or credential name.

docs/keys.md: "a key id or credential name is sent as one percent-quoted path segment, and one that is
empty, `.`, `..` or holds a `/` is refused (exit 2) before anything — the token included — is sent; what
the server refuses is printed as its JSON error, exit 1". Odd ids hold up (checked by hand against a
live server: unicode, RTL override, '%2F', 'a%2Fb', '%2e%2e', '..%2F..', '?x=1', '#frag', 'a b', a
newline, a 5,000-character id: each one JSON 404 key_not_found, exit 1; the server stays healthy).

An id longer than httpx's URL limit (65,536) ends the CLI with a Python traceback
(`httpx.InvalidURL: URL too long`) instead of a one-line usage error (exit 2) like the other ids the CLI
refuses. It fails before any connection, so no server is needed to show it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import free_port

LONG = "k" * 70_000


@pytest.mark.parametrize("argv", [["keys", "show", LONG], ["keys", "revoke", LONG], ["credentials", "delete", LONG]])
def test_a_key_id_too_long_for_a_url_is_a_one_line_usage_error(argv: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: the CLI must refuse before sending
    env = {**os.environ, "LLMGW_ADMIN_TOKEN": "admin-token-for-the-test"}
    done = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", *argv, "--url", url], capture_output=True, text=True, env=env, timeout=60
    )
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output[-1500:]
    assert done.returncode == 2, (done.returncode, output[-1500:])
    assert len(output.strip().splitlines()) == 1, output[-1500:]
