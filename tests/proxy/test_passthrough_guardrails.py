"""Output guardrails on every text a passed-through Responses answer shows the client
(``proxy/passthrough_guard.py``): reasoning summaries and built-in tool results, JSON and
streamed, through a real `llmgw serve` in front of the fake OpenAI upstream
(``tests/fake_responses.py``), read with the official openai SDK and as raw SSE bytes. The
message text itself is covered by tests/proxy/test_passthrough.py.
"""

from __future__ import annotations

import json
from typing import Any

import fake_responses
import openai
import pytest
from conftest import Gateway, policy_for, responses_events, wait_for_rows

from llmgw_kernel import load_policy, open_log, replay

REDACT = {"output": [{"type": "pii", "action": "redact"}]}
BLOCK = {"output": [{"type": "pii", "action": "block"}]}
FLAG = {"output": [{"type": "pii", "action": "flag"}]}
EMAIL = "alice.nguyen@example.com"
PHONE = "555 0134"


def _route(model: str, rails: dict[str, Any]) -> dict[str, Any]:
    return {"targets": [{"provider": "local", "model": model}], "guardrails": rails}


@pytest.fixture(scope="module")
def gw(upstream, tmp_path_factory):
    policy = policy_for(upstream.base_url)
    policy["routes"].update(
        {
            "reasoning-redact": _route("pii-reasoning", REDACT),
            "reasoning-block": _route("pii-reasoning", BLOCK),
            "tools-redact": _route("pii-tools", REDACT),
            "tools-block": _route("pii-tools", BLOCK),
            "parts-redact": _route("pii-parts", REDACT),
            "parts-flag": _route("pii-parts", FLAG),
            "reasoning-flag": _route("pii-reasoning", FLAG),
        }
    )
    g = Gateway(tmp_path_factory.mktemp("passthrough-guard"), policy)
    yield g
    g.terminate()


def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="vk-any", max_retries=0)


def output_verdicts(gw: Gateway, request_id: str) -> set[tuple[str, str]]:
    rows = wait_for_rows(gw, f"request_id = '{request_id}'")
    assert rows, request_id
    return {(v["type"], v["action"]) for v in rows[0]["guardrails"] or () if v["stage"] == "output"}


SUMMARY = fake_responses.PII_SUMMARY.replace("+1 415 555 0134", "<PHONE_NUMBER_1>")


def test_a_reasoning_summary_is_redacted_in_a_whole_answer(gw):
    r = client(gw).responses.with_raw_response.create(model="reasoning-redact", input="call me?")
    resp = r.parse()
    reasoning = resp.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == SUMMARY
    assert PHONE not in r.http_response.text
    assert output_verdicts(gw, r.headers["x-llmgw-request-id"]) == {("PHONE_NUMBER", "redact")}


def test_a_reasoning_summary_is_redacted_across_delta_boundaries_in_a_stream(gw):
    evs, rid = responses_events(gw, {"model": "reasoning-redact", "input": "call me?"})
    assert PHONE not in json.dumps(evs)
    deltas = "".join(d["delta"] for name, d in evs if name == "response.reasoning_summary_text.delta")
    assert deltas == SUMMARY
    (done,) = [d for name, d in evs if name == "response.reasoning_summary_text.done"]
    (part,) = [d for name, d in evs if name == "response.reasoning_summary_part.done"]
    items = [d["item"] for name, d in evs if name == "response.output_item.done" and d["item"]["type"] == "reasoning"]
    final = evs[-1][1]["response"]["output"][0]["summary"][0]["text"]
    assert done["text"] == part["part"]["text"] == items[0]["summary"][0]["text"] == final == SUMMARY
    assert evs[-1][0] == "response.completed"
    assert output_verdicts(gw, rid) == {("PHONE_NUMBER", "redact")}


def test_the_sdk_reads_a_stream_with_a_redacted_summary(gw):
    with client(gw).responses.stream(model="reasoning-redact", input="call me?") as stream:
        summary = "".join(e.delta for e in stream if e.type == "response.reasoning_summary_text.delta")
        final = stream.get_final_response()
    assert summary == SUMMARY and final.output[0].summary[0].text == SUMMARY


def test_a_block_on_a_reasoning_summary(gw):
    with pytest.raises(openai.BadRequestError) as exc:
        client(gw).responses.with_raw_response.create(model="reasoning-block", input="call me?")
    assert exc.value.body["code"] == "guardrail_blocked" and PHONE not in exc.value.response.text
    got = wait_for_rows(gw, f"request_id = '{exc.value.response.headers['x-llmgw-request-id']}'")[0]
    # accounted as a blocked chat answer is: the answer was paid for
    assert (got["target"], got["outcome"], got["status"]) == ("local/pii-reasoning", "client_error", 400)
    assert [a["status"] for a in got["attempts"]] == [200] and got["completion_tokens"] == 7
    assert {(v["type"], v["action"], v["count"]) for v in got["guardrails"]} == {("PHONE_NUMBER", "block", 1)}
    evs, rid = responses_events(gw, {"model": "reasoning-block", "input": "call me?"})
    names = [name for name, _ in evs]
    assert names[-2:] == ["error", "response.failed"] and evs[-2][1]["code"] == "guardrail_blocked"
    assert PHONE not in json.dumps(evs) and "response.output_text.delta" not in names
    assert output_verdicts(gw, rid) == {("PHONE_NUMBER", "block")}


def test_tool_results_and_citation_titles_are_redacted_in_a_whole_answer(gw):
    r = client(gw).responses.with_raw_response.create(model="tools-redact", input="who to contact?")
    resp = r.parse()
    search, message = resp.output
    assert search.type == "file_search_call"
    assert search.results[0].text == "Contact: <EMAIL_ADDRESS_1> (support desk)."
    assert message.content[0].annotations[0].title == "Mail <EMAIL_ADDRESS_1>"
    assert EMAIL not in r.http_response.text
    assert output_verdicts(gw, r.headers["x-llmgw-request-id"]) == {("EMAIL_ADDRESS", "redact")}


def test_tool_results_and_citation_titles_are_redacted_in_a_stream(gw):
    evs, rid = responses_events(gw, {"model": "tools-redact", "input": "who to contact?"})
    assert EMAIL not in json.dumps(evs)
    done = {d["item"]["type"]: d["item"] for name, d in evs if name == "response.output_item.done"}
    final = {i["type"]: i for i in evs[-1][1]["response"]["output"]}
    for items in (done, final):
        assert items["file_search_call"]["results"][0]["text"] == "Contact: <EMAIL_ADDRESS_1> (support desk)."
        assert items["message"]["content"][0]["annotations"][0]["title"] == "Mail <EMAIL_ADDRESS_1>"
    assert output_verdicts(gw, rid) == {("EMAIL_ADDRESS", "redact")}


def test_a_block_on_a_tool_result(gw):
    with pytest.raises(openai.BadRequestError) as exc:
        client(gw).responses.create(model="tools-block", input="who to contact?")
    assert exc.value.body["code"] == "guardrail_blocked"
    evs, _ = responses_events(gw, {"model": "tools-block", "input": "who to contact?"})
    assert [name for name, _ in evs][-2:] == ["error", "response.failed"] and EMAIL not in json.dumps(evs)


PARTS = ("Write to <EMAIL_ADDRESS_1> about the weather. ", "Or call <PHONE_NUMBER_1>, see the forecast.")


def assert_parts_and_citations(parts: list[dict[str, Any]]) -> None:
    """Each part redacted on its own, its citation still on the words it cites."""
    assert [p["text"] for p in parts] == list(PARTS)
    for part, words in zip(parts, ("weather", "forecast"), strict=True):
        (note,) = part["annotations"]
        assert part["text"][note["start_index"] : note["end_index"]] == words


def test_parts_are_redacted_one_by_one_and_citations_move_with_the_text(gw):
    r = client(gw).responses.with_raw_response.create(model="parts-redact", input="contact?")
    (message,) = r.parse().output
    assert_parts_and_citations([p.model_dump() for p in message.content])
    assert r.parse().output_text == "".join(PARTS) and EMAIL not in r.http_response.text
    got = wait_for_rows(gw, f"request_id = '{r.headers['x-llmgw-request-id']}'")[0]
    counts = {(v["stage"], v["type"], v["action"], v["count"]) for v in got["guardrails"]}
    assert counts == {("output", "EMAIL_ADDRESS", "redact", 1), ("output", "PHONE_NUMBER", "redact", 1)}  # once each


def test_parts_and_citations_in_a_stream(gw):
    evs, _ = responses_events(gw, {"model": "parts-redact", "input": "contact?"})
    assert EMAIL not in json.dumps(evs) and PHONE not in json.dumps(evs)
    for n, words in enumerate(("weather", "forecast")):
        text = "".join(
            d["delta"] for name, d in evs if name == "response.output_text.delta" and d["content_index"] == n
        )
        (added,) = [d["annotation"] for name, d in evs
                    if name == "response.output_text.annotation.added" and d["content_index"] == n]  # fmt: skip
        assert text == PARTS[n] and text[added["start_index"] : added["end_index"]] == words
    done = [d["part"] for name, d in evs if name == "response.content_part.done"]
    (item,) = [d["item"] for name, d in evs if name == "response.output_item.done"]
    for parts in (done, item["content"], evs[-1][1]["response"]["output"][0]["content"]):
        assert_parts_and_citations(parts)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("route", "found"), [("reasoning-flag", {"PHONE_NUMBER"}),
                                              ("parts-flag", {"PHONE_NUMBER", "EMAIL_ADDRESS"})])  # fmt: skip
def test_a_flag_is_recorded_once_and_changes_nothing(gw, route, found, stream):
    if stream:
        evs, rid = responses_events(gw, {"model": route, "input": "contact?"})
        assert evs[-1][0] == "response.completed" and PHONE in json.dumps(evs)
    else:
        r = client(gw).responses.with_raw_response.create(model=route, input="contact?")
        rid = r.headers["x-llmgw-request-id"]
        assert PHONE in r.http_response.text
    got = wait_for_rows(gw, f"request_id = '{rid}'")[0]
    assert {(v["type"], v["action"], v["count"]) for v in got["guardrails"]} == {(t, "flag", 1) for t in found}


def test_replay_does_not_compare_the_output_side_of_a_passed_through_answer(gw):
    """Live, a flag on a reasoning summary was found in a text the log's chat form does not hold:
    replaying the live policy must not call that verdict a difference (it did)."""
    r = client(gw).responses.with_raw_response.create(model="reasoning-flag", input="replayed?")
    rid = r.headers["x-llmgw-request-id"]
    assert output_verdicts(gw, rid) == {("PHONE_NUMBER", "flag")}
    result = replay(load_policy(gw.policy_path), open_log(gw.data_dir))
    assert result.summary["differs_from_log"]["guardrails"] == 0
