"""What do output guardrails cost on a passed-through ``/v1/responses`` JSON answer?

In process, CPU time (``time.process_time``) per answer of what the gateway runs on it with an
output ``pii`` redact check: :func:`~llmgw_kernel.proxy.passthrough_guard.guard_answer` (the
texts the chat form does not hold, and the message part by part when it has several parts or
annotations), then the pipeline's check of the chat form
(:meth:`~llmgw_kernel.guardrails.request.RequestGuard.check_completion`). Answers: a 1 000-char
message with an e-mail address and a phone number (``plain``: one part; ``cited``: the same part
with a ``url_citation``, checked part by part) and ``reasoning``: ``plain`` plus a 300-char
reasoning summary. ``--runs`` runs of ``-n`` answers each: median and spread. Every answer gets a
fresh :class:`RequestGuard` (its own placeholder table), as every request does.

    .venv/bin/python benchmarks/passthrough_guard.py --runs 3 -n 300
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from guardrails_stage import EN, PII, rails  # noqa: E402

from llmgw_kernel.guardrails.request import RequestGuard  # noqa: E402
from llmgw_kernel.proxy.passthrough_guard import guard_answer  # noqa: E402
from llmgw_kernel.proxy.passthrough_responses import as_chat  # noqa: E402


def answers() -> dict[str, bytes]:
    text = (EN * 8)[: 1000 - len(PII)] + PII
    part: dict[str, Any] = {"type": "output_text", "text": text, "annotations": []}
    cited = {
        **part,
        "annotations": [{"type": "url_citation", "start_index": 0, "end_index": 5, "url": "u", "title": "T"}],
    }
    summary = {"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": (EN * 4)[:300]}]}

    def response(*items: dict[str, Any]) -> bytes:
        return orjson.dumps({"object": "response", "id": "r", "status": "completed", "output": list(items)})

    message = {"type": "message", "id": "m", "role": "assistant"}
    return {"plain": response({**message, "content": [part]}), "cited": response({**message, "content": [cited]}),
            "reasoning": response(summary, {**message, "content": [part]})}  # fmt: skip


def cpu_per_answer(raw: bytes, n: int) -> float:
    """CPU µs per answer: the pass-through's checks, then the pipeline's check of the chat form."""
    guardrails = rails(output=True)
    t0 = time.process_time()
    for _ in range(n):
        guard = RequestGuard(guardrails)
        checked = guard_answer(raw, guard).raw
        guard.check_completion(orjson.dumps(as_chat(orjson.loads(checked))))
    return (time.process_time() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for name, raw in answers().items():
        runs = [cpu_per_answer(raw, args.n) for _ in range(args.runs)]
        print(f"{name:10} median {statistics.median(runs):7.0f} µs CPU/answer  runs {[round(r) for r in runs]}")


if __name__ == "__main__":
    main()
