"""`llmgw import` (issue 13, item 4): each format's fixture is written here from the format's
public documentation (OpenAI Batch API input/output lines, LiteLLM's LiteLLM_SpendLogs columns,
Portkey's log-export fields), imported through the real log writer, read back with open_log and
replayed. Malformed records are reported by place and skipped; a second import adds nothing."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmgw_kernel import open_log, replay
from llmgw_kernel.importing import import_traffic

T0 = 1_795_687_200  # 2026-11-26T10:00:00Z


def _chat(i: int, content: str) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], "max_tokens": 50}


def _completion(i: int, model: str = "gpt-4o-mini-2024-07-18") -> dict:
    return {
        "id": f"chatcmpl-{i}", "object": "chat.completion", "created": T0 + 60 * i, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"answer {i}"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10 + i, "completion_tokens": 5 + i, "total_tokens": 15 + 2 * i},
    }  # fmt: skip


def _jsonl(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def _rows(data_dir: Path) -> list[dict]:
    con = open_log(data_dir)
    cur = con.execute("SELECT * FROM requests ORDER BY ts")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


@pytest.fixture
def batch_files(tmp_path: Path) -> list[Path]:
    prompts = ["What is the capital of France?", "What is 2 + 2?", "What is the capital of France?"]
    inputs = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": _chat(i, p)}
              for i, p in enumerate(prompts)]  # fmt: skip
    inputs.append({"custom_id": "e0", "method": "POST", "url": "/v1/embeddings",
                   "body": {"model": "text-embedding-3-small", "input": "hello"}})  # fmt: skip
    inputs.append({"custom_id": "never", "method": "POST", "url": "/v1/chat/completions", "body": _chat(9, "x")})
    outputs = [{"id": f"batch_req_{i}", "custom_id": f"r{i}", "error": None,
                "response": {"status_code": 200, "request_id": f"req_{i}", "body": _completion(i)}} for i in range(3)]  # fmt: skip
    outputs.append({"id": "batch_req_e", "custom_id": "e0", "error": None, "response": {"status_code": 200, "request_id": "req_e",
                    "body": {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                             "model": "text-embedding-3-small", "usage": {"prompt_tokens": 1, "total_tokens": 1}}}})  # fmt: skip
    outputs.append({"id": "batch_req_x", "custom_id": "r9", "response": None,
                    "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}})  # fmt: skip
    outputs.insert(1, '{"id": "batch_req_broken", "custom_id": ')  # a torn line, line 2 of the file
    return [_jsonl(tmp_path / "batch_input.jsonl", inputs), _jsonl(tmp_path / "batch_output.jsonl", outputs)]


def test_openai_batch_files_import_joined_by_custom_id(tmp_path: Path, batch_files: list[Path]) -> None:
    data = tmp_path / "imported"
    report = import_traffic("openai", batch_files, data)
    assert (report.imported, report.read) == (3, 7)  # a joined input/output pair is one record
    skipped = dict(report.skipped)
    assert skipped["batch_output.jsonl:2"].startswith("not JSON")
    assert "no time" in skipped["batch_output.jsonl:5"]  # an embeddings response carries no `created`
    assert "no time" in skipped["batch_output.jsonl:6"]  # nor does an error line
    assert "never ran" in skipped["batch_input.jsonl:5"]
    rows = _rows(data)
    assert [r["origin"] for r in rows] == ["import:openai"] * 3
    chat = [r for r in rows if r["endpoint"] == "chat.completions"]
    assert [r["route"] for r in chat] == ["gpt-4o-mini"] * 3
    assert {r["target"] for r in chat} == {"openai/gpt-4o-mini-2024-07-18"}
    assert [r["prompt_tokens"] for r in chat] == [10, 11, 12] and chat[0]["client_request_id"] == "req_0"
    assert int(chat[1]["ts"].timestamp()) == T0 + 60 and chat[0]["status"] == 200 and chat[0]["outcome"] == "ok"
    assert json.loads(chat[0]["request_body"])["messages"][0]["content"] == "What is the capital of France?"
    assert chat[0]["cost_usd"] is None and chat[0]["team"] is None  # not in the source: NULL, never invented
    again = import_traffic("openai", batch_files, data)
    assert (again.imported, again.already) == (0, 3) and len(_rows(data)) == 3


def test_imported_traffic_replays_under_a_candidate(tmp_path: Path, batch_files: list[Path]) -> None:
    data = tmp_path / "imported"
    import_traffic("openai", batch_files, data)
    candidate = {
        "providers": {"openai": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "X"}},
        "routes": {
            "gpt-4o-mini": {"targets": [{"provider": "openai", "model": "gpt-4o-mini", "weight": 1}]},
            "text-embedding-3-small": {"targets": [{"provider": "openai", "model": "text-embedding-3-small"}]},
        },
        "cache": {"exact": {"ttl_s": 3600}},
    }  # fmt: skip
    result = replay(candidate, open_log(data))
    assert len(result.decisions) == 3
    assert result.summary["requests"] == 3
    hits = result.decisions["replay_cache"].tolist()
    assert hits.count("hit") == 1  # the repeated question, answered from the exact cache built from bodies


def test_litellm_spend_logs_csv_and_json(tmp_path: Path) -> None:
    base = {
        "call_type": "acompletion", "api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
        "custom_llm_provider": "openai", "model": "gpt-4o-mini", "model_group": "fast-chat",
        "startTime": "2026-11-26 10:00:00.000", "endTime": "2026-11-26 10:00:01.250",
        "completionStartTime": "2026-11-26 10:00:00.400", "request_duration_ms": 1250, "team_id": "search",
        "user": "", "end_user": "cust-7", "cache_hit": "False", "request_tags": '["prod", "search"]',
        "metadata": json.dumps({"user_api_key_alias": "sk-...x", "spend_logs_metadata": {"feature": "summary"}}),
        "messages": json.dumps([{"role": "user", "content": "Summarise this."}]), "response": "{}",
        "proxy_server_request": "{}", "status": "success", "spend": "0.00042", "prompt_tokens": "120",
        "completion_tokens": "40", "total_tokens": "160",
    }  # fmt: skip
    failure = {**base, "request_id": "f1", "status": "failure", "spend": "0", "completion_tokens": "0",
               "completionStartTime": "2026-11-26 10:00:01.250",
               "metadata": json.dumps({"error_information": {"error_code": "429", "error_class": "RateLimitError",
                                                            "error_message": "Rate limit reached"}})}  # fmt: skip
    rows = [{**base, "request_id": "ok1"}, failure, {**base, "request_id": "img", "call_type": "image_generation"},
            {**base, "request_id": "bad", "spend": "lots"}]  # fmt: skip
    with (tmp_path / "spend.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) + ["request_id"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    report = import_traffic("litellm", [tmp_path / "spend.csv"], tmp_path / "d")
    assert report.imported == 2
    assert dict(report.skipped) == {
        "spend.csv:4": "call_type 'image_generation': llmgw imports chat completions, messages and embeddings",
        "spend.csv:5": "spend: 'lots' is not an amount",
    }
    ok, failed = _rows(tmp_path / "d")
    assert (ok["route"], ok["target"], ok["upstream_model"]) == ("fast-chat", "openai/gpt-4o-mini", "gpt-4o-mini")
    assert (ok["team"], ok["end_user"], ok["cost_usd"], ok["completion_tokens"]) == ("search", "cust-7", 0.00042, 40)
    assert ok["key_id"] == "litellm:88dc28d0f030c55e" and ok["ttft_ms"] == pytest.approx(400.0)
    assert json.loads(ok["metadata"]) == {"feature": "summary", "tags": ["prod", "search"]}
    assert json.loads(ok["request_body"]) == {
        "model": "fast-chat",
        "messages": [{"role": "user", "content": "Summarise this."}],
    }
    assert (failed["outcome"], failed["status"], failed["error_type"], failed["ttft_ms"]) == (
        "error",
        429,
        "RateLimitError",
        None,
    )
    (tmp_path / "spend.json").write_text(json.dumps([{**base, "request_id": "j1"}]))  # the /spend/logs API's JSON
    assert import_traffic("litellm", [tmp_path / "spend.json"], tmp_path / "d").imported == 1


def test_portkey_export_jsonl(tmp_path: Path) -> None:
    nested = {
        "id": "pk-1", "created_at": "2026-11-26T10:00:00.000Z", "ai_org": "openai", "ai_model": "gpt-4o",
        "request": {"body": _chat(0, "Hi there")}, "response": {"body": _completion(0, "gpt-4o")},
        "is_success": 1, "req_units": 10, "res_units": 5, "total_units": 15, "cost": 0.25, "cost_currency": "USD",
        "request_url": "https://api.openai.com/v1/chat/completions", "request_method": "POST",
        "response_status_code": 200, "response_time": 812, "cache_status": "MISS", "stream_mode": "FALSE",
        "metadata": {"team": "support", "_user": "u-1"},
    }  # fmt: skip
    dotted = {k: v for k, v in nested.items() if k not in ("request", "response", "id")}
    dotted |= {"id": "pk-2", "request.body": json.dumps(_chat(1, "Hi there")), "response.body": None,
               "cache_status": "SEMANTIC HIT", "cost": 0, "cost_currency": "EUR"}  # fmt: skip
    _jsonl(tmp_path / "portkey.jsonl", [nested, dotted, {"id": "pk-3", "ai_model": "x"}])
    report = import_traffic("portkey", [tmp_path / "portkey.jsonl"], tmp_path / "d")
    assert report.imported == 2 and dict(report.skipped) == {"portkey.jsonl:3": "created_at: missing"}
    first, second = _rows(tmp_path / "d")
    assert (first["cost_usd"], first["latency_ms"], first["cache"], first["team"]) == (0.0025, 812.0, "miss", "support")
    assert (first["route"], first["target"], first["end_user"]) == ("gpt-4o-mini", "openai/gpt-4o", "u-1")
    assert (second["cache"], second["cost_usd"], second["response_body"]) == (
        "semantic-hit",
        None,
        None,
    )  # EUR: not USD


def test_any_table_with_a_column_mapping_and_the_cli(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({
        "when": [f"2026-11-26T10:0{i}:00Z" for i in range(3)], "model_name": ["gpt-4o"] * 3, "who": ["a", "b", "a"],
        "question": ["q1", "q2", "q1"], "in_tok": [5, 6, 5], "out_tok": [7, 8, 7], "usd": [0.01, 0.02, None],
    }), tmp_path / "t.parquet")  # fmt: skip
    cmd = [sys.executable, "-m", "llmgw_kernel", "import", "table", str(tmp_path / "t.parquet"), "--data-dir",
           str(tmp_path / "d"), "--map", "ts=when", "--map", "route=model_name", "--map", "team=who", "--map",
           "prompt=question", "--map", "prompt_tokens=in_tok", "--map", "completion_tokens=out_tok",
           "--map", "cost_usd=usd"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "imported 3 of 3 table records" in out.stdout and "exact cache: request bodies on 3 of 3 rows" in out.stdout
    assert "semantic cache: no" in out.stdout
    rows = _rows(tmp_path / "d")
    assert [r["team"] for r in rows] == ["a", "b", "a"] and rows[2]["cost_usd"] is None
    bad = subprocess.run([*cmd[:8], "--map", "colour=who"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--map colour: unknown field" in bad.stderr and "Traceback" not in bad.stderr


def test_import_refuses_a_data_dir_a_server_holds_and_open_log_reads_both(tmp_path: Path, make_gateway) -> None:
    gw = make_gateway()
    import httpx

    r = httpx.post(
        f"{gw.base_url}/chat/completions", json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert r.status_code == 200
    _jsonl(tmp_path / "pairs.jsonl", [{"id": "p1", "request": _chat(0, "hello"), "response": _completion(0)}])
    cmd = [sys.executable, "-m", "llmgw_kernel", "import", "openai", str(tmp_path / "pairs.jsonl"), "--data-dir"]
    held = subprocess.run([*cmd, str(gw.data_dir)], capture_output=True, text=True, timeout=60)
    assert (
        held.returncode == 2
        and "in use by llmgw serve" in held.stderr
        and "open_log([served, imported])" in held.stderr
    )
    ok = subprocess.run([*cmd, str(tmp_path / "imp")], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    gw.terminate()
    con = open_log([gw.data_dir, tmp_path / "imp"])
    got = con.execute("SELECT coalesce(origin, 'served'), route FROM requests ORDER BY 1").fetchall()
    assert got == [("import:openai", "gpt-4o-mini"), ("served", "demo")]


def test_every_format_round_trips_into_replay(tmp_path: Path, batch_files: list[Path]) -> None:
    """Each format's import is replayed by a candidate that routes its models: every imported row
    is decided (routed, priced from its tokens) and compared against its logged target."""
    (tmp_path / "spend.json").write_text(json.dumps([{
        "request_id": "l1", "call_type": "acompletion", "model": "gpt-4o-mini", "model_group": "gpt-4o-mini",
        "custom_llm_provider": "openai", "startTime": "2026-11-26T10:00:00Z", "endTime": "2026-11-26T10:00:01Z",
        "prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120, "spend": 0.0001, "status": "success",
    }]))  # fmt: skip
    _jsonl(tmp_path / "pk.jsonl", [{"id": "k1", "created_at": "2026-11-26T10:00:05Z", "ai_org": "openai",
                                    "ai_model": "gpt-4o-mini", "request": {"body": _chat(0, "hey")},
                                    "req_units": 3, "res_units": 4, "is_success": 1, "response_status_code": 200}])  # fmt: skip
    # no target: the export says what was asked, not who answered; the source still routed it
    (tmp_path / "t.csv").write_text("ts,route,prompt_tokens,completion_tokens\n2026-11-26T10:00:09Z,gpt-4o-mini,7,8\n")
    sources = {"openai": batch_files, "litellm": [tmp_path / "spend.json"], "portkey": [tmp_path / "pk.jsonl"],
               "table": [tmp_path / "t.csv"]}  # fmt: skip
    candidate = {
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "X"}},
        "routes": {"gpt-4o-mini": {"targets": [{"provider": "p", "model": "gpt-4o", "weight": 1}]}},
    }  # fmt: skip
    for fmt, files in sources.items():
        data = tmp_path / f"d-{fmt}"
        imported = import_traffic(fmt, files, data).imported
        result = replay(candidate, open_log(data))
        d = result.decisions
        assert len(d) == imported > 0, fmt
        assert (d["replay_target"] == "p/gpt-4o").all(), (fmt, d["replay_target"].tolist())
        assert d["replay_cost_usd"].notna().all() and (d["replay_cost_usd"] > 0).all(), fmt
