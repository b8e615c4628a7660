"""Guardrails through a real `llmgw serve`: the official openai and anthropic SDKs as clients,
the fake providers over real HTTP, and assertions on what the providers RECEIVED, what the
clients got back, and what the log and metrics kept."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from conftest import Gateway, policy_for, wait_for_rows

sys.path.insert(0, str(Path(__file__).parent.parent))
from fake_anthropic import FakeAnthropic  # noqa: E402

PROVIDER_KEY = "sk-ant-provider-0123456789abcdefghij"
PHONE = "0912 345678"  # the fake upstream streams word by word: this phone arrives in two chunks
CCCD = "001203004567"
SECRET = "BANANA-7731"
RULES = '''
import re
from llmgw_kernel.guardrails.findings import Finding

def secret(text):
    """A policy's own rule: BANANA-<digits> codes."""
    return [Finding("SECRET_CODE", m.start(), m.end(), 1.0, "rules.secret") for m in re.finditer(r"BANANA-\\d+", text)]

def explode(text):
    raise ValueError(f"cannot handle {text!r}")
'''
LOCAL = [{"provider": "local", "model": "gpt-4o-mini"}]
ROUTES = {
    "claude": {"targets": [{"provider": "claude", "model": "claude-sonnet"}]},
    "out-only": {"targets": LOCAL, "guardrails": {"input": []}},
    "claude-out-only": {"targets": [{"provider": "claude", "model": "claude-sonnet"}], "guardrails": {"input": []}},
    "blocker": {
        "targets": LOCAL,
        "guardrails": {
            "input": [
                {"type": "pii", "action": "block", "entities": ["VN_CCCD"], "name": "no-cccd"},
                {"type": "pii", "action": "redact"},
            ]
        },
    },  # fmt: skip
    "out-block": {
        "targets": LOCAL,
        "guardrails": {"input": [], "output": [{"type": "custom", "rule": "guard_rules:secret", "action": "block"}]},
    },  # fmt: skip
    "flagger": {
        "targets": LOCAL,
        "guardrails": {
            "input": [{"type": "custom", "rule": "guard_rules:secret", "action": "flag", "name": "secret-flag"}],
            "output": [],
        },
    },  # fmt: skip
    "noguard": {"targets": LOCAL, "guardrails": False},
    "broken-rule": {
        "targets": LOCAL,
        "guardrails": {"input": [{"type": "custom", "rule": "guard_rules:explode", "action": "flag"}]},
    },  # fmt: skip
}
GUARDRAILS = {"input": [{"type": "pii", "action": "redact", "languages": ["en", "vi"]}],
              "output": [{"type": "pii", "action": "redact"}]}  # fmt: skip


def start(tmp: Path, policy: dict, env: dict[str, str] | None = None) -> Gateway:
    (tmp / "policies").mkdir(parents=True, exist_ok=True)
    (tmp / "policies" / "guard_rules.py").write_text(RULES)
    return Gateway(tmp, policy, env)


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    fake = FakeAnthropic(PROVIDER_KEY).start()
    policy = policy_for(upstream.base_url, guardrails=GUARDRAILS)
    policy["providers"]["claude"] = {"kind": "anthropic", "base_url": fake.base_url, "api_key_env": "ANT_KEY"}
    policy["routes"].update(ROUTES)
    g = start(tmp_path_factory.mktemp("guard"), policy, {"ANT_KEY": PROVIDER_KEY})
    g.fake = fake  # type: ignore[attr-defined]
    yield g
    g.terminate()
    fake.stop()


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def ant(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0)


def received(fake, marker: str) -> dict:
    """The body the fake provider received for the request carrying ``marker``."""
    found = [r["body"] for r in fake.requests if marker in json.dumps(r["body"], ensure_ascii=False)]
    assert len(found) == 1, f"{len(found)} upstream requests carry {marker}"
    return found[0]


def pii_text(marker: str) -> str:
    return f"[{marker}] Số điện thoại của tôi là {PHONE}, CCCD {CCCD}."


def assert_clean(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert PHONE not in text and PHONE.replace(" ", "") not in text and CCCD not in text, text


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_chat_completions_reach_the_provider_redacted(gw, upstream, stream):
    marker = uuid.uuid4().hex
    messages = [
        {"role": "system", "content": f"Khách hàng: SĐT {PHONE}"},
        {"role": "user", "content": pii_text(marker)},
    ]
    if stream:
        chunks = list(oai(gw).chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True))
        answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        answer = oai(gw).chat.completions.create(model="gpt-4o-mini", messages=messages).choices[0].message.content
    body = received(upstream, marker)
    assert_clean(body)
    assert body["messages"][0]["content"] == "Khách hàng: SĐT <PHONE_NUMBER_1>"
    assert body["messages"][1]["content"] == f"[{marker}] Số điện thoại của tôi là <PHONE_NUMBER_1>, CCCD <VN_CCCD_1>."
    assert "<PHONE_NUMBER_1>" in answer and "<VN_CCCD_1>" in answer  # the model only ever saw placeholders


def test_tool_calls_and_tool_results_reach_the_provider_redacted(gw, upstream):
    marker = uuid.uuid4().hex
    messages = [
        {"role": "user", "content": f"[{marker}] tra cứu khách hàng"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "lookup", "arguments": json.dumps({"phone": PHONE, "cccd": f"CCCD {CCCD}"})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": f"Khách hàng có CCCD {CCCD}, SĐT {PHONE}"},
    ]  # fmt: skip
    oai(gw).chat.completions.create(model="gpt-4o-mini", messages=messages)
    body = received(upstream, marker)
    assert_clean(body)
    args = json.loads(body["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert args == {"phone": "<PHONE_NUMBER_1>", "cccd": "CCCD <VN_CCCD_1>"}
    assert body["messages"][2]["content"] == "Khách hàng có CCCD <VN_CCCD_1>, SĐT <PHONE_NUMBER_1>"


@pytest.mark.parametrize("route", ["gpt-4o-mini", "claude"], ids=["openai-target", "anthropic-target"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_messages_reach_the_provider_redacted(gw, upstream, route, stream):
    marker = uuid.uuid4().hex
    fake = upstream if route == "gpt-4o-mini" else gw.fake
    kwargs = {
        "model": route, "max_tokens": 100, "system": f"Hồ sơ: CCCD {CCCD}",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": pii_text(marker)}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_1", "name": "lookup",
                                               "input": {"phone": PHONE}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "tu_1", "content": f"SĐT {PHONE} thuộc CCCD {CCCD}"},
                {"type": "text", "text": f"[{marker}] và số {PHONE} nữa"}]},
        ],
    }  # fmt: skip
    if stream:
        with ant(gw).messages.stream(**kwargs) as s:
            answer = "".join(s.text_stream)
    else:
        answer = "".join(b.text for b in ant(gw).messages.create(**kwargs).content if b.type == "text")
    body = received(fake, marker)
    assert_clean(body)
    text = json.dumps(body, ensure_ascii=False)
    assert "<PHONE_NUMBER_1>" in text and "<VN_CCCD_1>" in text
    assert_clean(answer)


@pytest.mark.parametrize("target", ["openai", "anthropic"], ids=["openai-target", "anthropic-target"])
@pytest.mark.parametrize("api", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_upstreams_answer_is_redacted_on_the_way_back(gw, upstream, api, stream, target):
    marker = uuid.uuid4().hex
    text = pii_text(marker)
    route, fake = ("out-only", upstream) if target == "openai" else ("claude-out-only", gw.fake)
    if api == "openai":
        messages = [{"role": "user", "content": text}]
        if stream:
            chunks = list(oai(gw).chat.completions.create(model=route, messages=messages, stream=True))
            answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            answer = oai(gw).chat.completions.create(model=route, messages=messages).choices[0].message.content
    else:
        kwargs = {"model": route, "max_tokens": 100, "messages": [{"role": "user", "content": text}]}
        if stream:
            with ant(gw).messages.stream(**kwargs) as s:
                answer = "".join(s.text_stream)
        else:
            answer = ant(gw).messages.create(**kwargs).content[0].text
    sent = received(fake, marker)["messages"][0]["content"]  # this route checks only the output
    assert sent == text or sent == [{"type": "text", "text": text}]
    prefix = "Hello from the fake upstream: " if target == "openai" else "Claude heard: "
    assert answer == f"{prefix}[{marker}] Số điện thoại của tôi là <PHONE_NUMBER_1>, CCCD <VN_CCCD_1>."


def test_the_upstream_really_splits_the_phone_across_two_chunks(upstream):
    """What the stream test above relies on: no single chunk of the fake's stream holds the number."""
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": f"gọi {PHONE}"}]}
    raw = httpx.post(upstream.base_url + "/chat/completions", json=body,
                     headers={"Authorization": "Bearer sk-upstream-secret-0123456789abcdef"}).text  # fmt: skip
    pieces = [json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
              for line in raw.splitlines() if line.startswith("data: {")]  # fmt: skip
    assert "0912 " in pieces and "345678." not in pieces and any(p.startswith("345678") for p in pieces)
    assert not any(PHONE in p for p in pieces)


def test_a_block_returns_a_clear_400_and_nothing_reaches_the_provider(gw, upstream):
    marker = uuid.uuid4().hex
    before = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as exc:
        oai(gw).chat.completions.create(model="blocker", messages=[{"role": "user", "content": pii_text(marker)}])
    err = exc.value
    assert err.status_code == 400 and err.code == "guardrail_blocked" and err.param == "messages[0].content"
    message = err.body["message"]  # type: ignore[index]
    assert "'no-cccd'" in message and "VN_CCCD" in message and "rule pii." in message
    assert CCCD not in str(err.body) and PHONE not in str(err.body)
    with pytest.raises(anthropic.BadRequestError) as aexc:
        ant(gw).messages.create(
            model="blocker", max_tokens=50, messages=[{"role": "user", "content": pii_text(marker)}]
        )
    assert aexc.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "VN_CCCD" in aexc.value.body["error"]["message"] and CCCD not in str(aexc.value.body)  # type: ignore[index]
    assert not any(marker in json.dumps(r["body"]) for r in upstream.requests[before:])
    rows = wait_for_rows(gw, "route = 'blocker' AND error_type = 'guardrail_blocked' AND status = 400", n=2)
    assert len(rows) == 2 and rows[0]["outcome"] == "client_error" and rows[0]["target"] is None
    verdicts = rows[0]["guardrails"]
    assert {(v["name"], v["type"], v["action"]) for v in verdicts} >= {("no-cccd", "VN_CCCD", "block")}
    assert CCCD not in json.dumps(rows, default=str)  # bodies: redacted (a pii check is on), verdicts hold no value


def test_an_output_block_stops_json_and_streams(gw, upstream):
    ask = [{"role": "user", "content": f"repeat {SECRET} please"}]
    with pytest.raises(openai.BadRequestError) as exc:
        oai(gw).chat.completions.create(model="out-block", messages=ask)
    assert exc.value.code == "guardrail_blocked" and "SECRET_CODE" in str(exc.value) and SECRET not in str(exc.value)
    got = ""
    with pytest.raises(openai.APIError) as sexc:
        for c in oai(gw).chat.completions.create(model="out-block", messages=ask, stream=True):
            got += (c.choices[0].delta.content or "") if c.choices else ""
    assert "Response blocked by guardrail 'output[0]:custom'" in str(sexc.value) and "BANANA" not in got
    with (
        pytest.raises(anthropic.APIStatusError) as aexc,
        ant(gw).messages.stream(model="out-block", max_tokens=50, messages=ask) as s,
    ):
        got = "".join(s.text_stream)
    assert "SECRET_CODE" in str(aexc.value) and "BANANA" not in got


def test_flag_serves_the_request_and_records_the_verdict(gw, upstream):
    marker = uuid.uuid4().hex
    r = oai(gw).chat.completions.with_raw_response.create(
        model="flagger", messages=[{"role": "user", "content": f"[{marker}] code {SECRET}"}]
    )
    assert SECRET in r.parse().choices[0].message.content  # served as it was
    assert SECRET in received(upstream, marker)["messages"][0]["content"]
    rid = r.headers["x-request-id"]
    row = wait_for_rows(gw, f"request_id = '{rid}'")[0]
    assert row["status"] == 200 and row["body_mode"] == "redacted"
    assert [(v["name"], v["rule"], v["type"], v["action"], v["count"]) for v in row["guardrails"]] == [
        ("secret-flag", "rules.secret", "SECRET_CODE", "flag", 1)
    ]
    metrics = httpx.get(gw.url + "/metrics").text
    assert ('llmgw_guardrail_verdicts_total{action="flag",check="secret-flag",rule="rules.secret",'
            'stage="input",type="SECRET_CODE"}') in metrics  # fmt: skip


def test_the_log_keeps_bodies_after_redaction_and_verdicts_without_values(gw, upstream):
    marker = uuid.uuid4().hex
    r = oai(gw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": pii_text(marker)}], metadata={"team": "a"}
    )
    row = wait_for_rows(gw, f"request_id = '{r.headers['x-request-id']}'")[0]
    assert row["body_mode"] == "redacted"
    request, response = json.loads(row["request_body"]), json.loads(row["response_body"])
    assert request["messages"][0]["content"] == received(upstream, marker)["messages"][0]["content"]
    assert request["metadata"] == {"team": "a"}
    assert "<VN_CCCD_1>" in response["choices"][0]["message"]["content"]
    assert {(v["stage"], v["type"], v["action"], v["count"]) for v in row["guardrails"]} == {
        ("input", "PHONE_NUMBER", "redact", 1), ("input", "VN_CCCD", "redact", 1),
    }  # fmt: skip
    assert_clean(json.dumps(row, default=str, ensure_ascii=False))


def test_embeddings_input_reaches_the_provider_redacted(gw, upstream):
    marker = uuid.uuid4().hex
    oai(gw).embeddings.create(model="text-embedding-3-small", input=[pii_text(marker), "plain"])
    body = received(upstream, marker)
    assert_clean(body) and body["input"][1] == "plain"
    assert "<PHONE_NUMBER_1>" in body["input"][0]


def test_a_route_without_guardrails_passes_text_untouched(gw, upstream):
    marker = uuid.uuid4().hex
    oai(gw).chat.completions.create(model="noguard", messages=[{"role": "user", "content": pii_text(marker)}])
    assert received(upstream, marker)["messages"][0]["content"] == pii_text(marker)


def test_cached_answers_get_the_output_guardrails_in_force(upstream, tmp_path):
    """An answer cached before an output check existed is redacted when served as a hit after it
    was switched on (hot reload), as JSON and as a stream; with bodies: full the log keeps the
    request as received; a reload to a bad guardrail setting is refused, naming its path."""
    policy = policy_for(upstream.base_url, cache={"exact": {"ttl_s": 600}}, log={"flush_ms": 100, "bodies": "full"})
    g = start(tmp_path / "cache", policy)
    try:
        marker = uuid.uuid4().hex
        ask = [{"role": "user", "content": pii_text(marker)}]
        first = oai(g).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=ask, temperature=0)
        assert first.headers["x-llmgw-cache"] == "miss" and CCCD in first.parse().choices[0].message.content
        policy["guardrails"] = {"output": [{"type": "pii", "action": "redact"}]}
        before = httpx.get(g.url + "/health").json()["policy_version"]
        g.policy_path.write_text(json.dumps(policy))
        for _ in range(100):
            if httpx.get(g.url + "/health").json()["policy_version"] != before:
                break
            time.sleep(0.05)
        hit = oai(g).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=ask, temperature=0)
        assert hit.headers["x-llmgw-cache"] == "hit"
        assert hit.parse().choices[0].message.content.endswith("<PHONE_NUMBER_1>, CCCD <VN_CCCD_1>.")
        chunks = list(oai(g).chat.completions.create(model="gpt-4o-mini", messages=ask, temperature=0, stream=True))
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == hit.parse().choices[0].message.content
        row = wait_for_rows(g, f"request_id = '{hit.headers['x-request-id']}'")[0]
        assert row["body_mode"] == "full" and CCCD in row["request_body"]  # explicitly full: as received
        assert CCCD not in row["response_body"]  # the answer as the client got it
        # a reload to a bad guardrail setting is refused with its path; the guardrails in force stay
        serving = httpx.get(g.url + "/health").json()["policy_version"]
        policy["guardrails"] = {"output": [{"type": "pii", "action": "redact", "entities": ["PHONE"]}]}
        g.policy_path.write_text(json.dumps(policy))
        health: dict = {}
        for _ in range(100):
            health = httpx.get(g.url + "/health").json()
            if health.get("policy_reload_error"):
                break
            time.sleep(0.05)
        assert "guardrails.output[0].entities: unknown PII types ['PHONE']" in health["policy_reload_error"]
        assert health["policy_version"] == serving
        again = oai(g).chat.completions.create(model="gpt-4o-mini", messages=ask, temperature=0)
        assert again.choices[0].message.content == hit.parse().choices[0].message.content
    finally:
        g.terminate()


def test_bad_guardrail_config_fails_validation_with_a_clear_message(tmp_path):
    (tmp_path / "guard_rules.py").write_text(RULES)
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({
        "providers": {"d": {"kind": "demo"}},
        "routes": {"m": {"targets": [{"provider": "d", "model": "x"}],
                         "guardrails": {"output": [{"type": "custom", "action": "block", "rule": "guard_rules:nope"}]}}},
        "guardrails": {"input": [{"type": "pii", "action": "redact", "entities": ["PHONE"]},
                                 {"type": "pii", "action": "mask"}]},
    }))  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "llmgw_kernel", "policy", "validate", str(bad)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 1
    assert "guardrails.input[1].action: Input should be 'redact', 'block' or 'flag'" in proc.stdout + proc.stderr
    bad.write_text(bad.read_text().replace('"mask"', '"flag"'))
    proc = subprocess.run([sys.executable, "-m", "llmgw_kernel", "policy", "validate", str(bad)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "guardrails.input[0].entities: unknown PII types ['PHONE']" in out
    assert "routes.m.guardrails.output[0].rule: module 'guard_rules' has no function 'nope'" in out


def test_a_prompt_too_large_for_the_event_loop_is_checked_in_a_thread_all_the_same(gw, upstream):
    from llmgw_kernel.proxy.guardrails import THREAD_ABOVE_BYTES

    marker = uuid.uuid4().hex
    filler = "Khách hàng cần hỗ trợ về đơn hàng và thời gian giao hàng. " * (THREAD_ABOVE_BYTES // 40)
    content = pii_text(marker) + filler + f" Gọi lại số {PHONE}."
    assert len(content.encode()) > THREAD_ABOVE_BYTES
    oai(gw).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": content}])
    body = received(upstream, marker)
    assert_clean(body)
    assert body["messages"][0]["content"].endswith("Gọi lại số <PHONE_NUMBER_1>.")


def test_a_check_that_raises_refuses_the_request_without_quoting_the_text(gw, upstream):
    marker = uuid.uuid4().hex
    with pytest.raises(openai.InternalServerError) as exc:
        oai(gw).chat.completions.create(model="broken-rule", messages=[{"role": "user", "content": pii_text(marker)}])
    assert exc.value.status_code == 500 and exc.value.code == "guardrail_error"
    assert "guardrail 'input[0]:custom' failed (ValueError)" in str(exc.value) and marker not in str(exc.value)
    assert not any(marker in json.dumps(r["body"]) for r in upstream.requests)


def test_under_redacted_bodies_a_request_refused_before_its_checks_keeps_only_its_hash(gw):
    """Regression: a request refused before the input checks ran (validation, unknown route) was
    logged with its body as received — the text a pii check exists to keep out of the log."""
    marker = uuid.uuid4().hex
    with pytest.raises(openai.BadRequestError):
        oai(gw).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": pii_text(marker)}],
                                        temperature=5)  # fmt: skip
    with pytest.raises(openai.NotFoundError):
        oai(gw).chat.completions.create(model="no-such-route", messages=[{"role": "user", "content": pii_text(marker)}])
    rows = wait_for_rows(gw, "status IN (400, 404) AND error_type IN ('invalid_value', 'model_not_found')", n=2)
    mine = [r for r in rows if r["route"] in ("gpt-4o-mini", "no-such-route") and r["request_hash"]]
    assert len(mine) >= 2
    for row in mine:
        assert row["body_mode"] == "hashed" and row["request_body"] is None
        assert_clean(json.dumps(row, default=str, ensure_ascii=False))
