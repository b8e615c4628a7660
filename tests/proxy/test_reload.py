"""promote → hot reload → rollback while traffic flows: no failed request, every row stamped."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx
import yaml
from conftest import policy_for

from llmgw_kernel import load_policy, open_log, replay

MSG = [{"role": "user", "content": "x"}]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmgw_kernel", "policy", *args], capture_output=True, text=True)


def test_promote_reload_rollback_under_load(make_gateway, upstream, tmp_path):
    gw = make_gateway()
    v1 = load_policy(gw.policy_path).version
    candidate_doc = policy_for(upstream.base_url)
    candidate_doc["routes"]["split"]["targets"][0]["weight"] = 5
    candidate_doc["routes"]["split"]["targets"][1]["weight"] = 95
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(yaml.safe_dump(candidate_doc))
    v2 = load_policy(candidate).version

    stop = threading.Event()
    failures: list[str] = []
    seen: list[tuple[float, str]] = []

    def load(stream: bool) -> None:
        with httpx.Client(base_url=gw.base_url, timeout=10) as c:
            while not stop.is_set():
                try:
                    r = c.post("/chat/completions", json={"model": "split", "messages": MSG, "stream": stream})
                    if r.status_code != 200 or not r.text:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                    seen.append((time.monotonic(), r.headers.get("x-llmgw-policy-version", "")))
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=load, args=(i % 2 == 1,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        out = _cli("promote", str(candidate), "--policy", str(gw.policy_path), "--data-dir", str(gw.data_dir))
        assert out.returncode == 0, out.stderr
        promoted_at = time.monotonic()
        _wait_for_version(seen, v2, promoted_at)
        switch = min(t for t, v in seen if v == v2 and t >= promoted_at) - promoted_at
        assert switch < 2.0, f"new policy served after {switch:.2f}s"
        time.sleep(0.5)
        assert _cli("rollback", "--policy", str(gw.policy_path)).returncode == 0
        rolled_at = time.monotonic()
        _wait_for_version(seen, v1, rolled_at)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert failures == []
    assert len(seen) > 50
    gw.terminate()

    # every row carries the version that served it, and each version replays its own rows exactly
    con = open_log(gw.data_dir)
    versions = dict(con.execute("SELECT policy_version, count(*) FROM requests GROUP BY 1").fetchall())
    assert set(versions) == {v1, v2}
    for version, policy in ((v1, load_policy(gw.policy_path)), (v2, load_policy(candidate))):
        result = replay(policy, con)
        mine = result.decisions[result.decisions["request_id"].isin(
            [r[0] for r in con.execute("SELECT request_id FROM requests WHERE policy_version = ?", [version]).fetchall()]
        )]  # fmt: skip
        assert len(mine) == versions[version] and not mine["differs"].any()
    # one replay of the whole window, each request under the version that served it: no difference
    as_served = replay(gw.policy_path, con, versions={v1: gw.policy_path, v2: candidate})
    assert as_served.compare_to_log() == 0, as_served.summary["differs_from_log"]
    assert replay(gw.policy_path, con).summary["differs_from_log"]["routing"] > 0  # v2's rows, under v1


def test_invalid_edit_keeps_serving_the_old_policy(make_gateway):
    gw = make_gateway()
    v1 = load_policy(gw.policy_path).version
    gw.policy_path.write_text("routes: {m: {targets: []}}\n")
    deadline = time.monotonic() + 60
    health = {}
    while time.monotonic() < deadline:
        health = httpx.get(gw.url + "/health").json()
        if health.get("policy_reload_error"):
            break
        time.sleep(0.1)
    assert "routes.m.targets" in health["policy_reload_error"]
    assert health["policy_version"] == v1
    r = httpx.post(f"{gw.base_url}/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG})
    assert r.status_code == 200 and r.headers["x-llmgw-policy-version"] == v1


def _wait_for_version(seen: list[tuple[float, str]], version: str, since: float, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(v == version and t >= since for t, v in list(seen)):
            return
        time.sleep(0.02)
    raise AssertionError(f"version {version} never served")


def test_a_version_replaced_by_a_hand_edit_is_archived_and_replays_as_served(make_gateway, upstream):
    """Regression: editing the live file (not `llmgw policy promote`) replaced the served
    version without archiving it, so its requests could not be replayed under it (nor rolled
    back to). The server now archives the bytes it loaded when an edit replaces them."""
    from llmgw_kernel.replay.versions import missing_versions, served_policies

    gw = make_gateway()
    v1 = load_policy(gw.policy_path).version
    with httpx.Client(base_url=gw.base_url, timeout=10) as c:
        for _ in range(20):
            assert c.post("/chat/completions", json={"model": "split", "messages": MSG}).status_code == 200
        doc = yaml.safe_load(gw.policy_path.read_text())
        doc["routes"]["split"]["targets"][0]["weight"], doc["routes"]["split"]["targets"][1]["weight"] = 5, 95
        gw.policy_path.write_text(yaml.safe_dump(doc))
        v2 = load_policy(gw.policy_path).version
        deadline = time.monotonic() + 60
        while httpx.get(gw.url + "/health").json()["policy_version"] != v2:
            assert time.monotonic() < deadline, "the edit was never loaded"
            time.sleep(0.05)
        for _ in range(20):
            assert c.post("/chat/completions", json={"model": "split", "messages": MSG}).status_code == 200
    gw.terminate()
    versions = served_policies(gw.policy_path)
    assert set(versions) == {v1, v2}
    assert missing_versions(versions, gw.data_dir) == []
    assert replay(gw.policy_path, gw.data_dir, versions=versions).compare_to_log() == 0
