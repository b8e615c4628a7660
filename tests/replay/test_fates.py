"""The fold's decisions as codes (``replay/fates.py``): a Folded's codes, from the compiled
fold's own arrays or the Python fold's strings, read back through the labels as the strings
its columns hold; a logged column's codes read back as the logged strings."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from test_fold_kernel import composer, tight

from llmgw_kernel.replay.fates import LABELS, encode, fold_codes, logged_codes
from llmgw_kernel.replay.fold_kernel import run_compiled

pytest.importorskip("numba")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fates") / "log"
    replay_scale.generate(d, 3000, seed=11, chunk=1500)
    return d


@pytest.mark.parametrize("compiled", [True, False])
def test_fold_codes_read_back_as_the_columns(log, tmp_path, compiled):
    c = composer(log, tight(), tmp_path)
    f = run_compiled(c) if compiled else c.run(compiled=False)
    for name, labels in LABELS.items():
        codes = fold_codes(f, name)
        assert codes.dtype == np.int8 and (codes >= 0).all(), name
        table = np.array(labels, object)
        assert table[codes].tolist() == f.column(name).tolist(), name
    refused = fold_codes(f, "admission") >= 2
    assert refused.any() and (fold_codes(f, "cache_kind")[refused] == 0).all()  # a refusal reaches no cache


def test_logged_codes_read_back_as_the_log(log, tmp_path):
    w = composer(log, tight(), tmp_path).window
    for name, labels in (("admission", LABELS["admission"]), ("cache", LABELS["cache_kind"])):
        codes = logged_codes(w, name, labels)
        assert np.array(labels, object)[codes].tolist() == list(w[name]), name
    assert (logged_codes(w, "cache", ("hit",)) == -1).any()  # a value of no label: -1


def test_a_value_of_no_label_is_minus_one():
    values = np.array(["ok", None, "rate_limited", "other"], object)
    assert encode(values, LABELS["admission"]).tolist() == [1, 0, 3, -1]
