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

import yaml
from conftest import policy_for


def test_with_semantic_threshold_replaces_a_bound(tmp_path: Path) -> None:
    from llmgw_kernel.replay.cache_sweep import with_semantic_threshold

    bound = {"max_false_hit_rate": 0.05, "ttl_s": 600, "verify_rate": 0.1, "equivalence": "exact"}
    live = policy_for("http://127.0.0.1:9/v1", cache={"semantic": bound})
    route = next(iter(live["routes"]))
    live["routes"][route]["cache"] = {"semantic": {"max_false_hit_rate": 0.02, "verify_max_usd_per_hour": 2.0}}
    path = tmp_path / "live.yaml"
    path.write_text(yaml.safe_dump(live, sort_keys=False))
    candidate = with_semantic_threshold(str(path), 0.91)
    doc = candidate.model_dump(mode="json", exclude_unset=True)
    for semantic in (doc["cache"]["semantic"], doc["routes"][route]["cache"]["semantic"]):
        assert semantic["threshold"] == 0.91
        assert not {"max_false_hit_rate", "verify_rate", "verify_max_usd_per_hour", "equivalence"} & set(semantic)
    assert doc["cache"]["semantic"]["ttl_s"] == 600  # what is not the bound's stays
    for name in candidate.routes:
        sem = candidate.cache_for(name).semantic
        assert sem.threshold == 0.91 and sem.max_false_hit_rate is None, name
