"""Prometheus and Grafana for real (issue 14, item 3): a real Prometheus server (Debian's
`prometheus` package; `.ci/run` installs it) scrapes a real `llmgw serve` carrying traffic that
exercises every family — successes, 5xx, upstream failures rescued by fallback, retries, streams,
cache hits, a budget that runs out, a circuit breaker — with `deploy/prometheus/alerts.yml`
loaded. Every query of the Grafana dashboard (`deploy/grafana/llmgw.json`) must return data
through Prometheus's HTTP API, and the rules must load (`promtool check rules` and
`/api/v1/rules`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from conftest import free_port
from keys.keyed_gateway import metered_policy

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "llmgw.json"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install -y prometheus (.ci/run does)")
    return path


def _policy(upstream_url: str) -> dict:
    policy = metered_policy(upstream_url)
    policy["routes"]["gpt-4o-mini"]["cache"] = {"exact": {"ttl_s": 600}}
    policy["routes"]["fallback"].update(retry={"attempts": 2, "on_status": [503], "backoff_ms": 1},
                                        breaker={"failures": 3, "cooldown_s": 60})  # fmt: skip
    policy["budgets"] = {"limits": [{"scope": "team", "name": "tiny", "usd": 0.02, "window": "day"},
                                    {"scope": "team", "usd": 100, "window": "month"}]}  # fmt: skip
    return policy


def _traffic(gw) -> None:
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, timeout=20)
    msg = [{"role": "user", "content": "the same question every time"}]
    for i in range(6):
        client.chat.completions.create(model="gpt-4o-mini", messages=msg, extra_body={"metadata": {"team": "search"}})
        client.chat.completions.create(model="fallback", messages=[{"role": "user", "content": f"q{i}"}])
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="broken-500", messages=msg)
        with pytest.raises(openai.RateLimitError):  # the first one spends the tiny budget; a refusal follows
            for _ in range(3):
                client.chat.completions.create(model="split", messages=msg, extra_body={"metadata": {"team": "tiny"}})
    for _chunk in client.chat.completions.create(model="split", messages=msg, stream=True):
        pass


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, upstream):
    from conftest import Gateway

    tmp = tmp_path_factory.mktemp("prom")
    gw = Gateway(tmp / "gw", _policy(upstream.base_url))
    _traffic(gw)
    port = free_port()
    shutil.copy(ALERTS, tmp / "alerts.yml")
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [{"job_name": "llmgw", "static_configs": [{"targets": [f"127.0.0.1:{gw.port}"]}]}],
    }))  # fmt: skip
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [_binary("prometheus"), f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
    )  # fmt: skip
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        _wait_for_samples(api, proc, tmp)
        yield api, gw
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        gw.terminate()


def _wait_for_samples(api: str, proc: subprocess.Popen, tmp: Path, timeout: float = 60) -> None:
    """Until the gateway's target is up and holds several scrapes (rates need two samples)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp / "prometheus.log").read_text()
        try:
            r = httpx.get(f"{api}/query", params={"query": 'count_over_time(up{job="llmgw"}[1m])'}, timeout=2)
            result = r.json()["data"]["result"]
            if result and float(result[0]["value"][1]) >= 4:
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError("Prometheus did not scrape the gateway:\n" + (tmp / "prometheus.log").read_text()[-3000:])


def _queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    out = [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]
    assert len(out) >= 16
    return out


def test_every_dashboard_query_returns_data(prometheus) -> None:
    api, _ = prometheus
    empty = []
    for title, expr in _queries():
        query = expr.replace("$__rate_interval", "1m").replace('instance=~"$instance"', 'instance=~".*"')
        r = httpx.get(f"{api}/query", params={"query": query}, timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "success", (title, r.text)
        if not r.json()["data"]["result"]:
            empty.append(title)
    assert not empty, f"panels without data: {empty}"


def test_the_budget_gauges_show_the_spent_team_budget(prometheus) -> None:
    api, _ = prometheus
    r = httpx.get(
        f"{api}/query", params={"query": 'llmgw_budget_spent_usd{who="tiny",window="day"} / llmgw_budget_limit_usd'}
    )
    (series,) = r.json()["data"]["result"]
    assert float(series["value"][1]) >= 0.9 and series["metric"]["window"] == "day"
    per_team = httpx.get(f"{api}/query", params={"query": 'llmgw_budget_limit_usd{window="month"}'}).json()
    assert {s["metric"]["who"] for s in per_team["data"]["result"]} >= {"search", "tiny"}  # each team its own


def test_the_alert_rules_load_and_check(prometheus) -> None:
    api, _ = prometheus
    check = subprocess.run([_binary("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    groups = httpx.get(f"{api}/rules", timeout=10).json()["data"]["groups"]
    names = {rule["name"] for g in groups for rule in g["rules"]}
    assert {
        "LlmgwDown",
        "LlmgwHighErrorRate",
        "LlmgwBudgetNearlyExhausted",
        "LlmgwCircuitOpen",
        "LlmgwLogNotWritable",
    } <= names
    assert all(rule["health"] != "err" for g in groups for rule in g["rules"]), groups
    example = subprocess.run([_binary("promtool"), "check", "config", str(ALERTS.parent / "prometheus.yml")],
                             capture_output=True, text=True)  # fmt: skip
    assert example.returncode == 0, example.stdout + example.stderr
