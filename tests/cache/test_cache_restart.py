"""Cache state survives a restart: from its own snapshot, or rebuilt from the request log."""

from __future__ import annotations

import shutil

from conftest import Gateway, wait_model_ready
from test_cache_live import ask, cache_policy, ns


def test_entries_survive_a_restart_from_the_snapshot_then_from_the_log(upstream, tmp_path):
    policy = cache_policy(upstream.base_url)
    gw = Gateway(tmp_path, policy)
    wait_model_ready(gw)
    h = ns()
    first = "How can I convert Celsius to Fahrenheit?"
    h1, r1 = ask(gw, first, headers=h)
    assert h1["x-llmgw-cache"] == "miss"
    assert gw.terminate() == 0
    assert (gw.data_dir / "cache" / "entries.jsonl").exists()

    gw = Gateway(tmp_path, policy)  # same data dir: restored from the snapshot
    report = wait_model_ready(gw)
    assert report["restored"] == "snapshot" and report["exact_entries"]["cached"] >= 1
    h2, r2 = ask(gw, first, headers=h)
    assert h2["x-llmgw-cache"] == "hit" and h2["x-llmgw-cache-source"] == h1["x-llmgw-request-id"]
    h3, _ = ask(gw, "How do I convert Celsius into Fahrenheit?", headers=h)
    assert h3["x-llmgw-cache"] == "semantic-hit" and h3["x-llmgw-cache-source"] == h1["x-llmgw-request-id"]
    assert ask(gw, first, key="sk-someone-else", headers=h)[0]["x-llmgw-cache"] == "miss"  # still per tenant
    assert gw.terminate() == 0

    shutil.rmtree(gw.data_dir / "cache")  # no snapshot: rebuilt from the log's bodies
    gw = Gateway(tmp_path, policy)
    report = wait_model_ready(gw)
    assert report["restored"] == "log"
    h4, r4 = ask(gw, first, headers=h)
    assert h4["x-llmgw-cache"] == "hit" and r4.choices[0].message.content == r1.choices[0].message.content
    h5, _ = ask(gw, "How do I convert Celsius into Fahrenheit?", headers=h)
    assert h5["x-llmgw-cache"] == "semantic-hit"
    gw.terminate()


def test_entries_answered_just_before_a_kill_9_are_hits_after_the_restart(upstream, tmp_path):
    """kill -9 before any snapshot: the answered requests are in the journal only; the restart
    folds them into the log before the cache is rebuilt from it, so they hit, with their answer."""
    policy = cache_policy(upstream.base_url)
    gw = Gateway(tmp_path, policy)
    try:
        wait_model_ready(gw)
        h = ns()
        questions = [f"What is the boiling point of water at altitude {i} km?" for i in range(4)]
        first = {q: ask(gw, q, headers=h) for q in questions}
        assert {hdr["x-llmgw-cache"] for hdr, _ in first.values()} == {"miss"}
    finally:
        gw.proc.kill()  # no SIGTERM: no final flush, no snapshot
        gw.proc.wait(10)
        gw._log.close()
    assert not (gw.data_dir / "cache" / "entries.jsonl").exists()

    gw = Gateway(tmp_path, policy)
    try:
        report = wait_model_ready(gw)
        assert report["restored"] == "log"
        for q, (h1, r1) in first.items():
            h2, r2 = ask(gw, q, headers=h)
            assert h2["x-llmgw-cache"] == "hit" and h2["x-llmgw-cache-source"] == h1["x-llmgw-request-id"]
            assert r2.choices[0].message.content == r1.choices[0].message.content
    finally:
        gw.terminate()
