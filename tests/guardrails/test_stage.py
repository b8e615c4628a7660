"""The guardrail stage over request and answer bodies, and over chunked streams: real
detectors (pii) and a policy's own custom rules, no mocks."""

from __future__ import annotations

import re

import orjson
import pytest

from llmgw_kernel import load_policy
from llmgw_kernel.guardrails.compile import Check, CustomRule
from llmgw_kernel.guardrails.findings import Finding
from llmgw_kernel.guardrails.pii import pii_detector
from llmgw_kernel.guardrails.redact import Redactor
from llmgw_kernel.guardrails.stage import GuardrailFailure, guard_completion, guard_request
from llmgw_kernel.guardrails.stream import MIN_RELEASE, StreamGuard
from llmgw_kernel.guardrails.verdicts import Blocked, Verdicts

PHONE = "0912 345 678"
CCCD = "001203004567"


def digits(text: str) -> list[Finding]:
    """A custom rule: runs of 6+ digits (deterministic, so chunkings can be compared exactly)."""
    return [Finding("NUMBER", m.start(), m.end(), 1.0, "test.digits") for m in re.finditer(r"\d{6,}", text)]


def pii(action: str = "redact", stage: str = "input") -> Check:
    return Check(f"{stage}[0]:pii", stage, "pii", action, pii_detector(("en", "vi")))


def custom(action: str, stage: str = "input", func=digits, name: str = "num") -> Check:
    return Check(name, stage, "custom", action, CustomRule(func, "tests:digits"))


def run_request(checks: tuple[Check, ...], body: dict, endpoint: str = "chat.completions"):
    verdicts = Verdicts()
    changed = guard_request(checks, body, endpoint, Redactor(), verdicts)
    return changed, verdicts


def test_every_text_of_a_chat_request_is_redacted_with_consistent_placeholders():
    body = {
        "messages": [
            {"role": "system", "content": f"Khách hàng gọi từ số {PHONE}."},
            {"role": "user", "content": [{"type": "text", "text": f"Số CCCD của tôi là {CCCD}, SĐT {PHONE}"},
                                         {"type": "image_url", "image_url": {"url": "https://x/0912345678.png"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "lookup", "arguments": orjson.dumps({"phone": "0912.345.678"}).decode()}}]},
            {"role": "tool", "tool_call_id": "c1", "content": f"CCCD {CCCD} thuộc về khách hàng"},
        ]
    }  # fmt: skip
    changed, verdicts = run_request((pii(),), body)
    assert changed
    msgs = body["messages"]
    assert msgs[0]["content"] == "Khách hàng gọi từ số <PHONE_NUMBER_1>."
    assert msgs[1]["content"][0]["text"] == "Số CCCD của tôi là <VN_CCCD_1>, SĐT <PHONE_NUMBER_1>"
    assert msgs[1]["content"][1]["image_url"]["url"] == "https://x/0912345678.png"  # not text: untouched
    assert orjson.loads(msgs[2]["tool_calls"][0]["function"]["arguments"]) == {"phone": "<PHONE_NUMBER_1>"}
    assert msgs[3]["content"] == "CCCD <VN_CCCD_1> thuộc về khách hàng"
    summary = verdicts.summary()
    assert {(v["type"], v["action"], v["count"]) for v in summary} == {
        ("PHONE_NUMBER", "redact", 3), ("VN_CCCD", "redact", 2),
    }  # fmt: skip
    assert PHONE not in orjson.dumps(summary).decode() and CCCD not in orjson.dumps(summary).decode()
    wheres = {r.where for r in verdicts.reasons}
    assert "messages[2].tool_calls[0].function.arguments" in wheres and "messages[1].content[0].text" in wheres


def test_nothing_found_leaves_the_body_as_it_was():
    body = {"messages": [{"role": "user", "content": "Giá 1.299.000đ, đơn hàng #20231105, hotline 1900 1234"}]}
    before = orjson.dumps(body)
    changed, verdicts = run_request((pii(),), body)
    assert not changed and orjson.dumps(body) == before and verdicts.summary() is None


def test_tool_arguments_stay_json_when_a_value_is_a_bare_number():
    args = '{"account": 123456789, "note": "ref 987654321", "ok": true}'
    body = {"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                                "function": {"name": "f", "arguments": args}}]}]}  # fmt: skip
    run_request((custom("redact"),), body)
    out = body["messages"][0]["tool_calls"][0]["function"]["arguments"]
    assert orjson.loads(out) == {"account": "<NUMBER_1>", "note": "ref <NUMBER_2>", "ok": True}


def test_embeddings_input_strings_are_redacted():
    body = {"model": "e", "input": [f"gọi {PHONE}", "nothing here", 42]}
    changed, _ = run_request((pii(),), body, "embeddings")
    assert changed and body["input"] == ["gọi <PHONE_NUMBER_1>", "nothing here", 42]
    single = {"model": "e", "input": f"CCCD {CCCD}"}
    run_request((pii(),), single, "embeddings")
    assert single["input"] == "CCCD <VN_CCCD_1>"


def test_block_names_the_check_rule_type_and_place_never_the_value():
    body = {"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": f"CCCD: {CCCD}"}]}
    with pytest.raises(Blocked) as exc:
        run_request((pii("block"),), body)
    message = str(exc.value)
    assert "input[0]:pii" in message and "VN_CCCD" in message and "messages[1].content" in message
    assert "rule pii." in message and CCCD not in message
    assert exc.value.reason.action == "block"


def test_flag_serves_the_text_unchanged_and_records_it():
    body = {"messages": [{"role": "user", "content": f"my number is {PHONE}"}]}
    changed, verdicts = run_request((pii("flag"),), body)
    assert not changed and body["messages"][0]["content"] == f"my number is {PHONE}"
    assert [(v["type"], v["action"]) for v in verdicts.summary()] == [("PHONE_NUMBER", "flag")]


def test_checks_see_the_original_text_and_overlapping_redactions_merge():
    def wide(text: str) -> list[Finding]:  # overlaps the digits rule's span
        return [Finding("ACCOUNT", m.start(), m.end(), 0.9, "test.wide") for m in re.finditer(r"acct \d+", text)]

    body = {"messages": [{"role": "user", "content": "pay acct 12345678 now"}]}
    run_request((custom("redact"), custom("redact", func=wide, name="wide")), body)
    assert body["messages"][0]["content"] == "pay <ACCOUNT_1> now"


def test_a_custom_rule_that_misbehaves_fails_the_request_closed():
    def broken(text: str):
        return [("NUMBER", 0, 3)]

    def out_of_range(text: str):
        return [Finding("X", 0, len(text) + 5, 1.0, "r")]

    def raises(text: str):
        raise RuntimeError("boom")

    for func in (broken, out_of_range, raises):
        body = {"messages": [{"role": "user", "content": "some text"}]}
        with pytest.raises(GuardrailFailure) as exc:
            run_request((custom("redact", func=func),), body)
        assert "'num'" in str(exc.value)


def test_answers_are_checked_per_choice():
    completion = {"choices": [
        {"index": 0, "message": {"role": "assistant", "content": f"Số của bạn: {PHONE}"}},
        {"index": 1, "message": {"role": "assistant", "content": None, "refusal": f"no CCCD {CCCD}"}},
    ]}  # fmt: skip
    verdicts = Verdicts()
    assert guard_completion((pii(stage="output"),), completion, Redactor(), verdicts)
    assert completion["choices"][0]["message"]["content"] == "Số của bạn: <PHONE_NUMBER_1>"
    assert completion["choices"][1]["message"]["refusal"] == "no CCCD <VN_CCCD_1>"
    assert {r.where for r in verdicts.reasons} == {"choices[0].message.content", "choices[1].message.refusal"}


# -- streams ----------------------------------------------------------------------------------------

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chunk(delta: dict, finish: str | None = None, index: int = 0) -> bytes:
    return orjson.dumps({**HEAD, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]})


def stream_of(pieces: list[str]) -> list[bytes]:
    return [chunk({"role": "assistant", "content": ""}), *(chunk({"content": p}) for p in pieces),
            chunk({}, "stop")]  # fmt: skip


def relay(guard: StreamGuard, payloads: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for p in payloads:
        out += guard.feed(p)
    return out + guard.close()


def text_of(payloads: list[bytes]) -> str:
    return "".join(
        (c.get("delta") or {}).get("content") or "" for p in payloads for c in orjson.loads(p).get("choices") or ()
    )


def whole(checks: tuple[Check, ...], text: str) -> str:
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    guard_completion(checks, completion, Redactor(), Verdicts())
    return completion["choices"][0]["message"]["content"]


@pytest.mark.parametrize("detector", ["pii", "custom"])
@pytest.mark.parametrize("holdback", [16, 64])
def test_a_value_split_across_two_chunks_is_redacted_at_every_split_point(holdback, detector):
    """The stream's answer equals the JSON answer's, whatever the split (one character per chunk too)."""
    text = f"Xin chào, SĐT của tôi: {PHONE} và CCCD {CCCD}, cảm ơn bạn rất nhiều nhé! Mã 20231105."
    checks = (pii(stage="output"),) if detector == "pii" else (custom("redact", stage="output"),)
    expected = whole(checks, text)
    assert expected.count("<") >= 2  # the detector found something to redact: the test is not vacuous
    for cut in range(1, len(text)):
        out = relay(StreamGuard(checks, Redactor(), Verdicts(), holdback), stream_of([text[:cut], text[cut:]]))
        assert text_of(out) == expected, cut
    by_char = relay(StreamGuard(checks, Redactor(), Verdicts(), holdback), stream_of(list(text)))
    assert text_of(by_char) == expected


def test_stream_redaction_records_each_finding_once_and_shares_placeholders_with_input():
    redactor = Redactor()
    redactor.placeholder("PHONE_NUMBER", "0987654321")  # the input already had one phone number
    verdicts = Verdicts()
    guard = StreamGuard((custom("redact", stage="output"),), redactor, verdicts, 16)
    text = "call 0987654321 or 5551234567 " + "x" * 80 + " again 0987654321"
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    out = text_of(relay(guard, stream_of(pieces)))
    assert out == "call <NUMBER_1> or <NUMBER_2> " + "x" * 80 + " again <NUMBER_1>"
    assert verdicts.summary()[0]["count"] == 3


def test_nothing_is_released_before_the_holdback_fills():
    guard = StreamGuard((custom("redact", stage="output"),), Redactor(), Verdicts(), 32)
    assert guard.feed(chunk({"role": "assistant", "content": ""}))  # no text: passes at once
    sent = ""
    for i, ch in enumerate("abcdefghij" * 10):
        sent += text_of(guard.feed(chunk({"content": ch})))
        received = i + 1
        assert len(sent) <= max(0, received - 32)
        if received == 33:
            assert sent == "a"  # the first text goes as soon as there is any beyond the holdback
        if received >= 32 + MIN_RELEASE:
            assert len(sent) >= received - 32 - MIN_RELEASE
    assert text_of(guard.feed(chunk({}, "stop"))) == ("abcdefghij" * 10)[len(sent) :]


def test_a_blocked_value_is_stopped_before_any_of_it_is_sent():
    guard = StreamGuard((custom("block", stage="output"),), Redactor(), Verdicts(), 64)
    text = (
        "Here it is: 123"
        + "456789 and some more text to push it well past the holdback window of sixty-four characters."
    )
    sent = ""
    with pytest.raises(Blocked) as exc:
        for piece in [text[i : i + 5] for i in range(0, len(text), 5)]:
            sent += text_of(guard.feed(chunk({"content": piece})))
    assert "123" not in sent and exc.value.reason.stage == "output"
    assert str(exc.value).startswith("Response blocked by guardrail 'num'")


def test_streamed_tool_arguments_are_redacted_and_held_text_rides_on_the_finish_chunk():
    guard = StreamGuard((custom("redact", stage="output"),), Redactor(), Verdicts(), 64)
    args = '{"account": "1234567890"}'
    payloads = [chunk({"role": "assistant", "content": None,
                       "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                       "function": {"name": "pay", "arguments": ""}}]})]  # fmt: skip
    payloads += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 4]}}]})
                 for i in range(0, len(args), 4)]  # fmt: skip
    payloads.append(chunk({}, "tool_calls"))
    out = [orjson.loads(p) for p in relay(guard, payloads)]
    calls = [c for o in out for ch in o["choices"] for c in (ch["delta"].get("tool_calls") or ())]
    assert calls[0]["id"] == "call_1" and calls[0]["function"]["name"] == "pay"
    assert orjson.loads("".join(c["function"]["arguments"] for c in calls)) == {"account": "<NUMBER_1>"}
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_held_text_is_sent_when_the_upstream_ends_without_a_finish_reason():
    guard = StreamGuard((custom("redact", stage="output"),), Redactor(), Verdicts(), 64)
    out = relay(guard, [chunk({"content": "short answer 1234567"})])
    assert text_of(out) == "short answer <NUMBER_1>"


def test_usage_and_error_chunks_pass_through():
    guard = StreamGuard((pii(stage="output"),), Redactor(), Verdicts(), 64)
    usage = orjson.dumps({**HEAD, "choices": [], "usage": {"prompt_tokens": 1}})
    assert guard.feed(usage) == [usage]
    assert guard.feed(b'{"error": {"message": "x"}}') == [b'{"error": {"message": "x"}}']


# -- policy ------------------------------------------------------------------------------------------


def test_bodies_default_to_redacted_with_a_pii_check_unless_the_policy_says_otherwise():
    base = {"providers": {"d": {"kind": "demo"}}, "routes": {"m": {"targets": [{"provider": "d", "model": "x"}]}}}
    assert load_policy(base).log.bodies == "full"
    with_pii = {**base, "guardrails": {"output": [{"type": "pii", "action": "redact"}]}}
    assert load_policy(with_pii).log.bodies == "redacted"
    assert load_policy({**with_pii, "log": {"bodies": "full"}}).log.bodies == "full"
    on_a_route = {**base, "routes": {"m": {**base["routes"]["m"],
                                           "guardrails": {"input": [{"type": "pii", "action": "flag"}]}}}}  # fmt: skip
    assert load_policy(on_a_route).log.bodies == "redacted"
    only_custom = {**base, "guardrails": {"input": [{"type": "injection", "action": "flag"}]}}
    assert "guardrails" in only_custom  # an injection check alone does not change the bodies default


def test_a_large_answer_is_checked_off_the_loop_with_the_same_result():
    import asyncio

    from llmgw_kernel.guardrails.compile import Guardrails
    from llmgw_kernel.guardrails.request import RequestGuard
    from llmgw_kernel.proxy.guardrails import THREAD_ABOVE_BYTES, check_output

    text = "x" * THREAD_ABOVE_BYTES + f" số {PHONE}"
    raw = orjson.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})
    guard = RequestGuard(Guardrails((), (pii(stage="output"),), 64))
    out = orjson.loads(asyncio.run(check_output(guard, raw)))
    assert out["choices"][0]["message"]["content"].endswith(" số <PHONE_NUMBER_1>")
    assert [v["type"] for v in guard.verdicts.summary()] == ["PHONE_NUMBER"]


def test_logprobs_are_removed_where_output_checks_run():
    """They spell out the tokens: a redacted or blocked value would show there."""
    logprobs = {"content": [{"token": "0912", "logprob": -0.1, "top_logprobs": []}]}
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "logprobs": logprobs}]}
    assert guard_completion((pii(stage="output"),), completion, Redactor(), Verdicts())
    assert completion["choices"][0]["logprobs"] is None
    guard = StreamGuard((pii(stage="output"),), Redactor(), Verdicts(), 64)
    payload = orjson.dumps({**HEAD, "choices": [{"index": 0, "delta": {"content": "0912"}, "logprobs": logprobs,
                                                 "finish_reason": None}]})  # fmt: skip
    out = relay(guard, [payload, chunk({}, "stop")])
    assert all(c.get("logprobs") is None for p in out for c in orjson.loads(p)["choices"])
    assert b"0912" in b"".join(out)  # the text itself (no finding here) is still sent
