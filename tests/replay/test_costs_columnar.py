"""The vectorised costs (``replay/costs_columnar.py``) equal the scalar definitions bit for bit:
``decisions.cost.cost_usd``, ``round(x, 9)``, ``CostModel.expected`` and ``costs.estimates_of``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from llmgw_kernel import load_policy
from llmgw_kernel.decisions.cost import cost_usd
from llmgw_kernel.replay import load_window
from llmgw_kernel.replay.costs import ESTIMATE_COLUMNS, CostEstimates, CostModel, estimates_of
from llmgw_kernel.replay.costs_columnar import (
    ExpectedCosts,
    cost_estimates,
    cost_usd_columns,
    estimates_columnar,
    round9,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402

POLICY = {
    "providers": {"o": {"kind": "demo"}},
    "routes": {"m": {"targets": [{"provider": "o", "model": "gpt-4o"}]}},
    "pricing": {
        "gpt-4o": {"input_per_1m": 2.5, "output_per_1m": 10},
        "cheap": {"input_per_1m": 0.15, "output_per_1m": 0.6, "cached_input_per_1m": 0.075},
        "odd": {"input_per_1m": 0.333, "output_per_1m": 1.7},
    },
}


def _same(got: np.ndarray, want: list[float | None]) -> None:
    w = np.asarray([np.nan if v is None else v for v in want], np.float64)
    bad = np.flatnonzero(~((got == w) | (np.isnan(got) & np.isnan(w))))
    assert not bad.size, f"{bad.size} differ, first {bad[0]}: {got[bad[0]]!r} != {want[bad[0]]!r}"


def test_round9_is_pythons_round_including_values_next_to_a_half() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.random(100_000) * 10.0 ** rng.integers(-9, 3, 100_000),
        (np.arange(200_000) + 0.5) / 1e9,  # decimal halves: the multiplication by 1e9 may round across them
        np.nextafter((np.arange(50_000) + 0.5) / 1e9, 0), np.nextafter((np.arange(50_000) + 0.5) / 1e9, 1),
        [0.0, 1e-10, 5e-10, 1.5e-9, 4503599.6270496, 1e7 + 0.5e-9],
    ])  # fmt: skip
    _same(round9(values), [round(float(v), 9) for v in values])


def test_cost_usd_columns_equals_cost_usd_for_every_row() -> None:
    p = load_policy(POLICY)
    rng = np.random.default_rng(1)
    n = 20_000
    pt = rng.integers(0, 50_000, n).astype(np.float64)
    ct = rng.integers(0, 8_000, n).astype(np.float64)
    cached = rng.integers(-5, 60_000, n).astype(np.float64)
    pt[::7], ct[::11], cached[::5] = np.nan, np.nan, np.nan  # NULLs, some rows with neither count
    py = [None if np.isnan(v) else int(v) for v in pt], [None if np.isnan(v) else int(v) for v in ct]
    pyc = [None if np.isnan(v) else int(v) for v in cached]
    for target in ("o/gpt-4o", "o/cheap", "o/odd"):
        got = cost_usd_columns(p, target, pt, ct, cached)
        assert got is not None
        _same(got, [cost_usd(p, target, a, b, c) for a, b, c in zip(*py, pyc, strict=True)])
        got = cost_usd_columns(p, target, pt, ct)
        assert got is not None
        _same(got, [cost_usd(p, target, a, b) for a, b in zip(*py, strict=True)])
    assert cost_usd_columns(p, "o/unpriced", pt, ct) is None


def test_cost_usd_columns_without_nulls_or_with_one_null_cached_count_for_all_rows() -> None:
    # no NULL token count (no copy of a column is made), and the cached counts given as one NaN
    # broadcast to every row (stateless._cost_as_ran when the log has none): still cost_usd's
    # values bit for bit — a negative prompt count included (min(0, prompt) is then the prompt)
    p = load_policy(POLICY)
    rng = np.random.default_rng(2)
    pt = rng.integers(-3, 50_000, 5_000).astype(np.float64)
    ct = rng.integers(0, 8_000, 5_000).astype(np.float64)
    for target in ("o/gpt-4o", "o/cheap", "o/odd"):
        want = [cost_usd(p, target, int(a), int(b)) for a, b in zip(pt, ct, strict=True)]
        got = cost_usd_columns(p, target, pt, ct, np.full(1, np.nan))
        assert got is not None
        _same(got, want)
        got = cost_usd_columns(p, target, pt, ct, np.full(len(pt), np.nan))
        assert got is not None
        _same(got, want)
    assert not np.isnan(pt).any() and not np.isnan(ct).any()  # the inputs were not changed in place


def test_expected_costs_equal_the_cost_model_and_record_the_same_targets() -> None:
    failure = {"o/gpt-4o": 0.04, "o/cheap": 0.3, "o/odd": 1.0}
    rng = np.random.default_rng(2)
    pt, ct = rng.random(5_000) * 3000, rng.random(5_000) * 500  # means: fractional, round() half to even
    pt[:4] = [0.5, 1.5, 2.5, 1e3 + 0.5]
    for tries in (1, 3):
        doc = {**POLICY, "routes": {"m": {**POLICY["routes"]["m"], "retry": {"attempts": tries}}}}
        p = load_policy(doc)
        for plan in (["o/gpt-4o", "o/cheap"], ["o/odd", "o/cheap", "o/new"], ["o/cheap", "o/unpriced"],
                     ["o/odd", "o/unpriced", "o/gpt-4o"]):  # fmt: skip
            scalar, vector = CostModel(p, failure), ExpectedCosts(p, failure)
            want = [scalar.expected(p, "m", plan, float(a), float(b)) for a, b in zip(pt, ct, strict=True)]
            got = vector.expected(tries, plan, pt, ct)
            if got is None:
                assert all(w is None for w in want), plan
            else:
                _same(got, want)  # type: ignore[arg-type]
            assert (vector.unpriced, vector.unmeasured) == (scalar.unpriced, scalar.unmeasured), plan


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("costs") / "log"
    replay_scale.generate(d, 2000, seed=5, chunk=1000)
    return d


def test_estimates_columnar_equals_estimates_of(synthetic: Path) -> None:
    """The columnar estimates equal the row-by-row rules (``estimates_of`` of the same columns
    as lists: a Window would be handed back to ``estimates_columnar``), and the stateless
    path's ``cost_estimates`` are the same failure rates and means."""
    window = load_window(str(synthetic))
    columnar = estimates_columnar(window)
    lists = {c: list(window[c]) for c in ESTIMATE_COLUMNS}
    assert columnar == estimates_of(lists)
    assert columnar.latency and columnar.means and columnar.failure  # figures, not empty dicts
    costs = cost_estimates(load_window(str(synthetic)))
    assert type(costs) is CostEstimates and (costs.failure, costs.means) == (columnar.failure, columnar.means)
