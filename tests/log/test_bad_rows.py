"""One bad row never blocks the others (issue 10, item 1).

A row whose value cannot be serialised (nested beyond orjson's 254 levels, a token count
DuckDB cannot store as BIGINT, ...) used to fail its whole batch forever: /health 503, later
rows piling up in memory, the SIGTERM flush failing too. Now every row lands; the bad value is
replaced by ``{"llmgw_unserializable": "<reason>"}``.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from aiohttp import web
from conftest import policy_for, wait_for_rows
from fake_http import FakeServer

from llmgw_kernel.log import LogWriter, RequestRecord, open_log

MSG = [{"role": "user", "content": "x"}]


def deep(levels: int) -> dict:
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value  # type: ignore[return-value]


def record(rid: str, **attrs: object) -> RequestRecord:
    rec = RequestRecord(rid, time.time(), "chat.completions")
    rec.route, rec.status, rec.outcome, rec.plan = "m", 200, "ok", ("a/x",)
    rec.request_raw = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
    rec.response_raw = b'{"choices":[{"message":{"content":"yo"}}]}'
    rec.usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    rec.cost_usd = 0.25
    for name, value in attrs.items():
        setattr(rec, name, value)
    return rec


def rows(data_dir) -> dict[str, dict]:
    rel = open_log(data_dir).sql("SELECT * FROM requests")
    return {r[0]: dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()}


def test_deep_metadata_gets_a_marker_and_the_batch_lands(tmp_path):
    w = LogWriter(tmp_path, flush_ms=60000)
    w.append(record("good-1"))
    w.append(record("deep", metadata=deep(300)))
    w.append(record("good-2"))
    w.flush()
    assert w.healthy and w.buffered == 0, w.last_error
    got = rows(tmp_path)
    assert set(got) == {"good-1", "deep", "good-2"}
    marker = json.loads(got["deep"]["metadata"])
    assert list(marker) == ["llmgw_unserializable"] and "Recursion" in marker["llmgw_unserializable"]
    assert got["deep"]["cost_usd"] == 0.25 and got["deep"]["prompt_tokens"] == 1  # the spend still counts
    w.close()


def test_deep_request_fields_keep_the_row(tmp_path):
    """A body nested 300 deep in ``stop`` used to make to_row raise (the row was dropped)."""
    w = LogWriter(tmp_path, flush_ms=60000)
    raw = json.dumps({"model": "m", "messages": MSG, "stop": deep(300)}).encode()
    w.append(record("deep-body", request_raw=raw, response_raw=json.dumps({"x": deep(300)}).encode()))
    w.append(record("good"))
    w.close()
    got = rows(tmp_path)
    assert set(got) == {"deep-body", "good"}
    assert got["deep-body"]["request_hash"] is None  # cannot be canonicalised
    assert "llmgw_unserializable" in json.loads(got["deep-body"]["request_body"])
    assert got["deep-body"]["request_bytes"] == len(raw)


@pytest.mark.parametrize("worker_process", [False, True], ids=["in-process", "worker-process"])
def test_a_row_duckdb_refuses_is_split_out_and_stripped(tmp_path, worker_process):
    """A value orjson can write but the column cannot hold (a token count that is a string) fails
    the DuckDB COPY: the batch is split until the bad row is alone, which keeps its scalars (the
    server's worker process does the same and reports the stripped row back)."""
    w = LogWriter(tmp_path, flush_ms=60000, worker_process=worker_process)
    for i in range(5):
        w.append(record(f"ok-{i}"))
    bad = {"prompt_tokens": "lots", "completion_tokens": 1, "total_tokens": 1}
    w.append(record("huge", usage=bad, metadata={"team": "t1"}))
    for i in range(5, 9):
        w.append(record(f"ok-{i}"))
    w.flush()
    assert w.healthy and w.buffered == 0, w.last_error
    got = rows(tmp_path)
    assert set(got) == {f"ok-{i}" for i in range(9)} | {"huge"}
    assert got["huge"]["prompt_tokens"] is None and got["huge"]["completion_tokens"] == 1
    assert "row refused" in json.loads(got["huge"]["metadata"])["llmgw_unserializable"]
    # the scalars replay reads instead of the metadata and body go with them (the team was t1)
    assert got["huge"]["cache_team"] is None and got["huge"]["exact_key"] is None
    assert got["ok-0"]["cache_team"] == ""
    assert w.rows_stripped == 1
    w.close()


def test_later_rows_keep_flowing_and_close_flushes(tmp_path):
    w = LogWriter(tmp_path, flush_ms=60000)
    w.append(record("deep", metadata=deep(260)))
    w.flush()
    for i in range(3):
        w.append(record(f"after-{i}"))
        w.flush()
        assert w.healthy and w.buffered == 0
    w.append(record("at-close", metadata={"k": deep(400)}))
    w.close()  # the SIGTERM path
    assert set(rows(tmp_path)) == {"deep", "after-0", "after-1", "after-2", "at-close"}


class DeepUpstream(FakeServer):
    """An OpenAI-compatible upstream whose answers nest 300 levels deep in an extra field."""

    name = "deep-upstream"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        answer = {
            "id": "c1", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "deep"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            "extra": deep(300),
        }  # fmt: skip
        return web.Response(body=json.dumps(answer), content_type="application/json")


def test_end_to_end_a_deep_upstream_answer_does_not_wedge_the_log(make_gateway, upstream):
    """Through a real server: the bad row is built by the writer from an upstream answer nested
    300 deep (the request parser cannot refuse it: it is the provider's answer). On d230206
    that request's row was lost (to_row raised hashing the response, and the row was dropped);
    a deep request ``metadata`` (which the parser now refuses with a 400, issue 10 item 1's
    other half) failed its whole batch forever — the direct tests above cover that path."""
    deep_up = DeepUpstream().start()
    try:
        policy = policy_for(upstream.base_url)
        policy["providers"]["deep"] = {
            "kind": "openai",
            "base_url": deep_up.base_url + "/v1",
            "api_key_env": "LOCAL_API_KEY",
        }
        policy["routes"]["deep"] = {"targets": [{"provider": "deep", "model": "deep-model"}]}
        gw = make_gateway(policy)
        r = httpx.post(f"{gw.base_url}/chat/completions", json={"model": "deep", "messages": MSG}, timeout=10)
        assert r.status_code == 200
        ids = [r.headers["x-llmgw-request-id"]]
        for _ in range(3):
            ok = httpx.post(f"{gw.base_url}/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG})
            ids.append(ok.headers["x-llmgw-request-id"])
        quoted = ", ".join(f"'{i}'" for i in ids)
        got = wait_for_rows(gw, f"request_id IN ({quoted})", n=4)
        assert len(got) == 4
        deep_row = next(row for row in got if row["request_id"] == ids[0])
        assert "llmgw_unserializable" in json.loads(deep_row["response_body"])
        assert deep_row["prompt_tokens"] == 3
        assert httpx.get(gw.url + "/health").status_code == 200
    finally:
        deep_up.stop()
