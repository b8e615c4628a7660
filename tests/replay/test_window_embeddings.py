"""``Window.embeddings()``: the logged vectors as one float32 matrix, read with one DuckDB scan
thread (less memory held beside the matrix) and the connection's setting put back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmgw_kernel import open_log
from llmgw_kernel.cache.synthetic_log import generate
from llmgw_kernel.replay import load_window


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("emb") / "log"
    generate(d, 1500, seed=5, keys=3, chunk=500)
    return d


def test_the_matrix_is_the_logged_vectors_and_the_thread_setting_is_kept(log_dir):
    con = open_log(log_dir)
    con.execute("SET threads = 3")
    window = load_window(con)
    matrix, rows = window.embeddings()
    assert con.execute("SELECT current_setting('threads')").fetchall()[0][0] == 3
    assert matrix.dtype == np.float32 and matrix.flags.c_contiguous and len(rows) > 500
    logged = dict(con.execute("SELECT request_id, embedding FROM requests WHERE embedding IS NOT NULL").fetchall())
    rids = window.arrow("request_id").to_pylist()
    assert len(logged) == len(rows)
    for k, i in enumerate(rows.tolist()):
        assert np.array_equal(matrix[k], np.asarray(logged[rids[i]], np.float32)), i
    assert np.all(np.diff(rows) > 0)  # window order
    assert window.embeddings()[0] is matrix  # read once
