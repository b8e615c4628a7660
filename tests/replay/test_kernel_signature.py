"""The compiled fold has one signature, whatever the inputs' origin: numba types an array's
writability, and an input column is read-only when it is a view of Arrow memory (no nulls) and
writable when it was computed (nulls filled), so the same kernel was compiled twice (~100 CPU s
each) for two windows of one log. Checked by the arguments' numba types, without compiling."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")
from numba import typeof  # noqa: E402

from llmgw_kernel.replay import fold_kernel, fold_semantic  # noqa: E402
from llmgw_kernel.replay.fold_inputs import inputs  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_fold_kernel import composer, live, replay_scale  # noqa: E402


def _flipped(a: dict[str, np.ndarray], writable: bool) -> dict[str, np.ndarray]:
    """The input arrays, every one a copy that is writable (or not)."""
    out = {}
    for k, v in a.items():
        v = np.array(v, copy=True)
        v.flags.writeable = writable
        out[k] = v
    return out


def test_the_kernels_state_has_one_type_whether_its_columns_are_writable_or_not(tmp_path):
    d = tmp_path / "log"
    replay_scale.generate(d, 1500, seed=3, chunk=500)
    doc = live()
    doc["budgets"] = {"limits": [{"scope": "team", "usd": 0.05, "window": "day"}]}
    doc["rate_limits"] = [{"scope": "key", "rpm": 20}]
    c = composer(d, doc, tmp_path)
    inp = inputs(c)
    assert inp is not None
    types = []
    for writable in (True, False):
        inp.arrays = _flipped(inp.arrays, writable)
        types.append([typeof(x) for x in fold_kernel._state(c, inp)])
    assert types[0] == types[1]


def test_read_only_views_every_array_but_those_kept():
    from llmgw_kernel.replay.jit import read_only

    a, b = np.zeros(3), np.ones(2, np.int32)
    sem = fold_semantic.Sem._make([a] * len(fold_semantic.Sem._fields))
    got = read_only(sem, keep=("flag", "nb_tally"))
    assert not got.on.flags.writeable and got.flag.flags.writeable and got.nb_tally.flags.writeable
    assert np.shares_memory(got.on, a) and a.flags.writeable  # a view: no copy, the owner unchanged
    pair = read_only((a, b))
    assert isinstance(pair, tuple) and not any(x.flags.writeable for x in pair)
    assert typeof(read_only(a)) == typeof(read_only(np.asarray(a).copy()))
