"""The SSE splitter every streaming adapter reads through (``providers/sse.py``): the same events
(each parsed once) however the upstream's bytes are sliced; an unreadable payload raises after
the events before it (a client already sent those keeps them); and what ends an OpenAI stream
as a whole one. The proxy-level behaviour of the same faults: test_broken_stream_frames.py and
test_stream_cut_without_done.py under tests/proxy."""

from __future__ import annotations

import asyncio
import json

import pytest

from llmgw_kernel.providers.base import UpstreamError
from llmgw_kernel.providers.sse import DONE, Splitter, StreamEnd, payloads

CHUNKS = [{"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]} for t in ("a", "b\n\nc")]
STREAM = (
    b": keep-alive comment\r\n\r\n"
    + b"".join(
        b"event: chunk\r\nid: %d\r\ndata: %s\r\n\r\n" % (n, json.dumps(c).encode()) for n, c in enumerate(CHUNKS)
    )
    + b'data: {"multi":\ndata: "line"}\n\n'
    + b"retry: 5\n\n"
    + b"data: [DONE]"  # no blank line after the last event
)
EXPECTED = [*CHUNKS, {"multi": "line"}, None]


def _split(data: bytes, step: int) -> list:
    split = Splitter()
    out = [ev for i in range(0, len(data), step) for ev in split.feed(data[i : i + step])]
    return out + list(split.close())


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 10_000])
def test_any_slicing_gives_the_same_events_each_parsed_once(step: int) -> None:
    events = _split(STREAM, step)
    assert [obj for _, obj in events] == EXPECTED
    assert [json.loads(p) if p != DONE else None for p, _ in events] == EXPECTED  # bytes relayed as sent


@pytest.mark.parametrize("bad", [b"data: {broken\n\n", b"data: [1, 2]\n\n", b'data: "text"\n\n', b"data: null\n\n"])
def test_an_unreadable_payload_raises_after_the_events_before_it_in_the_same_chunk(bad: bytes) -> None:
    good = b"data: %s\n\n" % json.dumps(CHUNKS[0]).encode()
    seen = []
    with pytest.raises(UpstreamError) as err:
        for event in Splitter().feed(good + bad + good):
            seen.append(event[1])
    assert err.value.kind == "protocol" and seen == [CHUNKS[0]]


def _ended(objs: list) -> None:
    async def events():
        for obj in objs:
            yield (DONE if obj is None else json.dumps(obj).encode()), obj

    async def run() -> list[bytes]:
        return [p async for p in payloads(events(), StreamEnd())]

    asyncio.run(run())


def _chunk(finish: str | None, **extra: object) -> dict:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}], **extra}


def test_an_openai_stream_ends_with_done_or_a_finish_reason_in_its_last_chunk_naming_one() -> None:
    _ended([_chunk(None), _chunk("stop"), None])
    _ended([_chunk(None), _chunk("stop")])  # no [DONE]: finished all the same
    _ended([_chunk(None), _chunk("length"), {"choices": [], "usage": {"total_tokens": 3}}])  # usage after the finish
    for cut in ([], [_chunk(None)], [_chunk("stop"), _chunk(None)], [{"choices": [], "usage": {}}]):
        with pytest.raises(UpstreamError, match="without `\\[DONE\\]` or a `finish_reason`"):
            _ended(cut)
