"""`llmgw import` refuses, by place, a record whose time or count no real request has.

docs/import.md: times lie in 1970-01-01 .. 2100-01-01; counts (tokens, an HTTP status) are whole
numbers from 0 to 2**31 - 1. Before, a time beyond DuckDB's range made the log flush fail and
lose the valid records flushed with it, and a count beyond the log's INTEGER/BIGINT columns was
written as a *stripped* row (its scalar columns only, bodies and most facts gone) instead of
being reported. Every record here is skipped with its line; the valid ones land whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmgw_kernel import open_log
from llmgw_kernel.importing import import_traffic

T0 = 1_795_687_200  # 2026-11-26T10:00:00Z


def pair(i: int, **extra: object) -> str:
    response = {"id": f"c{i}", "object": "chat.completion", "created": T0 + i, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}  # fmt: skip
    record = {"id": f"r{i}", "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "q"}]},
              "response": response, **extra}  # fmt: skip
    return json.dumps(record)


BAD = [
    pytest.param({"ts": 1e300}, "ts", id="ts-1e300"),
    pytest.param({"ts": "0001-01-01T00:00:00Z"}, "ts", id="ts-year-1"),
    pytest.param({"ts_end": -99999999999}, "ts_end", id="ts_end-year-1199"),
    pytest.param({"status": 2**40}, "status", id="status-2^40"),
    pytest.param({"status": 2**64}, "status", id="status-2^64"),
]


@pytest.mark.parametrize(("extra", "field"), BAD)
def test_a_record_out_of_range_is_skipped_by_place(tmp_path: Path, extra: dict, field: str) -> None:
    src = tmp_path / "pairs.jsonl"
    src.write_text("\n".join([pair(1), pair(2, **extra), pair(3)]) + "\n")
    report = import_traffic("openai", [src], tmp_path / "data")
    assert report.imported == 2 and report.skipped_count == 1, report.lines()
    where, why = report.skipped[0]
    assert where.endswith("pairs.jsonl:2") and why.startswith(f"{field}:"), report.skipped
    assert "\n".join(report.lines())  # the summary prints (no datetime out of range)
    con = open_log(tmp_path / "data")
    try:
        rows = con.sql("SELECT client_request_id, status, request_body IS NOT NULL, metadata FROM requests").fetchall()
    finally:
        con.close()
    assert sorted(r[0] for r in rows) == ["r1", "r3"]
    assert all(r[2] and r[3] is None for r in rows), rows  # whole rows, not stripped ones


def test_huge_token_counts_are_skipped(tmp_path: Path) -> None:
    src = tmp_path / "pairs.jsonl"
    big = json.loads(pair(2))
    big["response"]["usage"]["prompt_tokens"] = 10**30
    src.write_text("\n".join([pair(1), json.dumps(big)]) + "\n")
    report = import_traffic("openai", [src], tmp_path / "data")
    assert (report.imported, report.skipped_count) == (1, 1), report.lines()
    assert report.skipped[0][1].startswith("usage.prompt_tokens:"), report.skipped
