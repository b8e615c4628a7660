"""The partitioned replay's summary merge (replay/merge.py): dollar figures under ``outcome``
are summed as dollars (rounded to the micro-dollar, as one replay rounds them), not as counts —
a float sum of the partitions' figures is not the whole window's figure."""

from __future__ import annotations

from llmgw_kernel.replay.merge import merge_summaries


def test_outcome_dollars_merge_as_dollars_and_counts_as_counts() -> None:
    parts = [
        {"outcome": {"refused": 2, "logged_spend_refused_usd": 0.333, "logged_spend_blocked_usd": 0.1}},
        {"outcome": {"refused": 1, "logged_spend_refused_usd": 0.333, "logged_spend_blocked_usd": 0.2}},
    ]
    merged, not_merged = merge_summaries(parts)
    assert not_merged == []
    assert merged["outcome"] == {"refused": 3, "logged_spend_refused_usd": 0.666, "logged_spend_blocked_usd": 0.3}
