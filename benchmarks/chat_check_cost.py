"""CPU per call of ``proxy.validate.check_chat`` (the structural check of a parsed chat body) on three
bodies: best of 5 rounds of 20,000 calls, in µs. Run it at two commits to compare them
(docs/server.md, "Types"): ``git worktree add /tmp/old <commit>`` then
``PYTHONPATH=/tmp/old python benchmarks/chat_check_cost.py`` (the editable install is this checkout)."""

from __future__ import annotations

import time

from llmgw_kernel.proxy.validate import check_chat

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}}
TOOL = {"type": "function", "function": {"name": "w", "parameters": SCHEMA}}
PARTS = [{"type": "text", "text": "x"}] * 4
BODIES = {
    "15 messages": {"model": "m", "messages": [
        {"role": "user" if i % 2 == 0 else "assistant", "content": "hello there " * 20} for i in range(15)]},
    "3 messages + 8 tools": {"model": "m", "messages": [{"role": "user", "content": "x"}] * 3, "tools": [TOOL] * 8},
    "3 messages of 4 parts": {"model": "m", "messages": [{"role": "user", "content": PARTS}] * 3},
}  # fmt: skip


def main() -> None:
    for name, body in BODIES.items():
        best = float("inf")
        for _ in range(5):
            t = time.process_time()
            for _ in range(20_000):
                check_chat(body)
            best = min(best, (time.process_time() - t) / 20_000 * 1e6)
        print(f"{name}: {best:.2f} µs")


if __name__ == "__main__":
    main()
