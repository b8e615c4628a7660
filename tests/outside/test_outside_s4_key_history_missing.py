"""Outside-style: `llmgw replay --key-history DIR` with a directory that does not exist is refused.

README.md: "a directory without a log is refused"; the CLI refuses a missing `--data-dir` or
`--source` ("llmgw replay: /nonexistent does not exist", exit 2). docs/replay-distributed.md, "Key
history": without it "keys' own budgets and rates are not replayed (only the policy's limits
apply) and a replay of the live policy may then differ from the log". A mistyped `--key-history`
is accepted silently (exit 0), so the analyst gets exactly that degraded replay without a word.
"""

from __future__ import annotations

import subprocess
import sys

import httpx
from conftest import policy_for, wait_for_rows


def test_missing_key_history_is_refused(upstream, make_gateway, tmp_path) -> None:
    gw = make_gateway(policy_for(upstream.base_url))
    r = httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert r.status_code == 200
    assert wait_for_rows(gw, "route = 'gpt-4o-mini'")
    missing = tmp_path / "no-such-key-history"
    out = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "replay", "--policy", str(gw.policy_path),
         "--source", str(gw.data_dir / "log" / "requests"), "--key-history", str(missing)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "Traceback" not in out.stderr, out.stderr[-1500:]
    assert out.returncode == 2, (out.returncode, out.stdout[-500:], out.stderr[-500:])
    assert str(missing) in out.stderr, out.stderr
