"""The semantic synthetic log and the same log with a check row after every semantic hit.

The base log is ``cache/synthetic_log.generate(4000, seed=3, keys=4)``: embeddings and features,
its cache fields decided by the live decision core, few keys so semantic groups are large enough
to hit and evict. The checked log is a copy of it with a check row (``endpoint = 'cache.check'``,
built by the live ``check_record``) written after each semantic hit.

Both are built once per session (the ``semantic_logs`` fixture in ``tests/conftest.py``) and only
read: tests/replay/test_fold_kernel.py, test_fold_checks.py, test_check_rows_routing_forecast.py
and tests/cache/test_cache_sweep.py each generated the same base log for themselves before. A
test that needs a policy file writes it under its own tmp dir, never into these directories.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson

from llmgw_kernel import load_policy
from llmgw_kernel.cache import synthetic_log
from llmgw_kernel.decisions.cost import cost_usd
from llmgw_kernel.log.reader import open_log
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter
from llmgw_kernel.proxy.cache_verify import check_record

PT, CT = 300, 900  # the tokens each check used (its cost: the live policy's price of its target)


def write_logs(base: Path, checked: Path) -> tuple[Path, Path]:
    """The semantic log in ``base``, and in ``checked`` the same log with a check row after each
    semantic hit."""
    synthetic_log.generate(base, 4000, seed=3, keys=4)
    shutil.copytree(base, checked)
    pol = load_policy(base / "policy-live.yaml")
    con = open_log(str(base))
    hits = con.execute(
        "SELECT request_id, epoch(ts_end), route, plan, policy_version, key_id, key_version, team, end_user,"
        " metadata, temperature FROM requests WHERE cache = 'semantic-hit' ORDER BY ts"
    ).fetchall()
    con.close()
    writer = LogWriter(checked, flush_ms=3_600_000, journal=False)
    for rid, end, route, plan, version, key_id, kv, team, user, meta, temp in hits:
        rec = RequestRecord(rid, end, "chat.completions")
        rec.route, rec.plan, rec.policy_version, rec.key_id, rec.key_version = route, tuple(plan), version, key_id, kv
        rec.team, rec.end_user, rec.temperature = team, user, temp
        rec.metadata = orjson.loads(meta) if isinstance(meta, str) else meta
        probe = check_record(rec, {"model": route, "messages": [{"role": "user", "content": "the hit's question"}]})
        probe.ts = end + 0.05  # started once the hit was answered
        probe.target = plan[0]
        probe.usage = {"prompt_tokens": PT, "completion_tokens": CT, "total_tokens": PT + CT}
        probe.cost_usd = cost_usd(pol, probe.target, PT, CT)
        probe.status, probe.outcome, probe.latency_ms, probe.ts_end = 200, "ok", 700.0, probe.ts + 0.7
        writer.append(probe)
    writer.close()
    assert len(hits) > 100
    return base, checked
