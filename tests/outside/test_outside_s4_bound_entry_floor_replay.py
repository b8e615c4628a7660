"""Outside-style: the live policy under a false-hit bound must replay its own log exactly.

docs/cache.md, "A false-hit bound": "Per entry (vCache's idea, kept where it has evidence): an
entry once seen to give a different answer at similarity `s` never serves a request below
`s` + 0.01", and "Replay. The live policy replays from the logged thresholds."
docs/budgets.md / docs/replay.md: the live policy reproduces its decisions (`compare_to_log() == 0`).

Traffic that meets an entry floor: A is cached; a paraphrase B (similarity ~0.993) is a miss whose
fresh answer differs from A's, so A's floor becomes ~1.003; A + " " (similarity 1.0 to A) is then a
miss and becomes entry A'; A + "  " is a live hit served from A' (A is floored). Replaying the live
policy ignores A's floor and serves that last request from A: `compare_to_log()` counts it.
"""

from __future__ import annotations

import time
import uuid

import httpx
import openai
from conftest import policy_for, wait_for_rows


def test_live_bound_policy_replays_hits_from_the_entry_live_served(upstream, make_gateway) -> None:
    from llmgw_kernel import open_log, replay

    cache = {"semantic": {"ttl_s": 600, "max_false_hit_rate": 0.05, "verify_rate": 0.0}}
    gw = make_gateway(policy_for(upstream.base_url, cache=cache))
    deadline = time.monotonic() + 240  # the embedding model loads slowly under load (> 90 s at load 17)
    while set(httpx.get(f"{gw.url}/health", timeout=5).json()["cache"]["models"].values()) != {"ready"}:
        assert time.monotonic() < deadline, gw.server_log()[-2000:]
        time.sleep(0.2)
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-outside", max_retries=0)
    ns = {"x-llmgw-cache-namespace": uuid.uuid4().hex}
    texts = [
        "What is the capital of France?",  # A: stored
        "what's the capital of France?",  # B: a miss; its answer differs from A's -> A's floor above 1
        "What is the capital of France? ",  # A': similarity 1.0 to A, refused by A's floor -> stored
        "What is the capital of France?  ",  # a live hit, from A'
    ]
    served = []
    for text in texts:
        r = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}], extra_headers=ns
        )
        served.append((r.headers["x-llmgw-cache"], r.headers["x-llmgw-request-id"]))
        time.sleep(1.0)  # the shadow comparison is learned on the cache worker before the next lookup
    assert [c for c, _ in served] == ["miss", "miss", "miss", "semantic-hit"], served
    rows = wait_for_rows(gw, f"request_id = '{served[-1][1]}'")
    assert rows and rows[0]["cache_source"] == served[2][1], rows  # live: served from A', not A

    con = open_log(gw.data_dir)
    try:
        result = replay(str(gw.policy_path), con)
    finally:
        con.close()
    d = result.decisions.set_index("request_id", drop=False)
    assert d.loc[served[-1][1], "replay_cache_source"] == served[2][1], d.loc[served[-1][1]].to_dict()
    assert result.compare_to_log() == 0, result.summary["differs_from_log"]
