"""Outside-style: a partitioned replay must not lose the guardrail figures of a candidate.

docs/replay-distributed.md, "The merge": "`.summary`: figure by figure (`replay/merge.py:RULES`):
counts and USD sums are summed; ... Medians, percentiles, means and the routing estimates are
**not mergeable**". `summary["guardrails"]` holds counts (`requests_checked`, `blocked`,
`blocked_input`, `redacted`, `flagged`, ...), yet `replay_partitioned(..., partitions=2)` returns
every one of them as None (listed in `partitioning.not_merged`), so an analyst who evaluates a
guardrails candidate on partitions learns nothing about what it would block.
"""

from __future__ import annotations

import httpx
import yaml
from conftest import policy_for, wait_for_rows


def test_partitioned_replay_sums_guardrail_counts(upstream, make_gateway, tmp_path) -> None:
    from llmgw_kernel import open_log, replay
    from llmgw_kernel.replay.engines import replay_partitioned

    gw = make_gateway(policy_for(upstream.base_url))
    n = 8
    for i in range(n):
        text = f"please mail alice{i}@example.com about order {i}" if i % 2 else f"plain question {i}"
        r = httpx.post(
            f"{gw.base_url}/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
            timeout=30,
        )
        assert r.status_code == 200, r.text
    assert len(wait_for_rows(gw, "route = 'gpt-4o-mini'", n)) == n

    candidate = policy_for(upstream.base_url, guardrails={"input": [{"type": "pii", "action": "block"}]})
    cand_path = tmp_path / "candidate.yaml"
    cand_path.write_text(yaml.safe_dump(candidate, sort_keys=False))

    con = open_log(gw.data_dir)
    try:
        single = replay(str(cand_path), con).summary["guardrails"]
    finally:
        con.close()
    assert single["requests_checked"] == n and single["blocked"] == n // 2, single

    parted = replay_partitioned(str(cand_path), str(gw.data_dir), engine="local", partitions=2)
    assert parted.summary["partitioning"]["partitions"] == 2, parted.summary["partitioning"]
    merged = parted.summary["guardrails"]
    for figure in ("requests_checked", "blocked", "blocked_input", "redacted", "flagged"):
        assert merged[figure] == single[figure], (figure, merged, parted.summary["partitioning"]["not_merged"])
    # every figure but the distinct bodies (a body may recur in several parts) equals the single replay's:
    # the verdict table, the logged counts, the warnings and the examples (the window's first per verdict)
    not_merged = parted.summary["partitioning"]["not_merged"]
    assert [p for p in not_merged if p.startswith("guardrails.")] == ["guardrails.distinct_bodies"], not_merged
    assert merged["distinct_bodies"] is None
    assert {k: v for k, v in merged.items() if k != "distinct_bodies"} == {
        k: v for k, v in single.items() if k != "distinct_bodies"
    }
    assert merged["verdicts"] and merged["examples"], merged
