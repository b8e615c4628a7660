"""Outside-style: `llmgw import` skips a record whose time is out of range and imports the rest.

docs/import.md: "A malformed record (not JSON, a wrong type, a missing time, an endpoint llmgw does
not serve) is reported with its place — `file:line` for JSONL ... — and skipped; the rest are
imported. The command exits 1 only when nothing could be imported."

An OpenAI Batch record whose `created` is beyond what a timestamp holds (1e300) is not reported:
the log writer's flush fails ("log flush failed (2 rows kept in memory)"), the command dies with
a traceback, and a *valid* record of the same file is lost. A `created` far in the past
(-99999999999) is written, then the summary crashes (`ValueError: year -1199 is out of range`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _record(custom_id: str, created: float) -> str:
    body = {
        "id": f"chatcmpl-{custom_id}",
        "object": "chat.completion",
        "created": created,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
    return json.dumps({"custom_id": custom_id, "response": {"status_code": 200, "body": body}})


@pytest.mark.parametrize("bad_created", [1e300, -99999999999], ids=["far-future", "far-past"])
def test_import_skips_a_record_with_an_out_of_range_time(tmp_path: Path, bad_created: float) -> None:
    from llmgw_kernel import open_log

    src = tmp_path / "batch.jsonl"
    src.write_text("\n".join([_record("a", 1796000000), _record("bad", bad_created), _record("b", 1796000100)]) + "\n")
    data = tmp_path / "imported"
    out = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "import", "openai", str(src), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = out.stdout + out.stderr
    assert "Traceback" not in text, text[-2000:]
    assert out.returncode == 0, text[-2000:]
    assert "batch.jsonl:2" in text, text  # the malformed record, by place
    con = open_log(data)
    try:
        count = con.sql("SELECT count(*) FROM requests").fetchall()[0][0]
    finally:
        con.close()
    assert count == 2, (count, text)
