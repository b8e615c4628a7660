"""Outside-style: `llmgw replay --as-served` when the history entry of a version the log names is
there but damaged (its policy.yaml truncated or garbage, unreadable, or its rule modules gone).

By hand: the entry `history/live/<stamp>-<version>/` with `policy.yaml` turned to garbage was
skipped, and stderr said `rows served by <version> were replayed under --policy (not in its history:
edited while no server ran, or archived as invalid)` — "not in its history" sends the operator
looking for a version that is there, and nothing names the file to repair. Expected: the same
replay (its rows under --policy, exit 0), and a line naming the damaged entry and why it does
not load.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml
from conftest import DEMO_POLICY

from llmgw_kernel import load_policy
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter


def _llmgw(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_a_damaged_entry_of_a_served_version_is_named(tmp_path: Path) -> None:
    live, cand = tmp_path / "live.yaml", tmp_path / "cand.yaml"
    live.write_text(yaml.safe_dump(DEMO_POLICY))
    served = load_policy(live).version
    writer, now = LogWriter(tmp_path / "data", journal=False), time.time()
    for i in range(3):
        rec = RequestRecord(f"req_{i:05d}", now - 60 + i, "chat.completions")
        rec.route, rec.policy_version, rec.status, rec.outcome = "demo", served, 200, "ok"
        rec.ts_end = now - 59 + i
        writer.append(rec)
    writer.close()
    cand.write_text(yaml.safe_dump({**DEMO_POLICY, "log": {"flush_ms": 123}}))
    assert _llmgw(tmp_path, "policy", "promote", "cand.yaml", "--policy", "live.yaml").returncode == 0
    (entry,) = [p for p in (tmp_path / "history" / "live").iterdir() if p.name.endswith(served)]
    (entry / "policy.yaml").write_bytes(b"\x00\xff garbage [")
    done = _llmgw(tmp_path, "replay", "--policy", "live.yaml", "--data-dir", "data", "--as-served", "--since", "1h")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    said = [line for line in done.stderr.splitlines() if served in line]
    assert len(said) == 1, done.stderr
    assert "not in its history" not in said[0], said
    assert str(entry.relative_to(tmp_path)) in said[0] and "does not load" in said[0], said
