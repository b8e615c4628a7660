"""The compiled fold's inputs are read from the window's columns (``replay/fold_inputs.py``; the
vectorised cost rules are held to the scalar ones in test_costs_columnar.py): the fold they feed
decides what the Python fold decides — across calendar windows (a budget's day, week and month reset
inside the window), with reservations, rpm and tpm, exact-cache expiry and eviction, refusals,
unknown models and fallbacks (field by field: ``test_fold_kernel.assert_same``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from test_fold_kernel import assert_same, composer, live

from llmgw_kernel.replay.fold_codes import factorize

pytest.importorskip("numba")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402


def test_factorize_codes_combinations_in_first_seen_order():
    a = np.array([3, 1, 3, -1, 1, 3])
    b = np.array([0.5, 0.5, 0.5, 0.5, 0.25, 0.5])
    code, first = factorize(a, b)
    assert code.tolist() == [0, 1, 0, 2, 3, 0] and first.tolist() == [0, 1, 3, 4]


# (log start, time zone, the midnight inside the log): 2026-11-01 00:00 UTC ends a day and a month;
# 2026-11-02 00:00 UTC (a Monday) a day and a week; in Europe/Paris (UTC+1) that Monday starts at
# 2026-11-01 23:00 UTC
@pytest.mark.parametrize(
    "start, tz, midnight",
    [(1_793_491_140.0, "UTC", 1_793_491_200.0), (1_793_577_540.0, "UTC", 1_793_577_600.0),
     (1_793_573_940.0, "Europe/Paris", 1_793_574_000.0)],
)  # fmt: skip
def test_budgets_across_calendar_windows(start, tz, midnight, tmp_path, monkeypatch):
    """Budgets that run out before a day / week / month ends and admit again after it resets."""
    monkeypatch.setattr(replay_scale, "START", start)
    d = tmp_path / "log"
    replay_scale.generate(d, 6000, seed=2, chunk=3000)
    doc = live()
    doc["budgets"] = {
        "timezone": tz,
        "limits": [
            {"scope": "team", "usd": 0.02, "window": "day"},
            {"scope": "key", "usd": 0.05, "window": "week"},
            {"scope": "global", "usd": 0.25, "window": "month"},
            {"scope": "user", "usd": 0.0004, "window": "day", "mode": "soft"},
        ],
    }
    doc["rate_limits"] = [{"scope": "key", "rpm": 6}, {"scope": "team", "tpm": 20_000}]
    doc["cache"] = {"exact": {"ttl_s": 30.0, "max_entries": 150}}  # entries expire and are evicted
    c = composer(d, doc, tmp_path)
    out = assert_same(c)
    refused = [i for i, k in enumerate(out.admission) if k == "budget_exceeded"]
    ts = c.window.epoch("ts")
    assert any(ts[i] < midnight for i in refused) and any(ts[i] >= midnight for i in refused), "no reset inside"
    after = [i for i, k in enumerate(out.admission) if k == "ok" and ts[i] >= midnight]
    assert after, "nothing admitted after the reset"
    assert out.admission.count("rate_limited") > 20
    assert out.served_by.count("unknown_model") > 0 and "miss" in out.cache_kind
    assert any(len(p) > 1 and p[0] != t for p, t in zip(c.window["plan"], c.window["target"], strict=True) if p and t)


def test_a_candidate_that_serves_requests_never_run_live(tmp_path):
    """Reweighted routes, a cache the live policy did not have on a route, tighter limits: rows
    refused or hit live run upstream in replay (estimated usage) and store answers of their own."""
    d = tmp_path / "log"
    replay_scale.generate(d, 4000, seed=9, chunk=2000)
    doc = live()
    doc["routes"]["summarize"].pop("cache", None)  # the live policy had no cache here
    doc["routes"]["assistant"]["targets"][1]["weight"] = 200
    doc["rate_limits"] = [{"scope": "key", "rpm": 1000}]
    doc["cache"] = {"exact": {"ttl_s": 3.0, "max_entries": 15}, "max_temperature": 0.2}
    out = assert_same(composer(d, doc, tmp_path))
    assert out.served_by.count("cache") > 10 and {"bypass", "miss", "hit"} <= set(out.cache_kind)


def test_request_ids_are_told_distinct_only_when_they_are():
    """Request ids code as row positions only when no two are equal (a hash of fixed-width bytes;
    anything else is coded exactly): a repeated id, a NULL, mixed widths, a slice of a column."""
    import pyarrow as pa

    from llmgw_kernel.replay.fold_codes import all_distinct as _all_distinct

    ids = pa.array([f"req_{i:024x}" for i in range(5000)])
    assert _all_distinct(ids) and _all_distinct(ids.slice(7, 300))
    assert not _all_distinct(pa.concat_arrays([ids.slice(0, 10), ids.slice(4, 1)]))
    assert not _all_distinct(pa.array(["ab", None])) and not _all_distinct(pa.array(["ab", "abc"]))
