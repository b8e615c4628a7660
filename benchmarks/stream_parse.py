"""What does reading an upstream's stream cost the gateway, per stream? (docs/benchmarks.md,
"llmgw alone: benchmarks/proxy_overhead.py", the streaming case)

The provider side of a streamed chat request, in process and nothing else: an adapter's reader
(SSE split, each payload checked, usage and end-of-stream noted, Anthropic's events translated)
over a response whose body arrives one event per read, as it does from a real upstream. CPU is
this process's own (``process_time``), per stream, over ``--n`` streams, ``--rounds`` times.

* ``openai``: the stream of ``proxy_overhead.py`` (role, ``--chunks`` content chunks, finish,
  usage, ``[DONE]``) through ``OpenAIAdapter._events``;
* ``anthropic``: the same answer as Anthropic's events through ``AnthropicAdapter._translate``.

The adapters' readers are private methods with the same signature before and after the parse-once
change (commit 65d4d65), so the script measures either tree: run it with ``PYTHONPATH`` set to a
worktree of the other commit, alternating.

    .venv/bin/python benchmarks/stream_parse.py --rounds 5
    PYTHONPATH=/tmp/base .venv/bin/python benchmarks/stream_parse.py --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_overhead import stream_events  # noqa: E402
from scaffold import use_uvloop  # noqa: E402


class _Body:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


class _Response:
    """What the adapters read of an aiohttp response: the body's chunks, release and close."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.content = _Body(chunks)

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


def _anthropic_events(texts: list[str]) -> list[bytes]:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "msg_bench", "model": "claude-bench", "usage": {
            "input_tokens": 19, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}} for t in texts),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ]  # fmt: skip
    return [b"event: %s\ndata: %s\n\n" % (e["type"].encode(), json.dumps(e).encode()) for e in events]


def _adapters() -> tuple[Any, Any, Any]:
    from llmgw_kernel import load_policy
    from llmgw_kernel.providers.anthropic import AnthropicAdapter
    from llmgw_kernel.providers.base import AdapterContext
    from llmgw_kernel.providers.openai import OpenAIAdapter

    policy = load_policy({
        "providers": {"o": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
                      "a": {"kind": "anthropic", "base_url": "http://127.0.0.1:9"}},
        "routes": {"m": {"targets": [{"provider": "o", "model": "gpt-4o-mini"}, {"provider": "a", "model": "claude"}]}},
    })  # fmt: skip
    ctx = AdapterContext(session=None)  # type: ignore[arg-type]  (nothing is sent)
    target = policy.routes["m"].targets[1]
    return OpenAIAdapter("o", policy.providers["o"], ctx), AnthropicAdapter("a", policy.providers["a"], ctx), target


async def _per_stream(kind: str, n: int, chunks: int) -> float:
    """CPU µs of this process per stream read through the adapter."""
    from llmgw_kernel.providers.base import StreamReply

    openai, anthropic, target = _adapters()
    if kind == "openai":
        body = [b"data: " + e.encode() + b"\n\n" for e in stream_events(chunks)]
    else:
        body = _anthropic_events(["Hello"] + [" more words"] * (chunks - 1))

    async def one() -> int:
        reply = StreamReply(None)  # type: ignore[arg-type]
        if kind == "openai":
            events = openai._events(_Response(body), reply, False)
        else:
            events = anthropic._translate(_Response(body), reply, anthropic.translator(target), True)
        count = 0
        async for _ in events:
            count += 1
        assert reply.usage, "the usage was not read: the figure would not be the full reader's"
        return count

    for _ in range(200):
        await one()
    t0 = time.process_time()
    for _ in range(n):
        await one()
    return 1e6 * (time.process_time() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=20_000, help="streams per round and kind")
    ap.add_argument("--chunks", type=int, default=3, help="content chunks per stream (proxy_overhead's default)")
    args = ap.parse_args()
    use_uvloop()
    import llmgw_kernel

    print(f"# llmgw_kernel from {Path(llmgw_kernel.__file__).parent}")
    for kind in ("openai", "anthropic"):
        runs = [round(asyncio.run(_per_stream(kind, args.n, args.chunks)), 2) for _ in range(args.rounds)]
        print(f"{kind:9} CPU µs/stream: median {statistics.median(runs):.2f} (min {min(runs):.2f}, "
              f"max {max(runs):.2f}) {runs}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
