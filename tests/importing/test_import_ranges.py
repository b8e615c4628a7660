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


def test_a_cost_above_what_a_request_can_cost_is_skipped_in_every_format(tmp_path: Path) -> None:
    """A cost over MAX_COST_USD (a unit slip: 1e10 USD, 1e300) is reported by place and skipped in
    each format that carries one (a table's cost_usd, LiteLLM's spend, Portkey's cents); the bound
    itself imports. Before, such a row was logged as is and stopped ``llmgw serve`` (the budget
    rebuild's nano-dollar cast) and ``replay()`` (its summed cost overflowed)."""
    import csv

    from llmgw_kernel.decisions.cost import MAX_COST_USD

    def table(costs: list[object]) -> Path:
        src = tmp_path / "t.csv"
        with src.open("w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["id", "ts", "route", "prompt_tokens", "completion_tokens", "cost_usd"])
            out.writerows([f"t{i}", T0 + i, "chat", 3, 1, c] for i, c in enumerate(costs))
        return src

    def litellm(spends: list[object]) -> Path:
        src = tmp_path / "spend.jsonl"
        src.write_text("".join(json.dumps({
            "request_id": f"l{i}", "call_type": "acompletion", "model": "gpt-4o-mini", "startTime": T0 + i,
            "endTime": T0 + i + 1, "status": "success", "spend": s, "prompt_tokens": 3, "completion_tokens": 1,
        }) + "\n" for i, s in enumerate(spends)))  # fmt: skip
        return src

    def portkey(cents: list[object]) -> Path:
        src = tmp_path / "portkey.jsonl"
        src.write_text("".join(json.dumps({
            "id": f"p{i}", "created_at": T0 + i, "ai_org": "openai", "ai_model": "gpt-4o", "is_success": 1,
            "req_units": 3, "res_units": 1, "cost": c, "cost_currency": "USD",
        }) + "\n" for i, c in enumerate(cents)))  # fmt: skip
        return src

    cases = [
        ("table", table, 1, "cost_usd", repr(MAX_COST_USD)),
        ("litellm", litellm, 1, "spend", MAX_COST_USD),
        ("portkey", portkey, 100, "cost", MAX_COST_USD * 100),
    ]
    for n, (fmt, write, per_usd, field, bound) in enumerate(cases):
        huge = ["1e10", "1e300"] if fmt == "table" else [1e10 * per_usd, 1e300]
        report = import_traffic(fmt, [write([0.5 * per_usd, *huge, bound])], tmp_path / f"d{n}")
        assert (report.imported, report.skipped_count) == (2, 2), (fmt, report.lines())
        assert [where.rsplit(":", 1)[1] for where, _ in report.skipped] == (
            ["3", "4"] if fmt == "table" else ["2", "3"]
        )
        assert all(why.startswith(f"{field}: ") and "more than a request can cost" in why for _, why in report.skipped)
        con = open_log(tmp_path / f"d{n}")
        try:
            costs = sorted(r[0] for r in con.sql("SELECT cost_usd FROM requests").fetchall())
        finally:
            con.close()
        assert costs == [0.5, MAX_COST_USD], (fmt, costs)
