"""``unmeasured_targets`` (the cost summary's basis: targets of the candidate's plans the log never
attempted, whose failure rate the expected cost takes as 0) is the same from the Python fold and the
compiled fold: only the estimates of requests served upstream count. The compiled fold's inputs
estimate every admitted request before the fold decides which are refused or served from the cache;
they once counted all of them (a target only refused requests would have used was reported)."""

from __future__ import annotations

import numpy as np
import pytest
from test_fold_kernel import composer, live, replay_scale

from llmgw_kernel.replay.fold_kernel import run_compiled

pytest.importorskip("numba")


def _candidate(refuse_all: bool) -> dict:
    """The live policy with a target the log never attempted on the chat route (``refuse_all``:
    and a global budget of 0, so that every request is refused)."""
    doc = live()
    new = {"provider": "openai", "model": "gpt-new"}
    doc["routes"]["chat"]["targets"] = [{**new, "weight": 50}, *doc["routes"]["chat"]["targets"]]
    doc["pricing"] = {**doc["pricing"], "gpt-new": {"input_per_1m": 1, "output_per_1m": 2}}  # not the shared table
    if refuse_all:
        doc["budgets"]["limits"].append({"scope": "global", "usd": 0, "window": "day"})
    return doc


def _unmeasured(folded, c) -> set[str]:
    return c.costs.unmeasured_of(np.asarray(folded.column("served_by")) == "upstream")


@pytest.mark.parametrize("refuse_all", [False, True])
def test_the_compiled_fold_reports_the_unmeasured_targets_the_python_fold_does(refuse_all, tmp_path):
    d = tmp_path / "log"
    replay_scale.generate(d, 3000, seed=4, chunk=3000)
    doc = _candidate(refuse_all)
    python = composer(d, doc, tmp_path)  # two composers: each records what its own fold found
    compiled = composer(d, doc, tmp_path)
    want = _unmeasured(python.run(compiled=False), python)
    got = run_compiled(compiled)
    assert got is not None
    served = np.asarray(got.column("served_by"))
    if refuse_all:  # no estimate served: none counts (every chat request was estimated on gpt-new)
        assert not (served == "upstream").any() and want == set()
    else:
        assert want == {"openai/gpt-new"}
    assert _unmeasured(got, compiled) == want
