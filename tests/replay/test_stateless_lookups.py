"""The routing-only replay's column helpers (``replay/stateless.py``, ``replay/routing_estimates.py``,
``replay/columns.py``) give what their plain definitions give.

The whole replay is held equal to the fold by tests/replay/test_stateless.py and pinned by
tests/replay/test_replay_pinned.py; these check the cases those logs may not hold: a cache
source logged as something other than a miss (looked up after the misses), a source outside the
window, token columns that are not whole numbers (summed group by group, not by ``bincount``).
"""

from __future__ import annotations

import numpy as np
import pytest

from llmgw_kernel.replay.columns import grouped
from llmgw_kernel.replay.routing_estimates import _sums_by, quantile, quantiles, tokens
from llmgw_kernel.replay.stateless import _source_rows
from llmgw_kernel.replay.window import as_window


def test_a_cache_source_is_found_whatever_its_row_logged() -> None:
    # rows: 0 a miss that stored, 1 a bypass that is nevertheless a source (an older log, an
    # import), 2-5 rows whose source is row 0, row 1, nobody, a request outside the window
    window = as_window({
        "request_id": ["a", "b", "c", "d", "e", "f"],
        "cache": ["miss", "bypass", "hit", "hit", None, "hit"],
        "cache_source": [None, None, "a", "b", None, "zz"],
    })  # fmt: skip
    assert _source_rows(window, np.arange(6)).tolist() == [-1, -1, 0, 1, -1, -1]
    assert _source_rows(window, np.asarray([3, 2])).tolist() == [1, 0]
    assert _source_rows(window, np.asarray([4, 0])).tolist() == [-1, -1]  # no source at all


def test_grouped_gives_each_values_rows_in_order() -> None:
    rng = np.random.default_rng(7)
    for top in (1, 40, 70_000):  # 16-bit codes sort by radix; wider ones too
        codes = rng.integers(0, top, 5_000)
        order, bounds = grouped(codes)
        for v in np.unique(codes).tolist():
            assert order[bounds[v] : bounds[v + 1]].tolist() == np.flatnonzero(codes == v).tolist()
        assert bounds[-1] == len(codes)
    order, bounds = grouped(np.zeros(0, np.int64))
    assert len(order) == 0 and bounds.tolist() == [0]


def test_quantiles_are_quantile_of_each() -> None:
    rng = np.random.default_rng(3)
    for n in (0, 1, 2, 7, 1000):
        values = rng.gamma(2.0, 300.0, n)
        assert quantiles(values, (0.5, 0.95)) == [quantile(values, 0.5), quantile(values, 0.95)]


@pytest.mark.parametrize("whole", [True, False])
def test_sums_by_code_equal_a_sum_per_code(whole: bool) -> None:
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 5, 20_000)
    values = rng.integers(0, 9_000, 20_000).astype(np.float64) if whole else rng.gamma(1.3, 0.37, 20_000)
    sums = _sums_by(codes, 6, (values,), whole)
    for c in range(6):  # code 5 has no row
        assert sums[0][c] == float(values[codes == c].sum())  # bit for bit
        assert sums[1][c] == int(np.count_nonzero(codes == c))


def test_token_counts_sum_exactly_only_when_whole() -> None:
    ints = as_window({"request_id": ["a", "b", "c"], "prompt_tokens": [3, None, 5]})
    zeroed, whole = tokens(ints, "prompt_tokens")
    assert zeroed.tolist() == [3.0, 0.0, 5.0] and whole
    floats = as_window({"request_id": ["a", "b"], "prompt_tokens": [1.5, 2.0]})
    assert not tokens(floats, "prompt_tokens")[1]  # summed group by group, as before
