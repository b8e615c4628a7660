"""Outside-style: the sweep's candidate builder must work on a live policy that uses a false-hit bound.

docs/cache.md, "Threshold sweep": `table = sweep_semantic_threshold("policies/live.yaml", ...)` then
`candidate = with_semantic_threshold("policies/live.yaml", 0.91)`. The sweep itself runs on a live
policy whose semantic cache is `{max_false_hit_rate: ...}` (it answers one row per threshold), but
`with_semantic_threshold` sets `threshold` next to the bound and then fails validation
("threshold and max_false_hit_rate are alternatives: set one"), so an analyst who swept cannot make
the candidate of the threshold they picked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import policy_for


@pytest.mark.xfail(
    strict=True,
    reason="defect: with_semantic_threshold on a max_false_hit_rate policy raises PolicyError "
    "(threshold and max_false_hit_rate are alternatives) instead of returning the threshold candidate",
)
def test_with_semantic_threshold_replaces_a_bound(tmp_path: Path) -> None:
    from llmgw_kernel.replay.cache_sweep import with_semantic_threshold

    live = policy_for("http://127.0.0.1:9/v1", cache={"semantic": {"max_false_hit_rate": 0.05, "ttl_s": 600}})
    path = tmp_path / "live.yaml"
    path.write_text(yaml.safe_dump(live, sort_keys=False))
    candidate = with_semantic_threshold(str(path), 0.91)
    semantic = candidate.model_dump(mode="json", exclude_unset=True)["cache"]["semantic"]
    assert semantic["threshold"] == 0.91
    assert "max_false_hit_rate" not in semantic
