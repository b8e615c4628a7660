"""Parity with every stage on: the policy that served a log replays it with zero differences.

Traffic (``tests/parity_traffic.py``) goes through a real ``llmgw serve`` with enforced virtual
keys, team/user/key budgets that run out mid-run, rpm/tpm limits, weighted routes with
fallbacks, a route with rules, the exact cache (and in one test the semantic cache), upstream
faults, streams finished, cut and abandoned, ``/v1/messages``, embeddings, unknown models and
malformed bodies; the server restarts two thirds in (state rebuilt from its data directory);
then it stops (it flushes the log) and the live policy replays the log.
A failure prints every differing row: its request, what the log says and what replay decided.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import Gateway, policy_for
from parity_traffic import PARAPHRASES, ParityRun, explain, reloaded_policy, request_mix

from llmgw_kernel import load_policy, open_log, replay
from llmgw_kernel.replay.versions import missing_versions, served_policies

REQUESTS = 400


def assert_parity(result: Any, data_dir: Any) -> None:
    counts = result.summary["differs_from_log"]
    assert all(v == 0 for v in counts.values()) and result.compare_to_log() == 0, explain(result, data_dir)


def _logged(data_dir: Any, sql: str) -> int:
    row = open_log(data_dir).execute(f"SELECT count(*) FROM requests WHERE {sql}").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture(scope="module")
def served(upstream, tmp_path_factory) -> ParityRun:
    run = ParityRun.start(tmp_path_factory.mktemp("parity"), upstream.base_url, REQUESTS)
    run.play(request_mix(seed=11, n=REQUESTS), restart=True)
    assert run.stop() == 0, run.gw.server_log()[-3000:]
    return run


def test_the_traffic_exercises_every_stage(served):
    """A parity test that meets no refusal or no hit proves nothing: check the mix did each."""
    data = served.gw.data_dir
    assert _logged(data, "true") == len(served.results)  # every request sent has its row
    seen = {r.request_id for r in served.results if r.request_id}
    assert _logged(data, f"list_contains({sorted(seen)!r}, request_id)") == len(seen)
    for what, sql in {
        "budget refusals": "admission = 'budget_exceeded'", "rate refusals": "admission = 'rate_limited'",
        "exact hits": "cache = 'hit'", "stored answers": "cache_stored_ts IS NOT NULL", "bypasses": "cache = 'bypass'",
        "fallbacks": "len(attempts) > 1 AND outcome = 'ok'", "cut streams": "stream AND status = 200 AND outcome <> 'ok'",
        "abandoned": "outcome = 'abandoned'", "/v1/messages": "api = 'anthropic' AND outcome = 'ok'",
        "embeddings": "endpoint = 'embeddings' AND outcome = 'ok'", "unknown models": "error_type = 'model_not_found'",
        "malformed": "status = 400", "bad keys": "status = 401", "not allowed": "error_type = 'model_not_allowed'",
        "rules": "route_reason LIKE '%rule%'", "soft budget flags": "budget_flags IS NOT NULL",
        "sticky draws": "route = 'sticky' AND route_reason LIKE '%user%'",
        "bad cache headers": "route = 'cached' AND status = 400", "oversized bodies": "status = 413",
        "namespace headers": "cache_ns_header IS NOT NULL", "invalid /v1/messages": "api = 'anthropic' AND status = 400",
        "expired or evicted answers": "route = 'cached-short' AND cache = 'miss' AND cache_key IN"
        " (SELECT cache_key FROM requests WHERE route = 'cached-short' AND cache_stored_ts IS NOT NULL)",
    }.items():  # fmt: skip
        assert _logged(data, sql) > 0, f"the mix produced no {what} ({sql})"


def test_live_policy_replays_all_stages_exactly(served):
    result = replay(load_policy(served.gw.policy_path), served.gw.data_dir)
    assert result.summary["requests"] == len(served.results)
    assert_parity(result, served.gw.data_dir)


def test_semantic_cache_replays_exactly(upstream, tmp_path):
    """Small (the embedding model is slow here): cached kinds only, the model loaded first."""
    run = ParityRun.start(tmp_path, upstream.base_url, 100, semantic=True)
    _wait_model(run)
    cached = [s for s in request_mix(seed=5, n=600) if s.kind in ("cached", "cached-stream", "cached-control")]
    # questions and their paraphrases, mostly from one tenant, so that semantic hits happen
    mix = [replace(s, key=s.key if s.i % 3 == 0 else "delta", prompt=_paraphrase(s.i)) for s in cached[:100]]
    run.play(mix, concurrency=3)
    assert run.stop() == 0
    assert _logged(run.gw.data_dir, "embedding IS NOT NULL") > 0
    assert _logged(run.gw.data_dir, "cache = 'semantic-hit'") > 0
    result = replay(load_policy(run.gw.policy_path), run.gw.data_dir)
    assert_parity(result, run.gw.data_dir)
    # the compiled fold (large windows) decides this served log as the Python fold does: streamed
    # and plain requests, no-cache / no-store headers, paraphrases, and a lower threshold
    pytest.importorskip("numba")
    from test_fold_kernel import assert_same, composer

    doc = yaml.safe_load(Path(run.gw.policy_path).read_text())
    out = assert_same(composer(Path(run.gw.data_dir), doc, tmp_path))
    assert any(o is not None and o.kind == "semantic-hit" for o in out.cache)
    for route in doc["routes"].values():
        if isinstance(route.get("cache"), dict) and "semantic" in route["cache"]:
            route["cache"]["semantic"]["threshold"] = 0.7
    assert_same(composer(Path(run.gw.data_dir), doc, tmp_path))


def _paraphrase(i: int) -> str:
    pair = PARAPHRASES[i % len(PARAPHRASES)]
    return pair[(i // len(PARAPHRASES)) % 2]


def _wait_model(run: ParityRun, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        models = run.health()["cache"]["models"]
        if models and set(models.values()) == {"ready"}:
            return
        time.sleep(0.2)
    raise AssertionError(f"embedding model not ready: {run.health()['cache']}")


@pytest.fixture(scope="module")
def reloaded(upstream, tmp_path_factory) -> ParityRun:
    """Half the traffic under one version, half under a promoted one (weights and a rule)."""
    run = ParityRun.start(tmp_path_factory.mktemp("reload"), upstream.base_url, REQUESTS)
    run.play(request_mix(seed=12, n=REQUESTS), reload=reloaded_policy(run.doc))
    assert run.stop() == 0
    return run


def test_each_version_replays_its_own_rows(reloaded):
    """Every version, replayed over the whole window (the state its rows saw includes the other
    version's rows), decides its own rows as they were decided.

    Not ``where="policy_version = ?"``: that drops the other version's rows, so the budgets
    spent and the answers cached before the reload would be missing from the state."""
    data = reloaded.gw.data_dir
    policies = served_policies(reloaded.gw.policy_path)
    assert set(policies) == set(reloaded.versions) and len(policies) == 2
    assert missing_versions(policies, data) == []
    con = open_log(data)
    first_new = con.execute("SELECT min(ts) FROM requests WHERE policy_version = ?", [reloaded.versions[1]]).fetchone()
    assert first_new is not None
    overlap = con.execute(  # the reload happened under traffic: old-version requests still running
        "SELECT count(*) FROM requests WHERE policy_version = ? AND ts_end > ?", [reloaded.versions[0], first_new[0]]
    ).fetchone()
    assert overlap is not None and overlap[0] > 0
    for version, policy in policies.items():
        mine = {
            r[0] for r in con.execute("SELECT request_id FROM requests WHERE policy_version = ?", [version]).fetchall()
        }
        assert len(mine) > REQUESTS // 4
        result = replay(policy, data)
        own = result.decisions[result.decisions.index.isin(mine)]
        assert not own["differs"].any(), explain(_subset(result, own), data)


def test_cli_as_served_replays_each_row_under_its_version(reloaded):
    """``llmgw replay --as-served`` (the CLI of ``versions=``): the live file's history replays
    the window across its reload with no difference; the live file alone differs on the rows
    the older version served."""
    data, live = str(reloaded.gw.data_dir), str(reloaded.gw.policy_path)

    def cli(*extra: str) -> subprocess.CompletedProcess[str]:
        args = ["replay", "--policy", live, "--data-dir", data, "--json", *extra]
        return subprocess.run(
            [sys.executable, "-m", "llmgw_kernel", *args], capture_output=True, text=True, timeout=600
        )

    served = cli("--as-served")
    assert served.returncode == 0, served.stderr
    counts = json.loads(served.stdout)["differs_from_log"]
    assert counts["any"] == 0 and all(v == 0 for v in counts.values()), counts
    assert "2 version(s)" in served.stderr and "replayed under --policy" not in served.stderr
    alone = cli()
    assert alone.returncode == 0, alone.stderr
    assert json.loads(alone.stdout)["differs_from_log"]["any"] > 0
    mixed = cli("--as-served", "--engine", "local")
    assert mixed.returncode == 2 and "--as-served" in mixed.stderr and "Traceback" not in mixed.stderr


def _subset(result: Any, rows: Any) -> Any:
    class View:
        decisions = rows
        summary = {"differs_from_log": {"rows of this version": int(rows["differs"].sum())}}

    return View()


def test_every_row_replays_under_the_version_that_served_it(upstream, tmp_path):
    """One replay, each row under its own version (the reload changes limits too)."""
    run = ParityRun.start(tmp_path, upstream.base_url, REQUESTS)
    run.play(request_mix(seed=13, n=REQUESTS), reload=reloaded_policy(run.doc, limits=True))
    assert run.stop() == 0
    versions = served_policies(run.gw.policy_path)
    assert len(versions) == 2
    result = replay(load_policy(run.gw.policy_path), run.gw.data_dir, versions=versions)
    assert_parity(result, run.gw.data_dir)


# -- the live side logs what replay needs ------------------------------------------------------


@pytest.fixture(scope="module")
def burst(upstream, tmp_path_factory) -> Gateway:
    """16 clients asking one question at once, half of them refreshing it (no-cache): answers
    stored between a request's arrival and its lookup, under its own key."""
    doc = policy_for(upstream.base_url)
    cached = {"targets": [{"provider": "local", "model": "gpt-4o-mini"}], "cache": {"exact": {"ttl_s": 600}}}
    doc["routes"]["cached"] = cached
    gw = Gateway(tmp_path_factory.mktemp("burst"), doc)
    _burst(gw)
    gw.terminate()
    return gw


def test_the_cache_lookup_time_explains_every_exact_decision(burst):
    """Regression: the exact store was consulted some time after arrival, and an answer stored
    in between (same key) replaced one the request could see: live said miss, a replay of the
    stores at arrival said hit. The log now keeps ``cache_lookup_ts``; with it every exact
    decision follows from logged facts alone (last answer stored for the key before the
    lookup, visible at arrival)."""
    rows = open_log(burst.data_dir).execute(
        "SELECT request_id, epoch(ts), cache_lookup_ts, cache, cache_source, cache_control, cache_namespace, cache_key,"
        " cache_stored_ts FROM requests WHERE route = 'cached' ORDER BY cache_lookup_ts"
    ).fetchall()  # fmt: skip
    assert len(rows) == 16 * 40 and all(r[2] is not None and r[2] >= r[1] for r in rows)
    stored: dict[tuple[str, str], tuple[float, str]] = {}  # (namespace, key) -> the last answer put
    pending = sorted((r[8], r[0], (r[6], r[7])) for r in rows if r[8] is not None)
    wrong = []
    for rid, ts, looked, kind, source, control, ns, key, _ in rows:
        while pending and pending[0][0] < looked:
            at, src, k = pending.pop(0)
            stored[(k[0], k[1])] = (at, src)
        last = stored.get((ns, key))
        visible = last is not None and last[0] < ts < last[0] + 600 and control != "no-cache"
        expected = ("hit", last[1]) if visible and last is not None else ("miss", None)
        if (kind, source) != expected:
            wrong.append((rid, kind, source, expected))
    assert not wrong, wrong[:5]


def test_the_live_policy_replays_a_burst_of_identical_requests(burst):
    """The same burst, replayed: the cache stage consults its stores as of each row's
    ``cache_lookup_ts`` (visibility still at arrival), rows in live order. Replaying the stores
    as of arrival gave 5-12 differing rows out of 640-960 here."""
    result = replay(load_policy(burst.policy_path), burst.data_dir)
    assert_parity(result, burst.data_dir)


def _burst(gw: Gateway) -> None:
    """16 clients asking the same question at once, half of them refreshing it (no-cache)."""

    def client(k: int) -> None:
        with httpx.Client(timeout=30) as c:
            for i in range(40):
                c.post(f"{gw.base_url}/chat/completions", headers={"Authorization": "Bearer sk-a",
                       **({"x-llmgw-cache": "no-cache"} if (i + k) % 2 else {})},
                       json={"model": "cached", "messages": [{"role": "user", "content": "same"}]})  # fmt: skip

    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
