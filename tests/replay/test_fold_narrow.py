"""The compiled fold's per-row inputs are as narrow as the values the log can hold (issue 11: a
second replay in one process at 1M rows peaked at ~1 GB, at the serving facts' arrays and the
kernel's step): token counts and rows int32, the cache's size bound int32, and no int64
nano-dollar array beside the float64 cost (the kernel rounds a cost where it commits it). A value
beyond a narrow type declines the kernel (the Python fold runs); none wraps. (A cost beyond
int64 nano-dollars, ~$9.2 billion, needs billions of tokens: prices are at most $1M per 1M.)"""

from __future__ import annotations

import numpy as np
import pytest
from test_fold_kernel import assert_same, composer, tight

from llmgw_kernel.log.reader import open_log
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter
from llmgw_kernel.replay import fold_inputs
from llmgw_kernel.replay.fold_kernel import run_compiled

pytest.importorskip("numba")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("narrow") / "log"
    replay_scale.generate(d, 3000, seed=7, chunk=1500)
    return d


def test_the_kernel_reads_narrow_per_row_inputs(small, tmp_path):
    inp = fold_inputs.inputs(composer(small, tight(), tmp_path))
    assert inp is not None
    a = inp.arrays
    assert "up_nano" not in a, "an int64 nano-dollar array beside the float64 cost"
    narrow = {k: a[k].dtype for k in ("max_e", "up_tok", "rtok")}
    assert narrow == dict.fromkeys(narrow, np.dtype(np.int32)), narrow
    assert inp.order.dtype == np.int32
    assert a["up_tok"].max() > 0 and a["rtok"].max() > 0 and a["max_e"].max() > 0  # the test reads real values
    assert_same(composer(small, tight(), tmp_path))  # and decides as the Python fold, bit for bit


def test_a_token_count_beyond_int32_declines_the_kernel(tmp_path):
    """A request logged with 3 billion tokens (beyond the kernel's int32): the kernel declines and
    the Python fold replays it (a wrapped count would move the team's tpm cut-off)."""
    d = tmp_path / "log"
    replay_scale.generate(d, 1500, seed=11, chunk=1500)
    con = open_log(str(d))
    first = con.sql("SELECT ts, key_id, team, end_user FROM requests ORDER BY ts LIMIT 1").fetchall()[0]
    writer = LogWriter(d, flush_ms=3_600_000, journal=False)
    rec = RequestRecord("req_huge", first[0].timestamp() + 0.5, "chat.completions", "openai")
    rec.route, rec.outcome, rec.status, rec.latency_ms = "chat", "ok", 200, 5.0
    rec.key_id, rec.team, rec.end_user = first[1], first[2], first[3]
    rec.usage, rec.target = {"prompt_tokens": 3_000_000_000, "completion_tokens": 10}, "openai/gpt-4o-mini"
    writer.append(rec)
    writer.close()
    c = composer(d, tight(), tmp_path)
    assert run_compiled(c) is None
    out = c.run(compiled=False)
    assert len(out.admission) == 1501


def test_tokens_of_narrows_or_declines():
    at = fold_inputs.tokens_of(np.array([0.0, 2.0**31 - 1, -(2.0**31)]))
    assert at.dtype == np.int32 and at.tolist() == [0, 2**31 - 1, -(2**31)]
    with pytest.raises(fold_inputs.Unsupported):  # declined, not wrapped
        fold_inputs.tokens_of(np.array([1.0, 2.0**31]))
    with pytest.raises(fold_inputs.Unsupported):
        fold_inputs.tokens_of(np.array([np.nan]))


def test_nano_of_declines_amounts_beyond_int64():
    assert fold_inputs.nano_of(np.array([9.2e9])).tolist() == [round(9.2e9 * fold_inputs.NANO)]
    with pytest.raises(fold_inputs.Unsupported):
        fold_inputs.nano_of(np.array([1.0, 9.3e9]))
    with pytest.raises(fold_inputs.Unsupported):
        fold_inputs.nano_of(np.array([-9.3e9]))
