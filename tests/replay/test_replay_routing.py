"""Routing replay through a real server: conditions, sticky draws and rule functions replay
exactly; a candidate's cost, latency and error estimates come from the logged attempts."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
from conftest import policy_for

from llmgw_kernel import load_policy, open_log, replay

ROOT = Path(__file__).resolve().parents[2]
SHORT = [{"role": "user", "content": "hi"}]
LONG = [{"role": "user", "content": "x" * 400}]  # ~100 estimated tokens


def _routes() -> dict:
    premium = {"provider": "local", "model": "gpt-4o"}
    budget = {"provider": "other", "model": "gpt-4o-mini"}
    return {
        "tiered": {"targets": [premium, budget], "rule": "tiers:route_by_tier"},
        "flaky-rule": {"targets": [premium, budget], "rule": "mine:pick"},
        "cond": {
            "targets": [{**premium, "weight": 50}, {**budget, "weight": 50}],
            "sticky": "user",
            "rules": [
                {"name": "gold", "when": {"metadata": {"tier": "gold"}}, "targets": [premium]},
                {"when": {"prompt_tokens_over": 50}, "targets": [budget, premium]},
                {"when": {"team": "search", "tags": ["batch"]}, "targets": [{"provider": "other", "model": "gpt-4o"}]},
            ],
        },
        "sticky-session": {
            "targets": [{**premium, "weight": 30}, {**budget, "weight": 70}],
            "sticky": "metadata.session",
        },
    }


def _start(make_gateway, upstream, tmp_path: Path, **extra):
    folder = tmp_path / "gw0" / "policies"
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "policies" / "tiers.py", folder / "tiers.py")
    (folder / "mine.py").write_text(
        "def pick(ctx):\n"
        "    if ctx.metadata.get('tier') == 'boom':\n"
        "        raise RuntimeError('no tier boom')\n"
        "    return list(reversed(ctx.targets))\n"
    )
    doc = policy_for(upstream.base_url, **extra)
    doc["routes"].update(_routes())
    return make_gateway(doc)


def _traffic(gw) -> None:
    with httpx.Client(base_url=gw.base_url) as c:
        for i in range(30):
            meta = {
                "tier": ["gold", "free", "boom"][i % 3],
                "team": ["search", "support"][i % 2],
                "session": f"s{i % 4}",
            }
            if i % 5 == 0:
                meta["tags"] = ["batch"]
            messages = LONG if i % 4 == 0 else SHORT
            user = f"user{i % 6}" if i % 7 else None
            body = {"model": "", "messages": messages, "metadata": meta, "stream": i % 6 == 0}
            if user:
                body["user"] = user
            for model in ("tiered", "flaky-rule", "cond", "sticky-session"):
                c.post("/chat/completions", json={**body, "model": model})
            # metadata in the header (merged by the pipeline) works the same
            c.post(
                "/chat/completions",
                json={"model": "cond", "messages": SHORT},
                headers={"x-llmgw-metadata": '{"tier": "gold"}' if i % 2 else '{"team": "search", "tags": ["batch"]}'},
            )
        anthropic = {"model": "cond", "max_tokens": 10, "messages": [{"role": "user", "content": "x" * 400}],
                     "metadata": {"user_id": "ann"}}  # fmt: skip
        httpx.post(f"{gw.url}/v1/messages", json=anthropic, headers={"x-api-key": "k"})


def test_conditions_sticky_and_rule_functions_replay_exactly(make_gateway, upstream, tmp_path):
    gw = _start(make_gateway, upstream, tmp_path)
    _traffic(gw)
    gw.terminate()
    live = load_policy(gw.policy_path)
    result = replay(live, open_log(gw.data_dir))
    assert result.summary["requests"] == 151
    assert result.compare_to_log() == 0, result.summary["differs_from_log"]
    con = open_log(gw.data_dir)
    logged = dict(con.execute("SELECT request_id, route_reason FROM requests").fetchall())
    d = result.decisions
    for rid, reason in zip(d["request_id"], d["replay_route_reason"], strict=True):
        assert reason == logged[rid]  # the same reasons, not only the same targets
    reasons = " | ".join(r for r in d["replay_route_reason"] if r)
    assert "rule 'gold' (rules[0]) matched" in reasons and "rules[1] matched: prompt_tokens" in reasons
    assert "rules[2] matched: team=search" in reasons and "sticky user=user" in reasons
    assert "rule function tiers:route_by_tier chose" in reasons
    assert "rule function mine:pick raised RuntimeError: no tier boom; fell back to declared targets" in reasons
    # a user always gets the same first target on a sticky route without a matching rule
    sticky = d[d["replay_route_reason"].str.contains("sticky metadata.session=", na=False)]
    rows = con.execute(
        "SELECT request_id, metadata->>'session' FROM requests WHERE route = 'sticky-session'"
    ).fetchall()
    session = dict(rows)
    per_session: dict[str, set] = {}
    for rid, target in zip(sticky["request_id"], sticky["replay_target"], strict=True):
        per_session.setdefault(session[rid], set()).add(target)
    assert per_session and all(len(v) == 1 for v in per_session.values())


def test_candidate_estimates_cost_latency_and_errors_from_the_log(make_gateway, upstream, tmp_path):
    gw = _start(make_gateway, upstream, tmp_path)
    with httpx.Client(base_url=gw.base_url) as c:
        for _ in range(20):
            c.post("/chat/completions", json={"model": "split", "messages": SHORT})
            c.post("/chat/completions", json={"model": "fallback", "messages": SHORT})
    gw.terminate()
    doc = policy_for(upstream.base_url)
    doc["pricing"] = {"gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.6}}
    doc["routes"]["fallback"]["targets"][1]["model"] = "house-model-7b"  # in no price table
    (gw.policy_path.parent / "candidate.yaml").write_text(__import__("yaml").safe_dump(doc))
    result = replay(gw.policy_path.parent / "candidate.yaml", gw.data_dir)
    est = result.summary["routing"]["estimates"]
    # an unpriced target makes the cost unknown, never 0, and says which targets lack a price
    assert result.summary["cost_usd"] is None and est["unpriced_targets"] == ["other/house-model-7b"]
    assert est["cost_usd_priced_part"] > 0
    targets = est["targets"]
    assert targets["local/status-503"]["failure_rate"] == 1.0 and targets["other/gpt-4o"]["failure_rate"] == 0.0
    # gpt-4o has no policy price: the built-in table prices it
    assert targets["other/gpt-4o"]["price_source"].startswith("table:")
    # half of the requests (route fallback) start on a target that always fails
    assert abs(est["fallback_rate"] - 0.5) < 1e-9 and est["error_rate"] == 0.0
    assert est["latency_ms_p50"] is not None and est["latency_ms_mean"] > 0
    doc["routes"]["fallback"]["targets"][1]["model"] = "gpt-4o"
    doc["pricing"]["gpt-4o"] = {"input_per_1m": 2.5, "output_per_1m": 10}
    priced = replay(load_policy(doc), gw.data_dir).summary
    assert priced["cost_usd"] > 0 and priced["logged_cost_usd"] > 0


def test_without_logged_bodies_metadata_rules_and_sticky_sessions_still_replay(make_gateway, upstream, tmp_path):
    gw = _start(make_gateway, upstream, tmp_path, log={"bodies": "hashed", "flush_ms": 100})
    with httpx.Client(base_url=gw.base_url) as c:
        for i in range(20):
            meta = {"tier": ["gold", "free"][i % 2], "session": f"s{i % 3}"}
            for model in ("sticky-session", "tiered"):
                c.post("/chat/completions", json={"model": model, "messages": SHORT, "metadata": meta})
    gw.terminate()
    con = open_log(gw.data_dir)
    assert con.execute("SELECT count(*) FROM requests WHERE request_body IS NOT NULL").fetchone()[0] == 0
    result = replay(load_policy(gw.policy_path), con)
    assert result.summary["requests"] == 40 and result.compare_to_log() == 0


def test_gw_replay_is_callable_after_importing_a_replay_submodule(tmp_path):
    import subprocess
    import sys

    code = (
        "import llmgw_kernel as gw\n"
        "from llmgw_kernel.replay.whatif import weight_sweep\n"
        "p = gw.load_policy({'providers': {'d': {'kind': 'demo'}}, "
        "'routes': {'m': {'targets': [{'provider': 'd', 'model': 'x'}]}}})\n"
        f"print(gw.replay(p, {str(tmp_path)!r}).compare_to_log())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
