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


def test_cache_warnings_of_the_partitions_are_kept_once_each() -> None:
    """A compacted outcome journal's warning (cache/bound_replay.journal_warnings) was dropped as
    not mergeable by a partitioned replay."""
    early = "3 request(s) of the window arrived before the outcome journal's compaction"
    parts = [
        {"cache": {"exact_hits": 1, "warnings": [early]}},
        {"cache": {"exact_hits": 2, "warnings": [early, "b"]}},
        {},
    ]
    merged, not_merged = merge_summaries(parts)
    assert not_merged == []
    assert merged["cache"]["warnings"] == sorted({early, "b"})
