"""``replay()``'s summary and decisions on a varied log, pinned: a change meant to make replay
cheaper (how the columns, the summaries and the log's own figures are computed, what is built
when) must leave every figure and every decision exactly as it was.

The log is ``benchmarks/replay_scale.py``'s synthetic log (seeded: written through the real log
writer by the live decision functions — fallbacks after failures, unknown models, budget and
rpm refusals, exact hits), 6,000 requests. Candidates: the live policy (the composed fold, 0
differences), a routing-only candidate (the columnar path), and a tight candidate (small
budgets and rpm, a shorter cache TTL, and a custom input guardrail that blocks some prompts: the
fold without the blocked requests, merged back). The pins (``replay_pinned.json`` beside this
file) hold each summary as JSON and a SHA-256 of each decisions frame (index, column names,
dtypes and every value's ``repr``).

A change that is *meant* to alter decisions or figures re-pins, stating why in its commit:
``LLMGW_REPIN=1 .venv/bin/python -m pytest -q tests/replay/test_replay_pinned.py``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmgw_kernel import replay

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402

PINS = Path(__file__).with_name("replay_pinned.json")
ROWS = 6_000

BLOCK_RULE = """
import re
from llmgw_kernel.guardrails.findings import Finding

def refund(text):
    return [Finding("REFUND", m.start(), m.end(), 1.0, "checks.refund") for m in re.finditer("refund", text)]
"""


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pinned") / "log"
    replay_scale.generate(d, ROWS, seed=11, chunk=2000)
    return d


def _candidates(log: Path) -> dict[str, Path]:
    live = replay_scale.policy_doc("live")
    tight = copy.deepcopy(live)
    tight["budgets"]["limits"] = [
        {"scope": "team", "name": "search", "usd": 0.02, "window": "day"},
        {"scope": "team", "usd": 0.05, "window": "day"},
    ]
    tight["rate_limits"] = [{"scope": "key", "rpm": 40}]
    tight["cache"]["exact"]["ttl_s"] = 30
    tight["routes"]["assistant"]["guardrails"] = {
        "input": [{"type": "custom", "rule": "checks:refund", "action": "block"}],
        "output": [],
    }
    (log / "checks.py").write_text(BLOCK_RULE)
    docs = {"live": live, "routing": replay_scale.policy_doc("routing"), "tight": tight}
    out = {}
    for name, doc in docs.items():
        out[name] = log / f"pinned-{name}.yaml"
        out[name].write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def frame_digest(frame: Any) -> str:
    """A SHA-256 of a decisions frame: its index, its columns' names and dtypes, every value."""
    h = hashlib.sha256()
    h.update(repr((frame.index.name, frame.index.tolist())).encode())
    for name in frame.columns:
        col = frame[name]
        h.update(repr((name, str(col.dtype), col.tolist())).encode())
    return h.hexdigest()


def pinned_form(result: Any) -> dict[str, Any]:
    frame = result.decisions
    return {
        "summary": json.loads(json.dumps(result.summary, sort_keys=True, default=repr)),
        "differences": result.differences,
        "compare_to_log": result.compare_to_log(),
        "rows": len(frame),
        "columns": {name: str(frame[name].dtype) for name in frame.columns},
        "decisions_sha256": frame_digest(frame),
    }


# the compiled fold may be compiled here first (numba, cached on disk after): ~65 s on a quiet
# machine, 300 s and more at load 20 (a fresh clone, as CI's)
@pytest.mark.parametrize("fold", ["python", pytest.param("compiled", marks=pytest.mark.timeout(900))])
def test_the_replays_summaries_and_decisions_are_as_pinned(
    log: Path, fold: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same pins whichever fold decides (6,000 rows take the Python fold unless told)."""
    if fold == "compiled":
        from llmgw_kernel.replay import fold as fold_module

        monkeypatch.setattr(fold_module, "COMPILED_FROM_ROWS", 0)
    got = {name: pinned_form(replay(path, str(log))) for name, path in _candidates(log).items()}
    # the log is varied where it matters: the tight candidate refuses, blocks and misses
    tight = got["tight"]["summary"]
    assert tight["outcome"]["refused"] > 0 and tight["outcome"]["blocked"] > 0
    assert tight["outcome"]["served_from_cache"] > 0 and got["routing"]["summary"]["differs_from_log"]["routing"] > 0
    assert got["live"]["compare_to_log"] == 0 and got["live"]["summary"]["outcome"]["served_from_cache"] > 0
    if os.environ.get("LLMGW_REPIN") and fold == "python":
        PINS.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    pinned = json.loads(PINS.read_text())
    for name in got:
        assert got[name]["summary"] == pinned[name]["summary"], f"{name}: the summary changed"
        assert got[name] == pinned[name], f"{name}: the decisions changed"


def test_float_sum_is_pythons_sum_bit_for_bit() -> None:
    import numpy as np

    from llmgw_kernel.replay.costs_columnar import float_sum

    rng = np.random.default_rng(7)
    cases = [np.empty(0), np.array([-0.0]), np.array([-0.0, -0.0]), np.array([-0.0, 1e-300, -1e-300]),
             rng.random(100_001) * 1e-3, rng.standard_normal(5000) * 1e12, np.array([1e16, 1.0, -1e16, 3.5])]  # fmt: skip
    for values in cases:
        want, got = sum(values.tolist()), float_sum(values)
        assert (type(got), repr(got)) == (type(want), repr(want))
    x = rng.random(100_001)
    assert float_sum(x) != float(np.sum(x))  # numpy's pairwise sum has other bits: why not np.sum


def test_the_fates_are_the_compiled_folds_codes() -> None:
    """:mod:`.fates`' labels are what the compiled fold's codes mean (its tables and constants)."""
    from llmgw_kernel.replay import fold_kernel as k
    from llmgw_kernel.replay.fates import ADMISSION, CACHE_KIND, SERVED

    assert (tuple(k._SERVED), tuple(k._ADMISSION), tuple(k._CACHE_KIND)) == (SERVED, ADMISSION, CACHE_KIND)
    assert [ADMISSION[c] for c in (k._ADMITTED, k._BUDGET, k._RATE)] == ["ok", "budget_exceeded", "rate_limited"]
    assert [CACHE_KIND[c] for c in (k._BYPASS, k._HIT, k._MISS, k._SEMHIT)] == ["bypass", "hit", "miss", "semantic-hit"]
    served = ["upstream", "cache", "refused", "check", "unknown_model"]
    assert [SERVED[c] for c in (k._UP, k._CACHE, k._REFUSED, k._CHECK, 4)] == served
